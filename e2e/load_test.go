package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// A bounded load generator for the zero-downtime tests and the deploy
// benchmark (scripts/bench-deploy.sh): GETs through Caddy on the test server
// only, from a few sequential clients (one keep-alive connection each), a few
// concurrent ones sharing a pool of keep-alive connections, a few that
// open a new connection for every request, and a few that POST. It stops by itself after
// maxRequests or maxDuration, whichever comes first.

// Load is a running load generator.
type Load struct {
	url    string
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	reqs   []loadReq
	max    int
}

type loadReq struct {
	start   time.Time
	latency time.Duration
	client  string
	code    int    // 0: no response
	err     string // connection error, or the body of a non-2xx answer
	body    string
}

// LoadSpec says how much load to send.
type LoadSpec struct {
	Sequential int // clients sending one request after the other on one connection
	Concurrent int // clients sharing a keep-alive connection pool
	NewConn    int // clients opening a new connection for each request
	Post       int // clients sending POSTs (with a small body) on keep-alive connections
	// Pace is the least time between the starts of one client's requests:
	// dense enough to see any gap, without a load generator that takes a
	// whole core from the deploy it watches.
	Pace        time.Duration
	MaxRequests int
	MaxDuration time.Duration
}

// StartLoad starts sending GETs to url (a test server's address only).
func StartLoad(t *testing.T, url string, spec LoadSpec) *Load {
	t.Helper()
	if !strings.HasPrefix(url, "http://10.213.") {
		t.Fatalf("load is only sent to the test servers, not to %s", url)
	}
	ctx, cancel := context.WithTimeout(context.Background(), spec.MaxDuration)
	l := &Load{url: url, ctx: ctx, cancel: cancel, max: spec.MaxRequests}
	// Longer than Caddy's lb_try_duration: a request that waits for the
	// restart is slow, not failed.
	const perRequest = 40 * time.Second
	pooled := &http.Transport{MaxIdleConnsPerHost: spec.Concurrent + 1}
	client := func(kind string, i int) (string, *http.Client) {
		name := fmt.Sprintf("%s-%d", kind, i)
		switch kind {
		case "sequential":
			return name, &http.Client{Timeout: perRequest, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		case "concurrent":
			return name, &http.Client{Timeout: perRequest, Transport: pooled}
		case "post":
			return name, &http.Client{Timeout: perRequest, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		default:
			return name, &http.Client{Timeout: perRequest, Transport: &http.Transport{DisableKeepAlives: true}}
		}
	}
	for kind, n := range map[string]int{"sequential": spec.Sequential, "concurrent": spec.Concurrent, "newconn": spec.NewConn, "post": spec.Post} {
		for i := 0; i < n; i++ {
			name, c := client(kind, i)
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				for ctx.Err() == nil {
					start := time.Now()
					if !l.one(ctx, c, name) {
						return
					}
					if d := spec.Pace - time.Since(start); d > 0 {
						select {
						case <-ctx.Done():
						case <-time.After(d):
						}
					}
				}
			}()
		}
	}
	t.Cleanup(func() { l.Stop() })
	return l
}

// one sends one request; false when the request budget is spent.
func (l *Load) one(ctx context.Context, c *http.Client, name string) bool {
	l.mu.Lock()
	if len(l.reqs) >= l.max {
		l.mu.Unlock()
		return false
	}
	l.mu.Unlock()
	r := loadReq{start: time.Now(), client: name}
	req, _ := http.NewRequest("GET", l.url, nil)
	if strings.HasPrefix(name, "post") {
		req, _ = http.NewRequest("POST", l.url, strings.NewReader("form=data"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err == nil {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		r.code, r.body = resp.StatusCode, string(b)
		if r.code < 200 || r.code > 299 {
			r.err = fmt.Sprintf("HTTP %d: %s", r.code, strings.TrimSpace(r.body))
		}
	} else {
		if ctx.Err() != nil {
			return false // stopped, not failed
		}
		r.err = err.Error()
	}
	r.latency = time.Since(r.start)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.reqs) >= l.max {
		return false
	}
	l.reqs = append(l.reqs, r)
	return true
}

// Stop stops the load and waits for the clients to finish.
func (l *Load) Stop() {
	l.cancel()
	l.wg.Wait()
}

// LoadStats sums up the requests that started in a time window.
type LoadStats struct {
	Name       string        `json:"name"`
	Requests   int           `json:"requests"` // GETs
	Failed     int           `json:"failed"`
	Posts      int           `json:"posts"` // POSTs (with a body), counted apart
	PostFailed int           `json:"post_failed"`
	MaxLatency time.Duration `json:"max_latency_ns"`
	P50        time.Duration `json:"p50_ns"`
	P99        time.Duration `json:"p99_ns"`
	Window     time.Duration `json:"window_ns"`
	Versions   []string      `json:"versions"`         // in the order first seen
	Errors     []string      `json:"errors,omitempty"` // the first 10 of Failures, as text
	Failures   []LoadFailure `json:"-"`                // every failed request
}

// LoadFailure is a request that failed: its client, when it ended, and why.
type LoadFailure struct {
	Client string
	At     time.Time
	Err    string
}

// OneInstantCloses reports whether the failures, if any, are what one
// Caddy reload can do to requests in flight at that instant: connections
// closed under them, reset or at their end of file (a request sent on an
// idle connection as the server closes it), all within window of each
// other (a client may see two: its request reset, and its retry a
// millisecond later). It says what else it saw when they are not.
func (s LoadStats) OneInstantCloses(window time.Duration) (bool, string) {
	var first, last time.Time
	for _, f := range s.Failures {
		if !strings.Contains(f.Err, "connection reset by peer") && !strings.HasSuffix(f.Err, ": EOF") {
			return false, "not a connection closed under the request: " + f.Client + ": " + f.Err
		}
		if first.IsZero() || f.At.Before(first) {
			first = f.At
		}
		if f.At.After(last) {
			last = f.At
		}
	}
	if d := last.Sub(first); d > window {
		return false, fmt.Sprintf("failures spread over %s (more than %s)", d.Round(time.Millisecond), window)
	}
	return true, ""
}

func (s LoadStats) String() string {
	posts := ""
	if s.Posts > 0 {
		posts = fmt.Sprintf(" (and %d POSTs, %d failed)", s.Posts, s.PostFailed)
	}
	return fmt.Sprintf("%s: %d GETs in %.1fs, %d failed%s, longest %s, p50 %s, p99 %s, versions seen %v",
		s.Name, s.Requests, s.Window.Seconds(), s.Failed, posts, s.MaxLatency.Round(time.Millisecond), s.P50.Round(100*time.Microsecond), s.P99.Round(time.Millisecond), s.Versions)
}

// Stats sums up the requests that started between from and to (zero times:
// all of them).
func (l *Load) Stats(name string, from, to time.Time) LoadStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := LoadStats{Name: name}
	seen := map[string]bool{}
	var lat []time.Duration
	var first, last time.Time
	for _, r := range l.reqs {
		if (!from.IsZero() && r.start.Before(from)) || (!to.IsZero() && r.start.After(to)) {
			continue
		}
		if first.IsZero() || r.start.Before(first) {
			first = r.start
		}
		if end := r.start.Add(r.latency); end.After(last) {
			last = end
		}
		lat = append(lat, r.latency)
		if r.latency > s.MaxLatency {
			s.MaxLatency = r.latency
		}
		post := strings.HasPrefix(r.client, "post")
		if post {
			s.Posts++
		} else {
			s.Requests++
		}
		if r.err != "" {
			if post {
				s.PostFailed++
			} else {
				s.Failed++
			}
			s.Failures = append(s.Failures, LoadFailure{r.client, r.start.Add(r.latency), r.err})
			continue
		}
		if f := strings.Fields(r.body); len(f) >= 2 && !seen[f[1]] {
			seen[f[1]] = true
			s.Versions = append(s.Versions, strings.TrimSuffix(f[1], ":"))
		}
	}
	for _, f := range s.Failures[:min(len(s.Failures), 10)] {
		s.Errors = append(s.Errors, f.Client+": "+f.Err)
	}
	if len(lat) > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		s.P50 = lat[len(lat)/2]
		s.P99 = lat[len(lat)*99/100]
	}
	s.Window = last.Sub(first)
	return s
}

// LastBody is the body of the last successful answer.
func (l *Load) LastBody() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.reqs) - 1; i >= 0; i-- {
		if l.reqs[i].err == "" {
			return l.reqs[i].body
		}
	}
	return ""
}

// Count is the number of requests answered so far.
func (l *Load) Count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.reqs)
}

// waitRequests waits until the load has sent n requests.
func (l *Load) waitRequests(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for l.Count() < n {
		if c := l.Count(); c >= l.max || l.ctx.Err() != nil {
			t.Fatalf("the load generator stopped (%d requests, its budget %d; or its time ran out) before %d requests: give the test a larger LoadSpec", c, l.max, n)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the load generator sent only %d requests in 30s", l.Count())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// benchReport logs s and appends it as one tab-separated line to
// $RAIJIN_BENCH_OUT, for scripts/bench-deploy.sh: name, GETs, failed GETs,
// POSTs, failed POSTs, longest request and p99 in milliseconds, p50 in
// microseconds.
func benchReport(t *testing.T, s LoadStats) {
	t.Helper()
	t.Log(s)
	out := os.Getenv("RAIJIN_BENCH_OUT")
	if out == "" {
		return
	}
	f, err := os.OpenFile(out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	must(t, err)
	defer f.Close()
	_, err = fmt.Fprintf(f, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", s.Name, s.Requests, s.Failed, s.Posts, s.PostFailed,
		s.MaxLatency.Milliseconds(), s.P99.Milliseconds(), s.P50.Microseconds())
	must(t, err)
}
