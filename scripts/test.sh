#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests need (Debian's
# mosquitto for the MQTT uplink tests, qemu-user for the ARM runs), then vet,
# then every test with -race, then the store, hub, uplink, driver and agent
# tests again for the gateways' ARM CPUs under qemu-user, then the
# cross-build and the Debian packages.
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
# User-mode emulators: the ARM test binaries run under them on another host.
{ command -v qemu-arm && command -v qemu-aarch64; } >/dev/null 2>&1 || need+=(qemu-user)
# For operations: lintian checks the .deb (packaging/), systemd's
# systemd-analyze verifies the unit (it installs and works in a container,
# where it is not the init), and prometheus's promtool parses /metrics
# (cmd/agent).
command -v lintian >/dev/null 2>&1 || need+=(lintian)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# udev's udevadm parses the package's udev rule (packaging/).
command -v udevadm >/dev/null 2>&1 || need+=(udev)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# The Modbus driver tests (sensors/modbus) read from a third-party server,
# Debian's pymodbus, over TCP and over a pseudo-terminal pair from socat.
/usr/bin/python3 -c 'import pymodbus, serial_asyncio' >/dev/null 2>&1 || need+=(python3-pymodbus)
command -v socat >/dev/null 2>&1 || need+=(socat)
# The Engine.IO and Socket.IO protocol suites (cmd/sioconformance, when
# ../shared/conformance exists) run on Node.js with npm: their run.sh
# installs the suites' npm dependencies into a cache folder on first use.
command -v npm >/dev/null 2>&1 || need+=(npm)
# The dashboard's end-to-end tests (web/e2e) drive Debian's Chromium,
# headless, through the DevTools protocol.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
	echo "scripts/test.sh: installing ${need[*]}"
	sudo_cmd=""
	[ "$(id -u)" = 0 ] || sudo_cmd="sudo"
	$sudo_cmd apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The stock socket.io-client that cmd/sioconformance's test runs, pinned by
# its package-lock.json.
(cd cmd/sioconformance/testdata/client && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
# The Sparkplug B tests (uplink/mqtt) decode what the gateway publishes with
# Eclipse Tahu's npm sparkplug-payload, pinned by the package-lock.json in its
# test folder; npm ci (from npm's cache when it can) is skipped when that
# lock is already installed (the stamp is its copy).
spdecode=uplink/mqtt/testdata/spdecode
if ! cmp -s "$spdecode/package-lock.json" "$spdecode/node_modules/.floorhub-installed-lock" 2>/dev/null; then
	(cd "$spdecode" && npm ci --prefer-offline --no-audit --no-fund --ignore-scripts >/dev/null &&
		cp package-lock.json node_modules/.floorhub-installed-lock)
fi

test -z "$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
go vet ./...
# What was installed above is required: a test whose real part (mosquitto,
# python3-websockets, node) is missing fails rather than skips. This is the
# one switch (internal/testkit.Missing); CI=true changes nothing in the tests.
export FLOORHUB_REQUIRE_PARTS=1
# The dashboard tests' screenshots: a folder CI keeps as artifacts.
export FLOORHUB_SCREENSHOTS="${FLOORHUB_SCREENSHOTS:-$PWD/artifacts/screenshots}"
go test -race -count=1 -timeout 20m ./... "$@"

# The same tests on the gateways' CPUs, in qemu-user: ARMv6 (Pi Zero and
# Pi 1: an ARM1176) and arm64 (emulated as the Pi 4's Cortex-A72, which, like
# the Pi 3's A53, lacks the LSE atomics of the Pi 5's A76, so Go takes its
# LL/SC paths). They catch what amd64 cannot: 32-bit int and pointers,
# 64-bit atomics on a 32-bit CPU, the ARM code generators and syscall ABIs
# (not ARM's weaker memory ordering: the emulator runs on the host's). There
# is no -race on arm. go test -exec runs each test binary in the emulator;
# FLOORHUB_TEST_EMULATOR tells the tests that run a binary built for the
# target (their own, testkit.Reexec, or the agent, testkit.Command) to do the
# same. A target that is the host's own architecture already ran natively
# above. Not here: interop (clients in Python and Node, nothing ARM-specific
# on the Go side that cmd/agent does not run) and the internal/ checks.
arm_pkgs=(./store/... ./hub/... ./uplink/... ./sensors/... ./agent/... ./auth/... ./command/... ./cmd/agent/...)
hostarch="$(go env GOHOSTARCH)"
for target in armv6 arm64; do
	case "$target" in
	armv6) goarch=arm goarm=6 emu="qemu-arm -cpu arm1176" ;;
	arm64) goarch=arm64 goarm="" emu="qemu-aarch64 -cpu cortex-a72" ;;
	esac
	[ "$goarch" != "$hostarch" ] || continue
	echo "scripts/test.sh: ${arm_pkgs[*]} on $target under $emu"
	FLOORHUB_TEST_EMULATOR="$emu" CGO_ENABLED=0 GOARCH="$goarch" GOARM="$goarm" \
		go test -exec "$emu" -count=1 -timeout 30m "${arm_pkgs[@]}" "$@"
done

# The gateways' binaries (static, stripped, the arm64 one under 8 MiB:
# scripts/cross-build.sh) and their Debian packages.
scripts/package.sh
