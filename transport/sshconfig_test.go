package transport

import (
	"context"
	"crypto/ed25519"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raijin-deploy/raijin/errs"
	"github.com/raijin-deploy/raijin/internal/testkit"
	"golang.org/x/crypto/ssh"
)

func writeSSHConfig(t *testing.T, home, name, text string) {
	t.Helper()
	p := filepath.Join(home, ".ssh", name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// An option that applies to the host and that raijin neither honours nor
// may safely ignore is a configuration error (exit 2) naming the file, the
// line, the Host block and what to do, before any connection.
func TestSSHConfigRefusesWhatRaijinCannotHonour(t *testing.T) {
	for _, tc := range []struct {
		name, conf string
		want       []string
	}{
		{"agent forwarding", "Host web1\n  HostName 127.0.0.1\n  ForwardAgent yes\n",
			[]string{"~/.ssh/config line 3: Host web1 sets ForwardAgent yes, which raijin does not support (it never forwards the agent): remove it, or keep it from applying to web1 (add !web1 to that Host line)"}},
		{"no host key check", "Host *\n  StrictHostKeyChecking no\n",
			[]string{"~/.ssh/config line 2: Host * sets StrictHostKeyChecking no", "raijin always verifies host keys", "--accept-new-host-key"}},
		{"known hosts thrown away", "Host web*\n  UserKnownHostsFile /dev/null\n",
			[]string{"line 2: Host web* sets UserKnownHostsFile /dev/null", "check host keys against nothing"}},
		{"jump hosts raijin cannot read", "Host web1\n  ProxyJump bastion,,inner\n",
			[]string{"line 2: Host web1 sets ProxyJump bastion,,inner, which raijin cannot read (an empty jump host between commas): write jump hosts as [user@]host[:port], comma separated, or none"}},
		{"proxy command", "Host web1\n  ProxyCommand nc %h %p\n",
			[]string{"sets ProxyCommand nc %h %p, which raijin does not support"}},
		{"an option raijin does not know", "Host web1\n  LocalForward 5432 localhost:5432\n",
			[]string{"line 2: Host web1 sets LocalForward 5432 localhost:5432, which raijin does not support"}},
		{"before any Host line", "Ciphers aes128-cbc\nHost web1\n  User deploy\n",
			[]string{"~/.ssh/config line 1 (before any Host line, so for every host) sets Ciphers aes128-cbc"}},
		{"a token raijin does not expand", "Host web1\n  IdentityFile ~/.ssh/%C\n",
			[]string{"line 2: Host web1 sets IdentityFile ~/.ssh/%C, whose %C raijin does not expand: write it out in full"}},
		{"not a port", "Host web1\n  Port ssh\n", []string{"sets Port ssh, which is not a port number"}},
		{"password login", "Host web1\n  PasswordAuthentication yes\n", []string{"it logs in with keys only"}},
		{"every problem at once", "Host web1\n  ForwardAgent yes\n  RemoteCommand bash\n",
			[]string{"line 2: Host web1 sets ForwardAgent yes", "line 3: Host web1 sets RemoteCommand bash"}},
		{"in an included file", "Include conf.d/*\n",
			[]string{"~/.ssh/conf.d/web line 2: Host web1 sets ForwardX11 yes"}},
		{"Match host is matched against HostName", "Host web1\n  HostName 10.0.0.5\nMatch host 10.0.0.*\n  ForwardAgent yes\n",
			[]string{"line 4: Match host 10.0.0.* sets ForwardAgent yes"}},
		{"a Match the parser refuses", "Match exec true\n  User x\n", []string{"~/.ssh/config", "Match Exec is not supported"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := testkit.Home(t)
			writeSSHConfig(t, home, "config", tc.conf)
			writeSSHConfig(t, home, "conf.d/web", "Host web1\n  ForwardX11 yes\n")
			_, err := Dial(context.Background(), Target{Name: "web1", Address: "web1"}, nil)
			testkit.WantErr(t, err, tc.want...)
			if c := errs.Code(err); c != errs.CodeUsage {
				t.Errorf("exit code %d; want %d", c, errs.CodeUsage)
			}
		})
	}
}

// Options that change only ssh's messages, speed or prompts, options set to
// what raijin does anyway, values overridden by an earlier line (the first
// value wins), and blocks of other hosts are no error.
func TestSSHConfigAcceptsWhatIsHarmless(t *testing.T) {
	home := testkit.Home(t)
	writeSSHConfig(t, home, "config", `Host web1
  HostName %h.example.com
  StrictHostKeyChecking yes
  ForwardAgent no
  PasswordAuthentication no
  IdentitiesOnly yes
  IdentityFile ~/.ssh/%n_%r
Host other
  ProxyJump bastion
  ForwardAgent yes
Match host other.example.com
  Ciphers aes128-cbc
Host *
  StrictHostKeyChecking no
  ServerAliveInterval 30
  ServerAliveCountMax 3
  AddKeysToAgent yes
  UseKeychain yes
  LogLevel ERROR
  Compression yes
  ControlMaster auto
  ControlPath ~/.ssh/cm-%r@%h:%p
  ControlPersist 10m
  SendEnv LANG LC_*
  HashKnownHosts yes
  ConnectTimeout 7
  PreferredAuthentications publickey,password
  GSSAPIAuthentication no
  ProxyJump none
`)
	s, err := loadSSHConfig(Target{Address: "web1", User: "deploy"})
	if err != nil {
		t.Fatal(err)
	}
	if s.hostname != "web1.example.com" || !s.identitiesOnly || !s.hashKnownHosts || s.timeout.Seconds() != 7 {
		t.Errorf("settings %+v", s)
	}
	if want := []string{filepath.Join(home, ".ssh", "web1_deploy")}; fmt.Sprint(s.identityFiles) != fmt.Sprint(want) {
		t.Errorf("identity files %q; want %q (no ~/.ssh/id_* when a key is named)", s.identityFiles, want)
	}
}

// writeEncryptedKey writes k encrypted, as ssh-keygen with a passphrase does.
func writeEncryptedKey(t *testing.T, path string, k ed25519.PrivateKey) {
	t.Helper()
	block, err := ssh.MarshalPrivateKeyWithPassphrase(k, "", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
}

// IdentitiesOnly: only the IdentityFile's key is offered, from the agent
// when the file is encrypted (found by its public key), never the agent's
// other keys.
func TestIdentitiesOnlyOffersOnlyTheConfiguredKey(t *testing.T) {
	home := testkit.Home(t)
	right := newEd25519(t)
	pub, _ := ssh.NewPublicKey(right.Public())
	srv := testkit.NewServer(t, []ssh.PublicKey{pub})
	testkit.Trust(t, home, srv)
	writeEncryptedKey(t, filepath.Join(home, ".ssh", "deploy"), right)
	var keys []ed25519.PrivateKey
	for range 8 { // more than the server's MaxAuthTries
		keys = append(keys, newEd25519(t))
	}
	startAgent(t, append(keys, right)...)
	writeSSHConfig(t, home, "config", fmt.Sprintf("Host web1\n  HostName 127.0.0.1\n  Port %d\n  IdentitiesOnly yes\n  IdentityFile ~/.ssh/deploy\n", srv.Port))
	dial(t, Target{Name: "web1", Address: "web1"})
	if n := srv.KeyOffers(); n > 2 {
		t.Errorf("%d key offers; want only the IdentityFile's key", n)
	}
}

func TestIdentitiesOnlyDoesNotOfferOtherKeys(t *testing.T) {
	home := testkit.Home(t)
	// The server lets in a key of the agent and ~/.ssh/id_ed25519, neither
	// of which is the IdentityFile.
	inAgent := newEd25519(t)
	agentPub, _ := ssh.NewPublicKey(inAgent.Public())
	defaultPub := testkit.WriteKey(t, filepath.Join(home, ".ssh", "id_ed25519"), "")
	testkit.WriteKey(t, filepath.Join(home, ".ssh", "deploy"), "")
	srv := testkit.NewServer(t, []ssh.PublicKey{agentPub, defaultPub})
	testkit.Trust(t, home, srv)
	startAgent(t, inAgent)
	conf := fmt.Sprintf("Host web1\n  HostName 127.0.0.1\n  Port %d\n  IdentityFile ~/.ssh/deploy\n", srv.Port)
	writeSSHConfig(t, home, "config", conf+"  IdentitiesOnly yes\n")
	_, err := Dial(context.Background(), Target{Name: "web1", Address: "web1"}, nil)
	testkit.WantErr(t, err, "rejected the login")
	// Without IdentitiesOnly the agent's keys are offered too.
	writeSSHConfig(t, home, "config", conf)
	dial(t, Target{Name: "web1", Address: "web1"})
}

func TestIdentityAgentNone(t *testing.T) {
	home, srv := agentServer(t)
	writeSSHConfig(t, home, "config", fmt.Sprintf("Host web1\n  HostName 127.0.0.1\n  Port %d\n  IdentityAgent none\n", srv.Port))
	_, err := Dial(context.Background(), Target{Name: "web1", Address: "web1"}, nil)
	testkit.WantErr(t, err, "no SSH key to log in with")
}

// StrictHostKeyChecking accept-new is --accept-new-host-key; HashKnownHosts
// hashes the name recorded.
func TestAcceptNewAndHashKnownHostsFromSSHConfig(t *testing.T) {
	home := testkit.Home(t)
	key := filepath.Join(home, "keys", "deploy")
	srv := testkit.NewServer(t, []ssh.PublicKey{testkit.WriteKey(t, key, "")})
	writeSSHConfig(t, home, "config", "Host *\n  StrictHostKeyChecking accept-new\n  HashKnownHosts yes\n")
	dial(t, Target{Address: "127.0.0.1", Port: srv.Port, KeyFile: key})
	data, err := os.ReadFile(filepath.Join(home, ".ssh", "known_hosts"))
	if err != nil || !strings.HasPrefix(string(data), "|1|") || strings.Contains(string(data), "127.0.0.1") {
		t.Errorf("known_hosts = %q (%v); want the host's name hashed", data, err)
	}
	// The hashed line verifies the host from now on, even without accept-new.
	writeSSHConfig(t, home, "config", "")
	dial(t, Target{Address: "127.0.0.1", Port: srv.Port, KeyFile: key})
}
