// Package builtins holds raijin's Go primitives: the SSH connection, remote
// commands and uploads, env files, secrets, templates, versions and the lock.
// It knows nothing of Lua; the runtime package exposes it to recipes.
package builtins

import "strings"

// Quote returns s quoted for a POSIX shell: every value that reaches a remote
// command line goes through here.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./_-", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// QuoteAll quotes each argument and joins them with spaces.
func QuoteAll(args ...string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = Quote(a)
	}
	return strings.Join(q, " ")
}
