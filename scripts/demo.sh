#!/usr/bin/env bash
# Local end-to-end demo, no AWS account needed. A local STS emulator stands in for AWS;
# `init` writes the webhook's key pair and kubeconfig; `server` runs the webhook with a
# sample mapping; `token` mints tokens with fake keys; two TokenReviews are posted over
# TLS exactly as kube-apiserver posts them (CA and URL from the generated kubeconfig):
# one allowed with the mapped user and groups, one denied. Then everything shuts down.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
bin="$target_dir/debug/aws-iam-authenticator"
emulator="$target_dir/debug/examples/sts_emulator"

cluster=demo-cluster
region=us-west-2
sts_host="sts.$region.amazonaws.com"
account=111122223333
# AWS's documentation example keys: they only mean something to the emulator.
alice_akid=AKIAIOSFODNN7EXAMPLE
alice_secret=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
alice_arn=arn:aws:iam::$account:user/alice
# A second identity that STS knows but the cluster does not map.
bob_akid=AKIAI44QH8DHBEXAMPLE
bob_secret=je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY
bob_arn=arn:aws:iam::$account:user/bob

# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Building the binary and the STS emulator"
cargo build --locked --quiet --bin aws-iam-authenticator --example sts_emulator

make_workdir demo

# Only the keys and a private HOME: no profile, no instance metadata lookups.
base_env=(env -i "PATH=$PATH" "HOME=$work/home" "AWS_EC2_METADATA_DISABLED=true")
alice_env=("${base_env[@]}" "AWS_ACCESS_KEY_ID=$alice_akid" "AWS_SECRET_ACCESS_KEY=$alice_secret")
bob_env=("${base_env[@]}" "AWS_ACCESS_KEY_ID=$bob_akid" "AWS_SECRET_ACCESS_KEY=$bob_secret")
mkdir -p "$work/home"

step "Starting the STS emulator (it knows alice and bob)"
start_emulator "$alice_akid,$alice_secret,$alice_arn,$account,AIDAEXAMPLEALICE" \
    "$bob_akid,$bob_secret,$bob_arn,$account,AIDAEXAMPLEBOB"
echo "listening on $sts_addr; its test CA is $sts_ca"

# Two free loopback ports; the webhook's goes into the kubeconfig `init` writes.
read -r port health_port < <(free_ports 2)

step "aws-iam-authenticator init -i $cluster --state-dir $work/state"
"${base_env[@]}" "$bin" init -i "$cluster" --hostname localhost --address 127.0.0.1 \
    --port "$port" --state-dir "$work/state" --generate-kubeconfig "$work/state/kubeconfig.yaml"
ls -l "$work/state"

cat >"$work/config.yaml" <<CONFIG
# alice is mapped; bob is not.
clusterID: $cluster
server:
  port: $port
  mapUsers:
  - userarn: $alice_arn
    username: alice
    groups:
    - system:masters
    - developers
CONFIG
step "The server's config file"
cat "$work/config.yaml"

step "aws-iam-authenticator server (https://127.0.0.1:$port; health on 127.0.0.1:$health_port)"
start_server "$health_port" -c "$work/config.yaml" --state-dir "$work/state" \
    --generate-kubeconfig "$work/state/kubeconfig.yaml" --kubeconfig-pregenerated=true \
    --address 127.0.0.1 "${sts[@]}"
echo "ready"

# What kube-apiserver takes from the webhook kubeconfig: the URL and the CA.
webhook_endpoint "$work/state/kubeconfig.yaml"
echo "webhook URL from the kubeconfig: $url"

mint() { # name of an env array → a bare token on stdout
    local -n environment=$1
    "${environment[@]}" "$bin" token -i "$cluster" --region "$region" --token-only
}

last_status=
review() { # token → prints the HTTP status and the answer
    local body
    body="$(review_body "$1")"
    last_status="$(curl -sS -o "$work/answer.json" -w '%{http_code}' --cacert "$work/webhook-ca.pem" \
        -H 'Content-Type: application/json' --data-binary "$body" "$url")"
    echo "HTTP $last_status"
    python3 -m json.tool "$work/answer.json"
}

step "alice: aws-iam-authenticator token -i $cluster --region $region --token-only"
alice_token="$(mint alice_env)"
echo "${alice_token:0:48}…, a presigned STS GetCallerIdentity URL:"
python3 -c 'import base64,sys; t=sys.argv[1].split(".",1)[1]; print(base64.urlsafe_b64decode(t+"="*(-len(t)%4)).decode())' "$alice_token" \
    | sed 's/&/\n    \&/g'

step "TokenReview for alice (mapped): allowed"
review "$alice_token"
[ "$last_status" = 200 ] || { echo "expected HTTP 200" >&2; cat "$work/server.log" >&2; exit 1; }

step "TokenReview for bob (a valid AWS identity the cluster does not map): denied"
review "$(mint bob_env)"
[ "$last_status" = 200 ] || { echo "expected HTTP 200 (authenticated: false)" >&2; cat "$work/server.log" >&2; exit 1; }

step "The same check by hand: aws-iam-authenticator verify -i $cluster -t <alice's token> -o json"
"${base_env[@]}" "$bin" verify -i "$cluster" -t "$alice_token" -o json "${sts[@]}"

step "Stopping the server with SIGTERM (it drains, then exits 0)"
kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
echo "server exit status: $status"

step "The server's log (stderr; it never contains a token)"
cat "$work/server.log"
[ "$status" = 0 ] || exit 1

step "Done"
