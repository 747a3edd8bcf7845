#!/usr/bin/env bash
# Assembles the Talos system extension without Docker, for every architecture given:
#   <out>/extension/<platform>/      the image root: manifest.yaml + rootfs/ and nothing else
#   <out>/aws-iam-authenticator-extension-<version>.oci.tar   one OCI archive: an image index
#                                    with a linux/<platform> image per binary
#
# usage: scripts/build-extension.sh [BINARY... OUT_DIR]
#   BINARY   static musl builds; each one's platform (amd64, arm64) is read from its ELF
#            header, so a binary can only ever land in the image of its own architecture
#   OUT_DIR  default: dist
#   With no arguments: the `dist` builds of both architectures, into dist/.
# Set NO_OCI=1 to build only the trees. `make extension` runs this.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$root/scripts/lib.sh"
name=aws-iam-authenticator

die() { echo "build-extension: $*" >&2; exit 1; }

bins_and_out "$@"

# One version: Cargo.toml's. manifest.yaml and vars.yaml must say the same.
version=$(source_version)
grep -qx "  version: $version" "$root/manifest.yaml" || die "manifest.yaml version differs from Cargo.toml ($version)"
grep -qx "VERSION: $version" "$root/vars.yaml" || die "vars.yaml VERSION differs from Cargo.toml ($version)"

umask 022
rm -rf "$out/extension"
platforms=()
for bin in "${bins[@]}"; do
    platform=$(check_binary "$bin" "$version") || exit 1

    tree=$out/extension/$platform
    [ ! -e "$tree" ] || die "two binaries for $platform"
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
    echo "extension tree ($platform): $tree"
    platforms+=("$platform=$tree")
done

[ "${NO_OCI:-}" = 1 ] && exit 0

"$root/scripts/oci-image.sh" "$out/$name-extension-$version.oci.tar" "$version" "${platforms[@]}"
