package engine_test

import (
	"context"
	"errors"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/engine"
	"github.com/raijin-deploy/raijin/internal/testkit"
	"github.com/raijin-deploy/raijin/recipe"
	"github.com/raijin-deploy/raijin/remote"
)

// fakeHost stands in for a server: it records every command and file, answers
// the connect script, fails commands starting with "fail", and blocks on
// "block" until its context ends.
type fakeHost struct {
	name      string
	versions  string // what .versions holds
	mu        sync.Mutex
	log       []string
	cancelled chan error
	blocking  chan struct{} // told when "block" starts
}

// conn is the fake's connection: a Recorder that answers through it.
func (f *fakeHost) conn() remote.Conn {
	return &remote.Recorder{HostName: f.name, Respond: f.respond}
}

func (f *fakeHost) add(s string) {
	f.mu.Lock()
	f.log = append(f.log, s)
	f.mu.Unlock()
}

// commands are the recorded actions, without raijin's own bookkeeping.
func (f *fakeHost) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.log {
		if strings.Contains(c, "@@versions") || strings.Contains(c, ".lock") {
			continue
		}
		out = append(out, c)
	}
	return out
}

// respond records st as the fake's log shows it and answers: the connect
// script, a failure for commands starting with "fail", a wait for "block".
func (f *fakeHost) respond(ctx context.Context, st remote.Step) (remote.Result, error) {
	switch st.Kind {
	case "write":
		f.add("write " + st.Path + " " + string(st.Content))
		return remote.DefaultAnswer(st), nil
	case "check":
		f.add("upload " + st.Local + " " + st.Path)
		return remote.DefaultAnswer(st), nil
	case "upload":
		return remote.Result{}, nil
	}
	f.add(st.Line)
	cmd := st.Desc
	switch {
	case strings.Contains(cmd, "@@versions"):
		return remote.Result{Stdout: "/home/deploy\ndeploy\nlocked\n@@versions\n" + f.versions}, nil
	case strings.HasPrefix(cmd, "fail"):
		return remote.Result{Code: 7, Stderr: "it broke"}, nil
	case cmd == "block":
		if f.blocking != nil {
			f.blocking <- struct{}{}
		}
		<-ctx.Done()
		if f.cancelled != nil {
			f.cancelled <- ctx.Err()
		}
		return remote.Result{}, ctx.Err()
	}
	return remote.Result{}, nil
}

// events records what a run reports.
type events struct {
	mu      sync.Mutex
	lines   []string
	started chan string // told "host phase" as each phase starts
}

func (e *events) add(s string) { e.mu.Lock(); e.lines = append(e.lines, s); e.mu.Unlock() }
func (e *events) PhaseStart(host, phase string) {
	e.add("start " + host + " " + phase)
	if e.started != nil {
		e.started <- host + " " + phase
	}
}
func (e *events) PhaseEnd(host, phase string, _ time.Duration, err error) {
	e.add("end " + host + " " + phase)
}
func (e *events) Log(host, phase, msg string) { e.add("log " + host + " " + phase + ": " + msg) }
func (e *events) Command(host, cmd string)    {}
func (e *events) DryRun(host, kind, what, content string) {
	e.add("dry " + host + " " + kind + " " + what)
}

const testTOML = testkit.ShopTOML + `env = """
TOKEN=$RAIJIN_TEST_TOKEN
"""
`

// project writes raijin.toml and the given files into a temporary directory
// and loads the configuration.
func project(t *testing.T, files map[string]string) *config.Config {
	t.Helper()
	return testkit.Project(t, testTOML, files)
}

// run runs the deploy flow of cfg against host.
func run(ctx context.Context, t *testing.T, cfg *config.Config, host *fakeHost, mod func(*engine.Options)) (*events, error) {
	t.Helper()
	ev := &events{}
	o := engine.Options{
		Config: cfg, Sources: recipe.SourcesFor(cfg, ""), Command: "deploy", Hosts: cfg.Hosts,
		Events: ev, PhaseTimeout: time.Minute,
		Connect: func(context.Context, config.Host) (remote.Conn, func(), error) { return host.conn(), func() {}, nil },
	}
	if mod != nil {
		mod(&o)
	}
	_, err := engine.Run(ctx, o)
	return ev, err
}

func hostErr(t *testing.T, err error) *engine.HostError {
	t.Helper()
	var he *engine.HostError
	if !errors.As(err, &he) {
		t.Fatalf("want a engine.HostError, got %T %v", err, err)
	}
	return he
}

// withValues returns a recorded command line as the shell runs it: the
// variables its exports set (env = {...}) replaced by their values in the
// script, ${NAME:+word} by word when NAME is set, a sudo wrapper and double
// quotes dropped. Tests match on what a script does, not on how it gets its
// values.
func withValues(line string) string {
	if rest, ok := strings.CutPrefix(line, "sudo -n sh -c "); ok {
		line = shellWord(rest)
	}
	env := map[string]string{}
	var names []string
	for strings.HasPrefix(line, "export ") {
		end := wordEnd(line)
		name, value, _ := strings.Cut(line[len("export "):end], "=")
		env[name] = shellWord(value)
		names = append(names, name)
		line = strings.TrimPrefix(line[end:], "; ")
	}
	line = regexp.MustCompile(`\$\{(\w+):\+([^}]*)\}`).ReplaceAllStringFunc(line, func(m string) string {
		name, word, _ := strings.Cut(m[2:len(m)-1], ":+")
		if env[name] == "" {
			return ""
		}
		return word
	})
	sort.Slice(names, func(i, j int) bool { return len(names[i]) > len(names[j]) })
	for _, k := range names {
		line = regexp.MustCompile(`\$(\{`+k+`\}|`+k+`\b)`).ReplaceAllLiteralString(line, env[k])
	}
	return strings.ReplaceAll(line, `"`, "")
}

// wordEnd is where the export at the start of s ends: at the first ";"
// outside single quotes.
func wordEnd(s string) int {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\'':
			quoted = !quoted
		case s[i] == '\\' && !quoted:
			i++
		case s[i] == ';' && !quoted:
			return i
		}
	}
	return len(s)
}

// shellWord undoes shell.Quote.
func shellWord(s string) string {
	if !strings.HasPrefix(s, "'") {
		return s
	}
	return strings.ReplaceAll(strings.TrimSuffix(strings.TrimPrefix(s, "'"), "'"), `'\''`, "'")
}
