#!/usr/bin/env bash
# demo.sh: build raijin, boot a local test server (Debian 12 with systemd,
# sshd, sudo, Caddy in systemd-nspawn), deploy the example app to it and print
# its URL. Run as root on Debian 12. Tear down with:
#   testdata/testhost/down.sh raijin-demo
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/ensure-go.sh

echo "== building raijin" >&2
go build -o bin/raijin ./cmd/raijin

echo "== booting the test server (the first time builds its root filesystem, about a minute)" >&2
state=$(testdata/testhost/up.sh raijin-demo 1 | tail -n1)
set -a; . "$state/env"; set +a

# A HOME of the demo's own, so your ~/.ssh is left alone: the test server's
# key, and its host key in known_hosts (host keys are always verified).
demo_home=/tmp/raijin-demo-home
mkdir -p "$demo_home/.ssh"
cp "$RAIJIN_TESTHOST_KEY" "$demo_home/.ssh/id_ed25519"
cp "$RAIJIN_TESTHOST_KNOWN_HOSTS" "$demo_home/.ssh/known_hosts"
chmod 700 "$demo_home/.ssh"; chmod 600 "$demo_home/.ssh/"*

echo "== raijin deploy" >&2
export DEMO_API_TOKEN=${DEMO_API_TOKEN:-demo-token-$RANDOM}
url=$(HOME=$demo_home GOCACHE=$(go env GOCACHE) GOMODCACHE=$(go env GOMODCACHE) \
	bin/raijin -c examples/demo/raijin.toml deploy | tail -n1)
echo "== the app answers:" >&2
curl -fsS "$url"
echo
echo "$url"
