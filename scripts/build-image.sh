#!/usr/bin/env bash
# The container image the server DaemonSet runs: scratch + the static binary and the CA
# roots it needs to reach STS, non-root; one image per architecture given, in one index.
#
# usage: scripts/build-image.sh [BINARY... OUT_DIR]
#   BINARY   static musl builds; each one's platform (amd64, arm64) is read from its ELF header
#   OUT_DIR  default: dist
#   With no arguments: the `dist` builds of both architectures, into dist/.
# writes <out>/image/<platform>/ and <out>/aws-iam-authenticator-<version>.oci.tar
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$root/scripts/lib.sh"
name=aws-iam-authenticator

die() { echo "build-image: $*" >&2; exit 1; }

bins_and_out "$@"

version=$(source_version)
# The server calls STS over HTTPS: it needs the public CA roots (Debian's ca-certificates).
# They are data, the same for every architecture.
ca_bundle=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
[ -s "$ca_bundle" ] || die "no CA bundle at $ca_bundle (apt-get install ca-certificates, or set CA_BUNDLE)"

umask 022
rm -rf "$out/image"
platforms=()
for bin in "${bins[@]}"; do
    platform=$(check_binary "$bin" "$version") || exit 1

    tree=$out/image/$platform
    [ ! -e "$tree" ] || die "two binaries for $platform"
    mkdir -p "$tree/usr/local/bin" "$tree/etc/ssl/certs" "$tree/tmp"
    chmod 1777 "$tree/tmp"
    install -m 0755 "$bin" "$tree/usr/local/bin/$name"
    install -m 0644 "$ca_bundle" "$tree/etc/ssl/certs/ca-certificates.crt"
    platforms+=("$platform=$tree")
done

"$root/scripts/oci-image.sh" "$out/$name-$version.oci.tar" "$version" "${platforms[@]}" -- \
    --config.user=65532:65532 \
    --config.entrypoint="/usr/local/bin/$name" \
    --config.workingdir=/ \
    --clear=config.cmd \
    --config.env="PATH=/usr/local/bin" \
    --config.env="SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"
