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

// identity is a key file raijin may log in with.
type identity struct {
	file   string
	signer ssh.Signer    // nil when the file is encrypted: the agent must hold it
	pub    ssh.PublicKey // nil when not known: no .pub file next to an encrypted key
}

// authMethods offers the keys of s.identityFiles (key_filename's first: a
// server refuses a login after a few rejected keys (MaxAuthTries), so an
// agent holding many keys must not use up the tries before the key the user
// named), each from the agent when it holds it, then the agent's other keys
// unless IdentitiesOnly. It never prompts: an encrypted key the agent does
// not hold is reported.
func authMethods(s sshSettings, explicit string) ([]ssh.AuthMethod, func(), []string, error) {
	ids, notes, err := loadIdentities(s.identityFiles, explicit)
	if err != nil {
		return nil, func() {}, nil, err
	}
	agentKeys, cleanup := agentSigners(s.agentSocket)
	var signers []ssh.Signer
	offered := map[string]bool{}
	offer := func(k ssh.Signer) {
		if m := string(k.PublicKey().Marshal()); !offered[m] {
			offered[m] = true
			signers = append(signers, k)
		}
	}
	for _, id := range ids {
		held := heldBy(agentKeys, id.pub)
		switch {
		case id.signer != nil:
			offer(id.signer)
		case held != nil:
			offer(held)
		default:
			notes = append(notes, id.file+" is encrypted: add it to ssh-agent (ssh-add "+id.file+"); raijin never asks for a passphrase")
		}
	}
	if !s.identitiesOnly {
		for _, k := range agentKeys {
			offer(k)
		}
	}
	if len(signers) == 0 {
		return nil, cleanup, notes, nil
	}
	return []ssh.AuthMethod{ssh.PublicKeys(signers...)}, cleanup, notes, nil
}

// loadIdentities reads the key files that exist; only key_filename must.
func loadIdentities(files []string, explicit string) ([]identity, []string, error) {
	var ids []identity
	var notes []string
	seen := map[string]bool{}
	for _, f := range files {
		if seen[f] {
			continue
		}
		seen[f] = true
		data, err := os.ReadFile(f)
		if err != nil {
			if explicit != "" && f == expandHome(explicit) {
				return nil, nil, fmt.Errorf("key_filename %s: %w", explicit, err)
			}
			continue
		}
		signer, err := ssh.ParsePrivateKey(data)
		if err == nil {
			ids = append(ids, identity{file: f, signer: signer, pub: signer.PublicKey()})
			continue
		}
		var pp *ssh.PassphraseMissingError
		if !errors.As(err, &pp) {
			notes = append(notes, f+": "+err.Error())
			continue
		}
		// The agent's copy is found by its public key, as OpenSSH does.
		id := identity{file: f, pub: pp.PublicKey}
		if id.pub == nil {
			if data, err := os.ReadFile(f + ".pub"); err == nil {
				id.pub, _, _, _, _ = ssh.ParseAuthorizedKey(data)
			}
		}
		ids = append(ids, id)
	}
	return ids, notes, nil
}

// agentSigners are the keys of the agent at sock ("": none).
func agentSigners(sock string) ([]ssh.Signer, func()) {
	if sock == "" {
		return nil, func() {}
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil, func() {}
	}
	signers, _ := agent.NewClient(conn).Signers()
	return signers, func() { conn.Close() }
}

func heldBy(agentKeys []ssh.Signer, pub ssh.PublicKey) ssh.Signer {
	if pub == nil {
		return nil
	}
	for _, k := range agentKeys {
		if bytes.Equal(k.PublicKey().Marshal(), pub.Marshal()) {
			return k
		}
	}
	return nil
}

// hostKeyCallback verifies against the known_hosts files of s; with
// s.acceptNew an unknown host is added to the first (its name hashed with
// HashKnownHosts). It also returns the key algorithms known for the host, so
// the server is asked for a key we can check.
func hostKeyCallback(s sshSettings, hostport string) (ssh.HostKeyCallback, []string, error) {
	var existing []string
	for _, f := range append(s.knownHosts[:len(s.knownHosts):len(s.knownHosts)], s.globalKnown...) {
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
	record := s.knownHosts[0]
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
			if s.acceptNew {
				if err := os.MkdirAll(filepath.Dir(record), 0o700); err != nil {
					return err
				}
				f, err := os.OpenFile(record, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
				if err != nil {
					return err
				}
				defer f.Close()
				name := knownhosts.Normalize(hostname)
				if s.hashKnownHosts {
					name = knownhosts.HashHostname(name)
				}
				_, err = fmt.Fprintln(f, knownhosts.Line([]string{name}, key))
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
	auths, cleanup, notes, err := authMethods(s, t.KeyFile)
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
	cb, algos, err := hostKeyCallback(s, hostport)
	if err != nil {
		return nil, err
	}
	timeout := s.timeout
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
