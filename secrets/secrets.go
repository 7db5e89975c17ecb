package secrets

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/raijin-deploy/raijin/shell"
)

// SecretAdapter resolves a secret name to its value.
type SecretAdapter interface {
	Name() string
	Resolve(ctx context.Context, name string) (string, error)
}

// NewSecretAdapter returns the adapter called name. passwordEnv names the
// variable holding bitwarden's master password.
func NewSecretAdapter(name, passwordEnv string) (SecretAdapter, error) {
	switch name {
	case "", "system":
		return systemAdapter{}, nil
	case "1password":
		return &cliAdapter{name: name, bin: "op", args: func(s string) []string { return []string{"read", "--no-newline", s} },
			hint: "sign in first (eval $(op signin), or OP_SERVICE_ACCOUNT_TOKEN), and write the secret as $op://VAULT/ITEM/FIELD"}, nil
	case "doppler":
		return &cliAdapter{name: name, bin: "doppler", args: func(s string) []string { return []string{"secrets", "get", s, "--plain"} },
			hint: "log in and pick the project (doppler login; doppler setup), or set DOPPLER_TOKEN"}, nil
	case "bitwarden":
		return &bitwardenAdapter{passwordEnv: passwordEnv}, nil
	}
	return nil, fmt.Errorf("unknown secrets adapter %q", name)
}

// Cached remembers what adapter resolved, so one command asks the vault once
// per secret (raijin up checks the secrets before its bootstrap, then
// deploys).
func Cached(adapter SecretAdapter) SecretAdapter {
	return &cachedAdapter{SecretAdapter: adapter, values: map[string]string{}}
}

type cachedAdapter struct {
	SecretAdapter
	mu     sync.Mutex
	values map[string]string
}

func (c *cachedAdapter) Resolve(ctx context.Context, name string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.values[name]; ok {
		return v, nil
	}
	v, err := c.SecretAdapter.Resolve(ctx, name)
	if err == nil {
		c.values[name] = v
	}
	return v, err
}

type systemAdapter struct{}

func (systemAdapter) Name() string { return "system" }

// Resolve reads the local environment: the name as written, else upper-cased
// with '-' and '.' as '_' (so $prod-db-password reads PROD_DB_PASSWORD).
func (systemAdapter) Resolve(_ context.Context, name string) (string, error) {
	if v, ok := os.LookupEnv(name); ok {
		return v, nil
	}
	alt := strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(name))
	if v, ok := os.LookupEnv(alt); ok {
		return v, nil
	}
	if alt != name {
		return "", fmt.Errorf("secret %q is not set in the local environment: export %s (or %s)", name, name, alt)
	}
	return "", fmt.Errorf("secret %q is not set in the local environment: export %s", name, name)
}

type cliAdapter struct {
	name string
	bin  string
	args func(secret string) []string
	env  []string
	hint string // what to check when the CLI fails
}

func (a *cliAdapter) Name() string { return a.name }

func (a *cliAdapter) Resolve(ctx context.Context, name string) (string, error) {
	path, err := exec.LookPath(a.bin)
	if err != nil {
		return "", fmt.Errorf("secrets adapter %s needs the %q command, which is not on PATH: install it, or use another [secrets] adapter", a.name, a.bin)
	}
	cmd := exec.CommandContext(ctx, path, a.args(name)...)
	cmd.Env = append(os.Environ(), a.env...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		msg := shell.LastLines(stderr.String(), 3)
		if msg == "" {
			msg = err.Error()
		}
		if a.hint != "" {
			msg += " (" + a.hint + ")"
		}
		return "", fmt.Errorf("secrets adapter %s: `%s` failed for secret %q: %s", a.name, a.bin, name, msg)
	}
	v := strings.TrimRight(out.String(), "\r\n")
	if v == "" {
		return "", fmt.Errorf("secrets adapter %s: secret %q is empty", a.name, name)
	}
	return v, nil
}

// bitwardenAdapter unlocks the vault once with the master password from the
// environment (bw reads it from there, never from its arguments) and passes
// the session key to bw through BW_SESSION.
type bitwardenAdapter struct {
	passwordEnv string
	session     string
}

func (b *bitwardenAdapter) Name() string { return "bitwarden" }

func (b *bitwardenAdapter) Resolve(ctx context.Context, name string) (string, error) {
	if _, err := exec.LookPath("bw"); err != nil {
		return "", errors.New("secrets adapter bitwarden needs the \"bw\" command, which is not on PATH: install the Bitwarden CLI, or use another [secrets] adapter")
	}
	if b.session == "" {
		b.session = os.Getenv("BW_SESSION")
	}
	if b.session == "" {
		if os.Getenv(b.passwordEnv) == "" {
			return "", fmt.Errorf("secrets adapter bitwarden: the vault is locked and %s is not set: export %s with the master password (or BW_SESSION)", b.passwordEnv, b.passwordEnv)
		}
		cmd := exec.CommandContext(ctx, "bw", "unlock", "--passwordenv", b.passwordEnv, "--raw")
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("secrets adapter bitwarden: `bw unlock` failed: %s (check the master password in %s; bw login first if this machine never logged in)", shell.LastLines(stderr.String(), 3), b.passwordEnv)
		}
		b.session = strings.TrimSpace(out.String())
	}
	// The session key goes in the environment, never in bw's arguments.
	a := &cliAdapter{name: "bitwarden", bin: "bw", env: []string{"BW_SESSION=" + b.session},
		args: func(s string) []string { return []string{"get", "password", s} },
		hint: "check the item's name with bw list items --search NAME; a locked vault needs " + b.passwordEnv + " or BW_SESSION"}
	return a.Resolve(ctx, name)
}

// ResolveSecrets fills in every secret reference of env with adapter; the
// first failure names the file and line.
func ResolveSecrets(ctx context.Context, env *Env, adapter SecretAdapter) error {
	for i := range env.Vars {
		v := &env.Vars[i]
		if v.Secret == "" {
			continue
		}
		val, err := adapter.Resolve(ctx, v.Secret)
		if err != nil {
			return fmt.Errorf("%s:%d: %s: %w", env.Source, v.Line, v.Key, err)
		}
		if err := CheckEnvValue(val); err != nil {
			return fmt.Errorf("%s:%d: %s: secret %s: %w", env.Source, v.Line, v.Key, v.Secret, err)
		}
		v.Value = val
	}
	return nil
}

// Redactor replaces secret values in text with ******.
type Redactor struct {
	mu     sync.RWMutex
	values []string
}

// Add registers more secret values (empty and very short ones are ignored: they
// would redact ordinary text), each with the forms it takes in raijin's
// output: escaped in an env file's double quotes, inside a shell's single
// quotes, in JSON, and each line of a value of several lines.
func (r *Redactor) Add(values ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range values {
		for _, form := range secretForms(v) {
			if len(form) >= 3 && !slices.Contains(r.values, form) {
				r.values = append(r.values, form)
			}
		}
	}
	// Longer forms first, so that a form that holds another is hidden whole.
	sort.Slice(r.values, func(i, j int) bool { return len(r.values[i]) > len(r.values[j]) })
}

// secretForms are v and its encodings (see Add).
func secretForms(v string) []string {
	j, _ := json.Marshal(v)
	forms := []string{v, EscapeDouble(v), strings.ReplaceAll(v, "'", `'\''`), strings.Trim(string(j), `"`)}
	if strings.Contains(v, "\n") {
		for _, line := range strings.Split(v, "\n") {
			if len(line) >= 6 {
				forms = append(forms, line)
			}
		}
	}
	return forms
}

// Leaks reports whether s holds a registered secret value of at least 6
// characters (shorter ones match ordinary text too often to refuse on).
func (r *Redactor) Leaks(s string) bool {
	if r == nil {
		return false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, v := range r.values {
		if len(v) >= 6 && strings.Contains(s, v) {
			return true
		}
	}
	return false
}

// Redact hides every registered value in s: each stretch of s that values
// cover (overlapping ones as one) becomes ******.
func (r *Redactor) Redact(s string) string {
	if r == nil {
		return s
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return hide(s, r.spans(s))
}

// spans are the stretches of s that registered values cover, in order,
// overlapping ones merged: a value that holds another, or two that overlap,
// are hidden whole whatever the order they were found in. r.mu is held.
func (r *Redactor) spans(s string) [][2]int {
	var all [][2]int
	for _, v := range r.values {
		for i := 0; i <= len(s)-len(v); {
			j := strings.Index(s[i:], v)
			if j < 0 {
				break
			}
			all = append(all, [2]int{i + j, i + j + len(v)})
			i += j + 1
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i][0] < all[j][0] })
	var out [][2]int
	for _, sp := range all {
		if n := len(out); n > 0 && sp[0] < out[n-1][1] {
			out[n-1][1] = max(out[n-1][1], sp[1])
			continue
		}
		out = append(out, sp)
	}
	return out
}

// hide replaces the spans of s with ******.
func hide(s string, spans [][2]int) string {
	if len(spans) == 0 {
		return s
	}
	var b strings.Builder
	at := 0
	for _, sp := range spans {
		b.WriteString(s[at:sp[0]])
		b.WriteString("******")
		at = sp[1]
	}
	b.WriteString(s[at:])
	return b.String()
}
