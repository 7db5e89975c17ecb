package server

import (
	"strings"
	"testing"
	"time"
)

func TestPrunePlan(t *testing.T) {
	for _, tc := range []struct {
		name             string
		recorded, onDisk []string
		keep             int
		current, protect string
		want             string
	}{
		{"nothing beyond keep", []string{"3", "2", "1"}, []string{"1", "2", "3"}, 3, "3", "", ""},
		{"oldest go", []string{"5", "4", "3", "2", "1"}, []string{"1", "2", "3", "4", "5"}, 2, "5", "", "1 2 3"},
		{"keep 1 keeps current only", []string{"2", "1"}, []string{"1", "2"}, 1, "2", "", "1"},
		{"unrecorded dirs go", []string{"2"}, []string{"2", "tmp", "old"}, 5, "2", "", "tmp old"},
		{"the version being deployed stays", []string{"2", "1"}, []string{"1", "2", "3"}, 1, "2", "3", "1"},
		{"current stays even beyond keep (after a rollback)", []string{"3", "2", "1"}, []string{"1", "2", "3"}, 1, "1", "", "2"},
		{"nothing recorded", nil, []string{"1"}, 3, "", "", "1"},
		{"nothing on disk", []string{"2", "1"}, nil, 1, "2", "", ""},
	} {
		got := strings.Join(PrunePlan(tc.recorded, tc.onDisk, tc.keep, tc.current, tc.protect), " ")
		if got != tc.want {
			t.Errorf("%s: PrunePlan = %q; want %q", tc.name, got, tc.want)
		}
	}
}

func TestParseVersions(t *testing.T) {
	if got := strings.Join(ParseVersions("1.2\n\n  1.1 \n1.0\n"), ","); got != "1.2,1.1,1.0" {
		t.Errorf("ParseVersions = %s", got)
	}
	if got := ParseVersions(""); len(got) != 0 {
		t.Errorf("ParseVersions(\"\") = %q", got)
	}
}

func TestParseLockOutput(t *testing.T) {
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		out    string
		locked bool
		holder LockInfo
	}{
		{"taken", "locked\n", true, LockInfo{}},
		{"held", `held
{"user":"ann","machine":"laptop","pid":7,"since":"2026-01-02T03:04:05Z","command":"deploy","version":"1.0","token":"t"}
`, false, LockInfo{User: "ann", Machine: "laptop", PID: 7, Since: since, Command: "deploy", Version: "1.0", Token: "t"}},
		{"held, info unreadable", "held\n\n", false, LockInfo{}},
		// Read back from the server, checked like user input.
		{"held, no version, pid below 0", `held
{"user":"ann\u001b[2J","pid":-4,"version":"../../etc","token":"t"}
`, false, LockInfo{User: "ann\x1b[2J", Token: "t"}},
	} {
		locked, holder := ParseLockOutput(tc.out)
		if locked != tc.locked || holder != tc.holder {
			t.Errorf("%s: %v %+v; want %v %+v", tc.name, locked, holder, tc.locked, tc.holder)
		}
	}
	l := LockInfo{User: "ann", Machine: "laptop", PID: 7, Since: since, Command: "deploy", Version: "1.0"}
	if got := l.Describe(); got != "ann@laptop (pid 7, `raijin deploy` of 1.0) since 2026-01-02T03:04:05Z" {
		t.Errorf("Describe = %s", got)
	}
	if (LockInfo{Machine: "elsewhere", PID: 1}).Stale() {
		t.Error("a lock of another machine is never stale")
	}
	me := NewLockInfo("deploy", "1")
	if me.Stale() {
		t.Error("this process's own lock is stale")
	}
	me.PID = 1 << 30
	if !me.Stale() {
		t.Error("a lock of a gone local process is not stale")
	}
}

// Versions read back from a server are checked like user input.
func TestParseVersionsDropsUnusableLines(t *testing.T) {
	got := ParseVersions("1.2.0\n../../etc\n/abs\n\n1.1.0+b\n..\n")
	if strings.Join(got, " ") != "1.2.0 1.1.0+b" {
		t.Errorf("ParseVersions = %q", got)
	}
}
