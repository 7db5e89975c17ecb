package builtins

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "''"},
		{"plain", "plain"},
		{"/srv/app-1.0/v1.2+b_3:x@y,z=%", "/srv/app-1.0/v1.2+b_3:x@y,z=%"},
		{"two words", "'two words'"},
		{"it's", `'it'\''s'`},
		{"$HOME", "'$HOME'"},
		{"a;rm -rf /", "'a;rm -rf /'"},
		{"`id`", "'`id`'"},
		{"line\nbreak", "'line\nbreak'"},
		{"ünï", "'ünï'"},
	} {
		if got := Quote(tc.in); got != tc.want {
			t.Errorf("Quote(%q) = %s; want %s", tc.in, got, tc.want)
		}
		// The shell gives back exactly the input.
		out, err := exec.Command("sh", "-c", "printf %s "+Quote(tc.in)).Output()
		if err != nil || string(out) != tc.in {
			t.Errorf("sh read Quote(%q) back as %q (%v)", tc.in, out, err)
		}
	}
	if got := QuoteAll("a b", "c", ""); got != "'a b' c ''" {
		t.Errorf("QuoteAll = %s", got)
	}
}

func TestShellCommand(t *testing.T) {
	for _, tc := range []struct {
		name string
		cmd  string
		o    RunOpts
		want string
	}{
		{"bare", "ls -l", RunOpts{}, "ls -l"},
		{"cwd", "ls", RunOpts{Cwd: "/srv/my app"}, "cd '/srv/my app' && ls"},
		{"appenv", "app migrate", RunOpts{Cwd: "/a", Appenv: "/a/.appenv"}, "cd /a && . /a/.appenv && app migrate"},
		{"env sorted and quoted", "env", RunOpts{Env: map[string]string{"B": "x y", "A": "it's"}}, `export A='it'\''s'; export B='x y'; env`},
		{"sudo wraps everything", "systemctl restart app", RunOpts{Sudo: true, Cwd: "/a", Env: map[string]string{"K": "v"}},
			`sudo -n sh -c 'export K=v; cd /a && systemctl restart app'`},
		{"sudo quotes quotes", "echo 'hi'", RunOpts{Sudo: true}, `sudo -n sh -c 'echo '\''hi'\'''`},
		{"stdin and timeout change nothing", "cat", RunOpts{Stdin: []byte("x"), Timeout: time.Second}, "cat"},
	} {
		if got := ShellCommand(tc.cmd, tc.o); got != tc.want {
			t.Errorf("%s: ShellCommand = %s\nwant             %s", tc.name, got, tc.want)
		}
	}
}

func TestParseEnv(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []EnvVar // Key, Value, Secret, Line
		err        string
	}{
		{name: "empty", text: "\n# only a comment\n\n", want: nil},
		{name: "plain", text: "A=1\nexport B = two words \nC=\n", want: []EnvVar{{"A", "1", "", 1}, {"B", "two words", "", 2}, {"C", "", "", 3}}},
		{name: "comment after value", text: "A=x # note\nB=x#y\n", want: []EnvVar{{"A", "x", "", 1}, {"B", "x#y", "", 2}}},
		{name: "single quotes are literal", text: `A='$x \n "y"' # c`, want: []EnvVar{{"A", `$x \n "y"`, "", 1}}},
		{name: "double quote escapes", text: `A="a\nb \"q\" \\ \$ \` + "`" + ` \t"`, want: []EnvVar{{"A", "a\nb \"q\" \\ $ ` \\t", "", 1}}},
		{name: "multi-line values", text: "K='-----BEGIN\nabc\n-----END'\nD=\"x\ny\"\nE=3", want: []EnvVar{{"K", "-----BEGIN\nabc\n-----END", "", 1}, {"D", "x\ny", "", 4}, {"E", "3", "", 6}}},
		{name: "secret references", text: "DB=$DATABASE_URL\nT=${TOKEN}\n", want: []EnvVar{{"DB", "", "DATABASE_URL", 1}, {"T", "", "TOKEN", 2}}},
		{name: "quoted dollar is not a secret", text: `P="$NOT"` + "\nQ='$NOT'", want: []EnvVar{{"P", "$NOT", "", 1}, {"Q", "$NOT", "", 2}}},
		{name: "later wins, keeps place", text: "A=1\nB=2\nA=3", want: []EnvVar{{"A", "3", "", 3}, {"B", "2", "", 2}}},
		{name: "CRLF", text: "A=1\r\nB=2\r\n", want: []EnvVar{{"A", "1", "", 1}, {"B", "2", "", 2}}},
		{name: "no equals", text: "A=1\nJUSTAWORD\n", err: ".env:2: expected KEY=VALUE"},
		{name: "bad key", text: "1A=x", err: ".env:1: expected KEY=VALUE"},
		{name: "unterminated single", text: "A=1\nB='open\nmore", err: ".env:2: B: unterminated single quote"},
		{name: "unterminated double", text: `A="open`, err: ".env:1: A: unterminated double quote"},
		{name: "text after quote", text: `A="x" y`, err: `.env:1: A: unexpected text after the closing quote: "y"`},
		{name: "bare dollar", text: "A=$", err: ".env:1: A: '$' must be followed by a secret name"},
	} {
		env, err := ParseEnv(".env", tc.text)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err = %v; want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if len(env.Vars) != len(tc.want) {
			t.Errorf("%s: got %+v; want %+v", tc.name, env.Vars, tc.want)
			continue
		}
		for i, v := range env.Vars {
			if v != tc.want[i] {
				t.Errorf("%s: var %d = %+v; want %+v", tc.name, i, v, tc.want[i])
			}
		}
	}
}

func TestEnvRenderIsReadBackByShellAndParser(t *testing.T) {
	env := &Env{Source: "x", Vars: []EnvVar{
		{Key: "PLAIN", Value: "abc"},
		{Key: "SPACES", Value: "a b  c"},
		{Key: "TRICKY", Value: "q\" d$HOME b` s\\ '"},
		{Key: "LINES", Value: "one\ntwo"},
		{Key: "EMPTY", Value: ""},
		{Key: "SECRET", Value: "hunter22", Secret: "PW"},
	}}
	text := env.Render()
	want := "PLAIN=\"abc\"\nSPACES=\"a b  c\"\nTRICKY=\"q\\\" d\\$HOME b\\` s\\\\ '\"\nLINES=\"one\ntwo\"\nEMPTY=\"\"\nSECRET=\"hunter22\"\n"
	if text != want {
		t.Errorf("Render =\n%s\nwant\n%s", text, want)
	}
	back, err := ParseEnv("rendered", text)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range env.Vars {
		if got, _ := back.Get(v.Key); got != v.Value {
			t.Errorf("parser read %s back as %q; want %q", v.Key, got, v.Value)
		}
	}
	// A POSIX shell sourcing the file reads the same values.
	for _, v := range env.Vars {
		cmd := exec.Command("sh", "-c", "set -a; eval \"$1\"; printf %s \"$"+v.Key+"\"", "sh", text)
		out, err := cmd.Output()
		if err != nil || string(out) != v.Value {
			t.Errorf("sh read %s as %q (%v); want %q", v.Key, out, err, v.Value)
		}
	}
	if r := env.Redacted(); strings.Contains(r, "hunter22") || !strings.Contains(r, "SECRET=****** (secret PW)") {
		t.Errorf("Redacted shows:\n%s", r)
	}
	if s := env.String(); strings.Contains(s, "hunter22") || s != "env(x: EMPTY, LINES, PLAIN, SECRET, SPACES, TRICKY)" {
		t.Errorf("String = %s", s)
	}
	if sv := env.SecretValues(); len(sv) != 1 || sv[0] != "hunter22" {
		t.Errorf("SecretValues = %q", sv)
	}
}

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
