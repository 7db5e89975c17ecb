package main

import (
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

var update = flag.Bool("update", false, "rewrite the golden files and the cmp expectations in testdata/script/*.txtar with the actual output")

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"raijin": func() { os.Exit(Run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs the terminal sessions of testdata/script/*.txtar against
// the raijin command (Run, in a subprocess); the deploy_* sessions reach an
// SSH server in the test process (sshserver). go test -run TestScripts
// -update rewrites their expected output.
func TestScripts(t *testing.T) {
	fakes, err := filepath.Abs("testdata/fakes")
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:           "testdata/script",
		UpdateScripts: *update,
		Setup: func(env *testscript.Env) error {
			env.Setenv("CI", "1")
			env.Setenv("NO_COLOR", "1")
			env.Setenv("USER", "tester")
			env.Setenv("SHELL", "/bin/bash")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// sshserver NAME: a server that raijin reaches as NAME (see sshServer).
			"sshserver": sshServer(fakes),
			// waitfor PATH: wait until PATH exists (a background command got
			// there), for up to 10 seconds.
			"waitfor": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 {
					ts.Fatalf("usage: waitfor PATH")
				}
				p := ts.MkAbs(args[0])
				for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
					if _, err := os.Stat(p); err == nil {
						return
					}
					if time.Now().After(end) {
						ts.Fatalf("%s did not appear within 10s", args[0])
					}
				}
			},
			// exits CODE PROG ARGS...: run PROG and require exit code CODE.
			"exits": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) < 2 {
					ts.Fatalf("usage: exits CODE PROG [ARGS...]")
				}
				want, err := strconv.Atoi(args[0])
				if err != nil {
					ts.Fatalf("exits: %v", err)
				}
				code := 0
				if err := ts.Exec(args[1], args[2:]...); err != nil {
					var ee *exec.ExitError
					if !errors.As(err, &ee) {
						ts.Fatalf("exits: %v", err)
					}
					code = ee.ExitCode()
				}
				if code != want {
					ts.Fatalf("%s exited %d, want %d", args[1], code, want)
				}
			},
		},
	})
}
