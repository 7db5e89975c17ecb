package e2e

import (
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// A load balancer: one server of role loadbalancer in front of three web
// servers, which it reaches through the routes between their namespaces.
// The deploy gives the balancer its Caddy site and nothing of the app; its
// requests are answered by all three; a rolling deploy (--batch 1) under
// load takes each web server out of the balancer while it takes the new
// version, and back, one after the other, and no request fails; a rolling
// deploy that fails on the first web server leaves the balancer sending to
// the servers that serve, and that one comes back once restored.
func TestLoadBalancer(t *testing.T) {
	lb := freshHost(t, 0)
	webs := []*TestHost{freshHost(t, 1), freshHost(t, 2), freshHost(t, 3)}
	for _, w := range webs {
		Route(t, lb, w)
	}
	p := NewProject(t, ProjectSpec{App: "lb", Hosts: append(slices.Clone(webs), lb), Webextra: `health_check_timeout = "4s"`})
	p.setRoles(lb, `["loadbalancer"]`)
	for _, w := range webs {
		p.setRoles(w, `["web"]`)
	}
	url := p.SiteURL(lb)

	r := p.MustRaijin("deploy")
	if !strings.Contains(r.Stderr, lb.Name) || !strings.Contains(r.Stderr, "balancer") {
		t.Errorf("the deploy's summary does not show the balancer:\n%s", r.Stderr)
	}
	// The balancer has its site and nothing of the app.
	site := lb.Root(t, "cat /etc/caddy/conf.d/"+p.App+".caddy")
	for _, w := range webs {
		if !strings.Contains(site, w.Addr+":") {
			t.Errorf("the balancer's site does not send to %s:\n%s", w.Addr, site)
		}
	}
	if got := lb.Root(t, "ls /opt/raijin/"+p.App+" /etc/systemd/system/"+p.App+"* 2>&1 | grep -c 'No such' || true"); got != "2\n" {
		t.Errorf("the balancer has the app's directory or units: %q", got)
	}

	// Every web server answers through the balancer.
	seen := map[string]bool{}
	for i := 0; i < 30 && len(seen) < len(webs); i++ {
		code, body := Get(t, url)
		if code != 200 {
			t.Fatalf("GET %s = %d %q", url, code, body)
		}
		if m := answerRe.FindStringSubmatch(body); m != nil {
			seen[m[2]] = true
		}
	}
	for _, w := range webs {
		if !seen[w.Name] {
			t.Errorf("%s never answered through the balancer (answers from %v)", w.Name, seen)
		}
	}

	// A rolling deploy under load through the balancer.
	l := StartLoad(t, url, deployLoad)
	l.waitRequests(t, 300)
	from := time.Now()
	deployUnderLoad(t, p, l, "balancer: rolling deploy 1.0.0 -> 1.1.0 (--batch 1)", "1.1.0", "deploy", "--batch", "1", "--set-version", "1.1.0")
	outs := outWindows(t, l, from, time.Now(), webs)
	for i, o := range outs {
		t.Logf("%s out of the balancer for %s (answered %s before, %s after)", o.host, o.end.Sub(o.start).Round(10*time.Millisecond), o.before, o.after)
		if o.before != "1.0.0" || o.after != "1.1.0" {
			t.Errorf("%s answered %s before it left the balancer and %s after it came back, want 1.0.0 then 1.1.0", o.host, o.before, o.after)
		}
		if i > 0 && o.start.Before(outs[i-1].end) {
			t.Errorf("%s left the balancer before %s was back in it", o.host, outs[i-1].host)
		}
	}

	// A rolling deploy that fails on the first web server (its new version
	// is never healthy): it is restored and back in the balancer, the
	// others stay on 1.1.0, and no request fails.
	from = time.Now()
	p.breakNext("FAIL_HEALTH=1")
	r = p.Raijin("deploy", "--batch", "1", "--set-version", "1.2.0")
	if r.Code != 4 {
		t.Fatalf("a rolling deploy whose first host fails its health check should exit 4: %s", r)
	}
	time.Sleep(3 * time.Second) // the balancer's health check takes it back
	l.waitRequests(t, l.Count()+300)
	to := time.Now()
	l.Stop()
	s := l.Stats("balancer: failed rolling deploy", from, to)
	benchReport(t, s)
	if s.Failed != 0 || s.PostFailed != 0 || !slices.Equal(s.Versions, []string{"1.1.0"}) {
		t.Errorf("during the failed deploy: %s, want every request answered by 1.1.0\n%s", s, strings.Join(s.Errors, "\n"))
	}
	last := map[string]time.Time{}
	for _, a := range l.answers(from, to) {
		last[a.host] = a.at
	}
	if at := last[webs[0].Name]; at.Before(to.Add(-time.Second)) {
		t.Errorf("%s, restored, is not back in the balancer: its last answer at %s, the load ran until %s", webs[0].Name, at.Format(time.StampMilli), to.Format(time.StampMilli))
	}
	all := l.Stats("balancer: whole run", time.Time{}, time.Time{})
	t.Log(all)
}

var answerRe = regexp.MustCompile(`goapp (\S+): hello from (\S+)`)

type answer struct {
	at            time.Time
	version, host string
}

// answers are the answers of the requests that started between from and
// to, in the order they started.
func (l *Load) answers(from, to time.Time) []answer {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []answer
	for _, r := range l.reqs {
		if r.start.Before(from) || r.start.After(to) {
			continue
		}
		if m := answerRe.FindStringSubmatch(r.body); m != nil {
			out = append(out, answer{r.start, m[1], m[2]})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
}

// out is the time a web server answered no request while the others did,
// and the version it answered with before and after.
type out struct {
	host          string
	start, end    time.Time
	before, after string
}

// outWindows finds, for each web server, the longest time between two of
// its answers through the balancer: it must be over two seconds while the
// others answer every few milliseconds. They are returned in time order.
func outWindows(t *testing.T, l *Load, from, to time.Time, webs []*TestHost) []out {
	t.Helper()
	as := l.answers(from, to)
	var outs []out
	for _, w := range webs {
		var o out
		var prev *answer
		for i := range as {
			a := &as[i]
			if a.host != w.Name {
				continue
			}
			if prev != nil && a.at.Sub(prev.at) > o.end.Sub(o.start) {
				o = out{host: w.Name, start: prev.at, end: a.at, before: prev.version, after: a.version}
			}
			prev = a
		}
		if gap := o.end.Sub(o.start); gap < 2*time.Second {
			t.Errorf("%s was never out of the balancer: at most %s between two of its answers", w.Name, gap)
			continue
		}
		others := 0
		for _, a := range as {
			if a.host != w.Name && a.at.After(o.start) && a.at.Before(o.end) {
				others++
			}
		}
		if others < 50 {
			t.Errorf("while %s was out of the balancer, the others answered %d requests", w.Name, others)
		}
		outs = append(outs, o)
	}
	sort.Slice(outs, func(i, j int) bool { return outs[i].start.Before(outs[j].start) })
	if len(outs) != len(webs) {
		t.Errorf("%d of %d web servers were taken out of the balancer", len(outs), len(webs))
	}
	return outs
}
