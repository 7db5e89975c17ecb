package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// Four servers side by side: a failure on one host stops the batches that
// follow, the summary says what happened on each host, and the hosts that
// succeeded stay on the new version unless --all-or-nothing rolls them back.
// release_on_all_hosts: the release fails on host 2 alone, in the third
// batch (TestRolesAndReleaseOnce has the release run once).
func TestManyHostsFailureStopsBatchesAndAllOrNothing(t *testing.T) {
	hs := []*TestHost{freshHost(t, 0), freshHost(t, 1), freshHost(t, 2), freshHost(t, 3)}
	p := NewProject(t, ProjectSpec{App: "many", Hosts: hs, Extra: "release_on_all_hosts = true"})
	r := p.MustRaijin("deploy")
	for _, h := range hs {
		if _, body := Get(t, p.SiteURL(h)); !strings.Contains(body, "goapp 1.0.0") {
			t.Fatalf("%s serves %q after the first deploy, want 1.0.0", h.Name, body)
		}
		if !strings.Contains(r.Stderr, h.Name) || !strings.Contains(r.Stderr, "deployed on 1.0.0") {
			t.Errorf("the summary has no line for %s:\n%s", h.Name, r.Stderr)
		}
	}

	// Host 2's release command fails from now on.
	toml := readFile(t, p.Dir+"/raijin.toml")
	bad := "GREETING=hello from " + hs[2].Name + "\n"
	if !strings.Contains(toml, bad) {
		t.Fatalf("raijin.toml lacks %q", bad)
	}
	p.Write("raijin.toml", strings.Replace(toml, bad, bad+"FAIL_MIGRATE=1\n", 1), 0o644)

	// One host at a time: 0 and 1 take 2.0.0, 2 fails and is restored, 3 is
	// never started.
	r = p.Raijin("deploy", "--set-version", "2.0.0", "--batch", "1")
	if r.Code != 1 {
		t.Fatalf("want exit 1: %s", r)
	}
	want := map[string][]string{
		hs[0].Name: {"deployed on 2.0.0"},
		hs[1].Name: {"deployed on 2.0.0"},
		hs[2].Name: {"failed in phase release; restored 1.0.0"},
		hs[3].Name: {"skipped", "an earlier batch failed"},
	}
	summary := summaryLines(r.Stderr)
	for name, parts := range want {
		for _, part := range parts {
			if !strings.Contains(summary[name], part) {
				t.Errorf("summary for %s = %q, want %q\n%s", name, summary[name], part, r.Stderr)
			}
		}
	}
	serving := func(want ...string) {
		t.Helper()
		for i, h := range hs {
			if _, body := Get(t, p.SiteURL(h)); !strings.Contains(body, "goapp "+want[i]) {
				t.Errorf("%s serves %q, want %s", h.Name, body, want[i])
			}
		}
	}
	serving("2.0.0", "2.0.0", "1.0.0", "1.0.0")

	// All at once with --all-or-nothing: host 2 fails again; 0, 1 and 3 take
	// 3.0.0 and are switched back to what they had.
	r = p.Raijin("deploy", "--set-version", "3.0.0", "--all-or-nothing", "--json")
	if r.Code != 1 {
		t.Fatalf("want exit 1: %s", r)
	}
	results := map[string]map[string]any{}
	for _, l := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("--json line is not JSON: %q", l)
		}
		if ev["event"] == "host_result" {
			results[ev["host"].(string)] = ev
		}
	}
	wantStatus := []string{"rolled back", "rolled back", "failed", "rolled back"}
	for i, h := range hs {
		if got := results[h.Name]["status"]; got != wantStatus[i] {
			t.Errorf("host_result of %s: status %v, want %q (%v)", h.Name, got, wantStatus[i], results[h.Name])
		}
	}
	serving("2.0.0", "2.0.0", "1.0.0", "1.0.0")
	for i, h := range []*TestHost{hs[0], hs[3]} {
		cur := []string{"2.0.0", "1.0.0"}[i]
		if got := h.Run(t, "head -1 "+p.AppDir(h)+"/.versions; readlink "+p.AppDir(h)+"/"+p.App); !strings.Contains(got, cur+"\nv"+cur+"/") {
			t.Errorf("%s after --all-or-nothing: %q, want %s current", h.Name, got, cur)
		}
	}
}

// summaryLines maps host name to its line of the per-host summary.
func summaryLines(stderr string) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(stderr, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && strings.HasPrefix(f[0], "raijin-e2e-") && (f[1] == "deployed" || f[1] == "failed" || f[1] == "skipped" || f[1] == "rolled") {
			out[f[0]] = l
		}
	}
	return out
}
