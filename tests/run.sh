#!/usr/bin/env bash
# Build crmsync and run its tests against throw-away PostgreSQL and MariaDB servers.
#
#   tests/run.sh [--bench] [--sanitize] [ctest args...]
#
#   tests/run.sh                 everything
#   tests/run.sh -R sqlite       only tests whose name matches (any ctest argument passes through)
#   tests/run.sh -L unit         only tests with a label
#   tests/run.sh --bench         tests, then every executable tests/bench/*_bench{,.sh}
#   tests/run.sh --sanitize      the unit and integration tests built with ASan + UBSan into
#                                build-sanitize (any error stops the program and fails its test)
#
# Environment: CI=true adds -DCRMSYNC_WERROR=ON (CRMSYNC_WERROR=ON|OFF overrides either way);
# CRMSYNC_BUILD_DIR (default build); CRMSYNC_TEST_TIMEOUT per-test default in seconds (900);
# CRMSYNC_SKIP_DEPS=1 skips tests/deps.sh. Besides the single servers (and a second MariaDB with
# lower_case_table_names=1, as on Windows) a three-node Galera
# cluster starts (tests/galera.sh, about 50 s) unless CRMSYNC_GALERA=0. Exits non-zero when the build, a test or a benchmark fails.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bench=0
sanitize=0
ctest_args=()
for arg in "$@"; do
    case $arg in
    --bench) bench=1 ;;
    --sanitize) sanitize=1 ;;
    *) ctest_args+=("$arg") ;;
    esac
done

build_dir=${CRMSYNC_BUILD_DIR:-build}
sanitize_flags=()
if ((sanitize)); then
    build_dir=${CRMSYNC_BUILD_DIR:-build-sanitize}
    sanitize_flags=(-DCRMSYNC_ASAN=ON -DCRMSYNC_UBSAN=ON)
    # The crmsync children of the integration tests inherit these.
    export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:strict_string_checks=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    if ((${#ctest_args[@]} == 0)); then ctest_args=(-R '^(unit|integration):'); fi
fi
stage=start
step() {
    stage=$1
    printf '\n==> %s\n' "$*"
}
ctest_log=
ctest_pgid=
# Every exit path ends with one verdict line; the servers and temp files go away whatever happens.
on_exit() {
    local rc=$?
    if [[ -n $ctest_pgid ]]; then kill -TERM -- "-$ctest_pgid" 2>/dev/null || true; fi
    if declare -F stop_galera >/dev/null; then stop_galera; fi
    if declare -F stop_db_servers >/dev/null; then stop_db_servers; fi
    if [[ -n $ctest_log ]]; then rm -f "$ctest_log" "$ctest_log.rc"; fi
    if [[ $stage != "done" ]]; then echo "run.sh: FAILED during '$stage' (exit $rc)" >&2; fi
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ ${CRMSYNC_SKIP_DEPS:-0} != 1 ]]; then
    step "dependencies"
    bash tests/deps.sh
fi

werror=${CRMSYNC_WERROR:-}
if [[ -z $werror ]]; then
    if [[ ${CI:-} == true ]]; then werror=ON; else werror=OFF; fi
fi

step "format"
bash tests/check_format.sh

step "configure ($build_dir, WERROR=$werror${sanitize_flags[*]+, ASan + UBSan})"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCRMSYNC_WERROR="$werror" \
    ${sanitize_flags[@]+"${sanitize_flags[@]}"}

step "build"
cmake --build "$build_dir" -j2

step "database servers"
# shellcheck source=tests/db_servers.sh
source tests/db_servers.sh
t0=$SECONDS
start_postgres
start_mariadb
# The second MariaDB (lower_case_table_names=1) serves one test, which fails under CI without it.
start_mariadb_lctn || echo "run.sh: warning: the MariaDB with lower_case_table_names=1 did not start" >&2
echo "servers up in $((SECONDS - t0))s"
# shellcheck source=tests/galera.sh
source tests/galera.sh
t0=$SECONDS
# Without a cluster the Galera tests fail (under CI) rather than skip, so a broken galera-4
# shows; the other tests still run. CRMSYNC_GALERA=0 saves its start for runs without them.
if [[ ${CRMSYNC_GALERA:-1} == 0 ]]; then
    echo "galera cluster not started (CRMSYNC_GALERA=0)"
elif start_galera || {
    # A start can fail once on a busy machine (a node that does not join in time); a second
    # one, on fresh ports and a fresh directory, keeps that from failing the whole run.
    echo "run.sh: the Galera cluster did not start; trying once more" >&2
    start_galera
}; then
    echo "galera cluster up in $((SECONDS - t0))s"
else
    echo "run.sh: warning: the Galera cluster did not start; the galera tests will fail" >&2
fi

step "tests"
ctest_log=$(mktemp -t crmsync-ctest.XXXXXX.log)
# ctest runs as a background job in its own process group (set -m) so that a TERM/INT sent to this
# script is handled at once (bash defers traps until a foreground command ends) and takes the
# tests down with it. Job control also keeps SIGINT un-ignored in the tests (plain `&` ignores it).
set -m
{
    rc=0
    ctest --test-dir "$build_dir" --output-on-failure -j1 --timeout "${CRMSYNC_TEST_TIMEOUT:-900}" \
        ${ctest_args[@]+"${ctest_args[@]}"} </dev/null || rc=$?
    echo "$rc" >"$ctest_log.rc"
} 2>&1 | tee "$ctest_log" &
ctest_pgid=$(jobs -p %%)
set +m
wait "$!" || true
ctest_pgid=
ctest_rc=$(cat "$ctest_log.rc" 2>/dev/null || echo 1)

passed=0
failed=0
total=0
summary=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$ctest_log" | tail -n 1 || true)
if [[ $summary =~ ([0-9]+)\ tests?\ failed\ out\ of\ ([0-9]+) ]]; then
    failed=${BASH_REMATCH[1]}
    total=${BASH_REMATCH[2]}
    passed=$((total - failed))
elif grep -q 'No tests were found' "$ctest_log"; then
    echo "run.sh: warning: ctest found no tests" >&2
fi
# A non-zero ctest without a failed test (bad arguments, crash of ctest itself) still fails the run.
if ((ctest_rc != 0 && failed == 0)); then failed=1; fi

bench_passed=0
bench_failed=0
if ((bench)); then
    step "benchmarks"
    benches=()
    if [[ -d tests/bench ]]; then
        while IFS= read -r -d '' f; do
            benches+=("$f")
        done < <(find tests/bench -maxdepth 1 -type f -perm -u+x \
            \( -name '*_bench' -o -name '*_bench.sh' \) -print0 | sort -z)
    fi
    if ((${#benches[@]} == 0)); then
        echo "no benchmarks in tests/bench (executables named *_bench or *_bench.sh)"
    fi
    if [[ $build_dir == /* ]]; then export CRMSYNC_BUILD_DIR=$build_dir; else export CRMSYNC_BUILD_DIR=$root/$build_dir; fi
    for b in ${benches[@]+"${benches[@]}"}; do
        echo "--- $b"
        t0=$SECONDS
        rc=0
        "./$b" </dev/null || rc=$?
        if ((rc == 0)); then
            bench_passed=$((bench_passed + 1))
            echo "--- $b: ok ($((SECONDS - t0))s)"
        else
            bench_failed=$((bench_failed + 1))
            echo "--- $b: FAILED (exit $rc, $((SECONDS - t0))s)"
        fi
    done
fi

stage="done"
echo
line="run.sh: tests: $passed passed, $failed failed"
((bench)) && line+="; benchmarks: $bench_passed passed, $bench_failed failed"
if ((failed + bench_failed > 0)); then
    echo "$line => FAILED"
    exit 1
fi
echo "$line => OK"
