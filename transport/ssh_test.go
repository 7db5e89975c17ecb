package transport

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/raijin-deploy/raijin/internal/testkit"
	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/shell"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

func dial(t *testing.T, tg Target) *Client {
	t.Helper()
	c, err := Dial(context.Background(), tg, nil)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestDialWithKeyFileAndExec(t *testing.T) {
	f := testkit.NewFixture(t)
	var stats remote.Stats
	c, err := Dial(context.Background(), target(f), &stats)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.User != "tester" || c.Addr != f.Srv.Addr {
		t.Errorf("User, Addr = %q, %q; want tester, %s", c.User, c.Addr, f.Srv.Addr)
	}
	res, err := c.Exec(context.Background(), "echo out; echo err >&2; exit 3", nil)
	if err != nil {
		t.Fatal(err)
	}
	if res != (remote.Result{Stdout: "out\n", Stderr: "err\n", Code: 3}) {
		t.Errorf("Exec = %+v", res)
	}
	if stats.Connections.Load() != 1 || stats.Commands.Load() != 1 || stats.BytesSent.Load() == 0 || stats.BytesRecv.Load() == 0 {
		t.Errorf("stats: %d connections, %d commands, %d sent, %d received", stats.Connections.Load(), stats.Commands.Load(), stats.BytesSent.Load(), stats.BytesRecv.Load())
	}
}

func TestExec(t *testing.T) {
	f := testkit.NewFixture(t)
	c := dial(t, target(f))
	for _, tc := range []struct {
		cmd, stdin string
		want       remote.Result
	}{
		{cmd: "true", want: remote.Result{}},
		{cmd: "exit 42", want: remote.Result{Code: 42}},
		{cmd: "printf 'a\\nb'", want: remote.Result{Stdout: "a\nb"}},
		{cmd: "echo oops >&2; false", want: remote.Result{Stderr: "oops\n", Code: 1}},
		{cmd: "tr a-z A-Z", stdin: "hello\n", want: remote.Result{Stdout: "HELLO\n"}},
		{cmd: "wc -c", stdin: strings.Repeat("x", 300000), want: remote.Result{Stdout: "300000\n"}},
		{cmd: "no-such-command-raijin", want: remote.Result{Stderr: "sh: 1: no-such-command-raijin: not found\n", Code: 127}},
	} {
		var stdin *strings.Reader
		if tc.stdin != "" {
			stdin = strings.NewReader(tc.stdin)
		}
		var res remote.Result
		var err error
		if stdin != nil {
			res, err = c.Exec(context.Background(), tc.cmd, stdin)
		} else {
			res, err = c.Exec(context.Background(), tc.cmd, nil)
		}
		if err != nil {
			t.Errorf("%s: %v", tc.cmd, err)
			continue
		}
		if tc.cmd == "no-such-command-raijin" {
			// The shell's wording varies; the code does not.
			if res.Code != 127 || !strings.Contains(res.Stderr, "no-such-command-raijin") {
				t.Errorf("%s = %+v", tc.cmd, res)
			}
			continue
		}
		if res != tc.want {
			t.Errorf("%s = %+v; want %+v", tc.cmd, res, tc.want)
		}
	}
}

func TestExecCancelKillsTheCommand(t *testing.T) {
	f := testkit.NewFixture(t)
	c := dial(t, target(f))
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	// Output keeps flowing while the command is cancelled (a race detector
	// run checks the buffers).
	res, err := c.Exec(ctx, fmt.Sprintf("echo $$ > %s; while :; do echo tick; sleep 0.01; done", shell.Quote(pidFile)), nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v; want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("Exec returned %v after the deadline", d)
	}
	if res.Code != -1 || !strings.Contains(res.Stdout, "tick") {
		t.Errorf("res = code %d, stdout %q; want -1 and the output so far", res.Code, res.Stdout)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	fmt.Sscan(string(data), &pid)
	deadline := time.Now().Add(3 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("remote command (pid %d) still runs after cancellation", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The connection is still usable.
	if res, err := c.Exec(context.Background(), "echo ok", nil); err != nil || res.Stdout != "ok\n" {
		t.Errorf("after a cancel: %+v, %v", res, err)
	}
}

func TestExecWithCancelledContextSendsNothing(t *testing.T) {
	f := testkit.NewFixture(t)
	c := dial(t, target(f))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Exec(ctx, "echo never", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v; want context.Canceled", err)
	}
	if cmds := f.Srv.Commands(); len(cmds) != 0 {
		t.Errorf("server ran %q", cmds)
	}
}

func TestUnknownHostKeyIsRefused(t *testing.T) {
	home := testkit.Home(t)
	key := filepath.Join(home, "keys", "deploy")
	srv := testkit.NewServer(t, []ssh.PublicKey{testkit.WriteKey(t, key, "")})
	_, err := Dial(context.Background(), Target{Address: "127.0.0.1", Port: srv.Port, KeyFile: key}, nil)
	testkit.WantErr(t, err, "is not known", "--accept-new-host-key", ssh.FingerprintSHA256(srv.HostKeys[0].PublicKey()))
	if len(srv.Commands()) != 0 {
		t.Error("commands ran on an unverified server")
	}
}

func TestAcceptNewHostKeyRecordsIt(t *testing.T) {
	home := testkit.Home(t)
	key := filepath.Join(home, "keys", "deploy")
	srv := testkit.NewServer(t, []ssh.PublicKey{testkit.WriteKey(t, key, "")})
	tg := Target{Address: "127.0.0.1", Port: srv.Port, KeyFile: key, AcceptNew: true}
	dial(t, tg).Close()
	data, err := os.ReadFile(filepath.Join(home, ".ssh", "known_hosts"))
	if err != nil {
		t.Fatal(err)
	}
	want := "[127.0.0.1]:" + testkit.PortString(srv.Port) + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(srv.HostKeys[0].PublicKey())))
	if strings.TrimSpace(string(data)) != want {
		t.Errorf("known_hosts = %q; want %q", data, want)
	}
	// Now known: no flag needed.
	tg.AcceptNew = false
	dial(t, tg)
}

func TestAcceptNewRecordsInUserKnownHostsFile(t *testing.T) {
	home := testkit.Home(t)
	key := filepath.Join(home, "keys", "deploy")
	srv := testkit.NewServer(t, []ssh.PublicKey{testkit.WriteKey(t, key, "")})
	conf := "Host *\n  UserKnownHostsFile ~/.ssh/known_hosts.raijin\n"
	if err := os.WriteFile(filepath.Join(home, ".ssh", "config"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	dial(t, Target{Address: "127.0.0.1", Port: srv.Port, KeyFile: key, AcceptNew: true})
	data, err := os.ReadFile(filepath.Join(home, ".ssh", "known_hosts.raijin"))
	if err != nil || !strings.HasPrefix(string(data), "[127.0.0.1]:"+testkit.PortString(srv.Port)+" ssh-ed25519 ") {
		t.Errorf("UserKnownHostsFile has %q (%v)", data, err)
	}
	if _, err := os.Stat(filepath.Join(home, ".ssh", "known_hosts")); !os.IsNotExist(err) {
		t.Error("the key also went to ~/.ssh/known_hosts")
	}
	dial(t, Target{Address: "127.0.0.1", Port: srv.Port, KeyFile: key})
}

func TestChangedHostKeyIsRefused(t *testing.T) {
	f := testkit.NewFixture(t)
	// known_hosts has another key for the address.
	os.WriteFile(filepath.Join(f.Home, ".ssh", "known_hosts"), nil, 0o600)
	testkit.Trust(t, f.Home, f.Srv, testkit.NewSigner(t).PublicKey())
	for _, acceptNew := range []bool{false, true} {
		tg := target(f)
		tg.AcceptNew = acceptNew
		_, err := Dial(context.Background(), tg, nil)
		testkit.WantErr(t, err, "CHANGED", ssh.FingerprintSHA256(f.Srv.HostKeys[0].PublicKey()), "known_hosts:1", "ssh-keygen -R")
	}
}

func TestHostKeyAlgorithmFollowsKnownHosts(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaSigner, err := ssh.NewSignerFromKey(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, recorded := range []string{"rsa", "ed25519"} {
		t.Run(recorded, func(t *testing.T) {
			home := testkit.Home(t)
			key := filepath.Join(home, "keys", "deploy")
			// The server offers ed25519 and RSA; only one is on record.
			srv := testkit.NewServer(t, []ssh.PublicKey{testkit.WriteKey(t, key, "")}, rsaSigner)
			known := srv.HostKeys[0].PublicKey()
			if recorded == "rsa" {
				known = rsaSigner.PublicKey()
			}
			testkit.Trust(t, home, srv, known)
			_, algos, err := hostKeyCallback(sshSettings{knownHosts: []string{filepath.Join(home, ".ssh", "known_hosts")}}, srv.Addr)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{ssh.KeyAlgoED25519}
			if recorded == "rsa" {
				want = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
			}
			if fmt.Sprint(algos) != fmt.Sprint(want) {
				t.Errorf("algorithms = %v; want %v", algos, want)
			}
			dial(t, Target{Address: "127.0.0.1", Port: srv.Port, KeyFile: key})
		})
	}
}

func TestNoKeyIsAClearError(t *testing.T) {
	home := testkit.Home(t)
	srv := testkit.NewServer(t, nil)
	testkit.Trust(t, home, srv)
	_, err := Dial(context.Background(), Target{Address: "127.0.0.1", Port: srv.Port}, nil)
	testkit.WantErr(t, err, "no SSH key to log in with", "key_filename", "ssh-agent")
}

func TestMissingKeyFileIsNamed(t *testing.T) {
	home := testkit.Home(t)
	srv := testkit.NewServer(t, nil)
	testkit.Trust(t, home, srv)
	_, err := Dial(context.Background(), Target{Address: "127.0.0.1", Port: srv.Port, KeyFile: "~/nope/id"}, nil)
	testkit.WantErr(t, err, "key_filename ~/nope/id", "no such file")
}

func TestEncryptedKeyWithoutAgentDoesNotPrompt(t *testing.T) {
	home := testkit.Home(t)
	key := filepath.Join(home, ".ssh", "id_ed25519")
	srv := testkit.NewServer(t, []ssh.PublicKey{testkit.WriteKey(t, key, "secret")})
	testkit.Trust(t, home, srv)
	// A prompt would read stdin: give it a pipe nobody writes to.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	old := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = old }()
	done := make(chan error, 1)
	go func() {
		_, err := Dial(context.Background(), Target{Address: "127.0.0.1", Port: srv.Port, Timeout: 3 * time.Second}, nil)
		done <- err
	}()
	select {
	case err := <-done:
		testkit.WantErr(t, err, "no SSH key to log in with", key+" is encrypted", "ssh-add "+key, "never asks for a passphrase")
	case <-time.After(10 * time.Second):
		t.Fatal("Dial blocked (prompting?) with an encrypted key and no agent")
	}
}

func TestRejectedKeyNamesUser(t *testing.T) {
	home := testkit.Home(t)
	key := filepath.Join(home, "keys", "deploy")
	testkit.WriteKey(t, key, "")
	srv := testkit.NewServer(t, []ssh.PublicKey{testkit.NewSigner(t).PublicKey()})
	testkit.Trust(t, home, srv)
	_, err := Dial(context.Background(), Target{Address: "127.0.0.1", Port: srv.Port, KeyFile: key}, nil)
	testkit.WantErr(t, err, "rejected the login as tester", "authorized_keys")
}

// startAgent serves an ssh-agent holding keys on a socket in a temp dir.
func startAgent(t *testing.T, keys ...ed25519.PrivateKey) {
	t.Helper()
	kr := agent.NewKeyring()
	for _, k := range keys {
		if err := kr.Add(agent.AddedKey{PrivateKey: k}); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	listen(t, "unix", sock, func(c net.Conn) { agent.ServeAgent(kr, c); c.Close() })
	t.Setenv("SSH_AUTH_SOCK", sock)
}

func newEd25519(t *testing.T) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// agentServer is a known server that lets in the one key of the agent.
func agentServer(t *testing.T) (home string, srv *testkit.Server) {
	home = testkit.Home(t)
	k := newEd25519(t)
	pub, _ := ssh.NewPublicKey(k.Public())
	srv = testkit.NewServer(t, []ssh.PublicKey{pub})
	testkit.Trust(t, home, srv)
	startAgent(t, k)
	return home, srv
}

func TestAgentKeyLogsIn(t *testing.T) {
	_, srv := agentServer(t)
	c := dial(t, Target{Address: "127.0.0.1", Port: srv.Port})
	if res, err := c.Exec(context.Background(), "echo agent", nil); err != nil || res.Stdout != "agent\n" {
		t.Errorf("%+v, %v", res, err)
	}
}

func TestKeyFileIsOfferedBeforeAgentKeys(t *testing.T) {
	f := testkit.NewFixture(t)
	// More wrong keys in the agent than the server's MaxAuthTries (6).
	var keys []ed25519.PrivateKey
	for range 8 {
		keys = append(keys, newEd25519(t))
	}
	startAgent(t, keys...)
	dial(t, target(f))
	attempts := f.Srv.KeyOffers()
	if attempts > 2 {
		t.Errorf("%d key offers before key_filename's key", attempts)
	}
}

func TestSSHConfigHostNameUserPortIdentityFile(t *testing.T) {
	home := testkit.Home(t)
	key := filepath.Join(home, "keys", "from-config")
	srv := testkit.NewServer(t, []ssh.PublicKey{testkit.WriteKey(t, key, "")})
	srv.User = "deployer"
	testkit.Trust(t, home, srv)
	conf := fmt.Sprintf("Host web1\n  HostName 127.0.0.1\n  User deployer\n  Port %d\n  IdentityFile ~/keys/from-config\n\nHost *\n  User nobody-else\n", srv.Port)
	if err := os.WriteFile(filepath.Join(home, ".ssh", "config"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	c := dial(t, Target{Name: "web1", Address: "web1"})
	if c.User != "deployer" || c.Addr != srv.Addr {
		t.Errorf("User, Addr = %q, %q; want deployer, %s", c.User, c.Addr, srv.Addr)
	}
	// raijin.toml's user and port win over ssh_config.
	_, err := Dial(context.Background(), Target{Address: "web1", User: "other"}, nil)
	testkit.WantErr(t, err, "rejected the login as other")
}

func TestDialCancelDuringHandshake(t *testing.T) {
	testkit.Home(t)
	key := filepath.Join(os.Getenv("HOME"), "keys", "deploy")
	testkit.WriteKey(t, key, "")
	// A server that accepts and never speaks.
	ln := listen(t, "tcp", "127.0.0.1:0", func(c net.Conn) { t.Cleanup(func() { c.Close() }) })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Dial(ctx, Target{Address: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, KeyFile: key, Timeout: 20 * time.Second}, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v; want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Dial took %v after its context ended", d)
	}
}

func TestUnreachableHost(t *testing.T) {
	testkit.Home(t)
	key := filepath.Join(os.Getenv("HOME"), "keys", "deploy")
	testkit.WriteKey(t, key, "")
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	_, err := Dial(context.Background(), Target{Address: "127.0.0.1", Port: port, KeyFile: key}, nil)
	testkit.WantErr(t, err, "cannot reach 127.0.0.1:"+testkit.PortString(port), "sshd running")
}

func TestCloseStopsKeepalive(t *testing.T) {
	f := testkit.NewFixture(t)
	old := keepaliveInterval
	// Long enough that only Close can end the keepalive goroutine in time.
	keepaliveInterval = time.Hour
	defer func() { keepaliveInterval = old }()
	before := goruntime.NumGoroutine()
	c, err := Dial(context.Background(), target(f), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c.Close() // twice is harmless
	deadline := time.Now().Add(3 * time.Second)
	for goruntime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines before Dial, %d after Close:\n%s", before, goruntime.NumGoroutine(), buf[:goruntime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := c.Exec(context.Background(), "true", nil); err == nil {
		t.Error("Exec on a closed client worked")
	}
}

// freezer forwards TCP to addr until Freeze, then stops passing bytes
// without closing anything: a server whose network went away.
type freezer struct {
	ln     net.Listener
	frozen chan struct{}
}

func newFreezer(t *testing.T, addr string) *freezer {
	f := &freezer{frozen: make(chan struct{})}
	f.ln = listen(t, "tcp", "127.0.0.1:0", func(c net.Conn) {
		s, err := net.Dial("tcp", addr)
		if err != nil {
			c.Close()
			return
		}
		t.Cleanup(func() { c.Close(); s.Close() })
		go f.pipe(c, s)
		f.pipe(s, c)
	})
	return f
}

// listen serves each connection to addr with handle, until the test ends.
func listen(t *testing.T, network, addr string, handle func(net.Conn)) net.Listener {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return ln
}

func (f *freezer) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-f.frozen:
			return
		default:
		}
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func TestKeepaliveClosesADeadConnection(t *testing.T) {
	f := testkit.NewFixture(t)
	proxy := newFreezer(t, f.Srv.Addr)
	port := proxy.ln.Addr().(*net.TCPAddr).Port
	testkit.Trust(t, f.Home, &testkit.Server{Addr: proxy.ln.Addr().String(), HostKeys: f.Srv.HostKeys})
	oldI, oldM := keepaliveInterval, keepaliveMissed
	keepaliveInterval, keepaliveMissed = 50*time.Millisecond, 3
	defer func() { keepaliveInterval, keepaliveMissed = oldI, oldM }()
	tg := target(f)
	tg.Port = port
	c := dial(t, tg)
	// Answered keepalives keep an idle connection open.
	time.Sleep(300 * time.Millisecond)
	if res, err := c.Exec(context.Background(), "echo alive", nil); err != nil || res.Stdout != "alive\n" {
		t.Fatalf("after idle keepalives: %+v, %v", res, err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), "sleep 30", nil)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	close(proxy.frozen)
	select {
	case err := <-done:
		testkit.WantErr(t, err, "the connection to 127.0.0.1:"+testkit.PortString(port)+" dropped while the command ran", "3 keepalives in a row went unanswered")
	case <-time.After(5 * time.Second):
		t.Fatal("Exec still waits on a server that stopped answering")
	}
}

func target(f testkit.Fixture) Target {
	return Target{Name: "test", Address: "127.0.0.1", Port: f.Srv.Port, KeyFile: f.Key, Timeout: 5 * time.Second}
}

// The worker runs every command of a connection in one session: answers,
// exit codes and stdin as with a session per command.
func TestWorkerOneSessionForManyCommands(t *testing.T) {
	for _, shell := range []string{"sh", "bash"} {
		t.Run(shell, func(t *testing.T) {
			if _, err := exec.LookPath(shell); err != nil {
				t.Fatalf("%s is needed: the login shell of most deploy users", shell)
			}
			testWorker(t, shell)
		})
	}
}

func testWorker(t *testing.T, shell string) {
	f := testkit.NewFixture(t)
	f.Srv.Shell = shell
	c := dial(t, target(f))
	c.Worker = true
	ctx := context.Background()
	cases := []struct {
		cmd   string
		stdin string
		want  remote.Result
	}{
		{"echo hi", "", remote.Result{Stdout: "hi\n"}},
		{"echo err >&2; exit 3", "", remote.Result{Stderr: "err\n", Code: 3}},
		{"tr a-z A-Z", "binary\x00and text\n", remote.Result{Stdout: "BINARY\x00AND TEXT\n"}},
		{"head -c 2; echo", "abcdef", remote.Result{Stdout: "ab\n"}},
		{"cat", "", remote.Result{}},
		{"printf 'no newline'", "", remote.Result{Stdout: "no newline"}},
		{"echo out; false", "", remote.Result{Stdout: "out\n", Code: 1}},
		{"printf '\\n\\n'; printf 'e\\n\\n' >&2; exit 2", "", remote.Result{Stdout: "\n\n", Stderr: "e\n\n", Code: 2}},
	}
	for _, tc := range cases {
		var in io.Reader
		if tc.stdin != "" {
			in = strings.NewReader(tc.stdin)
			in = remote.Sized(in, int64(len(tc.stdin)))
		}
		res, err := c.Exec(ctx, tc.cmd, in)
		if err != nil || res != tc.want {
			t.Errorf("%s = %+v, %v; want %+v", tc.cmd, res, err, tc.want)
		}
	}
	if n := len(f.Srv.Commands()); n != 1 {
		t.Errorf("the server saw %d sessions, want 1 (the worker)", n)
	}
	// A cancelled command is killed with its process group; the next command
	// gets a new worker.
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := c.Exec(cctx, "sleep 30", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled command: %v", err)
	}
	if res, err := c.Exec(ctx, "echo again", nil); err != nil || res.Stdout != "again\n" {
		t.Errorf("after a cancel: %+v, %v", res, err)
	}
}
