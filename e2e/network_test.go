package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Routes between namespaces: the test servers sit in network namespaces of
// their own, each joined to this machine by one veth (10.213.N.1 here,
// 10.213.N.2 there) with no default route, so that out of the box they
// reach this machine only. The helpers below let servers reach each other
// through this machine, or take one off this machine's reach, for as long
// as a test runs.

// Route lets test servers a and b reach each other: each gets a route to
// the other's subnet through its own veth's end on this machine, and this
// machine forwards between the two veths (the veths only: forwarding stays
// off elsewhere). Undone when t ends.
func Route(t *testing.T, a, b *TestHost) {
	t.Helper()
	for _, r := range [][2]*TestHost{{a, b}, {b, a}} {
		from, to := r[0], r[1]
		args := []string{"route", "add", to.subnet(), "via", from.gateway()}
		ipIn(t, from, args...)
		t.Cleanup(func() { ipIn(nil, from, append([]string{"route", "del"}, args[2:]...)...) })
		forward(t, from)
	}
}

// OnlyThrough takes h off this machine's reach: h sends nothing to this
// machine's address on its veth (a prohibit route), so no connection from
// here is answered, while the servers that Route joins to it still reach
// it. The harness's own ssh to h (Run, Root, Try) goes through via from now
// on. Undone when t ends.
func (h *TestHost) OnlyThrough(t *testing.T, via *TestHost) {
	t.Helper()
	args := []string{"route", "add", "prohibit", h.gateway() + "/32"}
	ipIn(t, h, args...)
	h.via = via
	t.Cleanup(func() {
		ipIn(nil, h, append([]string{"route", "del"}, args[2:]...)...)
		h.via = nil
	})
}

func (h *TestHost) subnet() string  { return fmt.Sprintf("10.213.%d.0/24", h.Index) }
func (h *TestHost) gateway() string { return fmt.Sprintf("10.213.%d.1", h.Index) }

// ipIn runs ip in h's network namespace; with t nil (a cleanup) a failure
// is ignored: the server may be gone already.
func ipIn(t *testing.T, h *TestHost, args ...string) {
	out, err := exec.Command("ip", append([]string{"-n", h.Name}, args...)...).CombinedOutput()
	if err != nil && t != nil {
		t.Helper()
		t.Fatalf("ip -n %s %s: %v\n%s", h.Name, strings.Join(args, " "), err, out)
	}
}

// forward turns forwarding on for what comes in on h's veth here, and back
// to what it was when t ends.
func forward(t *testing.T, h *TestHost) {
	t.Helper()
	p := fmt.Sprintf("/proc/sys/net/ipv4/conf/rjh%d/forwarding", h.Index)
	old, err := os.ReadFile(p)
	must(t, err)
	must(t, os.WriteFile(p, []byte("1\n"), 0o644))
	t.Cleanup(func() { os.WriteFile(p, old, 0o644) })
}
