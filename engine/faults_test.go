package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/engine"
	"github.com/raijin-deploy/raijin/errs"
	"github.com/raijin-deploy/raijin/recipe"
	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/server"
)

// dropping is f's connection, which dies at the command "drop".
func dropping(f *fakeHost) *remote.Recorder {
	rec := &remote.Recorder{HostName: f.name}
	rec.Respond = func(ctx context.Context, st remote.Step) (remote.Result, error) {
		if st.Desc == "drop" {
			rec.Drop(errors.New("connection lost"))
			return remote.Result{}, errors.New("the connection to web1 dropped while the command ran")
		}
		return f.respond(ctx, st)
	}
	return rec
}

// When the connection drops in a phase, the undo handlers and the lock's
// release run over a new connection.
func TestDroppedConnectionUndoesAndUnlocksOverANewOne(t *testing.T) {
	cfg := project(t, map[string]string{"deploy.lua": `local raijin = require('raijin')
raijin.phase('switch', function(ctx) ctx.host:run('switch') end)
raijin.undo('switch', function(ctx) ctx.host:run('switch back') end)
raijin.phase('release', function(ctx) ctx.host:run('drop') end)
raijin.phases { 'switch', 'release' }
`})
	first := dropping(&fakeHost{name: "web1", versions: "1.0.0\n"})
	second := &fakeHost{name: "web1"}
	var dials int
	ev := &events{}
	_, err := engine.Run(context.Background(), engine.Options{
		Config: cfg, Sources: recipe.SourcesFor(cfg, ""), Command: "deploy", Hosts: cfg.Hosts, Events: ev, PhaseTimeout: 60e9,
		Connect: func(context.Context, config.Host) (remote.Conn, func(), error) {
			dials++
			if dials == 1 {
				return first, func() {}, nil
			}
			return second.conn(), func() {}, nil
		},
	})
	if err == nil || !strings.Contains(err.Error(), "phase release:") || !strings.Contains(err.Error(), "dropped") {
		t.Fatalf("want the release phase's dropped connection, got %v", err)
	}
	if dials != 2 {
		t.Fatalf("connected %d times, want once more after the drop", dials)
	}
	got := strings.Join(second.log, "\n")
	if !strings.Contains(got, "switch back") || !strings.Contains(got, ".lock") {
		t.Errorf("the new connection should run the undo and release the lock; it ran:\n%s", got)
	}
	if !strings.Contains(strings.Join(ev.lines, "\n"), "the connection dropped: connecting again to clean up") {
		t.Errorf("the run did not say it reconnected: %q", ev.lines)
	}
}

// staleLockHost answers the connect script with a lock held by a dead
// process of this machine, until it is forced.
type staleLockHost struct {
	*fakeHost
	holder string
}

func (s *staleLockHost) conn() remote.Conn {
	return &remote.Recorder{HostName: s.name, Respond: func(ctx context.Context, st remote.Step) (remote.Result, error) {
		if strings.Contains(st.Desc, "@@versions") && !strings.Contains(st.Desc, "rm -rf") {
			s.add(st.Desc)
			return remote.Result{Stdout: "/home/deploy\ndeploy\nheld\n" + s.holder + "\n@@versions\n1.0.0\n"}, nil
		}
		return s.fakeHost.respond(ctx, st)
	}}
}

// A stale lock stops the run with exit 3 naming --force-unlock, unless the
// TakeOverStale question (a terminal) says yes.
func TestStaleLockTakeOver(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	machine, _ := os.Hostname()
	holder, _ := json.Marshal(server.LockInfo{User: "ci", Machine: machine, PID: dead.Process.Pid, Command: "deploy", Version: "1.1.0"})
	cfg := project(t, map[string]string{"deploy.lua": `local raijin = require('raijin')
raijin.phase('work', function(ctx) ctx.host:run('work') end)
raijin.phases { 'work' }
`})
	for _, answer := range []*bool{nil, ptr(false), ptr(true)} {
		h := &staleLockHost{fakeHost: &fakeHost{name: "web1"}, holder: string(holder)}
		var asked []string
		o := engine.Options{Config: cfg, Sources: recipe.SourcesFor(cfg, ""), Command: "deploy", Hosts: cfg.Hosts, Events: &events{}, PhaseTimeout: 60e9,
			Connect: func(context.Context, config.Host) (remote.Conn, func(), error) { return h.conn(), func() {}, nil }}
		if answer != nil {
			a := *answer
			o.TakeOverStale = func(q string) bool { asked = append(asked, q); return a }
		}
		_, err := engine.Run(context.Background(), o)
		switch {
		case answer != nil && *answer:
			if len(asked) != 1 || !strings.Contains(asked[0], "stale") {
				t.Errorf("asked %q, want one question about the stale lock", asked)
			}
			if err != nil || !strings.Contains(strings.Join(h.log, "\n"), "work") {
				t.Errorf("after yes the run should take the lock and go on: %v, ran %q", err, h.log)
			}
		default:
			if errs.Code(err) != errs.CodeLocked || !strings.Contains(err.Error(), "stale") || !strings.Contains(errs.Hint(err), "--force-unlock") {
				t.Errorf("answer %v: want exit 3, stale, hint naming --force-unlock; got %v (hint %q)", answer != nil, err, errs.Hint(err))
			}
		}
	}
}

func ptr(b bool) *bool { return &b }

// A lock from another machine is stale once it is older than any run can
// hold it (its phases' timeouts and a margin); a recent one is not.
func TestStaleLockByAge(t *testing.T) {
	cfg := project(t, map[string]string{"deploy.lua": `local raijin = require('raijin')
raijin.phase('work', function(ctx) ctx.host:run('work') end)
raijin.phases { 'work' }
`})
	for _, c := range []struct {
		age   time.Duration
		stale bool
	}{{time.Minute, false}, {24 * time.Hour, true}} {
		holder, _ := json.Marshal(server.LockInfo{User: "ci", Machine: "elsewhere", PID: 1, Command: "deploy", Since: time.Now().Add(-c.age)})
		h := &staleLockHost{fakeHost: &fakeHost{name: "web1"}, holder: string(holder)}
		_, err := engine.Run(context.Background(), engine.Options{Config: cfg, Sources: recipe.SourcesFor(cfg, ""), Command: "deploy", Hosts: cfg.Hosts,
			Events: &events{}, PhaseTimeout: time.Minute,
			Connect: func(context.Context, config.Host) (remote.Conn, func(), error) { return h.conn(), func() {}, nil }})
		if errs.Code(err) != errs.CodeLocked {
			t.Fatalf("age %s: want exit 3, got %v", c.age, err)
		}
		if got := strings.Contains(err.Error(), "so the lock is stale"); got != c.stale {
			t.Errorf("age %s: stale = %v, want %v: %v", c.age, got, c.stale, err)
		}
		if c.stale && !strings.Contains(err.Error(), "1 phase(s) × phase_timeout 1m0s") {
			t.Errorf("age %s: the error should say why: %v", c.age, err)
		}
	}
}

// When the answer to the connect script is lost (the connection drops as
// the server takes the lock), the lock is released over a new connection,
// guarded by this run's token.
func TestLockReleasedWhenConnectAnswerIsLost(t *testing.T) {
	cfg := project(t, map[string]string{"deploy.lua": `local raijin = require('raijin')
raijin.phase('work', function(ctx) ctx.host:run('work') end)
raijin.phases { 'work' }
`})
	first := &fakeHost{name: "web1"}
	rec := &remote.Recorder{HostName: "web1"}
	rec.Respond = func(ctx context.Context, st remote.Step) (remote.Result, error) {
		if strings.Contains(st.Desc, "@@versions") {
			first.add(st.Line)
			rec.Drop(errors.New("connection lost"))
			return remote.Result{}, errors.New("the connection to web1 dropped while the command ran")
		}
		return first.respond(ctx, st)
	}
	second := &fakeHost{name: "web1"}
	dials := 0
	_, err := engine.Run(context.Background(), engine.Options{
		Config: cfg, Sources: recipe.SourcesFor(cfg, ""), Command: "deploy", Hosts: cfg.Hosts, Events: &events{}, PhaseTimeout: time.Minute,
		Connect: func(context.Context, config.Host) (remote.Conn, func(), error) {
			dials++
			if dials == 1 {
				return rec, func() {}, nil
			}
			return second.conn(), func() {}, nil
		},
	})
	if err == nil || !strings.Contains(err.Error(), "phase connect:") {
		t.Fatalf("want the connect phase's error, got %v", err)
	}
	got := strings.Join(second.log, "\n")
	if !strings.Contains(got, "grep -qF ") || !strings.Contains(got, ".lock/info") || strings.Contains(got, "work") || strings.Contains(got, `"result"`) {
		t.Errorf("the new connection should only release the lock, guarded by the token; it ran:\n%s", got)
	}
}

// The audit line of a failed run keeps the reason, the last line of what
// the failing command printed, not only the command.
func TestAuditLineKeepsTheReason(t *testing.T) {
	cfg := project(t, map[string]string{"deploy.lua": `local raijin = require('raijin')
raijin.phase('work', function(ctx) ctx.host:run('fail now') end)
raijin.phases { 'work' }
`})
	h := &fakeHost{name: "web1"}
	if _, err := run(context.Background(), t, cfg, h, nil); err == nil {
		t.Fatal("the run should fail")
	}
	h.mu.Lock()
	log := strings.Join(h.log, "\n")
	h.mu.Unlock()
	if !strings.Contains(log, `"error":"`) || !strings.Contains(log, "exited 7: it broke") {
		t.Errorf("the audit line lacks the reason:\n%s", log)
	}
}

// A secret of several lines (a PEM key) that a failing command prints comes
// out of the error hidden, line by line, however the message is cut.
func TestMultiLineSecretHiddenInErrors(t *testing.T) {
	key := "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\nAQEFAASCBKcwggSjAgEAAoIB\n-----END KEY-----"
	t.Setenv("RAIJIN_TEST_TOKEN", key)
	cfg := project(t, map[string]string{"deploy.lua": `local raijin = require('raijin')
raijin.phase('secrets', { where = "local" }, function(ctx) raijin.env.load(ctx.config.hosts[1]) end)
raijin.phase('work', function(ctx) ctx.host:run('leak') end)
raijin.phases { 'secrets', 'work' }
`})
	rec := &remote.Recorder{HostName: "web1", Respond: func(ctx context.Context, st remote.Step) (remote.Result, error) {
		if st.Desc == "leak" {
			return remote.Result{Code: 1, Stderr: "bad key:\n" + key + "\n"}, nil
		}
		return (&fakeHost{name: "web1"}).respond(ctx, st)
	}}
	_, err := engine.Run(context.Background(), engine.Options{
		Config: cfg, Sources: recipe.SourcesFor(cfg, ""), Command: "deploy", Hosts: cfg.Hosts, Events: &events{}, PhaseTimeout: time.Minute,
		Connect: func(context.Context, config.Host) (remote.Conn, func(), error) { return rec, func() {}, nil },
	})
	if err == nil {
		t.Fatal("the run should fail")
	}
	for _, line := range strings.Split(key, "\n") {
		if len(line) >= 6 && strings.Contains(err.Error(), line) {
			t.Errorf("the error shows %q:\n%v", line, err)
		}
	}
	if !strings.Contains(err.Error(), "******") {
		t.Errorf("the error should show the secret as ******:\n%v", err)
	}
}
