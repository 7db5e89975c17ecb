#!/usr/bin/env bash
# release.sh VERSION: build raijin for linux and darwin on amd64 and arm64
# (static, CGO_ENABLED=0, -trimpath, VERSION stamped into `raijin --version`)
# into dist/VERSION/, with a SHA256SUMS file that `sha256sum -c SHA256SUMS`
# checks; the commit it was built from is recorded too.
# RAIJIN_DIST sets another output directory than dist/; RAIJIN_RELEASE_TARGETS
# other targets than the four (OS/ARCH, space-separated; the tests build for
# the host only).
set -euo pipefail
if [ $# -ne 1 ] || ! [[ $1 =~ ^v[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]*)?$ ]]; then
	echo "usage: scripts/release.sh VERSION   (VERSION as vMAJOR.MINOR.PATCH, e.g. v1.2.3)" >&2
	exit 2
fi
version=$1
cd "$(dirname "$0")/.."
. scripts/ensure-go.sh
# The commit, for `raijin --version`: the toolchain records it in a build
# from a clone, but not from a git worktree.
commit=$(git rev-parse HEAD 2>/dev/null || true)
if [ -n "$commit" ] && ! git diff --quiet HEAD 2>/dev/null; then
	echo "release.sh: warning: the tree has changes not committed: the binaries are not $commit" >&2
fi
targets=${RAIJIN_RELEASE_TARGETS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64}
out=${RAIJIN_DIST:-dist}/$version
rm -rf "$out"
mkdir -p "$out"
for target in $targets; do
	if ! [[ $target =~ ^[a-z0-9]+/[a-z0-9]+$ ]]; then
		echo "release.sh: RAIJIN_RELEASE_TARGETS: $target is not OS/ARCH" >&2
		exit 2
	fi
	os=${target%/*} arch=${target#*/}
	bin=raijin-$version-$os-$arch
	echo "== $bin" >&2
	CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath -buildvcs=auto \
		-ldflags "-s -w -X main.version=$version -X main.commit=$commit" -o "$out/$bin" ./cmd/raijin
done
(cd "$out" && sha256sum raijin-"$version"-* >SHA256SUMS)
echo "$out"
