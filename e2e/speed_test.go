package e2e

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A deploy that changes only the code costs a handful of round trips, and
// the server does no daemon-reload and no Caddy reload (the switch to the
// other web slot is a file Caddy looks at); a changed unit brings the
// daemon-reload back.
func TestCodeOnlyDeployFewRoundTripsNoReloads(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "fast", Hosts: []*TestHost{h}})
	p.MustRaijin("deploy")
	// The second deploy installs the green slot's unit (a daemon-reload,
	// once); from then on the slots take turns with their units in place.
	p.MustRaijin("deploy", "--set-version", "1.0.1")

	reloads := func(since string) (daemon, caddy int) {
		out := h.Root(t, "journalctl --since @"+since+" -o cat _PID=1 | grep -c '^Reloading\\.$'; journalctl --since @"+since+" -o cat | grep -ci '^Reloading caddy'; true")
		f := strings.Fields(out)
		if len(f) != 2 {
			t.Fatalf("journal counts: %q", out)
		}
		daemon, _ = strconv.Atoi(f[0])
		caddy, _ = strconv.Atoi(f[1])
		return
	}
	commands := regexp.MustCompile(`(\d+) remote commands carrying (\d+) steps`)

	time.Sleep(1100 * time.Millisecond)
	since := strings.TrimSpace(h.Run(t, "date +%s"))
	r := p.MustRaijin("deploy", "--set-version", "1.1.0")
	if _, body := Get(t, p.SiteURL(h)); !strings.Contains(body, "goapp 1.1.0") {
		t.Fatalf("GET / = %q after the code-only deploy", body)
	}
	m := commands.FindStringSubmatch(r.Stderr)
	if m == nil {
		t.Fatalf("no cost line in the output:\n%s", r.Stderr)
	}
	rt, steps := atoi(m[1]), atoi(m[2])
	if rt > 7 || steps < 12 {
		t.Errorf("code-only deploy: %d round trips carrying %d steps, want at most 7 round trips for a dozen steps", rt, steps)
	}
	if d, c := reloads(since); d != 0 || c != 0 {
		t.Errorf("code-only deploy: %d daemon-reloads and %d Caddy reloads on the server, want none", d, c)
	}

	// A changed unit (another command line): one daemon-reload, still no
	// Caddy reload.
	p.Write("raijin.toml", strings.Replace(readFile(t, p.Dir+"/raijin.toml"), `web = "`+p.App+`"`, `web = "env CHANGED=1 `+p.App+`"`, 1), 0o644)
	time.Sleep(1100 * time.Millisecond)
	since = strings.TrimSpace(h.Run(t, "date +%s"))
	p.MustRaijin("deploy", "--set-version", "1.2.0")
	if d, c := reloads(since); d != 1 || c != 0 {
		t.Errorf("deploy with a changed unit: %d daemon-reloads and %d Caddy reloads, want 1 and 0", d, c)
	}
	if got := h.Root(t, "systemctl show -p Environment --value "+p.WebUnit(h)+"; systemctl cat "+p.WebUnit(h)+" | grep ExecStart"); !strings.Contains(got, "CHANGED=1") {
		t.Errorf("the changed unit is not in effect: %q", got)
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }
