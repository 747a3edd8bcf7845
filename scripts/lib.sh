# Sourced by the scripts. For scripts/demo.sh and the benches: a local stack on loopback,
# made of the STS emulator, `init` and `server`; set `bin` and `emulator` (paths of the built
# binaries) before calling its functions, and call `make_workdir` (or `bench_stack`) first;
# processes started here are added to `pids` and stopped on exit. For the extension and
# image builds: the architecture of a binary, and running one of another architecture (at
# the end).

# make_workdir NAME: a temp dir in `work`, removed on exit after every process in `pids`
# has been sent SIGTERM and reaped.
make_workdir() {
    work="$(mktemp -d "${TMPDIR:-/tmp}/aws-iam-authenticator-$1.XXXXXX")"
    pids=()
    trap _cleanup EXIT
    trap 'exit 130' INT TERM
}

_cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
    exit "$status"
}

# Prints N free loopback TCP ports, space separated.
free_ports() {
    python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))' "$1"
}

# start_emulator AKID,SECRET,ARN,ACCOUNT,USERID...
# Starts the STS emulator knowing those identities; sets `sts_addr`, `sts_ca` and `sts`
# (the `--sts-resolve`/`--sts-ca-file` flags that send STS calls for `sts_host` to it).
start_emulator() {
    local args=() identity
    for identity in "$@"; do
        args+=(--identity "$identity")
    done
    sts_ca="$work/sts-ca.pem"
    "$emulator" "${args[@]}" --ca-file "$sts_ca" >"$work/emulator.json" 2>"$work/emulator.log" &
    pids+=($!)
    for _ in $(seq 100); do
        [ -s "$work/emulator.json" ] && break
        sleep 0.1
    done
    sts_addr="$(sed -n 's/.*"addr":"\([^"]*\)".*/\1/p' "$work/emulator.json")"
    [ -n "$sts_addr" ] || { echo "the emulator did not start:" >&2; cat "$work/emulator.log" >&2; return 1; }
    # Tokens keep their real STS URL; only the connection goes to the emulator.
    sts=(--sts-resolve "$sts_host=$sts_addr" --sts-ca-file "$sts_ca")
}

# start_server HEALTH_PORT SERVER-ARGS...
# Starts `server` in the background (stderr in $work/server.log), sets `server_pid`, and
# waits until its /readyz answers.
start_server() {
    local health_port=$1
    shift
    "${base_env[@]}" "$bin" server --health-address "127.0.0.1:$health_port" "$@" \
        >"$work/server.out" 2>"$work/server.log" &
    server_pid=$!
    pids=("$server_pid" "${pids[@]}")
    for _ in $(seq 100); do
        curl -fsS "http://127.0.0.1:$health_port/readyz" >/dev/null 2>&1 && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "the server did not become ready:" >&2
    cat "$work/server.log" >&2
    return 1
}

# webhook_endpoint KUBECONFIG: what kube-apiserver takes from the webhook kubeconfig.
# Sets `url` and writes the CA to $work/webhook-ca.pem.
webhook_endpoint() {
    url="$(sed -n 's/^ *server: *//p' "$1" | head -1)"
    sed -n 's/^ *certificate-authority-data: *//p' "$1" | head -1 | base64 -d >"$work/webhook-ca.pem"
}

# review_body TOKEN: a TokenReview as kube-apiserver sends it.
review_body() {
    printf '{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"%s"}}' "$1"
}

# install_tools NAME COMMAND:PACKAGE...: installs (apt-get) the Debian packages of the commands
# that are missing, saying so as NAME.
install_tools() {
    local name=$1 pair missing=()
    shift
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
    done
    [ "${#missing[@]}" -gt 0 ] || return 0
    echo "$name: installing ${missing[*]}" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
}

# bench_stack NAME BIN: the benches' common set-up: the cluster ID, region and STS host, one
# identity (AWS's documentation example keys, for the emulator); the work dir; `base_env`, with the allocator settings the example DaemonSet and `talos-init`
# give the served server (README "Memory"; glibc ignores them), so that the musl builds are
# measured as they are deployed; three free ports (`port`, `health_port`, `echo_port`);
# BIN's `init` of `$work/state`; the server's config `$work/config.yaml` (`arn` mapped).
bench_stack() {
    cluster=bench-cluster
    region=us-west-2
    sts_host="sts.$region.amazonaws.com"
    akid=AKIAIOSFODNN7EXAMPLE
    secret=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
    arn=arn:aws:iam::111122223333:user/alice
    make_workdir "$1"
    base_env=(env -i "PATH=$PATH" "HOME=$work/home" "AWS_EC2_METADATA_DISABLED=true"
        "MIMALLOC_ARENA_EAGER_COMMIT=0" "MIMALLOC_PURGE_DELAY=0")
    mkdir -p "$work/home"
    read -r port health_port echo_port < <(free_ports 3)
    "${base_env[@]}" "$2" init -i "$cluster" --hostname localhost --address 127.0.0.1 --port "$port" \
        --state-dir "$work/state" --generate-kubeconfig "$work/state/kubeconfig.yaml" >/dev/null 2>&1
    cat >"$work/config.yaml" <<CONFIG
clusterID: $cluster
server:
  port: $port
  mapUsers:
  - userarn: $arn
    username: alice
    groups: [system:masters]
CONFIG
}

# check_allowed URL BODY-FILE [SECONDS]: the benches' sample before a load: the answer to
# BODY-FILE must be an acceptance (within SECONDS, 10), else the server's last log lines
# and exit 1.
check_allowed() {
    local answer
    answer="$(curl -sk --max-time "${3:-10}" -H 'Content-Type: application/json' --data-binary "@$2" "$1")"
    grep -q '"authenticated":true' <<<"$answer" || {
        echo "not an acceptance from $1: $answer" >&2
        tail -5 "$work/server.log" >&2 || true
        exit 1
    }
}

# write_bodies_lua FILE: wrk's Lua script for a file of request bodies, one per line (one
# token each): `wrk -s FILE BODIES THREADS`; each thread walks the file from its own offset.
write_bodies_lua() {
    cat >"$1" <<'LUA'
local threads = 0
function setup(thread)
    thread:set("id", threads)
    threads = threads + 1
end
function init(args)
    bodies = {}
    for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
    step = tonumber(args[2])
    i = id
end
function request()
    local body = bodies[(i % #bodies) + 1]
    i = i + step
    return wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
end
LUA
}

# ---- Binaries of several architectures (the extension and image builds source this too) ----

# The version of the sources, `v` + Cargo.toml's (the one source of truth); needs `root`.
source_version() {
    echo "v$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n1)"
}

# check_binary BIN VERSION: prints BIN's platform (amd64, arm64) if it is an executable,
# statically linked ELF (it runs in an otherwise empty container, without a libc) that
# runs and reports VERSION; else says why on stderr and fails. Needs the caller's `die`.
check_binary() {
    local bin=$1 version=$2 platform bin_version
    [ -x "$bin" ] || die "no executable at $bin (run: make dist)"
    platform=$(elf_platform "$bin") || die "$bin is not an amd64 or arm64 ELF executable"
    file -L "$bin" | grep -Eq 'statically linked|static-pie linked' || die "$bin is not statically linked"
    bin_version=v$(run_binary "$bin" version --short) || die "$bin does not run"
    [ "$bin_version" = "$version" ] || die "$bin is $bin_version, the sources are $version"
    echo "$platform"
}

# elf_platform BINARY: the OCI platform architecture (Go's name) of an ELF executable,
# from its e_machine field, or nothing (and status 1) for anything else.
elf_platform() {
    [ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ] || return 1
    case "$(od -An -tu2 -j18 -N2 "$1" | tr -d ' ')" in
        62) echo amd64 ;;
        183) echo arm64 ;;
        *) return 1 ;;
    esac
}

# host_platform: this machine's architecture, as elf_platform names it.
host_platform() {
    case "$(uname -m)" in
        x86_64) echo amd64 ;;
        aarch64 | arm64) echo arm64 ;;
        *) uname -m ;;
    esac
}

# run_binary BINARY ARGS...: runs a static binary of any supported architecture, a foreign
# one under qemu-user (Debian's qemu-user-static; no binfmt_misc registration needed).
run_binary() {
    local bin=$1 platform
    shift
    platform="$(elf_platform "$bin")" || { echo "$bin is not an amd64 or arm64 ELF executable" >&2; return 1; }
    if [ "$platform" = "$(host_platform)" ]; then
        "$bin" "$@"
    else
        local qemu
        case "$platform" in
            amd64) qemu=qemu-x86_64-static ;;
            arm64) qemu=qemu-aarch64-static ;;
        esac
        command -v "$qemu" >/dev/null || {
            echo "$qemu is missing: run scripts/install-deps.sh (apt-get install qemu-user-static)" >&2
            return 1
        }
        "$qemu" "$bin" "$@"
    fi
}

# bins_and_out [BINARY... OUT_DIR]: the arguments of the extension and image builds. Sets
# `bins` and `out`; with no arguments, the `dist` builds of both architectures into dist/.
# Needs `root` and `die`.
bins_and_out() {
    if [ $# -eq 0 ]; then
        local target_dir=${CARGO_TARGET_DIR:-$root/target}
        set -- "$target_dir"/{x86_64,aarch64}-unknown-linux-musl/dist/aws-iam-authenticator "$root/dist"
    fi
    [ $# -ge 2 ] || die "usage: $0 [BINARY... OUT_DIR]"
    out=${@: -1}
    bins=("${@:1:$#-1}")
}
