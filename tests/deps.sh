#!/usr/bin/env bash
# Installs what crmsync needs to build and test on Debian 12. Idempotent: when everything is
# installed it only runs dpkg-query and prints nothing.
#
#   tests/deps.sh            build deps + database servers and clients (for tests/run.sh)
#   tests/deps.sh --runtime  build deps + sqlite3 only (for examples/quickstart.sh)
#   tests/deps.sh --bench    everything, plus what tests/bench/ measures with (time, ab, nginx)
#
# Database services are never started by the install (a temporary policy-rc.d forbids it); the
# tests start their own servers on free ports (tests/db_servers.sh).
set -euo pipefail

build_pkgs=(
    build-essential cmake pkg-config
    libcurl4-openssl-dev libssl-dev nlohmann-json3-dev libsimdjson-dev libdeflate-dev zlib1g-dev libjemalloc-dev
    libsqlitecpp-dev libsqlite3-dev libsoci-dev libpq-dev libmariadb-dev tdsodbc unixodbc-dev
    libcli11-dev libfmt-dev libspdlog-dev libcpp-httplib-dev catch2 libboost-dev libpcre2-dev
    sqlite3 curl procps psmisc
)
# Checks that tests/run.sh runs besides the tests.
check_pkgs=(clang-format)
# galera-4 and rsync: the three-node cluster of the Galera tests (tests/galera.sh).
server_pkgs=(postgresql postgresql-client mariadb-server mariadb-client galera-4 rsync)
# time: peak memory of a run; apache2-utils (ab): the webhook receiver's own capacity; nginx:
# the webhook bench's receiver (its service is not started, see policy-rc.d below).
bench_pkgs=(time apache2-utils nginx)

die() {
    echo "deps.sh: error: $*" >&2
    exit 1
}

mode=all
for arg in "$@"; do
    case "$arg" in
        --runtime) mode=runtime ;;
        --bench) mode=bench ;;
        -h | --help)
            sed -n '2,10s/^# \{0,1\}//p' "$0"
            exit 0
            ;;
        *) die "unknown argument '$arg' (expected --runtime or --bench)" ;;
    esac
done

wanted=("${build_pkgs[@]}")
[[ $mode != runtime ]] && wanted+=("${server_pkgs[@]}" "${check_pkgs[@]}")
[[ $mode == bench ]] && wanted+=("${bench_pkgs[@]}")

command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script supports Debian/Ubuntu only"

missing=()
for pkg in "${wanted[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [[ $status == installed ]] || missing+=("$pkg")
done
((${#missing[@]} == 0)) && exit 0

sudo=()
if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 || die "missing packages (${missing[*]}) and not root; run as root or install sudo"
    sudo=(sudo -n)
fi

echo "deps.sh: installing ${#missing[@]} package(s): ${missing[*]}" >&2

log=$(mktemp -t crmsync-deps.XXXXXX.log)
policy=/usr/sbin/policy-rc.d
own_policy=0
cleanup() {
    if ((own_policy)); then "${sudo[@]}" rm -f "$policy"; fi
    rm -f "$log"
}
trap cleanup EXIT

# Keep maintainer scripts from starting postgresql/mariadb: invoke-rc.d and deb-systemd-invoke both
# honour policy-rc.d, and exit code 101 means "action forbidden". An existing policy is left alone.
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\n# temporary, from crmsync tests/deps.sh\nexit 101\n' |
        "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 0755 "$policy"
    own_policy=1
fi

export DEBIAN_FRONTEND=noninteractive
apt_opts=(-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold
    -o Dpkg::Use-Pty=0 -o APT::Color=0)
if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o Dpkg::Use-Pty=0 update \
    </dev/null >"$log" 2>&1; then
    cat "$log" >&2
    die "apt-get update failed (see above)"
fi
if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install "${apt_opts[@]}" \
    --no-install-recommends "${missing[@]}" </dev/null >>"$log" 2>&1; then
    tail -n 60 "$log" >&2
    die "apt-get install failed for: ${missing[*]} (last 60 lines of the apt log above)"
fi

still=()
for pkg in "${missing[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [[ $status == installed ]] || still+=("$pkg")
done
((${#still[@]} == 0)) || die "still not installed after apt-get: ${still[*]}"
echo "deps.sh: installed ${missing[*]}" >&2
