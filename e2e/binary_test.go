package e2e

import (
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// A Go app deployed twice: served through Caddy, the layout of the design,
// versions recorded newest first and pruned beyond versions_to_keep.
func TestBinaryDeployTwiceAndPrune(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "bin", Hosts: []*TestHost{h}, Extra: "versions_to_keep = 2",
		HostEnv: "SECRET=$E2E_SECRET_VALUE"})
	p.Env = append(p.Env, "E2E_SECRET_VALUE=hunter2-topsecret")
	url := p.SiteURL(h)

	r := p.MustRaijin("deploy")
	if !strings.Contains(r.Stdout, url) {
		t.Errorf("deploy should print the URL %s on stdout:\n%s", url, r)
	}
	for _, phase := range []string{"secrets", "build", "transfer", "install", "release", "services", "proxy", "record", "prune", "done"} {
		if !strings.Contains(r.Stderr, " "+phase+" ") {
			t.Errorf("deploy output has no line for phase %s:\n%s", phase, r.Stderr)
		}
	}
	if strings.Contains(r.Stdout+r.Stderr, "hunter2-topsecret") {
		t.Errorf("the secret appears in raijin's output")
	}
	code, body := Get(t, url)
	if code != 200 || !strings.Contains(body, "goapp 1.0.0: hello from "+h.Name) {
		t.Fatalf("GET %s = %d %q, want version 1.0.0 through Caddy", url, code, body)
	}
	if _, got := Get(t, url+"env/SECRET"); got != "hunter2-topsecret" {
		t.Errorf("the app sees SECRET=%q, want the resolved secret", got)
	}

	dir := p.AppDir(h)
	layout := h.Run(t, fmt.Sprintf(`cd %s && stat -c '%%a %%U %%G %%n' .env v1.0.0/.env && readlink %s && cat .versions && test -f .appenv && sudo cat %s/migrations.log && systemctl is-active %s && grep -c SECRET .env`, dir, p.App, p.StateDir(h), p.WebUnit(h)))
	for _, want := range []string{"640 deploy " + p.App + " .env", "640 deploy " + p.App + " v1.0.0/.env", "v1.0.0/goapp", "1.0.0", "migrated to 1.0.0", "active"} {
		if !strings.Contains(layout, want) {
			t.Errorf("server layout lacks %q:\n%s", want, layout)
		}
	}

	p.MustRaijin("deploy", "--set-version", "1.1.0")
	if _, body := Get(t, url); !strings.Contains(body, "goapp 1.1.0") {
		t.Fatalf("after the second deploy GET / = %q, want 1.1.0", body)
	}
	if got := h.Run(t, "cat "+dir+"/.versions"); got != "1.1.0\n1.0.0\n" {
		t.Errorf(".versions = %q, want newest first", got)
	}

	p.MustRaijin("deploy", "--set-version", "1.2.0")
	got := h.Run(t, "cd "+dir+" && cat .versions && ls -d v*")
	if got != "1.2.0\n1.1.0\nv1.1.0\nv1.2.0\n" {
		t.Errorf("after a third deploy with versions_to_keep = 2: %q, want 1.0.0 pruned", got)
	}
	if out := p.Migrations(t, h); !strings.Contains(out, "migrated to 1.2.0") {
		t.Errorf("release_command did not run for 1.2.0: %q", out)
	}
}

// A failing release command leaves the previous version serving, and says so.
func TestBinaryFailedReleaseKeepsPreviousServing(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "relfail", Hosts: []*TestHost{h}})
	url := p.SiteURL(h)
	p.MustRaijin("deploy")

	p.Write("raijin.toml", strings.Replace(readFile(t, p.Dir+"/raijin.toml"), `release_command = "`+p.App+` migrate"`, `release_command = "FAIL_MIGRATE=1 `+p.App+` migrate"`, 1), 0o644)
	r := p.Raijin("deploy", "--set-version", "2.0.0")
	if r.Code != 1 {
		t.Fatalf("a failing release_command should exit 1: %s", r)
	}
	for _, want := range []string{"host " + h.Name + ": phase release:", "exited 3", "migration failed on purpose", "1.0.0 was restored"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("error lacks %q:\n%s", want, r.Stderr)
		}
	}
	if _, body := Get(t, url); !strings.Contains(body, "goapp 1.0.0") {
		t.Errorf("after the failed deploy GET / = %q, want 1.0.0 still serving", body)
	}
	dir := p.AppDir(h)
	if got := h.Run(t, "cd "+dir+" && readlink "+p.App+" && head -1 .versions && ls -a .lock 2>&1 || true"); !strings.Contains(got, "v1.0.0/goapp\n1.0.0\n") || !strings.Contains(got, "No such file") {
		t.Errorf("after the failed deploy: %q, want the symlink and .versions on 1.0.0 and no lock left", got)
	}
}

// A distfile the build did not produce: exit 1 before any host is touched.
func TestBinaryMissingDistfile(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "nodist", Hosts: []*TestHost{h}})
	p.Write("raijin.toml", strings.Replace(readFile(t, p.Dir+"/raijin.toml"), `distfile = "dist/goapp"`, `distfile = "dist/other"`, 1), 0o644)
	r := p.Raijin("deploy")
	if r.Code != 1 || !strings.Contains(r.Stderr, "distfile") || !strings.Contains(r.Stderr, "does not exist after the build") {
		t.Fatalf("want exit 1 naming the distfile: %s", r)
	}
	if out, ok := h.Try("test -e " + p.AppDir(h)); ok {
		t.Errorf("the host was touched: %s", out)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	data, err := osReadFile(p)
	must(t, err)
	return string(data)
}

// To a server without zstd (no patches), a new build of the app is sent as
// its difference from the live one (a Go binary rebuilt with another
// version string differs in a few dozen bytes), and the server ends up with
// exactly the new file. A live binary changed on the server is not trusted
// as a basis: the whole file goes.
func TestBinaryUploadByDifference(t *testing.T) {
	h := host(t, 0)
	h.Root(t, "mv /usr/bin/zstd /usr/bin/zstd.hidden")
	t.Cleanup(func() { h.Root(t, "[ ! -e /usr/bin/zstd.hidden ] || mv /usr/bin/zstd.hidden /usr/bin/zstd") })
	p := NewProject(t, ProjectSpec{App: "delta", Hosts: []*TestHost{h}})
	url := p.SiteURL(h)
	dir := p.AppDir(h)
	sentBytes := func(r Result) float64 { return bytesSent(t, r) }
	same := func(version string) {
		t.Helper()
		local := sha256.Sum256([]byte(readFile(t, filepath.Join(p.Dir, "dist", "goapp"))))
		remote := h.Run(t, "sha256sum "+dir+"/v"+version+"/goapp")
		if !strings.HasPrefix(remote, fmt.Sprintf("%x", local)) {
			t.Fatalf("the server's v%s/goapp differs from the build: %s", version, remote)
		}
		if _, body := Get(t, url); !strings.Contains(body, "goapp "+version+":") {
			t.Fatalf("GET / = %q, want %s", body, version)
		}
	}

	if n := sentBytes(p.MustRaijin("deploy")); n < 1e6 {
		t.Fatalf("the first deploy sent %.0f bytes: the whole binary must go", n)
	}
	same("1.0.0")
	r := p.MustRaijin("deploy", "-v", "--set-version", "1.1.0")
	if n := sentBytes(r); n > 100e3 {
		t.Errorf("a rebuild with another version sent %.0f bytes, want a difference of a few kB:\n%s", n, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "by difference against "+dir+"/v1.0.0/goapp") {
		t.Errorf("-v does not show the upload by difference:\n%s", r.Stderr)
	}
	same("1.1.0")

	// Someone replaces the live binary on the server: its hash no longer
	// matches what raijin noted, and this machine has no copy of it.
	h.Run(t, "cd "+dir+"/v1.1.0 && cp goapp x && printf 'changed on the server' >> x && touch -d '+1 min' x && mv x goapp")
	if n := sentBytes(p.MustRaijin("deploy", "--set-version", "1.2.0")); n < 1e6 {
		t.Errorf("a deploy over a binary changed on the server sent only %.0f bytes; the whole file must go", n)
	}
	same("1.2.0")
}

var sentFigure = regexp.MustCompile(`uploads?, ([0-9.]+) (B|kB|MB) sent\)`)

// bytesSent reads how many bytes a deploy sent from its summary line.
func bytesSent(t *testing.T, r Result) float64 {
	t.Helper()
	m := sentFigure.FindStringSubmatch(r.Stderr)
	if m == nil {
		t.Fatalf("no bytes-sent figure in the summary:\n%s", r)
	}
	n, _ := strconv.ParseFloat(m[1], 64)
	return n * map[string]float64{"B": 1, "kB": 1e3, "MB": 1e6}[m[2]]
}

// A binary replaced on the server by other bytes of the same size, its
// mtime set back, is not taken for the one raijin sent: deploying the same
// version again sends the whole build again and the server ends up with
// its bytes.
func TestBinaryChangedOnServerWithOldMtimeIsSentAgain(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "resend", Hosts: []*TestHost{h}})
	bin := p.AppDir(h) + "/v1.0.0/goapp"
	p.MustRaijin("deploy")
	build := fmt.Sprintf("%x", sha256.Sum256([]byte(readFile(t, filepath.Join(p.Dir, "dist", "goapp")))))
	serverSum := func() string { return strings.Fields(h.Run(t, "sha256sum "+bin))[0] }
	if got := serverSum(); got != build {
		t.Fatalf("after the first deploy the server's binary is %s, want the build's %s", got, build)
	}

	h.Run(t, fmt.Sprintf(`f=%s; m=$(stat -c %%y "$f"); cp "$f" "$f.x" && printf 'forged!!' | dd of="$f.x" bs=1 seek=4096 conv=notrunc status=none && mv "$f.x" "$f" && touch -d "$m" "$f"`, bin))
	if got := serverSum(); got == build {
		t.Fatal("the binary was not changed on the server")
	}
	r := p.MustRaijin("deploy")
	if n := bytesSent(t, r); n < 1e6 {
		t.Errorf("the redeploy sent %.0f bytes; the whole binary must go again:\n%s", n, r.Stderr)
	}
	if got := serverSum(); got != build {
		t.Errorf("after the redeploy the server's binary is %s, want the build's %s", got, build)
	}
}

// A first deploy sends the binary compressed; a real upgrade (the code built
// otherwise, so the machine code moves all through the file and the
// difference gives up) goes as a zstd patch against the live version's
// binary, rebuilt and checked on the server; a server without zstd gets
// gzip and no patch. The server always ends up with the exact build.
func TestBinaryUploadCompressedAndPatched(t *testing.T) {
	h := host(t, 0)
	p := NewProject(t, ProjectSpec{App: "zpatch", Hosts: []*TestHost{h}})
	url, dir := p.SiteURL(h), p.AppDir(h)
	build := filepath.Join(p.Dir, "dist", "goapp")
	// goamd64: the build's GOAMD64 level. Another level changes the
	// instructions in every function, so that the code moves all through the
	// file, as it does from one release of a program to the next.
	deploy := func(version, goamd64 string) (Result, int64) {
		t.Helper()
		p.Env = []string{"GOAMD64=" + goamd64}
		r := p.MustRaijin("deploy", "-v", "--set-version", version)
		data := readFile(t, build)
		if remote := h.Run(t, "sha256sum < "+dir+"/v"+version+"/goapp"); !strings.HasPrefix(remote, fmt.Sprintf("%x", sha256.Sum256([]byte(data)))) {
			t.Fatalf("the server's v%s/goapp differs from the build:\n%s", version, r.Stderr)
		}
		if _, body := Get(t, url); !strings.Contains(body, "goapp "+version+":") {
			t.Fatalf("GET / = %q, want %s", body, version)
		}
		return r, int64(len(data))
	}
	how := regexp.MustCompile(`upload \S+dist/goapp -> \S+ (.*)`)
	// shown is how the binary went: the last upload shown (a patch sent
	// before the check and cut is followed by the one that went).
	shown := func(r Result) string {
		m := how.FindAllStringSubmatch(r.Stderr, -1)
		if m == nil {
			t.Fatalf("-v shows no upload of the binary:\n%s", r.Stderr)
		}
		return m[len(m)-1][1]
	}

	r, size := deploy("1.0.0", "v1")
	sum100 := fmt.Sprintf("%x", sha256.Sum256([]byte(readFile(t, build))))
	// The first version's binary had no basis, and gets its sum note all
	// the same: the next upgrade's check need not hash it.
	if got := h.Run(t, "cat "+dir+"/v1.0.0/.goapp.sum"); !strings.HasPrefix(got, sum100+" ") {
		t.Errorf("the first version's sum note: %q, want its SHA-256 first", got)
	}
	first := bytesSent(t, r)
	if s := shown(r); !strings.HasPrefix(s, "(zstd, ") || first > 0.7*float64(size) {
		t.Errorf("the first deploy: %s, %.0f bytes sent of a %d-byte binary; want it compressed with zstd", s, first, size)
	}

	r, size = deploy("2.0.0", "v2")
	upgrade := bytesSent(t, r)
	if s := shown(r); !strings.HasPrefix(s, "as a zstd patch against "+dir+"/v1.0.0/goapp") {
		t.Errorf("the real upgrade went %s, want a zstd patch", s)
	}
	t.Logf("first deploy %.0f bytes sent, real upgrade %.0f (binary %d bytes)", first, upgrade, size)
	if upgrade > 0.75*first {
		t.Errorf("the patch sent %.0f bytes, the whole binary compressed %.0f: the patch should be much smaller", upgrade, first)
	}

	// A small change goes as a patch too, of a few kB (a difference would
	// be about 16 kB).
	r, _ = deploy("2.0.1", "v2")
	if s := shown(r); !strings.HasPrefix(s, "as a zstd patch against "+dir+"/v2.0.0/goapp") || bytesSent(t, r) > 100e3 {
		t.Errorf("a small change went %s (%.0f bytes sent), want a patch of a few kB", s, bytesSent(t, r))
	}
	if m := regexp.MustCompile(`sent \S+ as a zstd patch against \S+ \(([0-9]+) bytes of`).FindStringSubmatch(r.Stderr); m == nil {
		t.Errorf("-v does not say what the patch cost:\n%s", r.Stderr)
	} else if n, _ := strconv.Atoi(m[1]); n > 20e3 {
		t.Errorf("the patch of a new version string is %d bytes, want a few kB", n)
	}

	// The check takes the basis's SHA-256 from the note written beside it
	// when it was put in place, without reading it: a note forged with the
	// file's stat line is believed. Forged to name v1.0.0's build (which
	// this machine still has; another GOAMD64 level), the patch guessed
	// before the check is cut, the patch against v1.0.0 fails on the server
	// (its v2.0.1 is not that file), and the build still arrives exact,
	// another way.
	note := dir + "/v2.0.1/.goapp.sum"
	if got := h.Run(t, "cat "+note); !strings.HasPrefix(got, fmt.Sprintf("%x ", sha256.Sum256([]byte(readFile(t, build))))) {
		t.Errorf("sum note %s: %q, want the binary's SHA-256 first", note, got)
	}
	h.Run(t, "read -r s n < "+note+" && printf '%s %s\\n' "+sum100+" \"$n\" > "+note)
	r, _ = deploy("2.0.2", "v2")
	if !strings.Contains(r.Stderr, "has SHA-256 "+sum100[:12]) {
		t.Errorf("the check did not take the basis's sum from its note:\n%s", r.Stderr)
	}
	if !strings.Contains(r.Stderr, "from the patch failed") {
		t.Errorf("the patch against the basis the note named did not fail on the server:\n%s", r.Stderr)
	}

	// A server without zstd: gzip, no patch.
	h.Root(t, "mv /usr/bin/zstd /usr/bin/zstd.hidden")
	t.Cleanup(func() { h.Root(t, "[ ! -e /usr/bin/zstd.hidden ] || mv /usr/bin/zstd.hidden /usr/bin/zstd") })
	r, size = deploy("3.0.0", "v1")
	if s := shown(r); !strings.HasPrefix(s, "(gzip, ") {
		t.Errorf("to a server without zstd the upgrade went %s, want the whole binary with gzip", s)
	}
	if !strings.Contains(r.Stderr, "the patch sent before the check was cut") {
		t.Errorf("the patch guessed before the check was not cut:\n%s", r.Stderr)
	}
	// raijin remembers that this server takes no patch: nothing goes
	// before the check any more.
	r, _ = deploy("3.0.1", "v2")
	if strings.Contains(r.Stderr, "before the check") {
		t.Errorf("a patch went before the check to a server known to have no zstd:\n%s", r.Stderr)
	}
	if s := shown(r); !strings.HasPrefix(s, "by difference") && !strings.HasPrefix(s, "(gzip, ") {
		t.Errorf("to a server without zstd the upgrade went %s, want the difference or gzip", s)
	}
	if n := bytesSent(t, r); n > 0.7*float64(size) {
		t.Errorf("with gzip %.0f bytes were sent of a %d-byte binary", n, size)
	}
}
