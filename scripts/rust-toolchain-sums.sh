#!/usr/bin/env bash
# Prints the vars.yaml lines that pin pkg.yaml's Rust toolchain: for each build
# architecture, the sha256 and sha512 of every archive pkg.yaml's `sources:` names
# (rustc, cargo and the host's rust-std for <arch>-unknown-linux-gnu, and rust-std for
# the <arch>-unknown-linux-musl target), for the release rust-toolchain.toml pins.
# Each download is checked against the sha256 the release's channel manifest lists
# before its sha512 is taken.
#
# usage: scripts/rust-toolchain-sums.sh > /tmp/sums && edit vars.yaml with its output
# Needs curl, python3 (3.11+, for tomllib), sha256sum, sha512sum.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dist=${RUST_DIST_SERVER:-https://static.rust-lang.org}
version=$(sed -n 's/^channel = "\(.*\)"$/\1/p' "$root/rust-toolchain.toml")
[ -n "$version" ] || { echo "rust-toolchain.toml names no channel" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl -fsSL --proto '=https' -o "$work/channel.toml" "$dist/dist/channel-rust-$version.toml"

echo "RUST_VERSION: \"$version\""
echo "RUST_DATE: \"$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["date"])' "$work/channel.toml")\""
for arch in x86_64 aarch64; do
    upper=${arch^^}
    for spec in rustc:gnu cargo:gnu rust-std:gnu rust-std:musl; do
        pkg=${spec%%:*} target=$arch-unknown-linux-${spec#*:}
        read -r url sha256 < <(python3 - "$work/channel.toml" "$pkg" "$target" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    t = tomllib.load(f)["pkg"][sys.argv[2]]["target"][sys.argv[3]]
if not t.get("available"):
    sys.exit(f"{sys.argv[2]} for {sys.argv[3]} is not in the release")
print(t["xz_url"], t["xz_hash"])
PY
)
        file=$work/${url##*/}
        curl -fsSL --proto '=https' -o "$file" "$url"
        echo "$sha256  $file" | sha256sum -c --quiet - >&2
        key=$(tr 'a-z-' 'A-Z_' <<<"$pkg")_${spec#*:}
        key=RUST_${upper}_${key^^}
        echo "${key}_SHA256: $sha256"
        echo "${key}_SHA512: $(sha512sum "$file" | cut -d' ' -f1)"
        rm -f "$file"
    done
done
