package runtime

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raijin-deploy/raijin/builtins"
	"github.com/raijin-deploy/raijin/config"
)

// dryRunPython runs the python-package recipe against a recording host, with
// requirements.txt holding req and the given local files in the project.
func dryRunPython(t *testing.T, req string, files ...string) ([]builtins.Action, error) {
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
	for _, f := range files {
		write(f, "a local requirement")
	}
	write("requirements.txt", req)
	toml := `app = "app"
version = "1.0.0"
installation_mode = "python-package"
distfile = "dist/app-{version}-py3-none-any.whl"
requirements = "requirements.txt"
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
	rec := &builtins.RecordingHost{HostName: "prod", Redactor: &builtins.Redactor{}}
	_, err = Run(context.Background(), Options{
		Config: cfg, Sources: SourcesFor(cfg, ""), Command: "deploy", Hosts: cfg.Hosts, DryRun: true,
		Events: &quietEvents{}, Connect: func(context.Context, config.Host) (builtins.Host, func(), error) {
			return rec, func() {}, nil
		},
	})
	return rec.Actions, err
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
					written = a.Content
				case a.Kind == "upload" && strings.Contains(a.Path, "/wheels/"):
					uploads = append(uploads, a.Path[strings.Index(a.Path, "wheels/"):])
				case a.Kind == "run" && strings.Contains(a.Command, "-r requirements.txt"):
					pip = a.Command
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
		"./vendor/src/\n": "requirements.txt:1: ./vendor/src/ is not a wheel or sdist file",
	} {
		_, err := dryRunPython(t, req, "vendor/src/setup.py")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "phase build") {
			t.Errorf("requirements %q: error %v, want %q in phase build", req, err, want)
		}
	}
}
