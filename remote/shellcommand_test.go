package remote_test

import (
	"testing"
	"time"

	"github.com/raijin-deploy/raijin/remote"
)

func TestShellCommand(t *testing.T) {
	for _, tc := range []struct {
		name string
		cmd  string
		o    remote.RunOpts
		want string
	}{
		{"bare", "ls -l", remote.RunOpts{}, "ls -l"},
		{"cwd", "ls", remote.RunOpts{Cwd: "/srv/my app"}, "cd '/srv/my app' && ls"},
		{"appenv", "app migrate", remote.RunOpts{Cwd: "/a", Appenv: "/a/.appenv"}, "cd /a && . /a/.appenv && app migrate"},
		{"env sorted and quoted", "env", remote.RunOpts{Env: map[string]string{"B": "x y", "A": "it's"}}, `export A='it'\''s'; export B='x y'; env`},
		{"sudo wraps everything", "systemctl restart app", remote.RunOpts{Sudo: true, Cwd: "/a", Env: map[string]string{"K": "v"}},
			`sudo -n sh -c 'export K=v; cd /a && systemctl restart app'`},
		{"sudo quotes quotes", "echo 'hi'", remote.RunOpts{Sudo: true}, `sudo -n sh -c 'echo '\''hi'\'''`},
		{"stdin and timeout change nothing", "cat", remote.RunOpts{Stdin: []byte("x"), Timeout: time.Second}, "cat"},
	} {
		if got := remote.ShellCommand(tc.cmd, tc.o); got != tc.want {
			t.Errorf("%s: ShellCommand = %s\nwant             %s", tc.name, got, tc.want)
		}
	}
}

// A failed fixed script says what its values were, quoted.
func TestRemoteErrorNamesTheValues(t *testing.T) {
	err := &remote.RemoteError{Host: "web1", Cmd: `"$PY" -c 'import venv'`, Env: map[string]string{"PY": "python3.99", "DIR": "a b"},
		Res: remote.Result{Code: 127, Stderr: "python3.99: not found\n"}}
	want := "`\"$PY\" -c 'import venv'` exited 127 (with DIR='a b' PY=python3.99):\n    python3.99: not found"
	if err.Error() != want {
		t.Errorf("got  %q\nwant %q", err.Error(), want)
	}
}
