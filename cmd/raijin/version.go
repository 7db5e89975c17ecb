package main

import (
	"runtime/debug"
	"strings"
)

// version is set by the release script with -ldflags "-X main.version=v1.2.3";
// when it is empty, the module version recorded by the Go toolchain is used
// (what `go install ...@v1.2.3` stamps), else "(devel)".
var version string

// commit is set by the release script with -ldflags "-X main.commit=SHA",
// for a build whose commit the toolchain does not record (a git worktree).
var commit string

// versionLine is what `raijin --version` prints: the version, then the commit
// the binary was built from and its time when the toolchain recorded them (a
// build in a git checkout), with "modified" for uncommitted changes:
// "raijin v1.2.3 (commit 0123456789ab, 2026-12-01T10:00:00Z, modified)".
func versionLine(stamped, stampedCommit string, info *debug.BuildInfo) string {
	v := moduleVersion(stamped, info)
	var rev, when string
	modified := false
	if info != nil {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	line := "raijin " + v
	if rev == "" {
		rev = stampedCommit
	}
	if rev == "" {
		return line
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	parts := []string{"commit " + rev}
	if when != "" {
		parts = append(parts, when)
	}
	if modified {
		parts = append(parts, "modified")
	}
	return line + " (" + strings.Join(parts, ", ") + ")"
}

// moduleVersion is the version raijin was built as: the release script's,
// else the module version the toolchain recorded, else "(devel)".
func moduleVersion(stamped string, info *debug.BuildInfo) string {
	v := stamped
	if v == "" && info != nil {
		v = info.Main.Version
	}
	if v == "" {
		v = "(devel)"
	}
	return v
}

// buildVersion reads this binary's build information.
func buildVersion() string {
	info, _ := debug.ReadBuildInfo()
	return versionLine(version, commit, info)
}
