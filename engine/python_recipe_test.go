package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/engine"
	"github.com/raijin-deploy/raijin/recipe"
	"github.com/raijin-deploy/raijin/remote"
)

// pythonProject writes a python-package project: requirements.txt holding
// req, the given local files, and more raijin.toml keys in extra.
func pythonProject(t *testing.T, req, extra string, files ...string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	write := func(name, content string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("dist/app-1.0.0-py3-none-any.whl", "wheel")
	write("dist/app-1.1.0-py3-none-any.whl", "wheel")
	for _, f := range files {
		write(f, "a local requirement")
	}
	write("requirements.txt", req)
	toml := `app = "app"
installation_mode = "python-package"
distfile = "dist/app-{version}-py3-none-any.whl"
requirements = "requirements.txt"
` + extra + `
[processes]
web = "app serve"
[[hosts]]
name = "prod"
address = "203.0.113.10"
user = "deploy"
env = "PORT=8000"
`
	write("raijin.toml", toml)
	cfg, err := config.Parse(filepath.Join(dir, "raijin.toml"), []byte(toml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func runPython(t *testing.T, cfg *config.Config, h remote.Conn, dryRun bool) (*quietEvents, error) {
	t.Helper()
	ev := &quietEvents{}
	_, err := engine.Run(context.Background(), engine.Options{
		Config: cfg, Sources: recipe.SourcesFor(cfg, ""), Command: "deploy", Hosts: cfg.Hosts, DryRun: dryRun,
		Events: ev, Connect: func(context.Context, config.Host) (remote.Conn, func(), error) {
			return h, func() {}, nil
		},
	})
	return ev, err
}

// dryRunPython runs the python-package recipe against a remote.Recorder.
func dryRunPython(t *testing.T, req string, files ...string) ([]remote.Step, error) {
	t.Helper()
	rec := &remote.Recorder{HostName: "prod"}
	_, err := runPython(t, pythonProject(t, req, `version = "1.0.0"`, files...), rec, true)
	return rec.Steps, err
}

// answeringHost is a server on which 1.0.0 is current: it records every
// command and answers those containing a key of answers; uploads find the
// same file there already. commands() shows them withValues.
type answeringHost struct {
	remote.Recorder
	answers map[string]remote.Result
}

func newAnsweringHost(answers map[string]remote.Result) *answeringHost {
	a := &answeringHost{Recorder: remote.Recorder{HostName: "prod"}, answers: answers}
	a.Respond = a.respond
	return a
}

func (a *answeringHost) respond(_ context.Context, st remote.Step) (remote.Result, error) {
	switch {
	case st.Kind == "check":
		return remote.Result{Stdout: "same\n"}, nil
	case st.Kind != "run":
		return remote.DefaultAnswer(st), nil
	case strings.Contains(st.Desc, "@@versions"):
		return remote.Result{Stdout: "/home/deploy\ndeploy\nlocked\n@@versions\n1.0.0\n"}, nil
	}
	for k, r := range a.answers {
		if strings.Contains(st.Desc, k) {
			return r, nil
		}
	}
	return remote.Result{}, nil
}

func (a *answeringHost) commands() string {
	var b strings.Builder
	for _, st := range a.Steps {
		if st.Kind == "run" {
			b.WriteString(withValues(st.Line) + "\n")
		}
	}
	return b.String()
}

const pyKey = "0123456789abcdef"

// The installer, and what a deploy installs, depend on what the host has.
func TestPythonInstallSteps(t *testing.T) {
	req := "./vendor/a-1.0-py3-none-any.whl\n"
	noUV := remote.Result{Code: 1}
	pyProbe := remote.Result{Stdout: "/usr/bin/python3\n3.11\n"}
	cases := []struct {
		name, version, extra string
		answers              map[string]remote.Result
		want, not            []string
		log                  string
	}{
		{name: "uv on the server, python_version", version: "1.1.0", extra: `python_version = "3.12"`,
			answers: map[string]remote.Result{
				"uv python find":   {Stdout: "/opt/py/bin/python3.12\n"},
				"import sys, venv": {Stdout: "/opt/py/bin/python3.12\n3.12\n"},
				"sha256sum | cut":  {Stdout: pyKey + "\n"},
			},
			want: []string{"uv python find 3.12", "uv venv --quiet --python /opt/py/bin/python3.12 .deps/" + pyKey,
				"uv pip install --quiet --python ../.deps/" + pyKey + "/bin/python --no-index --find-links wheels -r requirements.txt",
				"uv venv --quiet --python /opt/py/bin/python3.12 /opt/raijin/app/v1.1.0/.venv",
				"uv pip install --quiet --python .venv/bin/python --no-deps app-1.1.0-py3-none-any.whl"},
			not: []string{"-m venv", "-m pip"},
			log: "installing requirements into .deps/" + pyKey},
		{name: "python3, requirements unchanged", version: "1.1.0",
			answers: map[string]remote.Result{"command -v uv": noUV, "import sys, venv": pyProbe,
				"sha256sum | cut": {Stdout: pyKey + "\ncomplete\n"}},
			want: []string{"python3 -m venv --without-pip /opt/raijin/app/v1.1.0/.venv",
				".venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps app-1.1.0-py3-none-any.whl",
				".venv/bin/python -m pip check"},
			not: []string{"-m venv .deps", "-r requirements.txt"},
			log: "requirements unchanged since 1.0.0: reusing .deps/" + pyKey + ", nothing to install"},
		{name: "the current version again, same wheel", version: "1.0.0",
			answers: map[string]remote.Result{"command -v uv": noUV, "import sys, venv": pyProbe,
				"sha256sum | cut": {Stdout: pyKey + "\ncomplete\nvenv=" + pyKey + "\n"}},
			want: []string{"v=v1.0.0\n", "mv -T -f ..venv.raijin-tmp .venv"},
			not:  []string{"-m venv", "-m pip"},
			log:  "v1.0.0/.venv is up to date"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := pythonProject(t, req, `version = "`+c.version+`"`+"\n"+c.extra, "vendor/a-1.0-py3-none-any.whl")
			h := newAnsweringHost(c.answers)
			ev, err := runPython(t, cfg, h, false)
			if err != nil {
				t.Fatal(err)
			}
			cmds := h.commands()
			for _, w := range c.want {
				if !strings.Contains(cmds, w) {
					t.Errorf("no command runs %q:\n%s", w, cmds)
				}
			}
			for _, n := range c.not {
				if strings.Contains(cmds, n) {
					t.Errorf("a command runs %q:\n%s", n, cmds)
				}
			}
			if !strings.Contains(strings.Join(ev.logs, "\n"), c.log) {
				t.Errorf("logs %q, want %q", ev.logs, c.log)
			}
		})
	}
}

// Local files named by requirements.txt are shipped in wheels/ and the file
// rewritten to name them there; only when every requirement is local does
// pip install with --no-index.
func TestPythonRequirementsShipLocalFiles(t *testing.T) {
	cases := []struct {
		name, req string
		files     []string
		want      string // requirements.txt as uploaded
		uploads   []string
		offline   bool
	}{
		{"paths", "# deps\n./vendor/a-1.0-py3-none-any.whl\nvendor/b-2.0.tar.gz ; python_version >= \"3\"\n",
			[]string{"vendor/a-1.0-py3-none-any.whl", "vendor/b-2.0.tar.gz"},
			"# deps\n./wheels/a-1.0-py3-none-any.whl\n./wheels/b-2.0.tar.gz ; python_version >= \"3\"\n",
			[]string{"wheels/a-1.0-py3-none-any.whl", "wheels/b-2.0.tar.gz"}, true},
		{"file urls", "a @ file:vendor/a-1.0-py3-none-any.whl  # pinned\n",
			[]string{"vendor/a-1.0-py3-none-any.whl"},
			"./wheels/a-1.0-py3-none-any.whl\n", []string{"wheels/a-1.0-py3-none-any.whl"}, true},
		{"mixed", "./vendor/a-1.0-py3-none-any.whl\nflask==3.0.0\n",
			[]string{"vendor/a-1.0-py3-none-any.whl"},
			"./wheels/a-1.0-py3-none-any.whl\nflask==3.0.0\n", []string{"wheels/a-1.0-py3-none-any.whl"}, false},
		{"index only", "flask==3.0.0\n--index-url https://pypi.example/simple\n", nil,
			"flask==3.0.0\n--index-url https://pypi.example/simple\n", nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			acts, err := dryRunPython(t, c.req, c.files...)
			if err != nil {
				t.Fatal(err)
			}
			var uploads []string
			var written, pip string
			for _, a := range acts {
				switch {
				case a.Kind == "write" && strings.HasSuffix(a.Path, "/v1.0.0/requirements.txt"):
					written = string(a.Content)
				case a.Kind == "check" && strings.Contains(a.Path, "/wheels/"):
					uploads = append(uploads, a.Path[strings.Index(a.Path, "wheels/"):])
				case a.Kind == "run" && strings.Contains(a.Line, "-r requirements.txt"):
					pip = withValues(a.Line)
				}
			}
			if written != c.want {
				t.Errorf("requirements.txt uploaded as %q, want %q", written, c.want)
			}
			if strings.Join(uploads, " ") != strings.Join(c.uploads, " ") {
				t.Errorf("uploads %v, want %v", uploads, c.uploads)
			}
			if strings.Contains(pip, "--no-index") != c.offline {
				t.Errorf("pip command %q: want --no-index = %v", pip, c.offline)
			}
		})
	}
}

func TestPythonRequirementsErrors(t *testing.T) {
	for req, want := range map[string]string{
		"ok==1\n./vendor/missing-1.0-py3-none-any.whl\n": "requirements.txt:2: local requirement ./vendor/missing-1.0-py3-none-any.whl does not exist",
		"./vendor/src/\n":               "requirements.txt:1: ./vendor/src/ is not a wheel or sdist file",
		"# base\n-r base.txt\n":         "requirements.txt:2: -r base.txt: raijin ships one requirements file and the files it names",
		"-e ./vendor/src\n":             "requirements.txt:1: -e ./vendor/src: raijin ships one",
		"--find-links ./vendor\na==1\n": "requirements.txt:1: --find-links ./vendor: raijin ships one",
	} {
		_, err := dryRunPython(t, req, "vendor/src/setup.py")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "phase build") {
			t.Errorf("requirements %q: error %v, want %q in phase build", req, err, want)
		}
	}
}
