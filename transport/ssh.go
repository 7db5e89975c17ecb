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
	// ProxyJump is raijin.toml's proxy_jump: jump hosts as ssh_config's
	// ProxyJump writes them, or "none"; "": ssh_config's ProxyJump.
	ProxyJump string
	// Jumps holds the connections to jump hosts that the hosts of one
	// command share; nil: the client opens its own.
	Jumps *Jumps

	proxyJumpFrom string // where ProxyJump was set, when not in raijin.toml
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
	Via   string // the jump hosts it goes through, for messages ("": none)
	ssh   *ssh.Client
	jumps *Jumps // its own jump hosts' connections, closed with it
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

// Dial opens the one connection a command uses for host t, through its jump
// hosts when it has any (t.Jumps shares them between the hosts of a command;
// without it the client has its own, closed with it).
func Dial(ctx context.Context, t Target, stats *remote.Stats) (*Client, error) {
	r, err := plan(t)
	if err != nil {
		return nil, err
	}
	if stats == nil {
		stats = &remote.Stats{}
	}
	jumps, own := t.Jumps, (*Jumps)(nil)
	if jumps == nil && r.via != nil {
		jumps = &Jumps{}
		own = jumps
	}
	var via *ssh.Client
	if r.via != nil {
		if via, err = jumps.client(ctx, r.via, stats); err != nil {
			own.Close()
			return nil, err
		}
	}
	c, err := connect(ctx, r, t.KeyFile, via, stats)
	if err != nil {
		own.Close()
		if r.via != nil {
			return nil, fmt.Errorf("connecting to %s through jump host %s: %w", r.describe(), r.via.describe(), err)
		}
		return nil, err
	}
	client := &Client{Name: t.Name, Addr: r.hostport, User: r.s.user, Via: r.via.chain(), ssh: c, stats: stats,
		done: make(chan struct{}), jumps: own}
	go client.keepalive(keepaliveInterval)
	return client, nil
}

// connect opens an SSH connection to the host of r, over TCP, or through
// via (a jump host) when it is not nil. keyFile is raijin.toml's
// key_filename, for the host deployed to only.
func connect(ctx context.Context, r *route, keyFile string, via *ssh.Client, stats *remote.Stats) (*ssh.Client, error) {
	s, hostport := r.s, r.hostport
	auths, cleanup, notes, err := authMethods(s, keyFile)
	defer cleanup()
	if err != nil {
		return nil, err
	}
	if len(auths) == 0 {
		msg := "no SSH key to log in with: set key_filename in [[hosts]], add an IdentityFile to ~/.ssh/config, or load a key into ssh-agent"
		if r.jump {
			msg = "no SSH key to log in with: add an IdentityFile for " + r.name + " to ~/.ssh/config, or load a key into ssh-agent (key_filename is for the host deployed to only)"
		}
		if len(notes) > 0 {
			msg += " (" + strings.Join(notes, "; ") + ")"
		}
		return nil, errors.New(msg)
	}
	cb, algos, err := hostKeyCallback(s, hostport)
	if err != nil {
		return nil, err
	}
	cfg := &ssh.ClientConfig{
		User:              s.user,
		Auth:              auths,
		HostKeyCallback:   cb,
		HostKeyAlgorithms: algos,
		Timeout:           s.timeout,
	}
	raw, err := dialHop(ctx, hostport, s.timeout, via)
	if err != nil {
		return nil, err
	}
	stats.Connections.Add(1)
	conn := raw
	if via == nil {
		// What goes through a jump host is counted on the jump host's
		// connection: that is what travels on the wire.
		conn = countingConn{Conn: raw, stats: stats}
	}
	limit := handshakeDeadline(raw, s.timeout)
	// Ctrl-C during the handshake closes the socket, which ends it at once.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	c, chans, reqs, err := ssh.NewClientConn(conn, hostport, cfg)
	limit.stop()
	if !stop() && err == nil {
		c.Close()
		err = ctx.Err()
	}
	if err != nil {
		raw.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connecting to %s: %w", hostport, ctx.Err())
		}
		if limit.passed() {
			return nil, fmt.Errorf("ssh handshake with %s: no answer within %s", hostport, s.timeout)
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			hint := fmt.Sprintf("is the key in ~%s/.ssh/authorized_keys?", s.user)
			if r.jump {
				hint += " A jump host is logged in to with the keys ~/.ssh/config names for it, not key_filename"
			}
			return nil, fmt.Errorf("%s rejected the login as %s: %w (%s)", hostport, s.user, err, hint)
		}
		return nil, fmt.Errorf("ssh handshake with %s: %w", hostport, err)
	}
	return ssh.NewClient(c, chans, reqs), nil
}

// dialHop opens the byte stream to hostport: a TCP connection, or a channel
// of the jump host via to it (the jump host dials, as ssh -W does).
func dialHop(ctx context.Context, hostport string, timeout time.Duration, via *ssh.Client) (net.Conn, error) {
	if via == nil {
		d := net.Dialer{Timeout: timeout}
		raw, err := d.DialContext(ctx, "tcp", hostport)
		if err != nil {
			return nil, fmt.Errorf("cannot reach %s: %w (is the address right and sshd running?)", hostport, err)
		}
		return raw, nil
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	raw, err := via.DialContext(dctx, "tcp", hostport)
	if err == nil {
		return raw, nil
	}
	var oe *ssh.OpenChannelError
	switch {
	case errors.As(err, &oe) && oe.Reason == ssh.Prohibited:
		return nil, fmt.Errorf("the jump host refuses to forward a connection to %s (%s): allow TCP forwarding for this user in its sshd_config (AllowTcpForwarding, PermitOpen)", hostport, oe.Message)
	case errors.As(err, &oe):
		return nil, fmt.Errorf("the jump host cannot reach %s: %s (is the address right as the jump host sees it, and sshd running?)", hostport, oe.Message)
	case ctx.Err() == nil && dctx.Err() != nil:
		return nil, fmt.Errorf("the jump host did not reach %s within %s (is the address right as the jump host sees it?)", hostport, timeout)
	}
	return nil, fmt.Errorf("the jump host did not open a connection to %s: %w", hostport, err)
}

// deadline ends a handshake that takes longer than allowed: a TCP
// connection takes a deadline; a channel through a jump host does not, and
// is closed instead.
type deadline struct {
	conn  net.Conn
	timer *time.Timer
	fired atomic.Bool
}

func handshakeDeadline(conn net.Conn, timeout time.Duration) *deadline {
	d := &deadline{conn: conn}
	if conn.SetDeadline(time.Now().Add(timeout)) != nil {
		d.timer = time.AfterFunc(timeout, func() {
			d.fired.Store(true)
			conn.Close()
		})
	}
	return d
}

// passed reports whether the channel was closed for taking too long (a TCP
// deadline says so in its own error).
func (d *deadline) passed() bool { return d.fired.Load() }

func (d *deadline) stop() {
	if d.timer != nil {
		d.timer.Stop()
		return
	}
	d.conn.SetDeadline(time.Time{})
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
		c.jumps.Close()
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
	to := c.Addr
	if c.Via != "" {
		to += " (through jump host " + c.Via + ")"
	}
	if c.lost.Load() {
		return fmt.Errorf("the connection to %s dropped while the command ran: %d keepalives in a row went unanswered", to, keepaliveMissed)
	}
	return fmt.Errorf("the connection to %s dropped while the command ran", to)
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
