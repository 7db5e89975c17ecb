package config

import (
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/raijin-deploy/raijin/errs"
)

// base is a raijin.toml that destinations are read over.
const base = `app = "shop"
version = "1.0.0"
distfile = "dist/shop"

[webserver]
health_check = "/up"
statics = { "/static/*" = "/var/www/shop/static/" }

[processes]
web = "shop serve"
worker = "shop work"

[[hosts]]
name = "web1"
address = "203.0.113.10"
env = "GREETING=prod"

[[hosts]]
name = "web2"
address = "203.0.113.11"
env = "GREETING=prod"
`

func TestDestinationMerge(t *testing.T) {
	p := project(t, base, "raijin.staging.toml", `app = "shop-staging"

[webserver]
upstream = "localhost:8100"
statics = { "/media/*" = "/var/www/shop-staging/media/" }

[processes]
worker = "shop work --slow"

[[hosts]]
name = "stage1"
address = "198.51.100.7"
envfile = ".env.staging"
`, ".env.staging", "GREETING=staging\n")
	c, err := LoadDestination(p, "staging")
	if err != nil {
		t.Fatal(err)
	}
	staging := filepath.Join(filepath.Dir(p), "raijin.staging.toml")
	if c.Destination != "staging" || c.DestinationFile != staging || c.File != p {
		t.Errorf("destination %q from %q over %q", c.Destination, c.DestinationFile, c.File)
	}
	// A key set by the destination wins; a key it leaves alone stays.
	if c.App != "shop-staging" || c.Version != "1.0.0" || c.AppUser != "shop-staging" {
		t.Errorf("app %q version %q app_user %q", c.App, c.Version, c.AppUser)
	}
	// Tables merge key by key, inline tables too.
	if c.Webserver.Upstream != "localhost:8100" || c.Webserver.HealthCheck != "/up" {
		t.Errorf("webserver %+v", c.Webserver)
	}
	if want := map[string]string{"/static/*": "/var/www/shop/static/", "/media/*": "/var/www/shop-staging/media/"}; !maps.Equal(c.Webserver.Statics, want) {
		t.Errorf("statics %v, want %v", c.Webserver.Statics, want)
	}
	if want := map[string]string{"web": "shop serve", "worker": "shop work --slow"}; !maps.Equal(c.Processes, want) {
		t.Errorf("processes %v, want %v", c.Processes, want)
	}
	// Its [[hosts]] replace the base hosts.
	if len(c.Hosts) != 1 || c.Hosts[0].Name != "stage1" || c.Hosts[0].Envfile != ".env.staging" {
		t.Errorf("hosts %+v", c.Hosts)
	}
	if c.HostsFile() != staging {
		t.Errorf("HostsFile() = %q, want %q", c.HostsFile(), staging)
	}
	// Each value says which file set it.
	for key, want := range map[string]string{
		"app":                    staging + ":1",
		"version":                p + ":2",
		"webserver.upstream":     staging + ":4",
		"webserver.health_check": p + ":6",
		"processes.web":          p + ":10",
		"processes.worker":       staging + ":8",
		"hosts.0.name":           staging + ":11",
		"hosts.0.envfile":        staging + ":13",
		"hosts.0.user":           "default",
		"installation_mode":      "default",
	} {
		if got := c.Source(key); got != want {
			t.Errorf("Source(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestDestinationWithoutHostsKeepsBaseHosts(t *testing.T) {
	p := project(t, base, "raijin.canary.toml", "[webserver]\nblue_green = false\n")
	c, err := LoadDestination(p, "canary")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Hosts) != 2 || c.Hosts[1].Name != "web2" || c.HostsFile() != p {
		t.Errorf("hosts %+v from %s", c.Hosts, c.HostsFile())
	}
	if c.Source("hosts.1.address") != p+":20" {
		t.Errorf("Source(hosts.1.address) = %q", c.Source("hosts.1.address"))
	}
	// A boolean the destination sets is set, not defaulted.
	if c.IsBlueGreen() || !strings.HasSuffix(c.Source("webserver.blue_green"), "raijin.canary.toml:2") {
		t.Errorf("blue_green %v from %s", c.IsBlueGreen(), c.Source("webserver.blue_green"))
	}
}

func TestMergeTablesReplacesArrays(t *testing.T) {
	b := map[string]any{"a": []any{"x", "y"}, "t": map[string]any{"k": []any{int64(1)}, "keep": true}, "hosts": []any{map[string]any{"address": "h1"}, map[string]any{"address": "h2"}}}
	mergeTables(b, map[string]any{"a": []any{"z"}, "t": map[string]any{"k": []any{int64(2)}}, "hosts": []any{map[string]any{"address": "s1"}}})
	want := map[string]any{"a": []any{"z"}, "t": map[string]any{"k": []any{int64(2)}, "keep": true}, "hosts": []any{map[string]any{"address": "s1"}}}
	if !reflect.DeepEqual(b, want) {
		t.Errorf("merged %v\nwant %v", b, want)
	}
}

func TestDestinationErrors(t *testing.T) {
	for _, tc := range []struct {
		name, dest string
		toml       string // raijin.staging.toml; none when empty
		want, hint string // want after "DIR/"
	}{
		{name: "unknown key at its line", dest: "staging", toml: "app = \"shop-staging\"\n\n[webserver]\nhealthcheck = \"/up\"\n",
			want: `raijin.staging.toml:4: unknown key "webserver.healthcheck"`, hint: "check the spelling"},
		{name: "bad type at its line", dest: "staging", toml: "versions_to_keep = \"two\"\n",
			want: "raijin.staging.toml:1:20: key versions_to_keep: expected an integer, got a string"},
		{name: "bad value at its line", dest: "staging", toml: "# staging\n[webserver]\nupstream = \"localhost\"\n",
			want: `raijin.staging.toml:3: webserver.upstream: "localhost": expected HOST:PORT or unix//PATH`},
		{name: "host without address at its table", dest: "staging", toml: "[[hosts]]\nname = \"a\"\naddress = \"198.51.100.7\"\n\n[[hosts]]\nname = \"b\"\n",
			want: "raijin.staging.toml:5: [[hosts]] number 2: missing required key address"},
		{name: "host's default name at its table", dest: "staging", toml: "[[hosts]]\naddress = \"198.51.100.7\"\n\n[[hosts]]\naddress = \"198.51.100.7\"\n",
			want: `raijin.staging.toml:4: hosts.1.name: "198.51.100.7" is used by two hosts`},
		{name: "no hosts in either file", dest: "qa",
			want: "raijin.toml and {DIR}/raijin.qa.toml: no [[hosts]]: nowhere to deploy", hint: `add a [[hosts]] table`},
		{name: "missing file lists the others", dest: "prod",
			want: `raijin.prod.toml: no such file, for destination "prod" (-d)`, hint: "the destinations beside {DIR}/raijin.toml are: qa, staging; or write {DIR}/raijin.prod.toml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := []string{"raijin.qa.toml", "", "raijin.staging.toml", tc.toml, "raijin..toml", "", "raijin.a.b.toml", ""}
			toml := base
			if tc.dest == "qa" {
				toml = base[:strings.Index(base, "[[hosts]]")]
			}
			p := project(t, toml, files...)
			dir := filepath.Dir(p)
			_, err := LoadDestination(p, tc.dest)
			if err == nil {
				t.Fatal("no error")
			}
			if c := errs.Code(err); c != errs.CodeUsage {
				t.Errorf("exit code %d, want %d", c, errs.CodeUsage)
			}
			want := dir + "/" + strings.ReplaceAll(tc.want, "{DIR}", dir)
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error:\n%s\nwant it to start with:\n%s", err, want)
			}
			if hint := strings.ReplaceAll(tc.hint, "{DIR}", dir); !strings.Contains(errs.Hint(err), hint) {
				t.Errorf("hint %q, want %q in it", errs.Hint(err), hint)
			}
		})
	}
}

func TestDestinationNames(t *testing.T) {
	for _, name := range []string{"staging", "prod-eu", "qa_2", "A1"} {
		if err := CheckDestination(name); err != nil {
			t.Errorf("CheckDestination(%q): %v", name, err)
		}
	}
	for _, name := range []string{"", "../prod", "a/b", `a\b`, "a.b", ".hidden", "-d", "st aging", "x\n"} {
		if err := CheckDestination(name); err == nil {
			t.Errorf("CheckDestination(%q) accepted it", name)
		}
		p := project(t, base)
		if _, err := LoadDestination(p, name); name != "" && err == nil {
			t.Errorf("LoadDestination(%q) accepted it", name)
		}
	}
	p := project(t, base, "raijin.staging.toml", "", "raijin.prod.toml", "", "raijin.a.b.toml", "", "other.qa.toml", "", "raijin.dir.toml/x", "")
	if got, want := Destinations(p), []string{"prod", "staging"}; !slices.Equal(got, want) {
		t.Errorf("Destinations = %q, want %q", got, want)
	}
	if got, want := DestinationFile("conf/other.toml", "qa"), filepath.Join("conf", "other.qa.toml"); got != want {
		t.Errorf("DestinationFile = %q, want %q", got, want)
	}
	if _, err := os.Stat(DestinationFile(p, "staging")); err != nil {
		t.Error(err)
	}
}

func TestNoHostsNamesTheDestinations(t *testing.T) {
	p := project(t, base[:strings.Index(base, "[[hosts]]")], "raijin.staging.toml", "[[hosts]]\naddress = \"198.51.100.7\"\n")
	if _, err := Load(p); err == nil || !strings.Contains(errs.Hint(err), "pick a destination that has hosts with -d NAME: staging") {
		t.Errorf("without -d and without hosts: %v (hint %q)", err, errs.Hint(err))
	}
	if c, err := LoadDestination(p, "staging"); err != nil || len(c.Hosts) != 1 {
		t.Errorf("with -d staging: %v", err)
	}
}
