package server

import (
	"context"
	"strings"

	"github.com/raijin-deploy/raijin/remote"
)

// CaddyImportScript and CaddyAdminScript are the one place raijin edits the
// main Caddyfile. CaddyImportScript makes the conf.d directory for the apps'
// sites and has the Caddyfile import conf.d/*.caddy, once, keeping the rest
// of the file. It prints "made
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

// CaddyAdminSocket is where Caddy's admin endpoint listens once raijin has
// set it up: a unix socket in /run/caddy, a directory only caddy (the user
// Caddy runs as, and its reload) and root can enter. On localhost:2019, its
// default, any local user (every app's own user among them) could
// reconfigure Caddy.
const CaddyAdminSocket = "/run/caddy/admin.sock"

// CaddyAdminUnit is the drop-in of caddy.service that makes /run/caddy.
const CaddyAdminUnit = "/etc/systemd/system/caddy.service.d/raijin-admin.conf"

// CaddyAdminScript has Caddy's admin endpoint listen on CaddyAdminSocket:
// the drop-in CaddyAdminUnit, and "admin unix//run/caddy/admin.sock" in the
// global options block of the main Caddyfile (added to the user's block, or
// a block of its own at the top). An admin setting of the user's own on a
// unix socket is kept; any other one (an address, "off", which would break
// "systemctl reload caddy") is left alone and the script fails, saying what
// to write instead. A running Caddy still listens on localhost:2019: the new
// configuration is loaded through there, so no request is lost. It prints
// "admin unit" and "admin socket" for what it changed. Run as root.
const CaddyAdminScript = `main=/etc/caddy/Caddyfile unit=` + CaddyAdminUnit + ` admin=unix/` + CaddyAdminSocket + `
want="# Written by raijin: /run/caddy holds Caddy's admin socket ($admin in
# $main); only caddy and root can enter it.
[Service]
RuntimeDirectory=caddy
RuntimeDirectoryMode=0700"
if [ "$(cat "$unit" 2>/dev/null)" != "$want" ]; then
  mkdir -p "${unit%/*}" && printf '%s\n' "$want" > "$unit" && systemctl daemon-reload && echo admin unit
fi
# The global options block is the file's first block, "{" on a line of its own.
state=$(awk '/^[[:space:]]*(#|$)/ { next }
!d { if ($1 != "{") s = "none"; else if (NF > 1) s = "inline " NR; else { s = "global " NR; d = 1; next }; exit }
d == 1 && $1 == "admin" { s = "admin " NR " " $2; exit }
{ d += gsub(/[{]/, "{") - gsub(/[}]/, "}"); if (d <= 0) exit }
END { print s ? s : "none" }' "$main") || exit 1
set -f; set -- $state
line="admin $admin"
case $1:${3-} in
admin:unix/*) ;;
admin:*) echo "$main:$2 sets admin ${3:-with no address}: raijin keeps Caddy's admin endpoint where only root can reach it (with localhost:2019 any local user, the apps' own included, can reconfigure Caddy; off breaks systemctl reload caddy). Replace that line with: $line" >&2; exit 5;;
inline:*) echo "$main:$2: the global options block is on one line: write it on lines of their own and add: $line" >&2; exit 5;;
*)
  cp -p "$main" "$main.raijin-prev"
  if [ "$1" = global ]; then
    awk -v n="$2" -v l="$line" '{ print } NR == n { print "\t# added by raijin: the admin endpoint only root can reach"; print "\t" l }' "$main.raijin-prev" > "$main"
  else
    { printf '# added by raijin: the admin endpoint only root can reach\n{\n\t%s\n}\n\n' "$line"; cat "$main.raijin-prev"; } > "$main"
  fi
  if ! out=$(caddy validate --config "$main" --adapter caddyfile 2>&1); then
    mv -f "$main.raijin-prev" "$main"
    echo "caddy validate rejected $main with $line added; it is back as it was. Add that line to its global options block by hand:" >&2
    printf '%s\n' "$out" | grep -v '^{"level":"info"' | tail -n 6 >&2; exit 5
  fi
  rm -f "$main.raijin-prev"
  if systemctl is-active -q caddy; then
    [ -d /run/caddy ] || install -d -o caddy -g caddy -m 0700 /run/caddy
    caddy reload --config "$main" --adapter caddyfile --address localhost:2019 --force >/dev/null 2>&1 || systemctl restart caddy
  fi
  echo admin socket;;
esac`

// CaddyAdmin runs CaddyAdminScript: it reports whether it wrote the drop-in
// and whether it set the admin endpoint in the main Caddyfile.
func CaddyAdmin(ctx context.Context, h remote.Host) (unit, socket bool, err error) {
	res, err := remote.Must(ctx, h, CaddyAdminScript, remote.RunOpts{Sudo: true})
	if err != nil {
		return false, false, err
	}
	return strings.Contains(res.Stdout, "admin unit"), strings.Contains(res.Stdout, "admin socket"), nil
}

// caddySiteScript installs the site read on stdin at $SITE (see CaddySite).
// It first runs CaddyImportScript and CaddyAdminScript, so that a server
// bootstrapped by an older raijin gets them on its next deploy.
const caddySiteScript = `set -e
touched=$(` + CaddyImportScript + `
` + CaddyAdminScript + `
)
main=/etc/caddy/Caddyfile
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
// it makes sure the main Caddyfile imports conf.d/*.caddy (and sets the
// admin endpoint, see CaddyAdminScript), validates the
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
