package server

import (
	"context"
	"strings"

	"github.com/raijin-deploy/raijin/remote"
)

// CaddyImportScript is the one place raijin edits the main Caddyfile: it
// makes the conf.d directory for the apps' sites and has the Caddyfile import
// conf.d/*.caddy, once, keeping the rest of the file. It prints "made
// conf.d" and "imported" for what it changed. Run as root.
const CaddyImportScript = `main=/etc/caddy/Caddyfile
[ -d /etc/caddy/conf.d ] || { mkdir -p /etc/caddy/conf.d && echo made conf.d; }
if [ ! -e "$main" ]; then printf '{\n}\n' > "$main"; fi
if ! grep -Eq '^[[:space:]]*import[[:space:]]+(/etc/caddy/)?conf\.d/\*\.caddy' "$main"; then
  printf '\n# added by raijin: one file per app\nimport conf.d/*.caddy\n' >> "$main"; echo imported
fi`

// CaddyImport runs CaddyImportScript: it reports whether it made the conf.d
// directory and whether it added the import.
func CaddyImport(ctx context.Context, h remote.Host) (madeDir, imported bool, err error) {
	res, err := remote.Must(ctx, h, CaddyImportScript, remote.RunOpts{Sudo: true})
	if err != nil {
		return false, false, err
	}
	return strings.Contains(res.Stdout, "made conf.d"), strings.Contains(res.Stdout, "imported"), nil
}

// caddySiteScript installs the site read on stdin at $SITE (see CaddySite).
const caddySiteScript = `set -e
main=/etc/caddy/Caddyfile
touched=$(` + CaddyImportScript + `
)
t=$SITE.raijin-$$; trap 'rm -f "$t"' EXIT
(umask 022; cat > "$t")
if cmp -s "$t" "$SITE" && [ -z "$touched" ] && systemctl is-active -q caddy; then echo same; exit 0; fi
chmod 0644 "$t"
had=; if [ -e "$SITE" ]; then cp -p "$SITE" "$SITE.raijin-prev"; had=1; fi
mv -f "$t" "$SITE"; trap - EXIT
restore() { if [ -n "$had" ]; then mv -f "$SITE.raijin-prev" "$SITE"; else rm -f "$SITE"; fi; }
if ! out=$(caddy validate --config "$main" --adapter caddyfile 2>&1); then
  restore; echo "caddy validate rejected the site; the previous file is back:" >&2
  printf '%s\n' "$out" | grep -v '^{"level":"info"' | tail -n 8 >&2; exit 3
fi
if systemctl is-active -q caddy; then act=reload; else act=restart; fi
if ! systemctl $act caddy 2>&1; then
  restore; systemctl $act caddy || true
  echo "systemctl $act caddy failed; the previous site is back:" >&2
  journalctl -u caddy -n 8 --no-pager -o cat >&2 || true; exit 4
fi
rm -f "$SITE.raijin-prev"
echo changed`

// CaddySite installs a Caddy site file at sitePath (in /etc/caddy/conf.d):
// it makes sure the main Caddyfile imports conf.d/*.caddy, validates the
// whole configuration with the new file in place, and reloads Caddy. An
// invalid site or a failed reload puts the previous file back. It reports
// whether anything changed; an unchanged file costs no reload.
func CaddySite(ctx context.Context, h remote.Host, sitePath string, content []byte) (bool, error) {
	res, err := remote.Must(ctx, h, caddySiteScript, remote.RunOpts{Sudo: true, Stdin: content, Env: map[string]string{"SITE": sitePath}})
	if err != nil {
		return false, err
	}
	return strings.Contains(res.Stdout, "changed"), nil
}
