package main

import (
	"runtime/debug"
	"testing"
)

func TestVersionLine(t *testing.T) {
	vcs := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	build := func(mainVersion string, settings []debug.BuildSetting) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Path: "github.com/raijin-deploy/raijin", Version: mainVersion}, Settings: settings}
	}
	rev := "0123456789abcdef0123456789abcdef01234567"
	for _, tc := range []struct {
		name    string
		stamped string
		info    *debug.BuildInfo
		want    string
		commit  string // stamped by the release script
	}{
		{"go install @version", "", build("v1.2.3", nil), "raijin v1.2.3", ""},
		{"source build in a checkout", "", build("(devel)", vcs("vcs", "git", "vcs.revision", rev, "vcs.time", "2026-12-01T10:00:00Z", "vcs.modified", "false")),
			"raijin (devel) (commit 0123456789ab, 2026-12-01T10:00:00Z)", ""},
		{"uncommitted changes", "", build("(devel)", vcs("vcs.revision", rev, "vcs.modified", "true")),
			"raijin (devel) (commit 0123456789ab, modified)", ""},
		{"pseudo-version from a checkout", "", build("v1.2.4-0.20261201100000-0123456789ab", vcs("vcs.revision", rev, "vcs.time", "2026-12-01T10:00:00Z")),
			"raijin v1.2.4-0.20261201100000-0123456789ab (commit 0123456789ab, 2026-12-01T10:00:00Z)", ""},
		{"release script stamp wins", "v2.0.0", build("(devel)", vcs("vcs.revision", rev, "vcs.time", "2026-12-01T10:00:00Z", "vcs.modified", "false")),
			"raijin v2.0.0 (commit 0123456789ab, 2026-12-01T10:00:00Z)", ""},
		{"stamped, no vcs", "v2.0.0", build("", nil), "raijin v2.0.0", ""},
		{"test binary", "", build("", nil), "raijin (devel)", ""},
		{"no build info", "", nil, "raijin (devel)", ""},
		{"short revision kept whole", "", build("(devel)", vcs("vcs.revision", "abc1234")), "raijin (devel) (commit abc1234)", ""},
		{"release from a worktree: the stamped commit", "v2.0.0", build("(devel)", nil), "raijin v2.0.0 (commit 0123456789ab)", rev},
		{"the toolchain's commit wins over the stamp", "v2.0.0", build("(devel)", vcs("vcs.revision", "fedcba9876543210")), "raijin v2.0.0 (commit fedcba987654)", rev},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := versionLine(tc.stamped, tc.commit, tc.info); got != tc.want {
				t.Errorf("versionLine() = %q, want %q", got, tc.want)
			}
		})
	}
}
