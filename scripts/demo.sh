#!/usr/bin/env bash
# Local end-to-end demo, no AWS account needed: a local STS emulator stands in for AWS,
# `token` mints a token with fake keys, `verify` checks it against the emulator.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
bin="$target_dir/debug/aws-iam-authenticator"
emulator="$target_dir/debug/examples/sts_emulator"

cluster=demo-cluster
region=us-west-2
sts_host="sts.$region.amazonaws.com"
# AWS's documentation example keys: they only mean something to the emulator.
akid=AKIAIOSFODNN7EXAMPLE
secret=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
arn=arn:aws:iam::111122223333:user/alice
account=111122223333
user_id=AIDAEXAMPLEALICE

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Building the binary and the STS emulator"
cargo build --locked --quiet --bin aws-iam-authenticator --example sts_emulator

work="$(mktemp -d "${TMPDIR:-/tmp}/aws-iam-authenticator-demo.XXXXXX")"
pids=()
cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Only the keys and a private HOME: no profile, no instance metadata lookups.
clean_env=(env -i "PATH=$PATH" "HOME=$work/home"
    "AWS_CONFIG_FILE=$work/home/aws-config" "AWS_SHARED_CREDENTIALS_FILE=$work/home/aws-credentials"
    "AWS_ACCESS_KEY_ID=$akid" "AWS_SECRET_ACCESS_KEY=$secret" "AWS_EC2_METADATA_DISABLED=true")
mkdir -p "$work/home"

step "Starting the STS emulator (knows $akid as $arn)"
"$emulator" --identity "$akid,$secret,$arn,$account,$user_id" --ca-file "$work/sts-ca.pem" \
    >"$work/emulator.json" 2>"$work/emulator.log" &
pids+=($!)
for _ in $(seq 100); do
    [ -s "$work/emulator.json" ] && break
    sleep 0.1
done
addr="$(sed -n 's/.*"addr":"\([^"]*\)".*/\1/p' "$work/emulator.json")"
[ -n "$addr" ] || { echo "the emulator did not start:" >&2; cat "$work/emulator.log" >&2; exit 1; }
echo "listening on $addr; test CA in $work/sts-ca.pem"
sts=(--sts-resolve "$sts_host=$addr" --sts-ca-file "$work/sts-ca.pem")

step "aws-iam-authenticator token -i $cluster --region $region"
exec_credential="$("${clean_env[@]}" "$bin" token -i "$cluster" --region "$region")"
echo "$exec_credential" | cut -c1-160
token="$(sed -n 's/.*"token":"\([^"]*\)".*/\1/p' <<<"$exec_credential")"
[ -n "$token" ] || { echo "no token in the ExecCredential" >&2; exit 1; }
echo "the token is a presigned URL:"
python3 -c 'import base64,sys; t=sys.argv[1].split(".",1)[1]; print(base64.urlsafe_b64decode(t+"="*(-len(t)%4)).decode())' "$token" \
    | sed 's/&/\n    \&/g'

step "aws-iam-authenticator verify -i $cluster -t <token> -o json (STS at $addr)"
"${clean_env[@]}" "$bin" verify -i "$cluster" -t "$token" -o json "${sts[@]}"

step "The same token for another cluster is refused (the cluster id is signed)"
if "${clean_env[@]}" "$bin" verify -i other-cluster -t "$token" "${sts[@]}" 2>"$work/refused.log"; then
    echo "unexpected: the token verified for another cluster" >&2
    exit 1
fi
cat "$work/refused.log"

step "Done: shutting down the emulator"
