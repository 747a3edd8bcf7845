#!/usr/bin/env bash
# Assembles the Talos system extension without Docker:
#   <out>/extension/                 the image root: manifest.yaml + rootfs/ and nothing else
#   <out>/aws-iam-authenticator-extension-<version>.oci.tar   an OCI image archive of it
#
# usage: scripts/build-extension.sh [BINARY] [OUT_DIR]
#   BINARY   static musl build (default: target/x86_64-unknown-linux-musl/dist/aws-iam-authenticator)
#   OUT_DIR  default: dist
# Set NO_OCI=1 to build only the tree.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
bin=${1:-$target_dir/x86_64-unknown-linux-musl/dist/aws-iam-authenticator}
out=${2:-$root/dist}
name=aws-iam-authenticator

die() { echo "build-extension: $*" >&2; exit 1; }

[ -x "$bin" ] || die "no executable at $bin (run: make dist)"
# The entrypoint runs in an otherwise empty container: it must not need a libc.
file -L "$bin" | grep -Eq 'statically linked|static-pie linked' || die "$bin is not statically linked"

# One version: Cargo.toml's. manifest.yaml and vars.yaml must say the same.
version=v$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n1)
grep -qx "  version: $version" "$root/manifest.yaml" || die "manifest.yaml version differs from Cargo.toml ($version)"
grep -qx "VERSION: $version" "$root/vars.yaml" || die "vars.yaml VERSION differs from Cargo.toml ($version)"
bin_version=v$("$bin" version --short)
[ "$bin_version" = "$version" ] || die "$bin is $bin_version, the sources are $version"

umask 022
tree=$out/extension
rm -rf "$tree"
ctr=$tree/rootfs/usr/local/lib/containers/$name
# Mount points inside the read-only container rootfs: the spec's mounts (the state dir,
# the host's CA roots) and the directory of the config file an ExtensionServiceConfig
# mounts (CONFIG_FILE).
mkdir -p "$ctr/usr/local/bin" "$ctr/usr/local/lib/$name" "$ctr/usr/local/etc/$name" \
  "$ctr/etc/ssl/certs" "$tree/rootfs/usr/local/etc/containers"
install -m 0644 "$root/manifest.yaml" "$tree/manifest.yaml"
install -m 0755 "$bin" "$ctr/usr/local/bin/$name"
install -m 0644 "$root/extension/$name.yaml" "$tree/rootfs/usr/local/etc/containers/$name.yaml"
chmod -R u=rwX,go=rX "$tree"
echo "extension tree: $tree"

[ "${NO_OCI:-}" = 1 ] && exit 0

"$root/scripts/oci-image.sh" "$tree" "$out/$name-extension-$version.oci.tar" "$version"
