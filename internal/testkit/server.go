// Package testkit holds what the unit tests of several packages share: an
// in-process SSH server on loopback, and error checks.
package testkit

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gliderssh "github.com/gliderlabs/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// TB is what the server and key helpers need of a test: a *testing.T, or
// an adapter that lets a testscript command use them.
type TB interface {
	Helper()
	Fatal(args ...any)
	Cleanup(func())
}

// Server is an in-process SSH server on loopback: exec requests run
// locally with sh -c, as the user running the tests.
type Server struct {
	Addr     string // 127.0.0.1:PORT
	Port     int
	HostKeys []ssh.Signer
	User     string // the only user let in ("" = any)
	Shell    string // the login shell (default sh)

	mu       sync.Mutex
	env      []string // nil: the test's own environment
	authKeys []ssh.PublicKey
	logins   []string // users that logged in
	commands []string
	Attempts int      // public key offers
	conns    int      // TCP connections accepted
	open     int      // of which still open
	forwards []string // host:port of the connections it forwarded (direct-tcpip)
	noFwd    bool
}

// NewServer starts a server with an ed25519 host key (plus extra host
// keys) that accepts the given client keys.
func NewServer(t TB, clientKeys []ssh.PublicKey, extraHostKeys ...ssh.Signer) *Server {
	t.Helper()
	ts := &Server{authKeys: clientKeys}
	ts.HostKeys = append([]ssh.Signer{NewSigner(t)}, extraHostKeys...)
	srv := &gliderssh.Server{
		Handler: ts.exec,
		// A jump host: it forwards connections (ssh -W, ProxyJump).
		ChannelHandlers: map[string]gliderssh.ChannelHandler{
			"session":      gliderssh.DefaultSessionHandler,
			"direct-tcpip": gliderssh.DirectTCPIPHandler,
		},
		LocalPortForwardingCallback: func(_ gliderssh.Context, host string, port uint32) bool {
			ts.mu.Lock()
			defer ts.mu.Unlock()
			if ts.noFwd {
				return false
			}
			ts.forwards = append(ts.forwards, net.JoinHostPort(host, strconv.Itoa(int(port))))
			return true
		},
		ConnCallback: func(_ gliderssh.Context, c net.Conn) net.Conn {
			ts.mu.Lock()
			ts.conns++
			ts.open++
			ts.mu.Unlock()
			return &trackedConn{Conn: c, ts: ts}
		},
		PublicKeyHandler: func(ctx gliderssh.Context, key gliderssh.PublicKey) bool {
			ts.mu.Lock()
			defer ts.mu.Unlock()
			ts.Attempts++
			if ts.User != "" && ctx.User() != ts.User {
				return false
			}
			for _, k := range ts.authKeys {
				if gliderssh.KeysEqual(k, key) {
					return true
				}
			}
			return false
		},
	}
	for _, k := range ts.HostKeys {
		srv.AddHostKey(k)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.Addr = ln.Addr().String()
	ts.Port = ln.Addr().(*net.TCPAddr).Port
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ts
}

// SetEnv sets the environment of the commands the server runs from now on,
// as sshd would: env (HOME, PATH, ...), plus USER and LOGNAME of the login;
// they start in env's HOME. Without it they get the test's own environment
// and directory.
func (ts *Server) SetEnv(env []string) {
	ts.mu.Lock()
	ts.env = append([]string(nil), env...)
	ts.mu.Unlock()
}

func (ts *Server) exec(s gliderssh.Session) {
	ts.mu.Lock()
	ts.logins = append(ts.logins, s.User())
	ts.commands = append(ts.commands, s.RawCommand())
	env := ts.env
	ts.mu.Unlock()
	sigs := make(chan gliderssh.Signal, 4)
	s.Signals(sigs)
	shell := ts.Shell
	if shell == "" {
		shell = "sh"
	}
	cmd := exec.Command(shell, "-c", s.RawCommand())
	if env != nil {
		cmd.Env = slices.Concat(env, []string{"USER=" + s.User(), "LOGNAME=" + s.User()})
		for _, kv := range env {
			if home, ok := strings.CutPrefix(kv, "HOME="); ok {
				cmd.Dir = home
			}
		}
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s, s, s.Stderr()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		io.WriteString(s.Stderr(), err.Error())
		s.Exit(127)
		return
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case <-sigs:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		case <-s.Context().Done():
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		case err := <-done:
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				s.Exit(ee.ExitCode())
				return
			}
			s.Exit(0)
			return
		}
	}
}

// Conns is how many connections the server accepted.
func (ts *Server) Conns() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.conns
}

// Open is how many of its connections are still open.
func (ts *Server) Open() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.open
}

// trackedConn counts itself out of Open when closed.
type trackedConn struct {
	net.Conn
	ts   *Server
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.ts.mu.Lock()
		c.ts.open--
		c.ts.mu.Unlock()
	})
	return c.Conn.Close()
}

// Forwards are the addresses the server forwarded connections to, in order.
func (ts *Server) Forwards() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.forwards...)
}

// RefuseForwarding makes the server refuse to forward connections, as sshd
// with AllowTcpForwarding no.
func (ts *Server) RefuseForwarding() {
	ts.mu.Lock()
	ts.noFwd = true
	ts.mu.Unlock()
}

// KeyOffers is how many public keys clients offered.
func (ts *Server) KeyOffers() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.Attempts
}

// Commands are the commands the server ran, in order.
func (ts *Server) Commands() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.commands...)
}

func NewSigner(t TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// WriteKey writes a new ed25519 private key (encrypted when passphrase is not
// empty) and returns its path and public key.
func WriteKey(t TB, path, passphrase string) ssh.PublicKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// Home points HOME at a fresh directory with an empty ~/.ssh and no agent.
func Home(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("SSH_AUTH_SOCK", "")
	t.Setenv("USER", "tester")
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	return home
}

// Trust records the server's host keys in ~/.ssh/known_hosts.
func Trust(t TB, home string, ts *Server, keys ...ssh.PublicKey) {
	t.Helper()
	if len(keys) == 0 {
		keys = []ssh.PublicKey{ts.HostKeys[0].PublicKey()}
	}
	f, err := os.OpenFile(filepath.Join(home, ".ssh", "known_hosts"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, k := range keys {
		if _, err := f.WriteString(knownhosts.Line([]string{knownhosts.Normalize(ts.Addr)}, k) + "\n"); err != nil {
			t.Fatal(err)
		}
	}
}

// Fixture is a server that trusts one key file, already in known_hosts.
type Fixture struct {
	Home, Key string
	Srv       *Server
}

func NewFixture(t *testing.T) Fixture {
	t.Helper()
	home := Home(t)
	key := filepath.Join(home, "keys", "deploy")
	pub := WriteKey(t, key, "")
	srv := NewServer(t, []ssh.PublicKey{pub})
	Trust(t, home, srv)
	return Fixture{Home: home, Key: key, Srv: srv}
}

func PortString(p int) string { return strconv.Itoa(p) }
