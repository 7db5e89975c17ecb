package main

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"text/template"

	"github.com/pelletier/go-toml/v2"
	"github.com/rogpeppe/go-internal/txtar"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/raijin-deploy/raijin/config"
)

// compileSchema compiles `raijin config schema`'s output, as an editor would.
func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	var out bytes.Buffer
	if code := Run([]string{"config", "schema"}, nil, &out, io.Discard); code != 0 {
		t.Fatalf("raijin config schema: exit %d", code)
	}
	if !bytes.Equal(out.Bytes(), config.SchemaJSON()) {
		t.Fatal("raijin config schema prints something else than config.SchemaJSON")
	}
	doc, err := jsonschema.UnmarshalJSON(&out)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	if err := c.AddResource(config.SchemaURL, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(config.SchemaURL)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// validateTOML checks a raijin.toml against the schema, its TOML read with
// the library the config package reads it with.
func validateTOML(s *jsonschema.Schema, data []byte) error {
	var v map[string]any
	if err := toml.Unmarshal(data, &v); err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return err
	}
	return s.Validate(inst)
}

type tomlCase struct {
	name  string
	data  []byte
	wrong bool // a file a CLI script holds up as wrong (named broken or typo)
}

// validConfigs are the raijin.toml files raijin's docs and tests hold up as
// valid: every `raijin init` profile's output, every toml block of the
// README, the examples, the end-to-end tests' template, and the CLI
// scripts' files (but those of config_errors.txtar, which are wrong on
// purpose, and those named broken or typo, which the schema must refuse as
// raijin does).
func validConfigs(t *testing.T) []tomlCase {
	t.Helper()
	var cases []tomlCase
	for _, profile := range []string{"binary", "python", "django"} {
		dir := t.TempDir()
		path := filepath.Join(dir, "raijin.toml")
		var stderr bytes.Buffer
		if code := Run([]string{"init", "--profile", profile, "-c", path}, nil, io.Discard, &stderr); code != 0 {
			t.Fatalf("raijin init --profile %s: exit %d: %s", profile, code, stderr.String())
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if first, _, _ := strings.Cut(string(data), "\n"); first != "#:schema "+config.SchemaURL {
			t.Errorf("init --profile %s: first line %q, want the #:schema line", profile, first)
		}
		cases = append(cases, tomlCase{"init --profile " + profile, data, false})
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?ms)^```toml\n(.*?)^```").FindAllSubmatchIndex(readme, -1)
	if len(blocks) < 5 {
		t.Fatalf("found %d toml blocks in README.md", len(blocks))
	}
	for _, m := range blocks {
		line := bytes.Count(readme[:m[0]], []byte("\n")) + 1
		cases = append(cases, tomlCase{"README.md:" + itoa(line), readme[m[2]:m[3]], false})
	}
	examples, _ := filepath.Glob("../../examples/*/*.toml")
	more, _ := filepath.Glob("../../examples/*/*/*.toml")
	for _, f := range append(examples, more...) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, tomlCase{strings.TrimPrefix(f, "../../"), data, false})
	}
	scripts, _ := filepath.Glob("testdata/script/*.txtar")
	for _, f := range scripts {
		if filepath.Base(f) == "config_errors.txtar" {
			continue
		}
		a, err := txtar.ParseFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range a.Files {
			if strings.HasSuffix(file.Name, ".toml") && strings.HasPrefix(filepath.Base(file.Name), "raijin") {
				wrong := strings.Contains(file.Name, "broken") || strings.Contains(file.Name, "typo")
				cases = append(cases, tomlCase{f + ": " + file.Name, file.Data, wrong})
			}
		}
	}
	cases = append(cases, tomlCase{"e2e/harness_test.go: tomlTemplate", e2eProject(t), false})
	// A process table without command is valid: a destination's
	// raijin.NAME.toml may change only the replicas (README: Destinations);
	// raijin, not the schema, says when raijin.toml itself lacks a command.
	cases = append(cases,
		tomlCase{"destination: [processes.mail] replicas only", []byte("[processes.mail]\nreplicas = 2\n"), false},
		tomlCase{"process table without command", []byte("app = \"x\"\n[processes.job]\nschedule = \"daily\"\n"), false})
	return cases
}

// e2eProject is the raijin.toml the end-to-end tests deploy with: the
// harness's template (read from its source), filled in as NewProject does.
func e2eProject(t *testing.T) []byte {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../../e2e/harness_test.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var text string
	ast.Inspect(f, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok && len(vs.Names) == 1 && vs.Names[0].Name == "tomlTemplate" {
			if lit, ok := vs.Values[0].(*ast.BasicLit); ok {
				text, _ = strconv.Unquote(lit.Value)
			}
		}
		return text == ""
	})
	if text == "" {
		t.Fatal("e2e/harness_test.go: no tomlTemplate")
	}
	host := map[string]any{"Name": "raijin-e2e-20", "Addr": "10.213.20.2", "User": "deploy"}
	data := map[string]any{"App": "app1-123", "Version": "1.0.0", "Head": "", "Extra": "versions_to_keep = 3", "Webextra": "drain_timeout = \"1s\"",
		"Procs": "web = \"app1-123\"\nworker = { command = \"app1-123 worker\", replicas = 2 }", "Hosts": []any{host, host},
		"HostEnv": "DB=$db", "HostTOML": "roles = [\"web\"]", "Domain": ":9101", "Port": 8101, "Src": "/src/goapp"}
	var b bytes.Buffer
	if err := template.Must(template.New("toml").Parse(text)).Execute(&b, data); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestSchemaAcceptsValidConfigs: what the docs, init and the tests call a
// raijin.toml passes the schema an editor checks it with.
func TestSchemaAcceptsValidConfigs(t *testing.T) {
	s := compileSchema(t)
	n := 0
	for _, c := range validConfigs(t) {
		err := validateTOML(s, c.data)
		switch {
		case c.wrong && err == nil:
			t.Errorf("%s: wrong on purpose, but the schema accepts it", c.name)
		case !c.wrong && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case !c.wrong:
			n++
		}
	}
	t.Logf("%d files valid", n)
}

// TestSchemaRefusesUnknownKeys: a misspelt key is refused, at every level,
// as Load refuses it.
func TestSchemaRefusesUnknownKeys(t *testing.T) {
	s := compileSchema(t)
	base := "app = \"x\"\ndistfile = \"dist/x\"\n[processes]\nweb = \"x serve\"\n[[hosts]]\naddress = \"203.0.113.10\"\n"
	if err := validateTOML(s, []byte(base)); err != nil {
		t.Fatalf("base config: %v", err)
	}
	for _, tc := range []struct{ name, toml string }{
		{"top level", "verison = \"1.0\"\n" + base},
		{"webserver", base + "[webserver]\nhelth_check = \"/up\"\n"},
		{"hosts", strings.Replace(base, "address =", "adress =", 1)},
		{"host without address", base + "[[hosts]]\nname = \"b\"\n"},
		{"process table", "app = \"x\"\n[processes.web]\ncommand = \"x\"\nreplica = 2\n"},
		{"process name", "app = \"x\"\n[processes]\nWeb = \"x\"\n"},
		{"secrets", base + "[secrets]\nadaptor = \"system\"\n"},
		{"hooks", base + "[hooks]\npost_build = \"true\"\n"},
		{"wrong type", "app = \"x\"\nversions_to_keep = \"5\"\n"},
		{"bad enum", "app = \"x\"\ninstallation_mode = \"wheel\"\n"},
	} {
		if err := validateTOML(s, []byte(tc.toml)); err == nil {
			t.Errorf("%s: the schema accepts\n%s", tc.name, tc.toml)
		}
	}
}
