#!/usr/bin/env bash
# Creates (or refreshes) the Python virtual environment the integration tests and the
# aarch64 cross build use: $AWS_IAM_AUTHENTICATOR_TEST_VENV, else <repo>/.venv, with
# tests/requirements.txt and scripts/build-requirements.txt.
# Re-runs are cheap: pip runs again only when a requirements file changed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${AWS_IAM_AUTHENTICATOR_TEST_VENV:-$root/.venv}"
requirements=("$root/tests/requirements.txt" "$root/scripts/build-requirements.txt")
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    echo "setup-venv: creating $venv" >&2
    "$python" -m venv "$venv"
fi

stamp="$venv/.requirements.sha256"
want="$(cat "${requirements[@]}" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "setup-venv: installing ${requirements[*]}" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]/#/--requirement=}"
    echo "$want" >"$stamp"
fi
"$venv/bin/aws" --version >&2
"$venv/bin/cargo-zigbuild" --help >/dev/null
