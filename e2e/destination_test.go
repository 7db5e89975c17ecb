package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Staging and production in one project: raijin.staging.toml names its own
// server and env file (with a secret of its own). -d staging deploys there
// and nowhere else; a deploy without -d goes to the base host and leaves
// staging on its version.
func TestDestinationDeploysToItsOwnHosts(t *testing.T) {
	prod, staging := host(t, 0), host(t, 1)
	p := NewProject(t, ProjectSpec{App: "dest", Hosts: []*TestHost{prod}})
	t.Cleanup(func() { p.cleanupServer([]*TestHost{staging}) })
	kh, err := os.ReadFile(staging.KnownHosts)
	must(t, err)
	f, err := os.OpenFile(filepath.Join(p.Home, ".ssh", "known_hosts"), os.O_APPEND|os.O_WRONLY, 0)
	must(t, err)
	_, err = f.Write(kh)
	must(t, err)
	must(t, f.Close())

	p.Write("raijin.staging.toml", fmt.Sprintf(`# staging: its own server
[[hosts]]
name = "staging"
address = %q
user = %q
domain_name = %q
envfile = ".env.staging"
`, staging.Addr, staging.User, siteAddress(t, p)), 0o644)
	p.Write(".env.staging", fmt.Sprintf("PORT=%d\nGREETING=$STAGING_GREETING\n", p.Port), 0o644)
	p.Env = append(p.Env, "STAGING_GREETING=hello from staging")

	r := p.MustRaijin("-d", "staging", "deploy")
	if !strings.Contains(r.Stderr, "deploy "+p.App+" 1.0.0 to staging") || strings.Contains(r.Stderr, prod.Name) {
		t.Errorf("-d staging did not deploy to the staging host alone:\n%s", r.Stderr)
	}
	if _, body := Get(t, p.SiteURL(staging)); !strings.Contains(body, "goapp 1.0.0: hello from staging") {
		t.Errorf("staging serves %q, want goapp 1.0.0 with its own env", body)
	}
	if out, ok := prod.Try("test -e " + p.AppDir(prod) + " || test -e /etc/caddy/conf.d/" + p.App + ".caddy"); ok {
		t.Errorf("the base host got the app from a staging deploy: %s", out)
	}

	// Without -d: the base host, and staging stays where it was.
	p.MustRaijin("deploy", "--set-version", "2.0.0")
	if _, body := Get(t, p.SiteURL(prod)); !strings.Contains(body, "goapp 2.0.0: hello from "+prod.Name) {
		t.Errorf("the base host serves %q, want 2.0.0", body)
	}
	if _, body := Get(t, p.SiteURL(staging)); !strings.Contains(body, "goapp 1.0.0: hello from staging") {
		t.Errorf("staging serves %q after a deploy without -d, want 1.0.0", body)
	}

	// RAIJIN_DESTINATION does what -d does: releases shows staging alone.
	p.Env = append(p.Env, "RAIJIN_DESTINATION=staging")
	r = p.MustRaijin("releases")
	if !strings.Contains(r.Stdout, "staging") || !strings.Contains(r.Stdout, "1.0.0") || strings.Contains(r.Stdout, "2.0.0") {
		t.Errorf("releases with RAIJIN_DESTINATION=staging:\n%s", r.Stdout)
	}
}

// siteAddress is the base project's domain_name (":PORT"), which serves on
// every host at that port.
func siteAddress(t *testing.T, p *Project) string {
	t.Helper()
	for _, l := range strings.Split(readFile(t, filepath.Join(p.Dir, "raijin.toml")), "\n") {
		if v, ok := strings.CutPrefix(l, "domain_name = "); ok {
			return strings.Trim(v, `"`)
		}
	}
	t.Fatal("no domain_name in raijin.toml")
	return ""
}
