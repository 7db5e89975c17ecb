package engine

import (
	"context"

	"github.com/raijin-deploy/raijin/config"
	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/transport"
)

// dialing is a connection opened while the local phases run.
type dialing struct {
	done  chan struct{}
	conn  remote.Conn
	close func()
	err   error
	taken bool
}

// dialEarly opens every host's connection while the local phases (the
// build) run, so that the SSH handshakes' round trips do not wait for them.
// Only the connection is made, with its worker session (a login shell that
// waits for commands): no command runs on a host before its phases, and a
// failed build leaves the hosts untouched.
func (r *runner) dialEarly(ctx context.Context) {
	r.early = map[string]*dialing{}
	for _, h := range r.opts.Hosts {
		d := &dialing{done: make(chan struct{})}
		r.early[h.Name] = d
		go func(h config.Host) {
			defer close(d.done)
			d.conn, d.close, d.err = r.opts.Connect(ctx, h)
		}(h)
	}
}

// dial is the host's early connection, else a new one.
func (r *runner) dial(ctx context.Context, h config.Host) (remote.Conn, func(), error) {
	r.earlyMu.Lock()
	d := r.early[h.Name]
	if d != nil {
		d.taken = true
	}
	r.earlyMu.Unlock()
	if d == nil {
		return r.opts.Connect(ctx, h)
	}
	select {
	case <-d.done:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	return d.conn, d.close, d.err
}

// closeEarly closes the early connections no host run took (the build
// failed, or an earlier batch did).
func (r *runner) closeEarly() {
	r.earlyMu.Lock()
	defer r.earlyMu.Unlock()
	for _, d := range r.early {
		if d.taken {
			continue
		}
		d.taken = true
		go func(d *dialing) {
			<-d.done
			if d.err == nil {
				d.close()
			}
		}(d)
	}
}

// SSHConnector connects with transport.Dial; commands go through the
// remote worker, one round trip each. The hosts behind one jump host share
// the connection to it in jumps, which the command closes at its end.
func SSHConnector(stats *remote.Stats, acceptNew bool, jumps *transport.Jumps) Connector {
	return func(ctx context.Context, h config.Host) (remote.Conn, func(), error) {
		cl, err := transport.Dial(ctx, SSHTarget(h, acceptNew, jumps), stats)
		if err != nil {
			// runHost names the host and the phase (connect).
			return nil, nil, err
		}
		cl.Worker = true
		cl.StartWorker()
		return remote.NewShellConn(h.Name, cl.Addr, cl), func() { cl.Close() }, nil
	}
}

// SSHTarget is where and how to connect to h.
func SSHTarget(h config.Host, acceptNew bool, jumps *transport.Jumps) transport.Target {
	return transport.Target{Name: h.Name, Address: h.Address, Port: h.Port, User: h.User, KeyFile: h.KeyFilename,
		ProxyJump: h.ProxyJump, AcceptNew: acceptNew, Jumps: jumps}
}
