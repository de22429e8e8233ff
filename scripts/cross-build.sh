#!/usr/bin/env bash
# Builds static, stripped floorhub agents for the gateways (linux arm64,
# armv7, armv6) and amd64 into dist/, with SHA-256 sums, and prints each
# size. The arm64 binary must stay under 8 MiB.
#   scripts/cross-build.sh [VERSION]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
version="${1:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
out=dist
rm -rf "$out"
mkdir -p "$out"
limit=$((8 * 1024 * 1024))
# The build tags the README documents (section "On a gateway"); the build is
# exactly `go build -trimpath -tags "$tags" -ldflags '-s -w -X ...'`, with no
# per-package compiler flags. nethttpomithttp2 leaves out net/http's bundled
# HTTP/2: the agent serves plain HTTP/1.1 (WebSocket upgrades need it) and
# makes no HTTP client requests, so HTTP/2 is dead code that costs about
# 320 KB on arm64.
tags=nethttpomithttp2
# The release toolchain is pinned: the size depends on it (this tree's arm64
# binary is 7,995,554 bytes with Go 1.26.8 and 8,519,840 with Go 1.27.1).
# The go command fetches it from the module proxy when the local Go differs.
export GOTOOLCHAIN="${FLOORHUB_GO_TOOLCHAIN:-go1.26.8}"
status=0
for target in arm64 armv7 armv6 amd64; do
	goarch="$target"
	goarm=""
	case "$target" in
	armv7) goarch=arm goarm=7 ;;
	armv6) goarch=arm goarm=6 ;;
	esac
	bin="$out/floorhub-agent-linux-$target"
	CGO_ENABLED=0 GOOS=linux GOARCH="$goarch" GOARM="$goarm" \
		go build -trimpath -buildvcs=false -tags "$tags" -ldflags "-s -w -X main.version=$version" -o "$bin" ./cmd/agent
	size=$(stat -c %s "$bin")
	awk -v n="$(basename "$bin")" -v s="$size" 'BEGIN { printf "%-32s %9d bytes  %5.2f MiB\n", n, s, s / 1048576 }'
	if [ "$target" = arm64 ] && [ "$size" -ge "$limit" ]; then
		echo "cross-build: the arm64 binary is over 8 MiB" >&2
		status=1
	elif [ "$target" = arm64 ]; then
		# Sizes move in 64 KiB steps (segment alignment): a small addition
		# can cost a whole step.
		echo "  arm64: $((limit - size)) bytes under the 8 MiB limit"
	fi
done
(cd "$out" && sha256sum floorhub-agent-* > SHA256SUMS)
echo "version $version; sums in $out/SHA256SUMS"
exit $status
