package secrets

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"
)

// EnvVar is one variable of an env file. A value written as $name (unquoted) is
// a secret reference: Secret holds the name until the adapter resolves it.
type EnvVar struct {
	Key    string
	Value  string
	Secret string // the secret's name; empty for a plain value
	Line   int
}

// Env is a parsed env file, in file order. Its String method never shows secret
// values: resolved secrets print as "******".
type Env struct {
	Source string
	Vars   []EnvVar
}

var envKeyRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ValidEnvName reports whether name can be a variable name in a shell and in
// systemd's environment.
func ValidEnvName(name string) bool { return envKeyRe.MatchString(name) }

// ParseEnv reads KEY=VALUE lines: blank lines and # comments are skipped, an
// "export " prefix is allowed, 'single' quotes are literal, "double" quotes
// take \n \" \\ \$ and \` escapes, and an unquoted value ends at " #".
func ParseEnv(source, text string) (*Env, error) {
	env := &Env{Source: source}
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		lineNo := i + 1
		// Only leading blanks go: trailing ones may be inside a quoted value
		// that goes on on the next line.
		l := strings.TrimLeft(lines[i], " \t")
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			continue
		}
		l = strings.TrimPrefix(l, "export ")
		key, rest, ok := strings.Cut(l, "=")
		key = strings.TrimSpace(key)
		if !ok || !envKeyRe.MatchString(key) {
			return nil, fmt.Errorf("%s:%d: expected KEY=VALUE with KEY made of letters, digits and _", source, lineNo)
		}
		rest = strings.TrimLeft(rest, " \t")
		v := EnvVar{Key: key, Line: lineNo}
		switch {
		case strings.HasPrefix(rest, "'"):
			val, after, found := strings.Cut(rest[1:], "'")
			for !found && i+1 < len(lines) {
				i++
				var more string
				more, after, found = strings.Cut(lines[i], "'")
				val += "\n" + more
			}
			if !found {
				return nil, fmt.Errorf("%s:%d: %s: unterminated single quote", source, lineNo, key)
			}
			if err := trailing(after); err != nil {
				return nil, fmt.Errorf("%s:%d: %s: %w", source, lineNo, key, err)
			}
			v.Value = val
		case strings.HasPrefix(rest, `"`):
			val, after, err := parseDouble(rest[1:], func() (string, bool) {
				if i+1 >= len(lines) {
					return "", false
				}
				i++
				return lines[i], true
			})
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %s: %w", source, lineNo, key, err)
			}
			if err := trailing(after); err != nil {
				return nil, fmt.Errorf("%s:%d: %s: %w", source, lineNo, key, err)
			}
			v.Value = val
		default:
			if idx := strings.Index(rest, " #"); idx >= 0 {
				rest = rest[:idx]
			}
			rest = strings.TrimSpace(rest)
			if strings.HasPrefix(rest, "$") {
				name := strings.TrimPrefix(rest, "$")
				name = strings.TrimSuffix(strings.TrimPrefix(name, "{"), "}")
				if name == "" {
					return nil, fmt.Errorf("%s:%d: %s: '$' must be followed by a secret name", source, lineNo, key)
				}
				v.Secret = name
			} else {
				v.Value = rest
			}
		}
		if err := CheckEnvValue(v.Value); err != nil {
			return nil, fmt.Errorf("%s:%d: %s: %w", source, lineNo, key, err)
		}
		env.set(v)
	}
	return env, nil
}

// CheckEnvValue refuses what systemd's EnvironmentFile= and a shell would not
// read back the same: bytes that are not UTF-8, and control characters other
// than tab and newline (a carriage return, for one, is dropped by systemd).
func CheckEnvValue(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("the value is not valid UTF-8")
	}
	for _, r := range s {
		if r != '\t' && r != '\n' && (r < 0x20 || r == 0x7f) {
			return fmt.Errorf("the value contains control character %U: only tab and newline are allowed", r)
		}
	}
	return nil
}

func trailing(after string) error {
	after = strings.TrimSpace(after)
	if after != "" && !strings.HasPrefix(after, "#") {
		return fmt.Errorf("unexpected text after the closing quote: %q", after)
	}
	return nil
}

func parseDouble(s string, next func() (string, bool)) (string, string, error) {
	var b strings.Builder
	for {
		for j := 0; j < len(s); j++ {
			c := s[j]
			switch {
			case c == '"':
				return b.String(), s[j+1:], nil
			case c == '\\' && j+1 < len(s):
				j++
				switch s[j] {
				case 'n':
					b.WriteByte('\n')
				case '"', '\\', '$', '`':
					b.WriteByte(s[j])
				default:
					b.WriteByte('\\')
					b.WriteByte(s[j])
				}
			default:
				b.WriteByte(c)
			}
		}
		more, ok := next()
		if !ok {
			return "", "", fmt.Errorf("unterminated double quote")
		}
		b.WriteByte('\n')
		s = more
	}
}

func (e *Env) set(v EnvVar) {
	for i := range e.Vars {
		if e.Vars[i].Key == v.Key {
			e.Vars[i] = v
			return
		}
	}
	e.Vars = append(e.Vars, v)
}

// Get returns the value of key.
func (e *Env) Get(key string) (string, bool) {
	for _, v := range e.Vars {
		if v.Key == key {
			return v.Value, true
		}
	}
	return "", false
}

// Keys lists the variable names, sorted.
func (e *Env) Keys() []string {
	var k []string
	for _, v := range e.Vars {
		k = append(k, v.Key)
	}
	sort.Strings(k)
	return k
}

// SecretValues lists the resolved secret values, for redaction.
func (e *Env) SecretValues() []string {
	var out []string
	for _, v := range e.Vars {
		if v.Secret != "" && v.Value != "" {
			out = append(out, v.Value)
		}
	}
	return out
}

// Render writes the env file as uploaded: KEY="value" lines that systemd's
// EnvironmentFile= and a POSIX shell's "." read alike (backslash, double quote,
// dollar and backtick escaped; newlines kept inside the quotes).
func (e *Env) Render() string {
	var b strings.Builder
	for _, v := range e.Vars {
		b.WriteString(v.Key)
		b.WriteString(`="`)
		b.WriteString(EscapeDouble(v.Value))
		b.WriteString("\"\n")
	}
	return b.String()
}

// EscapeDouble escapes s for the inside of a double-quoted string.
func EscapeDouble(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "`", "\\`")
	return r.Replace(s)
}

// Redacted renders the env for display, secrets as ******.
func (e *Env) Redacted() string {
	var b strings.Builder
	for _, v := range e.Vars {
		val := v.Value
		if v.Secret != "" {
			val = "****** (secret " + v.Secret + ")"
		}
		fmt.Fprintf(&b, "%s=%s\n", v.Key, val)
	}
	return b.String()
}

// String never shows secret values.
func (e *Env) String() string {
	return fmt.Sprintf("env(%s: %s)", e.Source, strings.Join(e.Keys(), ", "))
}

// RedactedAgainst renders an env read back from a server for display: a
// value is shown only where it is the plain (not secret) value that local,
// the env file on this machine, gives the same key; every other value is
// hidden, whatever its form: a secret of the local env, a value that differs
// (an older secret, one changed by hand), a key the local env lacks.
func (e *Env) RedactedAgainst(local *Env) string {
	plain := map[string]string{}
	secret := map[string]string{}
	for _, v := range local.Vars {
		if v.Secret != "" {
			secret[v.Key] = v.Secret
		} else {
			plain[v.Key] = v.Value
		}
	}
	var b strings.Builder
	for _, v := range e.Vars {
		want, isPlain := plain[v.Key]
		switch {
		case isPlain && v.Secret == "" && v.Value == want:
			fmt.Fprintf(&b, "%s=%s\n", v.Key, v.Value)
		case secret[v.Key] != "":
			fmt.Fprintf(&b, "%s=****** (secret %s)\n", v.Key, secret[v.Key])
		case isPlain:
			fmt.Fprintf(&b, "%s=****** (not the value of %s)\n", v.Key, local.Source)
		default:
			fmt.Fprintf(&b, "%s=****** (not in %s)\n", v.Key, local.Source)
		}
	}
	return b.String()
}
