package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/rogpeppe/go-internal/testscript"
	"golang.org/x/crypto/ssh"

	"github.com/raijin-deploy/raijin/internal/testkit"
)

// sshServer is the scripts' command `sshserver NAME`: it starts an SSH
// server (testkit's, in the test process, on loopback; stopped when the
// script ends) and sets up this machine the way a user's reaches a server:
//
//	HOME=$WORK/home
//	~/.ssh/config       Host NAME, HostName 127.0.0.1, Port PORT
//	~/.ssh/known_hosts  the server's host key
//	~/.ssh/id_ed25519   the key the server lets in
//
// so that raijin.toml says address = "NAME" and raijin dials, checks the host
// key and logs in as it does in production.
//
// The server runs commands with sh -c as the user running the tests, in
// HOME=$WORK/NAME/home (the deploy user's home, where the apps go), with the
// fakes of testdata/fakes (sudo, systemctl, curl, journalctl) first on
// PATH: nothing there is root, systemd or a running app. The fakes log their
// calls to $WORK/NAME/calls and keep the units' states in $WORK/NAME/units.
func sshServer(fakes string) func(ts *testscript.TestScript, neg bool, args []string) {
	return func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 1 {
			ts.Fatalf("usage: sshserver NAME")
		}
		name := args[0]
		work := ts.Getenv("WORK")
		home := filepath.Join(work, "home")
		ts.Setenv("HOME", home)
		tb := scriptTB{ts}

		pub := clientKey(tb, filepath.Join(home, ".ssh", "id_ed25519"))
		srv := testkit.NewServer(tb, []ssh.PublicKey{pub})
		testkit.Trust(tb, home, srv)
		appendFile(ts, filepath.Join(home, ".ssh", "config"),
			fmt.Sprintf("Host %s\n  HostName 127.0.0.1\n  Port %d\n", name, srv.Port))

		machine := filepath.Join(work, name)
		ts.Check(os.MkdirAll(filepath.Join(machine, "home"), 0o755))
		srv.SetEnv([]string{
			"HOME=" + filepath.Join(machine, "home"),
			"PATH=" + fakes + string(os.PathListSeparator) + os.Getenv("PATH"),
			"SHELL=/bin/sh",
			"TMPDIR=" + ts.Getenv("TMPDIR"),
			"FAKE_STATE=" + machine,
		})
	}
}

// clientKey is the public half of the key file at path, written first when
// there is none (a second server lets in the same key).
func clientKey(t testkit.TB, path string) ssh.PublicKey {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return testkit.WriteKey(t, path, "")
	}
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	return signer.PublicKey()
}

func appendFile(ts *testscript.TestScript, path, text string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	ts.Check(err)
	_, err = f.WriteString(text)
	ts.Check(err)
	ts.Check(f.Close())
}

// scriptTB lets testkit's helpers fail the script and stop what they start
// when it ends.
type scriptTB struct{ ts *testscript.TestScript }

func (s scriptTB) Helper()           {}
func (s scriptTB) Fatal(args ...any) { s.ts.Fatalf("%s", fmt.Sprint(args...)) }
func (s scriptTB) Cleanup(f func())  { s.ts.Defer(f) }
