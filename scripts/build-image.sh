#!/usr/bin/env bash
# The container image the server DaemonSet runs: scratch + the static binary and the CA
# roots it needs to reach STS, non-root.
#
# usage: scripts/build-image.sh [BINARY] [OUT_DIR]
# writes <out>/aws-iam-authenticator-<version>.oci.tar
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
bin=${1:-$target_dir/x86_64-unknown-linux-musl/dist/aws-iam-authenticator}
out=${2:-$root/dist}
name=aws-iam-authenticator

die() { echo "build-image: $*" >&2; exit 1; }
[ -x "$bin" ] || die "no executable at $bin (run: make dist)"
file -L "$bin" | grep -Eq 'statically linked|static-pie linked' || die "$bin is not statically linked"
version=v$("$bin" version --short)
# The server calls STS over HTTPS: it needs the public CA roots (Debian's ca-certificates).
ca_bundle=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
[ -s "$ca_bundle" ] || die "no CA bundle at $ca_bundle (apt-get install ca-certificates, or set CA_BUNDLE)"

umask 022
tree=$out/image
rm -rf "$tree"
mkdir -p "$tree/usr/local/bin" "$tree/etc/ssl/certs" "$tree/tmp"
chmod 1777 "$tree/tmp"
install -m 0755 "$bin" "$tree/usr/local/bin/$name"
install -m 0644 "$ca_bundle" "$tree/etc/ssl/certs/ca-certificates.crt"

"$root/scripts/oci-image.sh" "$tree" "$out/$name-$version.oci.tar" "$version" \
  --config.user=65532:65532 \
  --config.entrypoint="/usr/local/bin/$name" \
  --config.workingdir=/ \
  --clear=config.cmd \
  --config.env="PATH=/usr/local/bin" \
  --config.env="SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"
