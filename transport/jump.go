package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/raijin-deploy/raijin/errs"
	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/transport/proxyjump"
	"golang.org/x/crypto/ssh"
)

// maxHops is how many jump hosts a route may go through: more is surely a
// mistake in ~/.ssh/config.
const maxHops = 8

// route is how a host is reached: its settings, and the jump host its
// connection goes through (nil: directly).
type route struct {
	name     string // as written: the host's address or the jump host's host
	s        sshSettings
	hostport string // what is dialled, and the name its host key is checked under
	jump     bool   // a jump host, not the host deployed to
	via      *route
}

// describe names the host for messages: "bastion (10.0.0.1:22)".
func (r *route) describe() string {
	if host, _, _ := net.SplitHostPort(r.hostport); host == r.name {
		return r.hostport
	}
	return r.name + " (" + r.hostport + ")"
}

// chain names the jump hosts from the host's side outwards: "inner
// (10.0.1.1:22) through outer (203.0.113.1:22)"; "" for none.
func (r *route) chain() string {
	if r == nil {
		return ""
	}
	if r.via == nil {
		return r.describe()
	}
	return r.describe() + " through " + r.via.chain()
}

// key tells jump hosts apart: one connection serves every host behind the
// same user, address and route.
func (r *route) key() string {
	k := r.s.user + "@" + r.hostport
	if r.via != nil {
		k += " via " + r.via.key()
	}
	return k
}

// plan resolves the settings of t and of the jump hosts on its way, as
// OpenSSH does: the last jump host of a ProxyJump list is the one that
// dials t; it is reached through the ones before it, or, when it is alone,
// through its own ProxyJump of ~/.ssh/config.
func plan(t Target) (*route, error) {
	return planHop(t, false, nil)
}

func planHop(t Target, jump bool, after []*route) (*route, error) {
	s, err := loadSSHConfig(t)
	if err != nil {
		return nil, err
	}
	r := &route{name: t.Address, s: s, hostport: net.JoinHostPort(s.hostname, strconv.Itoa(s.port)), jump: jump}
	path := append([]*route{r}, after...)
	for _, seen := range after {
		if seen.hostport == r.hostport {
			return nil, loopError(path)
		}
	}
	if len(s.jumps) == 0 {
		return r, nil
	}
	if len(path) > maxHops {
		return nil, errs.Usagef("reach the host through fewer jump hosts", "more than %d jump hosts on the way to %s: %s", maxHops, path[len(path)-1].describe(), describePath(path))
	}
	last, before := s.jumps[len(s.jumps)-1], s.jumps[:len(s.jumps)-1]
	jt := Target{Name: last.Host, Address: last.Host, User: last.User, Port: last.Port, AcceptNew: t.AcceptNew, Timeout: t.Timeout}
	if len(before) > 0 {
		jt.ProxyJump, jt.proxyJumpFrom = proxyjump.Format(before), s.jumpsFrom
	}
	via, err := planHop(jt, true, path)
	if err != nil {
		var loop *jumpLoop
		if errors.As(err, &loop) {
			return nil, err
		}
		return nil, fmt.Errorf("jump host %s (%s): %w", last, s.jumpsFrom, err)
	}
	r.via = via
	return r, nil
}

// jumpLoop is a route that comes back to a host it already went through.
type jumpLoop struct{ msg string }

func (e *jumpLoop) Error() string { return e.msg }

// loopError: path[0] is a host that path[1] (whose ProxyJump led to it)
// or one before it already went through.
func loopError(path []*route) error {
	again, by := path[0], path[1]
	hint := "make each host's ProxyJump lead away from it, to a host that is reached without going through it"
	if again.hostport == by.hostport {
		hint = fmt.Sprintf("keep ProxyJump from applying to %s itself: ProxyJump none in a Host %s block above the one that sets it, or !%s on that Host line", by.name, by.name, by.name)
	}
	return errs.WithCode(errs.CodeUsage, &jumpLoop{fmt.Sprintf("the jump hosts go round in a loop: %s (the last jump set by %s)", describePath(path), by.s.jumpsFrom)}, hint)
}

// describePath is a route from the host deployed to outwards: "app1
// (10.0.1.5:22) → bastion (10.0.0.1:22)".
func describePath(path []*route) string {
	var names []string
	for i := len(path) - 1; i >= 0; i-- {
		names = append(names, path[i].describe())
	}
	return strings.Join(names, " → ")
}

// Jumps are the connections to jump hosts of one command: one to each jump
// host, whatever the number of hosts behind it, open until Close. The zero
// value is ready to use; a nil *Jumps closes nothing.
type Jumps struct {
	mu     sync.Mutex
	conns  map[string]*jumpConn
	order  []*jumpConn
	closed bool
}

type jumpConn struct {
	ready  chan struct{} // closed once client or err is set
	client *ssh.Client
	err    error
}

// client is the connection to the jump host of r, opened by the first host
// that needs it while the others wait. A jump host that could not be
// reached is not tried again in the same command: every host behind it
// gets the same error.
func (j *Jumps) client(ctx context.Context, r *route, stats *remote.Stats) (*ssh.Client, error) {
	key := r.key()
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil, fmt.Errorf("connecting to jump host %s: the command is over", r.describe())
	}
	if j.conns == nil {
		j.conns = map[string]*jumpConn{}
	}
	jc, opened := j.conns[key]
	if !opened {
		jc = &jumpConn{ready: make(chan struct{})}
		j.conns[key] = jc
		j.order = append(j.order, jc)
	}
	j.mu.Unlock()
	if !opened {
		jc.client, jc.err = j.open(ctx, r, stats)
		close(jc.ready)
		switch {
		case jc.err == nil:
			// A connection that drops is forgotten, so that a host that
			// reconnects (to undo a deploy, say) dials the jump host again.
			go func(c *ssh.Client) {
				c.Wait()
				j.forget(key, jc)
			}(jc.client)
		case ctx.Err() != nil:
			// Cancelled, not refused: a later caller (with another
			// context) may try again.
			j.forget(key, jc)
		}
	}
	select {
	case <-jc.ready:
		return jc.client, jc.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// forget drops jc, the connection to the jump host of key, unless another
// has replaced it.
func (j *Jumps) forget(key string, jc *jumpConn) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.conns[key] == jc {
		delete(j.conns, key)
	}
}

func (j *Jumps) open(ctx context.Context, r *route, stats *remote.Stats) (*ssh.Client, error) {
	var via *ssh.Client
	if r.via != nil {
		var err error
		if via, err = j.client(ctx, r.via, stats); err != nil {
			return nil, err
		}
	}
	c, err := connect(ctx, r, "", via, stats)
	if err != nil {
		if r.via != nil {
			return nil, fmt.Errorf("connecting to jump host %s through jump host %s: %w", r.describe(), r.via.describe(), err)
		}
		return nil, fmt.Errorf("connecting to jump host %s: %w", r.describe(), err)
	}
	return c, nil
}

// Close ends the connections to the jump hosts, the innermost first; the
// hosts reached through them lose theirs. It does not wait for one still
// being opened. Closing twice is harmless.
func (j *Jumps) Close() {
	if j == nil {
		return
	}
	j.mu.Lock()
	j.closed = true
	conns := j.order
	j.order, j.conns = nil, nil
	j.mu.Unlock()
	// conns are in the order they were asked for: a jump host before the
	// one it is reached through.
	for _, jc := range conns {
		select {
		case <-jc.ready:
			jc.close()
		default: // still connecting: closed when it is done, without waiting
			go func() {
				<-jc.ready
				jc.close()
			}()
		}
	}
}

func (jc *jumpConn) close() {
	if jc.client != nil {
		jc.client.Close()
	}
}
