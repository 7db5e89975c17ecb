package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// NewPyProject writes a project deploying the sample Python app
// (testdata/apps/pyapp, built into a wheel by its own script, with the local
// wheel greet as its one requirement) to the given hosts.
func NewPyProject(t *testing.T, spec ProjectSpec) *Project {
	t.Helper()
	spec.Head = fmt.Sprintf(`installation_mode = "python-package"
build_command = "python3 %s/build_wheel.py dist"
distfile = "dist/pyapp-{version}-py3-none-any.whl"
requirements = "requirements.txt"
release_command = "pyapp migrate"
`, filepath.Join(repoRoot, "testdata", "apps", "pyapp"))
	spec.Procs = `web = "pyapp serve"`
	p := NewProject(t, spec)
	p.Write("requirements.txt", "# greet is built next to the app's wheel\n./dist/greet-1.0-py3-none-any.whl\n", 0o644)
	return p
}

// A wheel deployed twice to a server without network: served through Caddy by
// its console script, migrated by release_command, one .venv per version with
// .venv switched, and requirements installed once, reused while unchanged and
// reinstalled when they change. A rollback switches .venv back.
func TestPythonDeployTwice(t *testing.T) {
	h := host(t, 0)
	p := NewPyProject(t, ProjectSpec{App: "py", Hosts: []*TestHost{h}})
	url := p.SiteURL(h)
	dir := p.AppDir(h)

	r := p.MustRaijin("deploy", "-v")
	t.Logf("first deploy (requirements installed): %.2fs\n%s", r.Duration.Seconds(), r.Stderr)
	// Wheels are zip files, compressed already: they go as they are.
	wheels := regexp.MustCompile(`upload \S+\.whl -> \S+ \(([^)]*)\)`).FindAllStringSubmatch(r.Stderr, -1)
	if len(wheels) < 2 {
		t.Errorf("-v shows %d wheel uploads, want the app's and greet's:\n%s", len(wheels), r.Stderr)
	}
	for _, w := range wheels {
		if !strings.HasSuffix(w[1], " bytes on stdin") || strings.Contains(w[1], "zstd") || strings.Contains(w[1], "gzip") {
			t.Errorf("a wheel went compressed again: %s", w[0])
		}
	}
	if !strings.Contains(r.Stderr, "installing requirements into .deps/") {
		t.Errorf("the first deploy should install the requirements:\n%s", r.Stderr)
	}
	code, body := Get(t, url)
	if code != 200 || body != "pyapp 1.0.0: hello from "+h.Name+" (greet 1.0)\n" {
		t.Fatalf("GET %s = %d %q, want pyapp 1.0.0 with greet 1.0 through Caddy", url, code, body)
	}
	layout := h.Run(t, fmt.Sprintf(`cd %s && readlink .venv && cat .versions && sudo cat %s/migrations.log && cat v1.0.0/.deps && ls v1.0.0 v1.0.0/wheels && test -x v1.0.0/.venv/bin/pyapp && v1.0.0/.venv/bin/pip --version && ls .deps && cat v1.0.0/.venv/lib/python3*/site-packages/raijin-deps.pth && . ./.appenv && command -v pyapp`, dir, p.StateDir(h)))
	for _, want := range []string{"v1.0.0/.venv\n", "1.0.0\nmigrated to 1.0.0\n", "pyapp-1.0.0-py3-none-any.whl", "requirements.txt",
		"greet-1.0-py3-none-any.whl", dir + "/.deps/", dir + "/.venv/bin/pyapp",
		// pip comes from the requirements environment, run by this version's python
		"pip 23", "(python 3."} {
		if !strings.Contains(layout, want) {
			t.Errorf("server layout lacks %q:\n%s", want, layout)
		}
	}
	if req := h.Run(t, "cat "+dir+"/v1.0.0/requirements.txt"); !strings.Contains(req, "./wheels/greet-1.0-py3-none-any.whl") {
		t.Errorf("the uploaded requirements.txt should name the uploaded wheel: %q", req)
	}
	deps := h.Run(t, "cd "+dir+" && ls .deps && stat -c '%i %Y' .deps/*/.raijin-complete")

	r = p.MustRaijin("deploy", "--set-version", "1.1.0")
	t.Logf("second deploy (requirements unchanged): %.2fs\n%s", r.Duration.Seconds(), r.Stderr)
	if !strings.Contains(r.Stderr, "requirements unchanged since 1.0.0: reusing .deps/") {
		t.Errorf("the second deploy should reuse the requirements:\n%s", r.Stderr)
	}
	if again := h.Run(t, "cd "+dir+" && ls .deps && stat -c '%i %Y' .deps/*/.raijin-complete"); again != deps {
		t.Errorf("the requirements environment changed although requirements.txt did not: %q, then %q", deps, again)
	}
	if _, body := Get(t, url); body != "pyapp 1.1.0: hello from "+h.Name+" (greet 1.0)\n" {
		t.Fatalf("after the second deploy GET / = %q, want 1.1.0", body)
	}
	if _, body := Get(t, url+"python"); body != dir+"/v1.1.0/.venv/bin/python\n" {
		t.Errorf("the app runs under %q, want the python of v1.1.0/.venv", body)
	}
	// The Python app runs in the same hardened unit as the Go app.
	checkHardened(t, h, p.WebUnit(h))
	if user := h.Run(t, "systemctl show -p User --value "+p.WebUnit(h)); user != p.App+"\n" {
		t.Errorf("the Python app's unit runs as %q, want its own user", user)
	}
	got := h.Run(t, "cd "+dir+" && readlink .venv && cat .versions && sudo cat "+p.StateDir(h)+"/migrations.log && ls -d v*/.venv")
	if got != "v1.1.0/.venv\n1.1.0\n1.0.0\nmigrated to 1.0.0\nmigrated to 1.1.0\nv1.0.0/.venv\nv1.1.0/.venv\n" {
		t.Errorf("after the second deploy: %q, want .venv on v1.1.0 and both versions' environments", got)
	}

	// The same version again (say, for a new .env): the same wheel, nothing rebuilt.
	r = p.MustRaijin("deploy", "--set-version", "1.1.0")
	if !strings.Contains(r.Stderr, "v1.1.0/.venv is up to date") {
		t.Errorf("deploying 1.1.0 again should keep its environment:\n%s", r.Stderr)
	}
	if _, body := Get(t, url); !strings.HasPrefix(body, "pyapp 1.1.0:") {
		t.Errorf("after deploying 1.1.0 again GET / = %q", body)
	}

	// A rollback switches .venv back and installs nothing.
	r = p.MustRaijin("rollback", "-y")
	if strings.Contains(r.Stderr, "install") {
		t.Errorf("a rollback should install nothing:\n%s", r.Stderr)
	}
	if _, body := Get(t, url); !strings.HasPrefix(body, "pyapp 1.0.0:") {
		t.Errorf("after the rollback GET / = %q, want 1.0.0", body)
	}
	if got := h.Run(t, "readlink "+dir+"/.venv"); got != "v1.0.0/.venv\n" {
		t.Errorf("after the rollback .venv -> %q, want v1.0.0/.venv", got)
	}

	// Changed requirements get an environment of their own.
	p.Env = append(p.Env, "GREET_VERSION=1.1")
	p.Write("requirements.txt", "greet @ file:dist/greet-1.1-py3-none-any.whl\n", 0o644)
	r = p.MustRaijin("deploy", "--set-version", "1.2.0")
	if !strings.Contains(r.Stderr, "installing requirements into .deps/") {
		t.Errorf("changed requirements should be installed:\n%s", r.Stderr)
	}
	if _, body := Get(t, url); body != "pyapp 1.2.0: hello from "+h.Name+" (greet 1.1)\n" {
		t.Errorf("after a deploy with new requirements GET / = %q, want 1.2.0 with greet 1.1", body)
	}
	if n := strings.Count(h.Run(t, "ls "+dir+"/.deps"), "\n"); n != 2 {
		t.Errorf("want two requirements environments (1.0.0 and 1.1.0 still use the first), got %d", n)
	}

	// Pruning the versions that used the first environment prunes it too;
	// a symbolic link in .deps (to a directory outside the app's) is not
	// followed.
	h.Run(t, "mkdir -p /tmp/outside-deps/keep && ln -sfn /tmp/outside-deps "+dir+"/.deps/0123456789abcdef")
	p.MustRaijin("prune", "--keep", "1")
	used := h.Run(t, "cat "+dir+"/v1.2.0/.deps")
	if got := h.Run(t, "test -d /tmp/outside-deps/keep && echo kept; rm -f "+dir+"/.deps/0123456789abcdef; rm -rf /tmp/outside-deps"); got != "kept\n" {
		t.Errorf("the prune followed a link out of .deps: %q", got)
	}
	if got := h.Run(t, "cd "+dir+" && ls -d v* && ls .deps"); got != "v1.2.0\n"+used {
		t.Errorf("after prune --keep 1: %q, want v1.2.0 and only the environment it uses (%q)", got, used)
	}
	if _, body := Get(t, url); !strings.HasPrefix(body, "pyapp 1.2.0:") {
		t.Errorf("after the prune GET / = %q", body)
	}
}

// Installs that cannot work fail before the switch, name the host and the
// failing command with its last lines, and leave the previous version serving.
func TestPythonFailedInstallKeepsPreviousServing(t *testing.T) {
	h := host(t, 0)
	p := NewPyProject(t, ProjectSpec{App: "pyfail", Hosts: []*TestHost{h}})
	url := p.SiteURL(h)
	dir := p.AppDir(h)
	p.MustRaijin("deploy")
	toml := readFile(t, filepath.Join(p.Dir, "raijin.toml"))
	still := func(what string) {
		t.Helper()
		if _, body := Get(t, url); !strings.HasPrefix(body, "pyapp 1.0.0:") {
			t.Errorf("%s: GET / = %q, want 1.0.0 still serving", what, body)
		}
		if got := h.Run(t, "cd "+dir+" && readlink .venv && head -1 .versions && ls -a .lock 2>&1 || true"); !strings.HasPrefix(got, "v1.0.0/.venv\n1.0.0\n") || !strings.Contains(got, "No such file") {
			t.Errorf("%s: %q, want .venv and .versions on 1.0.0 and no lock left", what, got)
		}
	}
	cases := []struct {
		name  string
		setup func()
		undo  func()
		phase string // default install
		state string // default: nothing was switched
		want  []string
	}{
		{
			name: "a requirement that is not a wheel",
			setup: func() {
				p.Write("vendor/broken-1.0-py3-none-any.whl", "not a zip file\n", 0o644)
				p.Write("requirements.txt", "./dist/greet-1.0-py3-none-any.whl\n./vendor/broken-1.0-py3-none-any.whl\n", 0o644)
			},
			want: []string{"-m pip install", "-r requirements.txt", "exited 1", "broken-1.0-py3-none-any.whl"},
		},
		{
			name:  "requirements that miss what the wheel requires",
			setup: func() { p.Write("requirements.txt", "# nothing\n", 0o644) },
			want:  []string{"pip check", "pyapp 3.0.0 requires greet, which is not installed"},
		},
		{
			name:  "a requirement that needs the network",
			setup: func() { p.Write("requirements.txt", "./dist/greet-1.0-py3-none-any.whl\nnosuchpackage==1.0\n", 0o644) },
			want:  []string{"-m pip install", "nosuchpackage"},
		},
		{
			name: "no such python",
			setup: func() {
				p.Write("requirements.txt", "./dist/greet-1.0-py3-none-any.whl\n", 0o644)
				p.Write("raijin.toml", strings.Replace(toml, "release_command =", "python_version = \"3.99\"\nrelease_command =", 1), 0o644)
			},
			undo: func() { p.Write("raijin.toml", toml, 0o644) },
			want: []string{`"$PY" -c`, "exited 127", "not found", "raijin needs python3.99 with its venv module"},
		},
		{
			name:  "no venv module",
			setup: func() { h.Root(t, "mv /usr/lib/python3.11/ensurepip /usr/lib/python3.11/ensurepip.off") },
			undo:  func() { h.Root(t, "mv /usr/lib/python3.11/ensurepip.off /usr/lib/python3.11/ensurepip") },
			want:  []string{`"$PY" -c`, "No module named 'ensurepip'", "raijin needs python3 with its venv module", "apt install python3 python3-venv"},
		},
		{
			name: "a release command that fails after the switch",
			setup: func() {
				p.Write("raijin.toml", strings.Replace(toml, `release_command = "pyapp`, `release_command = "FAIL_MIGRATE=1 pyapp`, 1), 0o644)
			},
			undo:  func() { p.Write("raijin.toml", toml, 0o644) },
			phase: "release", state: "the previous version 1.0.0 was restored and is serving",
			want: []string{"exited 3", "migration failed on purpose"},
		},
	}
	for i, c := range cases {
		c.setup()
		v := fmt.Sprintf("%d.0.0", i+2)
		r := p.Raijin("deploy", "--set-version", v)
		if c.undo != nil {
			c.undo()
		}
		t.Logf("%s:\n%s", c.name, r.Stderr)
		if r.Code != 1 {
			t.Errorf("%s: want exit 1: %s", c.name, r)
			continue
		}
		if c.phase == "" {
			c.phase, c.state = "install", "nothing was switched: version 1.0.0 is still serving"
		}
		for _, want := range append(c.want, "host "+h.Name+": phase "+c.phase+":", c.state) {
			if !strings.Contains(r.Stderr, want) {
				t.Errorf("%s: the error lacks %q:\n%s", c.name, want, r.Stderr)
			}
		}
		still(c.name)
	}
}
