// Package testsession gives tests a remote.Session over a real SSH
// connection to testkit's in-process server.
package testsession

import (
	"context"
	"testing"
	"time"

	"github.com/raijin-deploy/raijin/internal/testkit"
	"github.com/raijin-deploy/raijin/remote"
	"github.com/raijin-deploy/raijin/secrets"
	"github.com/raijin-deploy/raijin/transport"
)

// Target is where f's server is, for transport.Dial.
func Target(f testkit.Fixture) transport.Target {
	return transport.Target{Name: "test", Address: "127.0.0.1", Port: f.Srv.Port, KeyFile: f.Key, Timeout: 5 * time.Second}
}

// Session is a remote.Session over a real SSH connection (through the
// remote worker, as in production) to a new Fixture's server.
func New(t testing.TB, obs remote.Observer, red *secrets.Redactor) *remote.Session {
	t.Helper()
	f := testkit.NewFixture(t.(*testing.T))
	c, err := transport.Dial(context.Background(), Target(f), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.Worker = true
	return remote.NewSession(remote.NewShellConn("test", c.Addr, c), obs, red, nil)
}
