package config

import (
	"bytes"
	"flag"
	"os"
	"sort"
	"strings"
	"testing"
)

var updateSchema = flag.Bool("update", false, "rewrite docs/raijin.schema.json from Schema")

// TestSchemaCoversEveryKey: Schema walks every toml tag of Config (and
// panics on a key without an entry in keyDocs); every entry names a key.
func TestSchemaCoversEveryKey(t *testing.T) {
	seen := map[string]bool{}
	var walk func(prefix string, s map[string]any)
	walk = func(prefix string, s map[string]any) {
		props, _ := s["properties"].(map[string]any)
		for k, v := range props {
			seen[prefix+k] = true
			vs := v.(map[string]any)
			if vs["description"] == nil || vs["description"] == "" {
				t.Errorf("%s%s has no description", prefix, k)
			}
			if items, ok := vs["items"].(map[string]any); ok {
				vs = items
			}
			if ap, ok := vs["additionalProperties"].(map[string]any); ok && ap["oneOf"] != nil {
				vs = ap["oneOf"].([]any)[1].(map[string]any)
			}
			walk(prefix+k+".", vs)
		}
		if props != nil && s["additionalProperties"] != false {
			t.Errorf("%q: additionalProperties is not false: unknown keys would pass", prefix)
		}
	}
	walk("", Schema())
	var stale []string
	for k := range keyDocs {
		if !seen[k] {
			stale = append(stale, k)
		}
	}
	sort.Strings(stale)
	if len(stale) > 0 {
		t.Errorf("keyDocs entries for keys raijin.toml does not have: %v", stale)
	}
	for _, k := range []string{"app", "webserver.health_check", "processes.schedule", "processes.replicas", "hosts.roles", "hosts.proxy_jump", "secrets.adapter", "hooks.pre_build", "aliases"} {
		if !seen[k] {
			t.Errorf("schema lacks %s", k)
		}
	}
}

// TestSchemaFile keeps docs/raijin.schema.json, where `#:schema` lines
// point, identical to `raijin config schema`; -update rewrites it.
func TestSchemaFile(t *testing.T) {
	const file = "../docs/raijin.schema.json"
	want := SchemaJSON()
	if *updateSchema {
		if err := os.WriteFile(file, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from Schema(): run go test ./config -run TestSchemaFile -update", file)
	}
}

// TestSchemaURLFor: a release's raijin names the schema at its own tag;
// any other build (a pseudo-version, a pre-release, +dirty, (devel)) main's.
func TestSchemaURLFor(t *testing.T) {
	for v, want := range map[string]string{
		"v1.2.3":                               "https://raw.githubusercontent.com/raijin-deploy/raijin/v1.2.3/docs/raijin.schema.json",
		"v0.10.0":                              "https://raw.githubusercontent.com/raijin-deploy/raijin/v0.10.0/docs/raijin.schema.json",
		"v0.0.0-20261206065000-7d57ab604c5b":   SchemaURL,
		"v1.2.4-0.20261206065000-7d57ab604c5b": SchemaURL,
		"v1.2.3+dirty":                         SchemaURL,
		"v1.2.3-rc.1":                          SchemaURL,
		"(devel)":                              SchemaURL,
		"":                                     SchemaURL,
		"v1.2.3/../../evil":                    SchemaURL,
	} {
		if got := SchemaURLFor(v); got != want {
			t.Errorf("SchemaURLFor(%q) = %s, want %s", v, got, want)
		}
	}
	if !strings.HasSuffix(SchemaURL, "/main/docs/raijin.schema.json") {
		t.Errorf("SchemaURL = %s, want main's docs/raijin.schema.json", SchemaURL)
	}
}
