#!/usr/bin/env bash
# Installs what the build, the tests and the demo need and a fresh Debian machine may
# lack: make, file, curl, musl-gcc (ring, and the full build's aws-lc-sys,
# compile C for the x86-64 musl target),
# Python's venv module (scripts/setup-venv.sh then installs zig and cargo-zigbuild, the
# aarch64 cross toolchain), umoci and skopeo (OCI image archives of the Talos extension
# and the server image, built without Docker), qemu-user-static (runs the arm64 binary
# in the build's and the tests' checks), and the Rust standard library for
# x86_64- and aarch64-unknown-linux-musl.
# Does nothing when everything is there.
set -euo pipefail

missing=()
command -v make >/dev/null || missing+=(make)
command -v file >/dev/null || missing+=(file)
command -v curl >/dev/null || missing+=(curl)
command -v musl-gcc >/dev/null || missing+=(musl-tools)
command -v umoci >/dev/null || missing+=(umoci)
command -v skopeo >/dev/null || missing+=(skopeo)
command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
if ! command -v python3 >/dev/null; then
    missing+=(python3 python3-venv)
elif ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    missing+=(python3-venv)
fi

if ((${#missing[@]})); then
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null; then
            sudo=(sudo)
        else
            echo "install-deps: missing ${missing[*]}; install them (apt-get install ${missing[*]}) or run as root" >&2
            exit 1
        fi
    fi
    echo "install-deps: installing ${missing[*]}" >&2
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# rust-toolchain.toml names the musl targets; older rustups don't install them by themselves.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
    if ! rustup target list --installed | grep -qx "$target"; then
        rustup target add "$target"
    fi
done

# A build from a clean clone (clippy, the two static release binaries, the test binaries
# and the virtual environment) takes about 4 GiB. A full disk otherwise shows up later as an
# obscure failure inside pip or the linker, so say it plainly here.
target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target"
free_kib="$(df -Pk "$target" | awk 'NR == 2 { print $4 }')"
if [ -n "$free_kib" ] && [ "$free_kib" -lt $((4 * 1024 * 1024)) ]; then
    echo "install-deps: warning: only $((free_kib / 1024)) MiB free where $target lives; a build from a clean clone needs about 4 GiB" >&2
fi
