package ui

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/raijin-deploy/raijin/secrets"
)

func TestUploadProgressBarShowsSpeedOnATerminal(t *testing.T) {
	var errb bytes.Buffer
	u := &UI{Out: &bytes.Buffer{}, Err: &errb, TTY: true, Redactor: &secrets.Redactor{}}
	u.Upload("web1", "dist/app", "/srv/app", 0, 8<<20, false)
	time.Sleep(60 * time.Millisecond)
	u.Upload("web1", "dist/app", "/srv/app", 4<<20, 8<<20, false)
	out := errb.String()
	if !strings.Contains(out, " 50% 4.0 MB/8.0 MB ") || !strings.Contains(out, "MB/s") {
		t.Errorf("progress line = %q, want percentage, sizes and speed", out)
	}
	if strings.Contains(out, "\x1b[36m") {
		t.Errorf("colour without Color: %q", out)
	}
	u.Upload("web1", "dist/app", "/srv/app", 8<<20, 8<<20, false)
	if !strings.HasSuffix(errb.String(), "\r\x1b[K") {
		t.Errorf("the bar is not cleared at the end: %q", errb.String())
	}

	// Not a terminal: no bar at all.
	errb.Reset()
	u.TTY = false
	u.Upload("web1", "dist/app", "/srv/app", 4<<20, 8<<20, false)
	if errb.Len() != 0 {
		t.Errorf("progress off a terminal: %q", errb.String())
	}
}

func TestNoColorWithoutATerminalOrWithNO_COLOR(t *testing.T) {
	for _, tc := range []struct {
		name               string
		terminal           bool
		env                map[string]string
		noColor            bool
		wantTTY, wantColor bool
	}{
		{name: "a terminal", terminal: true, wantTTY: true, wantColor: true},
		{name: "a terminal with NO_COLOR", terminal: true, env: map[string]string{"NO_COLOR": "1"}, wantTTY: true},
		{name: "a terminal with --no-color", terminal: true, noColor: true, wantTTY: true},
		{name: "a dumb terminal", terminal: true, env: map[string]string{"TERM": "dumb"}, wantTTY: true},
		{name: "a terminal in CI", terminal: true, env: map[string]string{"CI": "true"}},
		{name: "no terminal", terminal: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"NO_COLOR", "CI", "TERM"} {
				t.Setenv(k, tc.env[k])
			}
			u := newUI(tc.terminal, &bytes.Buffer{}, &bytes.Buffer{}, false, false, tc.noColor)
			if u.TTY != tc.wantTTY || u.Color != tc.wantColor {
				t.Errorf("TTY %v, Color %v; want TTY %v, Color %v", u.TTY, u.Color, tc.wantTTY, tc.wantColor)
			}
			if painted := u.paint("31", "x") != "x"; painted != tc.wantColor {
				t.Errorf("paint coloured: %v; want %v", painted, tc.wantColor)
			}
		})
	}
	// New asks the stream: a buffer is no terminal.
	t.Setenv("NO_COLOR", "")
	t.Setenv("CI", "")
	if u := New(&bytes.Buffer{}, &bytes.Buffer{}, false, false, false); u.TTY || u.Color {
		t.Errorf("a buffer taken for a terminal: TTY %v, Color %v", u.TTY, u.Color)
	}
}

func TestJSONEventsOnePerLine(t *testing.T) {
	var out bytes.Buffer
	u := &UI{Out: &out, Err: &bytes.Buffer{}, JSON: true, Redactor: &secrets.Redactor{}}
	u.Redactor.Add("s3cret")
	u.PhaseStart("web1", "transfer")
	u.Command("web1", "echo s3cret")
	u.Upload("web1", "dist/app", "/srv/app", 10, 10, false)
	u.PhaseEnd("web1", "transfer", 1500*time.Millisecond, nil)
	u.HostResult("web1", "deployed", "on 1.0", time.Second)
	u.Final(map[string]any{"ok": true, "connections": 1})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{"phase_started", "command", "upload", "phase_finished", "host_result", "result"}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, l := range lines {
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev["event"] != want[i] || ev["time"] == nil {
			t.Errorf("line %d = %q, want a %s event with a time", i, l, want[i])
		}
	}
	if strings.Contains(out.String(), "s3cret") {
		t.Errorf("a secret in the JSON events")
	}
}

// Text a server sent cannot drive the terminal: control characters other
// than tab and newline, bidirectional overrides and bytes that are not
// UTF-8 are shown as escapes, in a form JSON reads too.
func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"plain text, tab\tand\nnewline": "plain text, tab\tand\nnewline",
		"ann\x1b[2J\x1b]0;title\x07":    `ann\u001b[2J\u001b]0;title\u0007`,
		"over\rwritten":                 `over\u000dwritten`,
		"del\x7f c1\u009b31m":           `del\u007f c1\u009b31m`,
		"user\u202egnp.exe":             `user\u202egnp.exe`,
		"isolate\u2066x\u2069":          `isolate\u2066x\u2069`,
		"bad \xff byte, é kept":         `bad \xff byte, é kept`,
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
	var v string
	if err := json.Unmarshal([]byte(`"`+Printable("a\x7fb\u202ec")+`"`), &v); err != nil || v != "a\x7fb\u202ec" {
		t.Errorf("in JSON: %q, %v", v, err)
	}
}

// Every line the UI prints goes through Printable, after redaction.
func TestUIPrintsServerTextEscaped(t *testing.T) {
	var out, errb bytes.Buffer
	u := newUI(false, &out, &errb, false, false, true)
	u.Redactor.Add("hunter22")
	u.Log("web1", "connect", "held by eve\x1b[8m@hunter22")
	u.Result("%s", "holder \u202eevil")
	u.Data("line\r\n")
	if got := errb.String(); got != "  web1     held by eve\\u001b[8m@******\n" {
		t.Errorf("Log printed %q", got)
	}
	if got := out.String(); got != "holder \\u202eevil\nline\\u000d\n" {
		t.Errorf("Result and Data printed %q", got)
	}
}
