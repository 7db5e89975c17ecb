package transport

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kevinburke/ssh_config"
	"github.com/raijin-deploy/raijin/remote"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Target says where and as whom to connect, before ~/.ssh/config is applied.
type Target struct {
	Name      string // the host's name in raijin.toml, for messages
	Address   string // host name, IP or a Host alias of ~/.ssh/config
	Port      int    // 0: ssh_config's Port, else 22
	User      string // "": ssh_config's User, else the local user
	KeyFile   string // optional private key
	AcceptNew bool   // record an unknown host key instead of refusing it
	Timeout   time.Duration
}

type countingConn struct {
	net.Conn
	stats *remote.Stats
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.stats.BytesSent.Add(int64(n))
	return n, err
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.stats.BytesRecv.Add(int64(n))
	return n, err
}

// Client is one SSH connection to a host, used for a whole command: remote
// commands run through one worker session on it (or a session each).
type Client struct {
	Name  string
	Addr  string // host:port actually dialled
	User  string
	ssh   *ssh.Client
	stats *remote.Stats
	done  chan struct{} // closed by Close: stops the keepalive
	once  sync.Once
	lost  atomic.Bool // the keepalive gave up on the server
	// Worker: run commands through one long-lived session on the server,
	// one round trip each (see workerScript). Off, each command opens a
	// session of its own.
	Worker bool
	workerState
}

func homeDir() string {
	if h := os.Getenv("HOME"); h != "" {
		return h
	}
	h, _ := os.UserHomeDir()
	return h
}

func expandHome(p string) string {
	if p == "~" {
		return homeDir()
	}
	if strings.HasPrefix(p, "~/") {
		return filepath.Join(homeDir(), p[2:])
	}
	return p
}

type sshSettings struct {
	hostname, user string
	port           int
	identityFiles  []string
	knownHosts     []string
}

func loadSSHConfig(t Target) (sshSettings, error) {
	s := sshSettings{hostname: t.Address, user: t.User, port: t.Port}
	var cfg *ssh_config.Config
	if f, err := os.Open(filepath.Join(homeDir(), ".ssh", "config")); err == nil {
		cfg, err = ssh_config.Decode(f)
		f.Close()
		if err != nil {
			return s, fmt.Errorf("~/.ssh/config: %w", err)
		}
	}
	get := func(key string) string {
		if cfg == nil {
			return ""
		}
		v, _ := cfg.Get(t.Address, key)
		return v
	}
	if hn := get("HostName"); hn != "" {
		s.hostname = strings.ReplaceAll(hn, "%h", t.Address)
	}
	if s.user == "" {
		s.user = get("User")
	}
	if s.user == "" {
		s.user = os.Getenv("USER")
	}
	if s.user == "" {
		s.user = "root"
	}
	if s.port == 0 {
		if p, err := strconv.Atoi(get("Port")); err == nil {
			s.port = p
		}
	}
	if s.port == 0 {
		s.port = 22
	}
	if t.KeyFile != "" {
		s.identityFiles = append(s.identityFiles, expandHome(t.KeyFile))
	}
	if cfg != nil {
		if ids, err := cfg.GetAll(t.Address, "IdentityFile"); err == nil {
			for _, id := range ids {
				if id != "" && !strings.Contains(id, "%") {
					s.identityFiles = append(s.identityFiles, expandHome(id))
				}
			}
		}
	}
	for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
		s.identityFiles = append(s.identityFiles, filepath.Join(homeDir(), ".ssh", n))
	}
	if kh := get("UserKnownHostsFile"); kh != "" && kh != "/dev/null" {
		for _, f := range strings.Fields(kh) {
			s.knownHosts = append(s.knownHosts, expandHome(f))
		}
	}
	s.knownHosts = append(s.knownHosts, filepath.Join(homeDir(), ".ssh", "known_hosts"))
	return s, nil
}

// authMethods gathers the agent's keys and every readable, unencrypted key
// file. It never prompts: an encrypted key without an agent is reported.
//
// The key_filename key is offered first: a server refuses a login after a few
// rejected keys (MaxAuthTries), so an agent holding many keys must not use up
// the tries before the key the user named.
func authMethods(files []string, explicit string) ([]ssh.AuthMethod, func(), []string, error) {
	var first, signers []ssh.Signer
	var notes []string
	cleanup := func() {}
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		if conn, err := net.Dial("unix", sock); err == nil {
			ag := agent.NewClient(conn)
			if s, err := ag.Signers(); err == nil {
				signers = append(signers, s...)
			}
			cleanup = func() { conn.Close() }
		}
	}
	seen := map[string]bool{}
	for _, f := range files {
		if seen[f] {
			continue
		}
		seen[f] = true
		data, err := os.ReadFile(f)
		if err != nil {
			if f == expandHome(explicit) && explicit != "" {
				return nil, cleanup, nil, fmt.Errorf("key_filename %s: %w", explicit, err)
			}
			continue
		}
		signer, err := ssh.ParsePrivateKey(data)
		if err != nil {
			var pp *ssh.PassphraseMissingError
			if errors.As(err, &pp) {
				notes = append(notes, f+" is encrypted: add it to ssh-agent (ssh-add "+f+"); raijin never asks for a passphrase")
				continue
			}
			notes = append(notes, f+": "+err.Error())
			continue
		}
		if explicit != "" && f == expandHome(explicit) {
			first = append(first, signer)
			continue
		}
		signers = append(signers, signer)
	}
	signers = append(first, signers...)
	if len(signers) == 0 {
		return nil, cleanup, notes, nil
	}
	return []ssh.AuthMethod{ssh.PublicKeys(signers...)}, cleanup, notes, nil
}

// hostKeyCallback verifies against known_hosts; with acceptNew an unknown host
// is added to the first file. It also returns the key algorithms known for
// the host, so the server is asked for a key we can check.
func hostKeyCallback(files []string, hostport string, acceptNew bool, name string) (ssh.HostKeyCallback, []string, error) {
	var existing []string
	for _, f := range files {
		if _, err := os.Stat(f); err == nil {
			existing = append(existing, f)
		}
	}
	var cb ssh.HostKeyCallback
	if len(existing) > 0 {
		var err error
		cb, err = knownhosts.New(existing...)
		if err != nil {
			return nil, nil, fmt.Errorf("reading known_hosts: %w", err)
		}
	} else {
		cb = func(string, net.Addr, ssh.PublicKey) error { return &knownhosts.KeyError{} }
	}
	// Ask with a throwaway key to learn which algorithms are on record.
	var algos []string
	addr := &net.TCPAddr{IP: net.IPv4zero}
	probe, _ := ssh.NewPublicKey(ed25519Zero())
	if err := cb(hostport, addr, probe); err != nil {
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) {
			for _, k := range ke.Want {
				algos = append(algos, hostKeyAlgos(k.Key.Type())...)
			}
		}
	}
	// Like OpenSSH: a new key goes to the first file, ssh_config's
	// UserKnownHostsFile when set, else ~/.ssh/known_hosts.
	record := files[0]
	verify := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := cb(hostname, remote, key)
		if err == nil {
			return nil
		}
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) {
			fp := ssh.FingerprintSHA256(key)
			if len(ke.Want) > 0 {
				return fmt.Errorf("host key of %s has CHANGED (%s key, now %s; known_hosts has it at %s:%d). This may be an attack, or the server was reinstalled: verify the new fingerprint with the server's owner, then remove the old line (ssh-keygen -R %s) and connect again", hostname, key.Type(), fp, ke.Want[0].Filename, ke.Want[0].Line, knownhosts.Normalize(hostname))
			}
			if acceptNew {
				if err := os.MkdirAll(filepath.Dir(record), 0o700); err != nil {
					return err
				}
				f, err := os.OpenFile(record, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
				if err != nil {
					return err
				}
				defer f.Close()
				_, err = fmt.Fprintln(f, knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key))
				return err
			}
			return fmt.Errorf("host key of %s is not known (%s key %s): check the fingerprint with the server's owner, then run raijin with --accept-new-host-key once (or add it to %s with ssh-keyscan)", hostname, key.Type(), fp, record)
		}
		return err
	}
	return verify, algos, nil
}

func hostKeyAlgos(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// Dial opens the one connection a command uses for host t.
func Dial(ctx context.Context, t Target, stats *remote.Stats) (*Client, error) {
	s, err := loadSSHConfig(t)
	if err != nil {
		return nil, err
	}
	hostport := net.JoinHostPort(s.hostname, strconv.Itoa(s.port))
	auths, cleanup, notes, err := authMethods(s.identityFiles, t.KeyFile)
	defer cleanup()
	if err != nil {
		return nil, err
	}
	if len(auths) == 0 {
		msg := "no SSH key to log in with: set key_filename in [[hosts]], add an IdentityFile to ~/.ssh/config, or load a key into ssh-agent"
		if len(notes) > 0 {
			msg += " (" + strings.Join(notes, "; ") + ")"
		}
		return nil, errors.New(msg)
	}
	cb, algos, err := hostKeyCallback(s.knownHosts, hostport, t.AcceptNew, t.Name)
	if err != nil {
		return nil, err
	}
	timeout := t.Timeout
	if timeout == 0 {
		timeout = 15 * time.Second
	}
	cfg := &ssh.ClientConfig{
		User:              s.user,
		Auth:              auths,
		HostKeyCallback:   cb,
		HostKeyAlgorithms: algos,
		Timeout:           timeout,
	}
	d := net.Dialer{Timeout: timeout}
	raw, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return nil, fmt.Errorf("cannot reach %s: %w (is the address right and sshd running?)", hostport, err)
	}
	if stats == nil {
		stats = &remote.Stats{}
	}
	stats.Connections.Add(1)
	conn := countingConn{Conn: raw, stats: stats}
	raw.SetDeadline(time.Now().Add(timeout))
	// Ctrl-C during the handshake closes the socket, which ends it at once.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	c, chans, reqs, err := ssh.NewClientConn(conn, hostport, cfg)
	if !stop() && err == nil {
		c.Close()
		err = ctx.Err()
	}
	if err != nil {
		raw.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connecting to %s: %w", hostport, ctx.Err())
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, fmt.Errorf("%s rejected the login as %s: %w (is the key in ~%s/.ssh/authorized_keys?)", hostport, s.user, err, s.user)
		}
		return nil, fmt.Errorf("ssh handshake with %s: %w", hostport, err)
	}
	raw.SetDeadline(time.Time{})
	client := &Client{Name: t.Name, Addr: hostport, User: s.user, ssh: ssh.NewClient(c, chans, reqs), stats: stats, done: make(chan struct{})}
	go client.keepalive(keepaliveInterval)
	return client, nil
}

// keepaliveInterval is how often an idle connection is kept open, and
// keepaliveMissed how many unanswered keepalives mean the server is gone (as
// OpenSSH's ServerAliveInterval and ServerAliveCountMax): the connection is
// then closed, so a command waiting on it fails instead of hanging until the
// phase timeout.
var (
	keepaliveInterval = 15 * time.Second
	keepaliveMissed   = 3
)

func (c *Client) keepalive(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	reply := make(chan error, 1)
	pending, missed := false, 0
	for {
		select {
		case <-c.done:
			return
		case err := <-reply:
			if err != nil {
				return
			}
			pending, missed = false, 0
		case <-t.C:
			if !pending {
				pending = true
				go func() {
					_, _, err := c.ssh.SendRequest("keepalive@openssh.com", true, nil)
					reply <- err
				}()
				continue
			}
			if missed++; missed >= keepaliveMissed {
				c.lost.Store(true)
				c.ssh.Close()
				return
			}
		}
	}
}

// Alive reports whether the connection still answers (a keepalive request,
// no remote command), waiting at most until ctx ends.
func (c *Client) Alive(ctx context.Context) error {
	done := make(chan error, 1)
	go func() {
		_, _, err := c.ssh.SendRequest("keepalive@openssh.com", true, nil)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close ends the connection and its keepalive. Closing twice is harmless.
func (c *Client) Close() error {
	var err error
	c.once.Do(func() {
		close(c.done)
		if c.workerMu.TryLock() {
			if c.wk != nil {
				c.wk.ch.Close()
			}
			c.workerMu.Unlock()
		}
		err = c.ssh.Close()
	})
	return err
}

// Exec runs cmd through the login shell on the server, feeding stdin when not
// nil. A non-zero exit is reported in Result.Code, not as an error; the error
// is for the transport (and for ctx being cancelled, which kills the command).
func (c *Client) Exec(ctx context.Context, cmd string, stdin io.Reader) (remote.Result, error) {
	if err := ctx.Err(); err != nil {
		return remote.Result{Code: -1}, err
	}
	if res, ok, err := c.execWorker(ctx, cmd, stdin); ok {
		return res, err
	}
	c.stats.Commands.Add(1)
	sess, err := c.ssh.NewSession()
	if err != nil {
		if c.lost.Load() {
			return remote.Result{}, c.dropped()
		}
		return remote.Result{}, fmt.Errorf("opening a session: %w", err)
	}
	defer sess.Close()
	// The session copies output in its own goroutines, which may still be
	// writing when ctx is cancelled: the buffers are locked.
	var out, errb lockedBuffer
	sess.Stdout, sess.Stderr = &out, &errb
	if stdin != nil {
		sess.Stdin = stdin
	}
	done := make(chan error, 1)
	go func() { done <- sess.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		sess.Signal(ssh.SIGKILL)
		sess.Close()
		// Closing the channel ends Run; wait briefly so its goroutine does
		// not outlive the call.
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
		return remote.Result{Stdout: out.String(), Stderr: errb.String(), Code: -1}, ctx.Err()
	}
	res := remote.Result{Stdout: out.String(), Stderr: errb.String()}
	if err != nil {
		var ee *ssh.ExitError
		if errors.As(err, &ee) {
			res.Code = ee.ExitStatus()
			if ee.Signal() != "" && res.Code == 0 {
				res.Code = 128
			}
			return res, nil
		}
		var em *ssh.ExitMissingError
		if errors.As(err, &em) || c.lost.Load() {
			return res, c.dropped()
		}
		return res, err
	}
	return res, nil
}

func (c *Client) dropped() error {
	if c.lost.Load() {
		return fmt.Errorf("the connection to %s dropped while the command ran: %d keepalives in a row went unanswered", c.Addr, keepaliveMissed)
	}
	return fmt.Errorf("the connection to %s dropped while the command ran", c.Addr)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// ed25519Zero is a well-formed public key that is in nobody's known_hosts.
func ed25519Zero() ed25519.PublicKey { return make(ed25519.PublicKey, ed25519.PublicKeySize) }
