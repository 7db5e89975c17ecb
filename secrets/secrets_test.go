package secrets

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/raijin-deploy/raijin/internal/testkit"
	"github.com/raijin-deploy/raijin/shell"
)

// fakeCLIs puts the stand-in vendor CLIs of testdata/fakecli first on PATH
// and returns the file they record their calls in.
func fakeCLIs(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("testdata/fakecli")
	if err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(t.TempDir(), "calls.log")
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("FAKECLI_LOG", log)
	t.Setenv("FAKE_STATE", "")
	t.Setenv("BW_SESSION", "")
	return log
}

func calls(t *testing.T, log string) string {
	t.Helper()
	data, err := os.ReadFile(log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(data)
}

func resolve(t *testing.T, adapter, passwordEnv, name string) (string, error) {
	t.Helper()
	a, err := NewSecretAdapter(adapter, passwordEnv)
	if err != nil {
		t.Fatal(err)
	}
	return a.Resolve(context.Background(), name)
}

func TestSystemAdapter(t *testing.T) {
	t.Setenv("PROD_DB_PASSWORD", "sys-secret-1")
	t.Setenv("exact.name", "sys-secret-2")
	if v, err := resolve(t, "system", "", "prod-db-password"); err != nil || v != "sys-secret-1" {
		t.Errorf("prod-db-password = %q, %v; want PROD_DB_PASSWORD's value", v, err)
	}
	if v, err := resolve(t, "", "", "exact.name"); err != nil || v != "sys-secret-2" {
		t.Errorf("exact.name = %q, %v", v, err)
	}
	_, err := resolve(t, "system", "", "no-such-secret")
	testkit.WantErr(t, err, `secret "no-such-secret" is not set`, "export no-such-secret (or NO_SUCH_SECRET)")
}

func TestOnePasswordAdapter(t *testing.T) {
	log := fakeCLIs(t)
	v, err := resolve(t, "1password", "", "op://prod/db/password")
	if err != nil || v != "op-secret-Vq7w" {
		t.Fatalf("op read = %q, %v", v, err)
	}
	if got := calls(t, log); got != "op [read] [--no-newline] [op://prod/db/password]\n" {
		t.Errorf("op was called as %q", got)
	}
	_, err = resolve(t, "1password", "", "op://prod/db/nope")
	testkit.WantErr(t, err, "secrets adapter 1password", `secret "op://prod/db/nope"`, "could not find item")
	t.Setenv("FAKE_STATE", "locked")
	_, err = resolve(t, "1password", "", "op://prod/db/password")
	testkit.WantErr(t, err, "not currently signed in", "eval $(op signin)")
}

func TestBitwardenAdapter(t *testing.T) {
	log := fakeCLIs(t)
	// Locked, and no master password: a clear error, and bw is not run.
	t.Setenv("BW_PASSWORD", "")
	_, err := resolve(t, "bitwarden", "BW_PASSWORD", "prod-db")
	testkit.WantErr(t, err, "the vault is locked and BW_PASSWORD is not set")
	if got := calls(t, log); got != "" {
		t.Errorf("bw was run without a password: %q", got)
	}
	// Unlocked once with the password from the environment; the session key
	// goes to bw in BW_SESSION. The password is in no argument list.
	t.Setenv("MY_BW_PW", "master-pass-Kd9")
	a, err := NewSecretAdapter("bitwarden", "MY_BW_PW")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"prod-db", "prod-db"} {
		if v, err := a.Resolve(context.Background(), name); err != nil || v != "bw-secret-Hx2p" {
			t.Fatalf("bw get = %q, %v", v, err)
		}
	}
	want := "bw [unlock] [--passwordenv] [MY_BW_PW] [--raw] BW_SESSION=\n" +
		"bw [get] [password] [prod-db] BW_SESSION=session-key-123\n" +
		"bw [get] [password] [prod-db] BW_SESSION=session-key-123\n"
	got := calls(t, log)
	if got != want {
		t.Errorf("bw calls:\n%s\nwant:\n%s", got, want)
	}
	if strings.Contains(got, "master-pass-Kd9") {
		t.Errorf("the master password reached bw's arguments")
	}
	_, err = a.Resolve(context.Background(), "missing-item")
	testkit.WantErr(t, err, `secret "missing-item"`, "Not found.", "bw list items")
	// A wrong password: bw unlock's own message.
	t.Setenv("MY_BW_PW", "wrong")
	_, err = resolve(t, "bitwarden", "MY_BW_PW", "prod-db")
	testkit.WantErr(t, err, "`bw unlock` failed: Invalid master password.", "MY_BW_PW")
	// An existing BW_SESSION is used as it is.
	t.Setenv("BW_SESSION", "session-key-123")
	t.Setenv("MY_BW_PW", "")
	if v, err := resolve(t, "bitwarden", "MY_BW_PW", "prod-db"); err != nil || v != "bw-secret-Hx2p" {
		t.Errorf("with BW_SESSION set: %q, %v", v, err)
	}
}

func TestDopplerAdapter(t *testing.T) {
	log := fakeCLIs(t)
	v, err := resolve(t, "doppler", "", "DB_PASSWORD")
	if err != nil || v != "doppler-secret-P0c" {
		t.Fatalf("doppler = %q, %v", v, err)
	}
	if got := calls(t, log); got != "doppler [secrets] [get] [DB_PASSWORD] [--plain]\n" {
		t.Errorf("doppler was called as %q", got)
	}
	_, err = resolve(t, "doppler", "", "NOPE")
	testkit.WantErr(t, err, "Could not find requested secret: NOPE")
	t.Setenv("FAKE_STATE", "locked")
	_, err = resolve(t, "doppler", "", "DB_PASSWORD")
	testkit.WantErr(t, err, "you must provide a token", "doppler login")
}

func TestAdapterCLIMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for adapter, bin := range map[string]string{"1password": "op", "bitwarden": "bw", "doppler": "doppler"} {
		_, err := resolve(t, adapter, "BW_PASSWORD", "x")
		testkit.WantErr(t, err, "secrets adapter "+adapter, `"`+bin+`" command, which is not on PATH`)
	}
	if _, err := NewSecretAdapter("vault", ""); err == nil || !strings.Contains(err.Error(), `unknown secrets adapter "vault"`) {
		t.Errorf("an unknown adapter: %v", err)
	}
}

// ResolveSecrets names the file, line and key of a secret that fails, and the
// redactor hides every resolved value.
func TestResolveSecretsAndRedact(t *testing.T) {
	fakeCLIs(t)
	env, err := ParseEnv(".env.prod", "PORT=8000\nDB=$op://prod/db/password\nOTHER=$op://prod/db/nope\n")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := NewSecretAdapter("1password", "")
	err = ResolveSecrets(context.Background(), env, a)
	testkit.WantErr(t, err, ".env.prod:3: OTHER:", "could not find item")
	env.Vars = env.Vars[:2]
	if err := ResolveSecrets(context.Background(), env, a); err != nil {
		t.Fatal(err)
	}
	var r Redactor
	r.Add(env.SecretValues()...)
	if got := r.Redact("connect with op-secret-Vq7w now"); got != "connect with ****** now" {
		t.Errorf("Redact = %q", got)
	}
	if red := env.Redacted(); strings.Contains(red, "op-secret-Vq7w") || !strings.Contains(red, "PORT=8000") {
		t.Errorf("Redacted:\n%s", red)
	}
}

// Cached asks the vault once per resolved secret; a failure is asked again.
func TestCachedAdapter(t *testing.T) {
	log := fakeCLIs(t)
	a, _ := NewSecretAdapter("1password", "")
	c := Cached(a)
	for i := 0; i < 3; i++ {
		if v, err := c.Resolve(context.Background(), "op://prod/db/password"); err != nil || v != "op-secret-Vq7w" {
			t.Fatalf("resolve %d: %q %v", i, v, err)
		}
	}
	c.Resolve(context.Background(), "op://prod/db/nope")
	c.Resolve(context.Background(), "op://prod/db/nope")
	if n := strings.Count(calls(t, log), "\n"); n != 3 {
		t.Errorf("op ran %d times, want once for the secret and twice for the failing one:\n%s", n, calls(t, log))
	}
	if c.Name() != "1password" {
		t.Errorf("Name = %q", c.Name())
	}
}

// A secret is hidden in every form raijin's output gives it: as it is, in an
// env file's double quotes, in a shell's single quotes, in JSON, and line by
// line.
func TestRedactorHidesEveryForm(t *testing.T) {
	const secret = `pa$$"w'o\rd` + "\nsecond-line"
	var r Redactor
	r.Add(secret)
	env := &Env{Vars: []EnvVar{{Key: "DB", Value: secret, Secret: "db"}}}
	j, _ := json.Marshal(map[string]string{"v": secret})
	for _, text := range []string{
		"plain " + secret,
		env.Render(),
		"export DB=" + shell.Quote(secret) + "; true",
		string(j),
		"| second-line",
	} {
		got := r.Redact(text)
		if strings.Contains(got, "second-line") || strings.Contains(got, `w'o`) || strings.Contains(got, `w'\''o`) || strings.Contains(got, `pa\$\$`) || strings.Contains(got, `pa$$`) {
			t.Errorf("Redact(%q) = %q", text, got)
		}
		if !r.Leaks(text) {
			t.Errorf("Leaks(%q) = false", text)
		}
	}
}
