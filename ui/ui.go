// Package ui owns everything raijin prints while it works: a line per host
// and phase, -v command echo, upload progress, and --json events. Results go
// to stdout, progress to stderr; in --json mode stdout carries one JSON event
// per line.
package ui

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/raijin-deploy/raijin/secrets"
	"golang.org/x/term"
)

// UI prints progress and results. Safe for concurrent use by host runs.
type UI struct {
	Out, Err io.Writer
	JSON     bool
	Verbose  bool
	Color    bool
	TTY      bool
	Redactor *secrets.Redactor

	mu       sync.Mutex
	lastProg time.Time
	progLine bool
	upStart  map[string]time.Time // host+file: when its upload began
}

// New sets up output for the given streams: colour and progress bars only on
// a terminal, not in CI, and never with NO_COLOR.
func New(out, errw io.Writer, jsonOut, verbose, noColor bool) *UI {
	return newUI(isTerminal(errw), out, errw, jsonOut, verbose, noColor)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newUI is New once it knows whether errw is a terminal, which a test can
// claim without having one.
func newUI(terminal bool, out, errw io.Writer, jsonOut, verbose, noColor bool) *UI {
	u := &UI{Out: out, Err: errw, JSON: jsonOut, Verbose: verbose, Redactor: &secrets.Redactor{}}
	if terminal && os.Getenv("CI") == "" {
		u.TTY = true
		u.Color = !noColor && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
	}
	return u
}

func (u *UI) paint(code, s string) string {
	if !u.Color {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (u *UI) event(kind string, fields map[string]any) {
	fields["event"] = kind
	fields["time"] = time.Now().UTC().Format(time.RFC3339Nano)
	data, _ := json.Marshal(fields)
	fmt.Fprintln(u.Out, u.text(string(data)))
}

func (u *UI) clearProgress() {
	if u.progLine {
		fmt.Fprint(u.Err, "\r\x1b[K")
		u.progLine = false
	}
}

// text is s as every method prints it: secrets hidden, control characters
// shown as escapes (Printable).
func (u *UI) text(s string) string {
	return Printable(u.Redactor.Redact(s))
}

// Printf writes a line of progress to stderr (an event in --json).
func (u *UI) Printf(format string, args ...any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	msg := u.text(fmt.Sprintf(format, args...))
	if u.JSON {
		u.event("message", map[string]any{"message": msg})
		return
	}
	u.clearProgress()
	fmt.Fprintln(u.Err, msg)
}

// Result writes a line of the command's result to stdout (an event in --json).
func (u *UI) Result(format string, args ...any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	msg := u.text(fmt.Sprintf(format, args...))
	if u.JSON {
		u.event("result", map[string]any{"message": msg})
		return
	}
	u.clearProgress()
	fmt.Fprintln(u.Out, msg)
}

// Data writes machine output (a command's own result) to stdout, secrets
// hidden and control characters escaped.
func (u *UI) Data(s string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.clearProgress()
	fmt.Fprint(u.Out, u.text(s))
}

// JSONValue writes v as one JSON document on stdout.
func (u *UI) JSONValue(v any) {
	data, _ := json.MarshalIndent(v, "", "  ")
	u.Data(string(data) + "\n")
}

func (u *UI) PhaseStart(host, phase string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.JSON {
		u.event("phase_started", map[string]any{"host": host, "phase": phase})
		return
	}
	if u.Verbose {
		u.clearProgress()
		fmt.Fprintf(u.Err, "%s %-8s %s\n", u.paint("2", "…"), host, phase)
	}
}

func (u *UI) PhaseEnd(host, phase string, d time.Duration, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.JSON {
		f := map[string]any{"host": host, "phase": phase, "seconds": d.Seconds(), "ok": err == nil}
		if err != nil {
			f["error"] = u.text(err.Error())
		}
		u.event("phase_finished", f)
		return
	}
	u.clearProgress()
	mark := u.paint("32", "✓")
	if err != nil {
		mark = u.paint("31", "✗")
	}
	fmt.Fprintf(u.Err, "%s %-8s %-12s %6.2fs\n", mark, host, phase, d.Seconds())
}

func (u *UI) Log(host, phase, msg string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	msg = u.text(msg)
	if u.JSON {
		u.event("log", map[string]any{"host": host, "phase": phase, "message": msg})
		return
	}
	u.clearProgress()
	fmt.Fprintf(u.Err, "  %-8s %s\n", host, msg)
}

func (u *UI) Command(host, cmd string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	cmd = u.text(cmd)
	if u.JSON {
		u.event("command", map[string]any{"host": host, "command": cmd})
		return
	}
	if u.Verbose {
		u.clearProgress()
		fmt.Fprintf(u.Err, "%s %s\n", u.paint("36", "["+host+"]"), cmd)
	}
}

// HostResult is one line of the per-host summary of a run on several hosts.
func (u *UI) HostResult(host, status, detail string, d time.Duration) {
	u.mu.Lock()
	defer u.mu.Unlock()
	detail = u.text(detail)
	if u.JSON {
		u.event("host_result", map[string]any{"host": host, "status": status, "detail": detail, "seconds": d.Seconds()})
		return
	}
	u.clearProgress()
	color := "32"
	switch status {
	case "failed":
		color = "31"
	case "skipped", "rolled back":
		color = "33"
	}
	fmt.Fprintf(u.Err, "%-8s %s %s (%.1fs)\n", host, u.paint(color, status), detail, d.Seconds())
}

// DryRun prints a step of --dry-run as it would be sent (remote.Recorder).
func (u *UI) DryRun(host, kind, what, content string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	what, content = u.text(what), u.text(content)
	if u.JSON {
		f := map[string]any{"host": host, "kind": kind, "what": what}
		if u.Verbose && content != "" {
			f["content"] = content
		}
		u.event("dry_run", f)
		return
	}
	if kind == "phase" {
		// A header per host and phase: the dry run reads as one block each.
		if host == "local" {
			fmt.Fprintf(u.Out, "== local: phase %s\n", what)
		} else {
			fmt.Fprintf(u.Out, "== host %s: phase %s\n", host, what)
		}
		return
	}
	fmt.Fprintf(u.Out, "  %-6s %s\n", kind, strings.ReplaceAll(what, "\n", "\n         "))
	if u.Verbose && content != "" {
		for _, l := range strings.Split(strings.TrimRight(content, "\n"), "\n") {
			fmt.Fprintf(u.Out, "         | %s\n", l)
		}
	}
}

// Upload shows a progress bar with the speed for a large upload on a
// terminal, and events in --json.
func (u *UI) Upload(host, local, remote string, sent, total int64, skipped bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	key := host + "\x00" + remote
	if u.upStart == nil {
		u.upStart = map[string]time.Time{}
	}
	start, ok := u.upStart[key]
	if !ok {
		start = time.Now()
		u.upStart[key] = start
	}
	if sent >= total || skipped {
		delete(u.upStart, key)
	}
	if u.JSON {
		u.event("upload", map[string]any{"host": host, "file": remote, "sent": sent, "total": total, "skipped": skipped})
		return
	}
	if skipped {
		if u.Verbose {
			u.clearProgress()
			fmt.Fprintf(u.Err, "  %-8s %s unchanged on the server (same SHA-256): not sent\n", host, remote)
		}
		return
	}
	if !u.TTY || total < 1<<20 {
		return
	}
	pct := float64(sent) / float64(total)
	width := 30
	bar := strings.Repeat("█", int(pct*float64(width))) + strings.Repeat("░", width-int(pct*float64(width)))
	speed := ""
	if el := time.Since(start).Seconds(); el > 0.05 {
		speed = " " + human(int64(float64(sent)/el)) + "/s"
	}
	fmt.Fprintf(u.Err, "\r\x1b[K  %-8s %s %3.0f%% %s/%s%s", host, u.paint("36", bar), pct*100, human(sent), human(total), speed)
	u.progLine = sent < total
	if sent >= total {
		fmt.Fprint(u.Err, "\r\x1b[K")
	}
}

// Final is the last event of a command in --json: whether it worked and
// what it cost. Nothing is printed otherwise (the text lines said it).
func (u *UI) Final(fields map[string]any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.JSON {
		u.event("result", fields)
	}
}

func human(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// Human formats a byte count.
func Human(n int64) string { return human(n) }
