#!/usr/bin/env bash
# Packs a directory as the single layer of an OCI image and writes an OCI archive
# (a tar of the OCI image layout, what `skopeo copy oci-archive:…` and `crane push` read).
#
# usage: scripts/oci-image.sh ROOT_DIR ARCHIVE TAG [umoci config flags…]
#   e.g. scripts/oci-image.sh dist/image dist/image.oci.tar v0.7.18 --config.user=65532:65532
# Needs umoci (scripts/install-deps.sh installs it).
set -euo pipefail

src=$1 archive=$2 tag=$3
shift 3

die() { echo "oci-image: $*" >&2; exit 1; }

command -v umoci >/dev/null || die "umoci is missing: run scripts/install-deps.sh (or apt-get install umoci)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
layout=$work/layout
bundle=$work/bundle

# Without root, umoci must not try to chown or mknod.
rootless=()
[ "$(id -u)" = 0 ] || rootless=(--rootless)

umoci init --layout "$layout"
umoci new --image "$layout:$tag"
umoci unpack "${rootless[@]}" --image "$layout:$tag" "$bundle" >/dev/null
# Copy the tree (modes kept; owned by root like every file on a Talos node).
cp -a "$src/." "$bundle/rootfs/"
chown -R 0:0 "$bundle/rootfs" 2>/dev/null || true
umoci repack "${rootless[@]}" --image "$layout:$tag" "$bundle"
umoci config --image "$layout:$tag" \
  --config.label "org.opencontainers.image.version=$tag" \
  --config.label "org.opencontainers.image.title=aws-iam-authenticator" \
  "$@"
umoci gc --layout "$layout"

mkdir -p "$(dirname "$archive")"
tar -C "$layout" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf "$archive" .
echo "OCI archive: $archive ($tag)"
