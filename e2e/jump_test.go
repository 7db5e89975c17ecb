package e2e

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A server this machine cannot reach, behind one it can: raijin deploys to
// it through the jump host, with proxy_jump in raijin.toml, then with
// ProxyJump in ~/.ssh/config; the app serves on it (seen from the jump
// host), and a direct connection fails.
func TestJumpHostDeploy(t *testing.T) {
	bastion, inner := freshHost(t, 0), freshHost(t, 1)
	Route(t, bastion, inner)
	inner.OnlyThrough(t, bastion)
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(inner.Addr, "22"), 2*time.Second); err == nil {
		c.Close()
		t.Fatalf("%s answers this machine directly: the test would not prove the jump", inner.Addr)
	}

	jump := `proxy_jump = "deploy@` + bastion.Addr + `"`
	p := NewProject(t, ProjectSpec{App: "jump", Hosts: []*TestHost{inner}, HostTOML: jump})
	// Both host keys are checked: the jump host's is in known_hosts too.
	appendFile(t, filepath.Join(p.Home, ".ssh", "known_hosts"), readFile(t, bastion.KnownHosts))

	r := p.MustRaijin("deploy", "--json")
	if n := resultEvent(t, r.Stdout)["connections"]; n != float64(2) {
		t.Errorf("%v SSH connections; want 2: the jump host and the server behind it", n)
	}
	serves := func(version string) {
		t.Helper()
		body := bastion.Run(t, "curl -fsS --max-time 10 "+p.SiteURL(inner))
		if !strings.Contains(body, "goapp "+version) {
			t.Errorf("%s serves %q (seen from the jump host); want goapp %s", inner.Name, body, version)
		}
	}
	serves("1.0.0")

	// The same through ~/.ssh/config: the jump host by its alias, its user
	// and address from its own Host block.
	toml := readFile(t, filepath.Join(p.Dir, "raijin.toml"))
	p.Write("raijin.toml", strings.Replace(toml, jump, "", 1), 0o644)
	p.Write("home/.ssh/config", "Host bastion\n  HostName "+bastion.Addr+"\n  User deploy\nHost "+inner.Addr+"\n  ProxyJump bastion\n  ConnectTimeout 3\n", 0o600)
	p.MustRaijin("deploy", "--set-version", "2.0.0")
	serves("2.0.0")
	if r := p.MustRaijin("releases"); !strings.Contains(r.Stdout, "2.0.0") {
		t.Errorf("raijin releases through the jump host:\n%s", r)
	}

	// proxy_jump = "none" wins over ssh_config: raijin connects directly,
	// which fails.
	p.Write("raijin.toml", strings.Replace(toml, jump, `proxy_jump = "none"`, 1), 0o644)
	r = p.Raijin("releases")
	if r.Code != 1 || !strings.Contains(r.Stderr, "cannot reach "+inner.Addr+":22") {
		t.Errorf("a direct connection to %s: want exit 1, cannot reach: %s", inner.Addr, r)
	}
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o600)
	must(t, err)
	defer f.Close()
	_, err = f.WriteString(text)
	must(t, err)
}

// resultEvent is the last --json event, the result.
func resultEvent(t *testing.T, stdout string) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var ev map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &ev); err != nil || ev["event"] != "result" {
		t.Fatalf("the last --json line is not the result event: %q (%v)", lines[len(lines)-1], err)
	}
	return ev
}
