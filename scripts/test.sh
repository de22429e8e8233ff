#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests need (Debian's
# mosquitto for the MQTT uplink tests), then vet, then every test with -race.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

# Debian packages the tests talk to: a real MQTT broker (uplink tests) and
# Python's websockets (interop tests run clients written against the seeds).
# The interop tests also need Node.js 20.10+ (for its WebSocket), as this
# machine image ships.
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
/usr/bin/python3 -c 'import websockets' >/dev/null 2>&1 || need+=(python3-websockets)
if [ ${#need[@]} -gt 0 ]; then
	echo "scripts/test.sh: installing ${need[*]}"
	sudo_cmd=""
	[ "$(id -u)" = 0 ] || sudo_cmd="sudo"
	$sudo_cmd apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi

test -z "$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
go vet ./...
# What was installed above is required: a test whose real part (mosquitto,
# python3-websockets, node) is missing fails rather than skips. This is the
# one switch (internal/testkit.Missing); CI=true changes nothing in the tests.
export FLOORHUB_REQUIRE_PARTS=1
go test -race -count=1 -timeout 20m ./... "$@"

# The gateways' binaries: static, stripped, and the arm64 one under 8 MiB.
scripts/cross-build.sh
