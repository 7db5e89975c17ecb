package server

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/shell"
)

// HealthCheck says how to tell that a restarted app is up.
type HealthCheck struct {
	Units    []string
	Path     string        // HTTP path that must answer 2xx; "" for none
	Upstream string        // host:port or unix//path.sock
	Timeout  time.Duration // for the HTTP check
	Settle   time.Duration // without an HTTP check: how long units must stay active
	// Ready: without a health path, the app is up once it answers HTTP at
	// all on Upstream (any status) while its units are active, instead of
	// after the settle time.
	Ready bool
	// SettleUnits (workers, restarted with the web process) must be active
	// and still active Settle after the check began, checked alongside the
	// HTTP check: the wait lasts as long as the longer of the two.
	SettleUnits []string
}

// HealthError is a failed health check: the units or the HTTP check, with the
// last lines of the units' journal.
type HealthError struct{ Msg string }

func (e *HealthError) Error() string { return e.Msg }

// HealthURL is the URL (and curl's extra arguments) that reach the app's
// health path on the server itself, past Caddy.
func HealthURL(upstream, p string) (url string, curlArgs []string) {
	if sock, ok := strings.CutPrefix(upstream, "unix/"); ok {
		return "http://localhost" + p, []string{"--unix-socket", sock}
	}
	return "http://" + upstream + p, nil
}

// WaitHealthy waits until every unit is active and, with a health path, the
// app answers 2xx on it; otherwise it fails with the units' recent journal.
// One remote command does the whole wait.
func WaitHealthy(ctx context.Context, h remote.Host, c HealthCheck) error {
	if len(c.Units) == 0 && len(c.SettleUnits) == 0 {
		return nil
	}
	units := shell.QuoteAll(append(append([]string(nil), c.Units...), c.SettleUnits...)...)
	settle := c.Settle
	if settle == 0 {
		settle = time.Second
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	var b strings.Builder
	fmt.Fprintf(&b, "units=%s\n", shell.Quote(units))
	b.WriteString(`journal() { for u in $units; do echo "--- journalctl -u $u (last lines)"; journalctl -u "$u" -n 12 --no-pager -o cat 2>&1 | tail -n 12; done; }
inactive() { for u in $units; do s=$(systemctl is-active "$u" 2>/dev/null); [ "$s" = active ] || { echo "$u is $s"; return 0; }; done; return 1; }
`)
	b.WriteString("start=$(date +%s%3N)\n")
	if c.Path != "" || c.Ready {
		// Poll the health path until it answers 2xx (without one: / until it
		// answers at all). A unit that is no longer
		// active meanwhile (it exited, and systemd is about to start it again)
		// fails the check at once: waiting for the timeout would not help.
		p, accept, what := c.Path, "2??", "no 2xx"
		if p == "" {
			p, accept, what = "/", "[1-5]??", "no HTTP answer"
		}
		url, args := HealthURL(c.Upstream, p)
		prefix := shell.Quote("health check GET " + p + ": ") // the path is the user's: quoted
		if c.Path == "" {
			prefix = shell.Quote("readiness check (no health_check) GET " + p + " on " + c.Upstream + ": ")
		}
		// Every try costs a curl and a date; the units' state (a systemctl
		// each) is looked at on the first try and then at most every
		// 0.2 s, by the clock (a try can last up to curl's 2 s): soon
		// enough for a unit that exited (it waits RestartSec=1 before its
		// next start), and the app's answer is seen within a few tens of
		// ms.
		fmt.Fprintf(&b, `end=$(( start + %d )); next=$start
while :; do
  code=$(curl -s -o /dev/null -w '%%{http_code}' --max-time 2 %s %s 2>/dev/null) || code=000
  case "$code" in %s) break;; esac
  now=$(date +%%s%%3N)
  if [ "$now" -ge "$next" ]; then
    if msg=$(inactive); then echo %s"$msg: it exited while starting" >&2; journal >&2; exit 4; fi
    next=$(( now + 200 ))
  fi
  if [ "$now" -ge "$end" ]; then
    if [ "$code" = 000 ]; then what="no answer"; else what="HTTP $code"; fi
    echo %s"$what, %s within %s (health_check_timeout)" >&2; journal >&2; exit 4
  fi
  sleep 0.02
done
`, timeout.Milliseconds(), shell.QuoteAll(args...), shell.Quote(url), accept, prefix, prefix, what, timeout)
		b.WriteString(`if msg=$(inactive); then echo "health check: $msg after the health check passed" >&2; journal >&2; exit 4; fi
`)
		if len(c.SettleUnits) > 0 {
			// The workers' settle, counted from the start of the check: it
			// ran alongside the HTTP check, and only what is left of it
			// waits now.
			fmt.Fprintf(&b, `while [ "$(date +%%s%%3N)" -lt $(( start + %d )) ]; do
  sleep 0.1
  if msg=$(inactive); then echo "health check (systemctl is-active): $msg within %.1fs of the restart" >&2; journal >&2; exit 4; fi
done
`, settle.Milliseconds(), settle.Seconds())
		}
	} else {
		// Without a health path: every unit must still be active after the
		// settle time (looked at halfway too, to catch a quick crash loop).
		half := settle.Seconds() / 2
		fmt.Fprintf(&b, `sleep %.1f
if msg=$(inactive); then echo "health check (systemctl is-active): $msg %.1fs after the restart" >&2; journal >&2; exit 4; fi
sleep %.1f
if msg=$(inactive); then echo "health check (systemctl is-active): $msg %.1fs after the restart" >&2; journal >&2; exit 4; fi
`, half, half, half, settle.Seconds())
	}
	check := func(res remote.Result) error {
		if res.Code != 0 {
			msg := strings.TrimSpace(res.Stderr)
			if msg == "" {
				msg = fmt.Sprintf("health check exited %d", res.Code)
			}
			return &HealthError{Msg: msg}
		}
		return nil
	}
	res, err := h.Run(ctx, b.String(), remote.RunOpts{Sudo: true, Check: check})
	if err != nil {
		return err
	}
	return check(res)
}
