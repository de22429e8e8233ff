#!/usr/bin/env bash
# Builds floorhub's Debian packages with dpkg-deb:
# dist/floorhub_<version>_<arch>.deb for arm64, armhf and amd64.
#
#   scripts/package.sh [VERSION]
#       cross-builds the binaries (scripts/cross-build.sh, which empties
#       dist/ and checks the 8 MiB limit), then packages all three.
#   scripts/package.sh -bin FILE -arch ARCH [-out DIR] [VERSION]
#       packages one binary built already (the tests use this).
#
# The armhf package carries the ARMv6 binary: Raspberry Pi OS's 32-bit armhf
# is built for ARMv6, and that binary runs on every Pi, the Zero and the 1
# included; the ARMv7 one would not.
#
# VERSION defaults to the last v* tag (v1.2.3 -> 1.2.3; commits after it:
# 1.2.3+4.gabcdef0), or 0.0~git<date>.<commit> when there is none.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

bin="" arch="" out=dist
while [ $# -gt 0 ]; do
	case "$1" in
	-bin) bin="$2"; shift 2 ;;
	-arch) arch="$2"; shift 2 ;;
	-out) out="$2"; shift 2 ;;
	-*) echo "package.sh: unknown flag $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
if [ -n "$bin$arch" ] && { [ -z "$bin" ] || [ -z "$arch" ]; }; then
	echo "package.sh: -bin and -arch go together" >&2
	exit 2
fi

version="${1:-}"
if [ -z "$version" ]; then
	if d=$(git describe --tags --match 'v[0-9]*' 2>/dev/null); then
		# v1.2.3-4-gabcdef0 -> 1.2.3+4.gabcdef0
		version=$(echo "${d#v}" | sed -E 's/-([0-9]+)-g([0-9a-f]+)$/+\1.g\2/')
	else
		version="0.0~git$(git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null || date -u +%Y%m%d).$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
	fi
fi
version="${version#v}"
if ! [[ "$version" =~ ^[0-9][A-Za-z0-9.+~]*$ ]]; then
	echo "package.sh: $version is not a Debian version for a native package (digits first; letters, digits, . + ~)" >&2
	exit 2
fi

for tool in dpkg-deb gzip; do
	command -v "$tool" >/dev/null || { echo "package.sh: $tool is needed (apt-get install dpkg gzip)" >&2; exit 1; }
done

pkg=packaging/deb
# DEB_MAINTAINER names who answers for the packages; the default is a
# placeholder until the project has a public address.
maintainer="${DEB_MAINTAINER:-floorhub maintainers <maintainers@floorhub.invalid>}"

# copyright writes the copyright file: floorhub's notice, then the licence of
# Go and of every module linked into the binary, read from the module cache.
copyright() {
	local binary="$1" modcache goroot
	modcache=$(go env GOMODCACHE)
	goroot=$(go env GOROOT)
	cat "$pkg/copyright.head"
	printf '\nThe program is statically linked with the Go standard library and with\nthe Go modules below. Their copyright and licence notices follow.\n'
	printf '\n==> Go %s (the standard library and runtime)\n\n' "$(go env GOVERSION)"
	cat "$goroot/LICENSE"
	go version -m "$binary" | awk '$1 == "dep" { print $2, $3 }' | while read -r path ver; do
		# The module cache escapes capitals: Foo -> !foo.
		dir="$modcache/$(echo "$path" | sed -E 's/([A-Z])/!\L\1/g')@$ver"
		printf '\n==> %s %s\n' "$path" "$ver"
		found=0
		for f in "$dir"/LICENSE* "$dir"/LICENCE* "$dir"/COPYING* "$dir"/NOTICE* "$dir"/edl-v10 "$dir"/epl-v20; do
			[ -f "$f" ] || continue
			printf '\n--- %s\n\n' "$(basename "$f")"
			if grep -q 'TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION' "$f" &&
				grep -q 'Apache License' "$f" && grep -q 'Version 2.0, January 2004' "$f"; then
				# Debian ships this text once, for every package to refer to.
				echo "The Apache License, Version 2.0; its text is in /usr/share/common-licenses/Apache-2.0."
			else
				cat "$f"
			fi
			found=1
		done
		if [ "$found" = 0 ]; then
			echo "package.sh: no licence file for $path $ver in $dir (go mod download it)" >&2
			return 1
		fi
	done
}

# build_deb packages binary $1 for Debian architecture $2 into $out.
build_deb() {
	local binary="$1" debarch="$2" stage doc deb
	stage=$(mktemp -d)
	stages+=("$stage")
	doc="$stage/usr/share/doc/floorhub"
	install -d -m 0755 "$stage/DEBIAN" "$stage/usr/bin" "$stage/etc/floorhub" "$stage/lib/systemd/system" \
		"$stage/lib/udev/rules.d" "$doc/examples" "$stage/usr/share/man/man8" "$stage/usr/share/lintian/overrides"
	install -m 0755 "$binary" "$stage/usr/bin/floorhub-agent"
	install -m 0644 systemd/floorhub.yaml "$stage/etc/floorhub/floorhub.yaml"
	install -m 0644 systemd/floorhub.service "$stage/lib/systemd/system/floorhub.service"
	install -m 0644 systemd/60-floorhub.rules "$stage/lib/udev/rules.d/60-floorhub.rules"
	install -m 0644 systemd/floorhub.example.yaml "$doc/examples/floorhub.example.yaml"
	install -m 0644 README.md "$doc/README.md"
	for f in docs/*.md; do install -m 0644 "$f" "$doc/$(basename "$f")"; done
	gzip -9n <"$pkg/floorhub-agent.8" >"$stage/usr/share/man/man8/floorhub-agent.8.gz"
	install -m 0644 "$pkg/lintian-overrides" "$stage/usr/share/lintian/overrides/floorhub"
	copyright "$binary" >"$doc/copyright"
	chmod 0644 "$doc/copyright" "$stage/usr/share/man/man8/floorhub-agent.8.gz"
	{
		printf 'floorhub (%s) unstable; urgency=medium\n\n' "$version"
		printf '  * Built from commit %s.\n\n' "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
		printf ' -- %s  %s\n' "$maintainer" "$(date -uR -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")"
	} | gzip -9n >"$doc/changelog.gz"
	chmod 0644 "$doc/changelog.gz"

	install -m 0755 "$pkg/postinst" "$pkg/prerm" "$pkg/postrm" "$stage/DEBIAN/"
	echo /etc/floorhub/floorhub.yaml >"$stage/DEBIAN/conffiles"
	sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$debarch/" -e "s/@MAINTAINER@/$maintainer/" \
		-e "s/@SIZE@/$(du -sk --exclude=DEBIAN "$stage" | cut -f1)/" "$pkg/control.in" >"$stage/DEBIAN/control"
	(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum >DEBIAN/md5sums)
	chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/md5sums"

	mkdir -p "$out"
	deb="$out/floorhub_${version}_${debarch}.deb"
	SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}" \
		dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
	rm -rf "$stage"
	echo "$deb"
}
stages=()
trap 'rm -rf "${stages[@]}"' EXIT

if [ -n "$bin" ]; then
	build_deb "$bin" "$arch"
	exit 0
fi

scripts/cross-build.sh "$version"
build_deb dist/floorhub-agent-linux-arm64 arm64
build_deb dist/floorhub-agent-linux-armv6 armhf
build_deb dist/floorhub-agent-linux-amd64 amd64
