package server_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raijin-deploy/raijin/server"
)

// runAdminScript runs server.CaddyAdminScript on this machine, its paths
// moved into a temporary directory, with fakes of caddy and systemctl that
// record their arguments in calls. It returns the Caddyfile, what the
// script printed and its exit code.
func runAdminScript(t *testing.T, dir, caddyfile string, active bool) (after, stdout, stderr string, code int) {
	t.Helper()
	fake := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\necho \""+name+" $*\" >> \"$FAKE/calls\"\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fake("caddy", `[ "$1" != validate ] || ! grep -q invalid "$FAKE/Caddyfile" || { echo "Error: adapting config: invalid"; exit 1; }`)
	state := "inactive"
	if active {
		state = "active"
	}
	fake("systemctl", `[ "$1" != is-active ] || [ `+state+` = active ]`)
	main := filepath.Join(dir, "Caddyfile")
	if caddyfile != "" {
		if err := os.WriteFile(main, []byte(caddyfile), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := strings.NewReplacer("/etc/caddy/Caddyfile", main, server.CaddyAdminUnit, filepath.Join(dir, "unit/raijin-admin.conf"),
		"install -d -o caddy", ": install -d -o caddy").Replace(server.CaddyAdminScript) // no user caddy here
	c := exec.Command("sh", "-c", script)
	c.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"), "FAKE="+dir)
	var out, errb strings.Builder
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(main)
	return string(b), out.String(), errb.String(), code
}

const debianCaddyfile = `# The Caddyfile is an easy way to configure your Caddy web server.

:80 {
	root * /usr/share/caddy
	file_server
}
`

func TestCaddyAdminScript(t *testing.T) {
	line := "admin unix/" + server.CaddyAdminSocket
	for _, tc := range []struct {
		name, caddyfile string
		active          bool
		want            string // the Caddyfile after, when the script succeeds
		stdout, err     string // stdout; for a failure a part of stderr
		calls           []string
	}{
		{name: "Debian's stock Caddyfile gets a global options block at the top", caddyfile: debianCaddyfile,
			want:   "# added by raijin: the admin endpoint only root can reach\n{\n\t" + line + "\n}\n\n" + debianCaddyfile,
			stdout: "admin unit\nadmin socket\n", calls: []string{"systemctl daemon-reload", "caddy validate --config"}},
		{name: "a running Caddy takes it through its old address", caddyfile: debianCaddyfile, active: true,
			stdout: "admin unit\nadmin socket\n", calls: []string{"caddy reload --config", "--adapter caddyfile --address localhost:2019 --force"}},
		{name: "the user's global options block gets the line", caddyfile: "# mine\n\n{\n\temail me@example.com\n\tservers {\n\t\tprotocols h1\n\t}\n}\n:80 {\n\tadmin x\n}\n",
			want:   "# mine\n\n{\n\t# added by raijin: the admin endpoint only root can reach\n\t" + line + "\n\temail me@example.com\n\tservers {\n\t\tprotocols h1\n\t}\n}\n:80 {\n\tadmin x\n}\n",
			stdout: "admin unit\nadmin socket\n"},
		{name: "in place: nothing changes", caddyfile: "{\n\t" + line + "\n}\n", want: "{\n\t" + line + "\n}\n", stdout: "admin unit\n"},
		{name: "a unix socket of the user's own is kept", caddyfile: "{\n\tadmin unix//run/mine/admin.sock {\n\t\torigins x\n\t}\n}\n", want: "{\n\tadmin unix//run/mine/admin.sock {\n\t\torigins x\n\t}\n}\n", stdout: "admin unit\n"},
		{name: "an admin address is refused", caddyfile: "{\n\tadmin localhost:2020\n}\n", err: "Caddyfile:2 sets admin localhost:2020: raijin keeps Caddy's admin endpoint where only root can reach it"},
		{name: "admin off is refused", caddyfile: "{\n\tadmin off\n}\n", err: "Replace that line with: " + line},
		{name: "a one-line global options block is refused", caddyfile: "{ debug }\n:80\n", err: "Caddyfile:1: the global options block is on one line"},
		{name: "an invalid result is undone", caddyfile: "invalid\n", err: "caddy validate rejected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			after, stdout, stderr, code := runAdminScript(t, dir, tc.caddyfile, tc.active)
			if tc.err != "" {
				if code != 5 || !strings.Contains(stderr, tc.err) {
					t.Errorf("exit %d, stderr:\n%s\nwant 5 and %q", code, stderr, tc.err)
				}
				if after != tc.caddyfile {
					t.Errorf("a refused Caddyfile changed:\n%s", after)
				}
				return
			}
			if code != 0 || stdout != tc.stdout {
				t.Fatalf("exit %d, stdout %q, stderr:\n%s\nwant 0 and %q", code, stdout, stderr, tc.stdout)
			}
			if tc.want != "" && after != tc.want {
				t.Errorf("Caddyfile after:\n%s\nwant:\n%s", after, tc.want)
			}
			calls, _ := os.ReadFile(filepath.Join(dir, "calls"))
			for _, c := range tc.calls {
				if !strings.Contains(string(calls), c) {
					t.Errorf("no call %q in:\n%s", c, calls)
				}
			}
			if !tc.active && strings.Contains(string(calls), "caddy reload") {
				t.Errorf("reloaded a Caddy that does not run:\n%s", calls)
			}
			// Run again: everything in place.
			again, stdout, stderr, code := runAdminScript(t, dir, "", tc.active)
			if code != 0 || stdout != "" || again != after {
				t.Errorf("second run: exit %d, stdout %q, stderr %s, Caddyfile changed: %v", code, stdout, stderr, again != after)
			}
		})
	}
}
