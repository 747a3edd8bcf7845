#!/usr/bin/env bash
# Writes an OCI archive (a tar of the OCI image layout, what `skopeo copy --all
# oci-archive:…` and `crane push` read) holding one multi-platform image: an image index
# with one single-layer image per platform, each layer one directory's tree.
#
# usage: scripts/oci-image.sh ARCHIVE TAG PLATFORM=ROOT_DIR... [-- umoci config flags…]
#   PLATFORM is the OCI (Go) architecture: amd64, arm64.
#   e.g. scripts/oci-image.sh dist/image.oci.tar v0.7.18 amd64=dist/image/amd64 \
#          arm64=dist/image/arm64 -- --config.user=65532:65532
# Needs umoci (scripts/install-deps.sh installs it) and python3. Works without root.
#
# The layout's index.json names TAG once, for the image index (as buildkit and
# `docker buildx` write a multi-platform OCI archive); the index lists the platform
# manifests, each with its `platform`, which is what containerd and Talos's imager pick by.
set -euo pipefail

die() { echo "oci-image: $*" >&2; exit 1; }

[ $# -ge 3 ] || die "usage: $0 ARCHIVE TAG PLATFORM=ROOT_DIR... [-- umoci config flags…]"
archive=$1 tag=$2
shift 2
platforms=() roots=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do
    case $1 in
        amd64=* | arm64=*) ;;
        *) die "expected PLATFORM=ROOT_DIR with PLATFORM amd64 or arm64, got ${1@Q}" ;;
    esac
    for p in "${platforms[@]}"; do
        [ "$p" != "${1%%=*}" ] || die "platform ${1%%=*} given twice"
    done
    [ -d "${1#*=}" ] || die "no directory ${1#*=}"
    platforms+=("${1%%=*}")
    roots+=("${1#*=}")
    shift
done
[ "${1:-}" != -- ] || shift
[ ${#platforms[@]} -gt 0 ] || die "no PLATFORM=ROOT_DIR given"

command -v umoci >/dev/null || die "umoci is missing: run scripts/install-deps.sh (or apt-get install umoci)"
command -v python3 >/dev/null || die "python3 is missing: run scripts/install-deps.sh"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
layout=$work/layout

# Without root, umoci must not try to chown or mknod: `unpack --rootless` maps the files
# the user owns to root in the image. `repack` takes no such flag (umoci 0.4's repack reads
# the mapping `unpack` recorded in the bundle).
rootless=()
[ "$(id -u)" = 0 ] || rootless=(--rootless)

umoci init --layout "$layout"
for i in "${!platforms[@]}"; do
    arch=${platforms[$i]} src=${roots[$i]}
    ref=$tag-$arch bundle=$work/bundle-$arch
    umoci new --image "$layout:$ref"
    umoci unpack "${rootless[@]}" --image "$layout:$ref" "$bundle" >/dev/null
    # Copy the tree (modes kept; owned by root like every file on a Talos node).
    cp -a "$src/." "$bundle/rootfs/"
    [ ${#rootless[@]} -gt 0 ] || chown -R 0:0 "$bundle/rootfs"
    umoci repack --image "$layout:$ref" "$bundle"
    umoci config --image "$layout:$ref" --os linux --architecture "$arch" \
        --config.label "org.opencontainers.image.version=$tag" \
        --config.label "org.opencontainers.image.title=aws-iam-authenticator" \
        "$@"
done
umoci gc --layout "$layout"

# Replace the per-platform tags by one image index named TAG.
python3 - "$layout" "$tag" "${platforms[@]}" <<'EOF'
import hashlib
import json
import os
import sys

layout, tag, platforms = sys.argv[1], sys.argv[2], sys.argv[3:]
REF = "org.opencontainers.image.ref.name"
INDEX = "application/vnd.oci.image.index.v1+json"
path = os.path.join(layout, "index.json")
with open(path) as f:
    top = json.load(f)
by_ref = {d.get("annotations", {}).get(REF): d for d in top["manifests"]}
manifests = []
for arch in platforms:
    d = {k: v for k, v in by_ref[f"{tag}-{arch}"].items() if k != "annotations"}
    d["platform"] = {"architecture": arch, "os": "linux"}
    manifests.append(d)
body = json.dumps(
    {"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests},
    separators=(",", ":"),
).encode()
digest = hashlib.sha256(body).hexdigest()
with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
    f.write(body)
top["manifests"] = [
    {"mediaType": INDEX, "digest": f"sha256:{digest}", "size": len(body), "annotations": {REF: tag}}
]
with open(path, "w") as f:
    json.dump(top, f, separators=(",", ":"))
EOF

mkdir -p "$(dirname "$archive")"
# Written next to the destination and renamed: a failed run never leaves half an archive.
tar -C "$layout" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf "$archive.tmp" .
mv -f "$archive.tmp" "$archive"
echo "OCI archive: $archive ($tag: ${platforms[*]})"
