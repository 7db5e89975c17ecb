#!/usr/bin/env bash
# ensure-go.sh: make a Go toolchain new enough for go.mod available (sourced).
# A machine of this project's kind has Go in /usr/local/go; elsewhere Debian's
# golang-go is installed and fetches the toolchain go.mod asks for.
export PATH="$PATH:/usr/local/go/bin:/root/go/bin"
if ! command -v go >/dev/null 2>&1; then
	echo "ensure-go: installing Debian's golang-go (it fetches the Go toolchain go.mod names)" >&2
	apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null
	export GOTOOLCHAIN=auto
fi
