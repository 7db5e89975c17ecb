package transport

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raijin-deploy/raijin/errs"
	"github.com/raijin-deploy/raijin/internal/testkit"
	"github.com/raijin-deploy/raijin/remote"
	"golang.org/x/crypto/ssh"
)

// jumpNet is a home whose ~/.ssh/id_ed25519 logs in to every server of it:
// jump hosts and hosts behind them, all on loopback.
type jumpNet struct {
	t    *testing.T
	home string
	pub  ssh.PublicKey
}

func newJumpNet(t *testing.T) *jumpNet {
	home := testkit.Home(t)
	return &jumpNet{t: t, home: home, pub: testkit.WriteKey(t, filepath.Join(home, ".ssh", "id_ed25519"), "")}
}

// server starts a server that lets the key in, its host key in known_hosts
// unless unknown.
func (n *jumpNet) server(unknown bool) *testkit.Server {
	srv := testkit.NewServer(n.t, []ssh.PublicKey{n.pub})
	if !unknown {
		testkit.Trust(n.t, n.home, srv)
	}
	return srv
}

// config writes ~/.ssh/config; %[NAME] is replaced by the port of servers[NAME].
func (n *jumpNet) config(text string, servers map[string]*testkit.Server) {
	for name, srv := range servers {
		text = strings.ReplaceAll(text, "%["+name+"]", testkit.PortString(srv.Port))
	}
	writeSSHConfig(n.t, n.home, "config", text)
}

func echo(t *testing.T, c *Client, word string) {
	t.Helper()
	res, err := c.Exec(context.Background(), "echo "+word, nil)
	if err != nil || res.Stdout != word+"\n" {
		t.Errorf("on %s: echo %s = %+v, %v", c.Name, word, res, err)
	}
}

// Two hosts behind one jump host, connected at the same time (as a deploy
// does): one connection to the jump host serves both, and it stays open
// for the command until Jumps.Close. One host's ProxyJump comes from
// ssh_config, the other's from raijin.toml's proxy_jump.
func TestJumpHostOneConnectionForEveryHostBehindIt(t *testing.T) {
	n := newJumpNet(t)
	bastion, web1, web2 := n.server(false), n.server(false), n.server(false)
	n.config(`Host bastion
  HostName 127.0.0.1
  Port %[bastion]
Host web1
  HostName 127.0.0.1
  Port %[web1]
  ProxyJump bastion
`, map[string]*testkit.Server{"bastion": bastion, "web1": web1})
	var jumps Jumps
	var stats remote.Stats
	targets := []Target{
		{Name: "web1", Address: "web1", Jumps: &jumps},
		{Name: "web2", Address: "127.0.0.1", Port: web2.Port, ProxyJump: "bastion", Jumps: &jumps},
	}
	clients := make([]*Client, len(targets))
	var wg sync.WaitGroup
	for i, tg := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := Dial(context.Background(), tg, &stats)
			if err != nil {
				t.Errorf("Dial %s: %v", tg.Name, err)
				return
			}
			clients[i] = c
		}()
	}
	wg.Wait()
	if t.Failed() {
		jumps.Close()
		return
	}
	for _, c := range clients {
		echo(t, c, c.Name)
		if want := "bastion (" + bastion.Addr + ")"; c.Via != want {
			t.Errorf("%s: Via = %q; want %q", c.Name, c.Via, want)
		}
	}
	if got := bastion.Conns(); got != 1 {
		t.Errorf("%d connections to the jump host; want 1 for both hosts", got)
	}
	fwd, want := bastion.Forwards(), []string{web1.Addr, web2.Addr}
	slices.Sort(fwd)
	slices.Sort(want)
	if !slices.Equal(fwd, want) {
		t.Errorf("the jump host forwarded to %q; want %q", fwd, want)
	}
	if got := stats.Connections.Load(); got != 3 {
		t.Errorf("stats count %d connections; want 3 (the jump host and the two hosts)", got)
	}
	// A host closed leaves the jump host's connection to the others.
	clients[0].Close()
	echo(t, clients[1], "still")
	c, err := Dial(context.Background(), targets[0], &stats)
	if err != nil {
		t.Fatalf("Dial web1 again: %v", err)
	}
	echo(t, c, "again")
	if got := bastion.Conns(); got != 1 {
		t.Errorf("%d connections to the jump host after a host reconnected; want 1", got)
	}
	// The end of the command closes the jump host, and the hosts with it.
	jumps.Close()
	if _, err := clients[1].Exec(context.Background(), "true", nil); err == nil {
		t.Error("a host behind a closed jump host still answers")
	}
	if _, err := Dial(context.Background(), targets[1], nil); err == nil || !strings.Contains(err.Error(), "the command is over") {
		t.Errorf("Dial after Jumps.Close: %v", err)
	}
	c.Close()
	clients[1].Close()
}

// Without a Jumps of the command's, the client has its own connection to
// the jump host, closed with it.
func TestJumpHostOfItsOwnClosesWithTheClient(t *testing.T) {
	n := newJumpNet(t)
	bastion, web := n.server(false), n.server(false)
	c := dial(t, Target{Name: "web", Address: "127.0.0.1", Port: web.Port, ProxyJump: "127.0.0.1:" + testkit.PortString(bastion.Port)})
	echo(t, c, "own")
	if c.Via != bastion.Addr {
		t.Errorf("Via = %q; want %q", c.Via, bastion.Addr)
	}
	c.Close()
	waitFor(t, "the jump host's connection to close", func() bool { return bastion.Open() == 0 })
}

// raijin.toml's proxy_jump wins over ssh_config's ProxyJump; "none"
// connects directly.
func TestProxyJumpOfRaijinTomlWins(t *testing.T) {
	n := newJumpNet(t)
	bastion, web := n.server(false), n.server(false)
	n.config(`Host web
  HostName 127.0.0.1
  Port %[web]
  ProxyJump nowhere.invalid
Host bastion
  HostName 127.0.0.1
  Port %[bastion]
`, map[string]*testkit.Server{"bastion": bastion, "web": web})
	echo(t, dial(t, Target{Name: "web", Address: "web", ProxyJump: "bastion"}), "through")
	if got := bastion.Forwards(); !slices.Equal(got, []string{web.Addr}) {
		t.Errorf("the jump host forwarded to %q; want %s", got, web.Addr)
	}
	c := dial(t, Target{Name: "web", Address: "web", ProxyJump: "none"})
	echo(t, c, "direct")
	if c.Via != "" || bastion.Conns() != 1 {
		t.Errorf("proxy_jump none: Via %q, %d connections to the jump host; want a direct connection", c.Via, bastion.Conns())
	}
}

// A chain of jump hosts, written as one ProxyJump list or as each jump
// host's own ProxyJump: the first is connected to first, and each reaches
// the next.
func TestJumpHostChain(t *testing.T) {
	for _, tc := range []struct{ name, conf, proxyJump string }{
		{"a list", "", "outer,inner"},
		{"the jump host's own ProxyJump", "Host inner\n  ProxyJump outer\n", "inner"},
		{"a list in ssh_config", "Host web\n  ProxyJump outer,inner\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newJumpNet(t)
			outer, inner, web := n.server(false), n.server(false), n.server(false)
			servers := map[string]*testkit.Server{"outer": outer, "inner": inner, "web": web}
			n.config(tc.conf+`Host outer inner web
  HostName 127.0.0.1
Host outer
  Port %[outer]
Host inner
  Port %[inner]
Host web
  Port %[web]
`, servers)
			c := dial(t, Target{Name: "web", Address: "web", ProxyJump: tc.proxyJump})
			echo(t, c, "deep")
			if want := fmt.Sprintf("inner (%s) through outer (%s)", inner.Addr, outer.Addr); c.Via != want {
				t.Errorf("Via = %q; want %q", c.Via, want)
			}
			if got := outer.Forwards(); !slices.Equal(got, []string{inner.Addr}) {
				t.Errorf("outer forwarded to %q; want inner, %s", got, inner.Addr)
			}
			if got := inner.Forwards(); !slices.Equal(got, []string{web.Addr}) {
				t.Errorf("inner forwarded to %q; want web, %s", got, web.Addr)
			}
		})
	}
}

// Jump hosts that lead back to a host already on the way are a
// configuration error (exit 2) before any connection, with what to change.
func TestJumpHostLoop(t *testing.T) {
	for _, tc := range []struct {
		name, conf string
		want       []string
		hint       string
	}{
		{"every host through the bastion, the bastion too", "Host bastion\n  HostName 10.0.0.1\nHost *\n  ProxyJump bastion\n",
			[]string{"the jump hosts go round in a loop: web1:22 → bastion (10.0.0.1:22) → bastion (10.0.0.1:22) (the last jump set by ~/.ssh/config line 4: Host *)"},
			"keep ProxyJump from applying to bastion itself: ProxyJump none in a Host bastion block above the one that sets it, or !bastion on that Host line"},
		{"two jump hosts through each other", "Host a\n  ProxyJump b\nHost b\n  ProxyJump a\nHost web1\n  ProxyJump a\n",
			[]string{"loop: web1:22 → a:22 → b:22 → a:22 (the last jump set by ~/.ssh/config line 4: Host b)"},
			"make each host's ProxyJump lead away from it"},
		{"a host through itself", "Host web1\n  ProxyJump web1\n", []string{"loop: web1:22 → web1:22"}, "keep ProxyJump from applying to web1 itself"},
		{"too many jump hosts", "Host j*\n  HostName %h.example\nHost web1\n  ProxyJump j1,j2,j3,j4,j5,j6,j7,j8,j9\n",
			[]string{"more than 8 jump hosts on the way to web1:22: web1:22 → j9 (j9.example:22) → j8 (j8.example:22)"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := testkit.Home(t)
			writeSSHConfig(t, home, "config", tc.conf)
			_, err := Dial(context.Background(), Target{Name: "web1", Address: "web1"}, nil)
			testkit.WantErr(t, err, tc.want...)
			if c := errs.Code(err); c != errs.CodeUsage {
				t.Errorf("exit code %d; want %d", c, errs.CodeUsage)
			}
			if h := errs.Hint(err); !strings.Contains(h, tc.hint) {
				t.Errorf("hint %q; want %q", h, tc.hint)
			}
		})
	}
}

// A jump host's own ssh_config is checked as a host's: what raijin cannot
// honour is an error that says which jump host, and where its ProxyJump was
// set.
func TestJumpHostSSHConfigChecked(t *testing.T) {
	home := testkit.Home(t)
	writeSSHConfig(t, home, "config", "Host web1\n  ProxyJump bastion\nHost bastion\n  ForwardAgent yes\n")
	_, err := Dial(context.Background(), Target{Name: "web1", Address: "web1"}, nil)
	testkit.WantErr(t, err, "jump host bastion (~/.ssh/config line 2: Host web1): ~/.ssh/config line 4: Host bastion sets ForwardAgent yes")
	if c := errs.Code(err); c != errs.CodeUsage {
		t.Errorf("exit code %d; want %d", c, errs.CodeUsage)
	}
	_, err = Dial(context.Background(), Target{Name: "web1", Address: "web1", ProxyJump: "deploy@bastion"}, nil)
	testkit.WantErr(t, err, "jump host deploy@bastion (proxy_jump in raijin.toml): ~/.ssh/config line 4")
}

// Both host keys are verified against known_hosts, each under its own
// name: the jump host's, then the host's as ssh_config names it, never
// the jump host's name. --accept-new-host-key records both.
func TestJumpHostAndHostKeysBothVerified(t *testing.T) {
	conf := "Host bastion web\n  HostName 127.0.0.1\nHost bastion\n  Port %[bastion]\nHost web\n  Port %[web]\n  ProxyJump bastion\n"
	setup := func(t *testing.T, bastionKnown, webKnown bool) (*jumpNet, *testkit.Server, *testkit.Server) {
		n := newJumpNet(t)
		bastion, web := n.server(!bastionKnown), n.server(!webKnown)
		n.config(conf, map[string]*testkit.Server{"bastion": bastion, "web": web})
		return n, bastion, web
	}
	t.Run("jump host unknown", func(t *testing.T) {
		_, bastion, web := setup(t, false, true)
		_, err := Dial(context.Background(), Target{Name: "web", Address: "web"}, nil)
		testkit.WantErr(t, err, "connecting to jump host bastion ("+bastion.Addr+"): ", "host key of "+bastion.Addr+" is not known", "--accept-new-host-key")
		if len(bastion.Forwards()) != 0 || web.Conns() != 0 {
			t.Error("the host was reached through a jump host whose key is not known")
		}
	})
	t.Run("host unknown", func(t *testing.T) {
		_, bastion, web := setup(t, true, false)
		_, err := Dial(context.Background(), Target{Name: "web", Address: "web"}, nil)
		testkit.WantErr(t, err, "connecting to web ("+web.Addr+") through jump host bastion ("+bastion.Addr+"): ", "host key of "+web.Addr+" is not known")
	})
	t.Run("the host's key under the jump host's name only", func(t *testing.T) {
		n, bastion, web := setup(t, true, false)
		testkit.Trust(t, n.home, bastion, web.HostKeys[0].PublicKey())
		_, err := Dial(context.Background(), Target{Name: "web", Address: "web"}, nil)
		testkit.WantErr(t, err, "host key of "+web.Addr+" is not known")
	})
	t.Run("host key changed", func(t *testing.T) {
		n, _, web := setup(t, true, false)
		testkit.Trust(t, n.home, web, testkit.NewSigner(t).PublicKey())
		_, err := Dial(context.Background(), Target{Name: "web", Address: "web"}, nil)
		testkit.WantErr(t, err, "through jump host bastion", "host key of "+web.Addr+" has CHANGED")
	})
	t.Run("accept new records both", func(t *testing.T) {
		n, bastion, web := setup(t, false, false)
		echo(t, dial(t, Target{Name: "web", Address: "web", AcceptNew: true}), "new")
		data, err := os.ReadFile(filepath.Join(n.home, ".ssh", "known_hosts"))
		if err != nil {
			t.Fatal(err)
		}
		for _, srv := range []*testkit.Server{bastion, web} {
			line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(srv.HostKeys[0].PublicKey())))
			if !strings.Contains(string(data), fmt.Sprintf("[127.0.0.1]:%d %s", srv.Port, line)) {
				t.Errorf("known_hosts lacks %s's key under its own name:\n%s", srv.Addr, data)
			}
		}
		// From now on both are known.
		echo(t, dial(t, Target{Name: "web", Address: "web"}), "known")
	})
}

// Each hop's failure says which hop failed and what to do.
func TestJumpHostErrorsNameTheHop(t *testing.T) {
	t.Run("jump host unreachable", func(t *testing.T) {
		newJumpNet(t)
		port := freePort(t)
		_, err := Dial(context.Background(), Target{Name: "web", Address: "10.0.0.5", ProxyJump: "127.0.0.1:" + testkit.PortString(port), Timeout: 5 * time.Second}, nil)
		testkit.WantErr(t, err, "connecting to jump host 127.0.0.1:"+testkit.PortString(port)+": cannot reach 127.0.0.1:"+testkit.PortString(port), "sshd running")
	})
	t.Run("host unreachable from the jump host", func(t *testing.T) {
		n := newJumpNet(t)
		bastion := n.server(false)
		port := freePort(t)
		n.config("Host bastion\n  HostName 127.0.0.1\n  Port %[bastion]\n", map[string]*testkit.Server{"bastion": bastion})
		_, err := Dial(context.Background(), Target{Name: "web", Address: "127.0.0.1", Port: port, ProxyJump: "bastion"}, nil)
		testkit.WantErr(t, err, "connecting to 127.0.0.1:"+testkit.PortString(port)+" through jump host bastion ("+bastion.Addr+"): the jump host cannot reach 127.0.0.1:"+testkit.PortString(port), "as the jump host sees it")
	})
	t.Run("host silent behind the jump host", func(t *testing.T) {
		n := newJumpNet(t)
		bastion := n.server(false)
		silent := listen(t, "tcp", "127.0.0.1:0", func(c net.Conn) { io.Copy(io.Discard, c) })
		start := time.Now()
		_, err := Dial(context.Background(), Target{Name: "web", Address: "127.0.0.1", Port: silent.Addr().(*net.TCPAddr).Port, ProxyJump: bastion.Addr, Timeout: time.Second}, nil)
		testkit.WantErr(t, err, "through jump host "+bastion.Addr+": ssh handshake with "+silent.Addr().String()+": no answer within 1s")
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("gave up after %v; want about the 1s timeout", d)
		}
	})
	t.Run("jump host does not forward", func(t *testing.T) {
		n := newJumpNet(t)
		bastion, web := n.server(false), n.server(false)
		bastion.RefuseForwarding()
		_, err := Dial(context.Background(), Target{Name: "web", Address: "127.0.0.1", Port: web.Port, ProxyJump: bastion.Addr}, nil)
		testkit.WantErr(t, err, "through jump host "+bastion.Addr+": the jump host refuses to forward a connection to "+web.Addr, "AllowTcpForwarding")
	})
	t.Run("jump host refuses the login", func(t *testing.T) {
		n := newJumpNet(t)
		web := n.server(false)
		bastion := testkit.NewServer(t, []ssh.PublicKey{testkit.NewSigner(t).PublicKey()})
		testkit.Trust(t, n.home, bastion)
		_, err := Dial(context.Background(), Target{Name: "web", Address: "127.0.0.1", Port: web.Port, ProxyJump: "ops@" + bastion.Addr}, nil)
		testkit.WantErr(t, err, "connecting to jump host "+bastion.Addr+": "+bastion.Addr+" rejected the login as ops", "not key_filename")
	})
	t.Run("a ProxyJump raijin cannot read", func(t *testing.T) {
		home := testkit.Home(t)
		writeSSHConfig(t, home, "config", "Host web1\n  ProxyJump bastion:ssh\n")
		_, err := Dial(context.Background(), Target{Name: "web1", Address: "web1"}, nil)
		testkit.WantErr(t, err, `~/.ssh/config line 2: Host web1 sets ProxyJump bastion:ssh, which raijin cannot read ("bastion:ssh": ssh is not a port number)`)
		if c := errs.Code(err); c != errs.CodeUsage {
			t.Errorf("exit code %d; want %d", c, errs.CodeUsage)
		}
		// raijin.toml's proxy_jump wins: ssh_config's is not even read.
		_, err = Dial(context.Background(), Target{Name: "web1", Address: "web1", ProxyJump: "none", Timeout: time.Second}, nil)
		if err == nil || strings.Contains(err.Error(), "ProxyJump") {
			t.Errorf("with proxy_jump none: %v; want a direct connection's error", err)
		}
	})
}

// freePort is a loopback port nothing listens on.
func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 3 s for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
