#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and runs each from its seed corpus.
#
#   tests/fuzz/run.sh [seconds]     each target for `seconds` (default 30)
#
# Environment: CRMSYNC_FUZZ_BUILD_DIR (default build-fuzz); CRMSYNC_FUZZ_TARGETS (default all:
# "url time retry_after json_body copy_row binary_copy"). New inputs go to a scratch corpus, so the checked
# in seeds stay small; a crash leaves its input as build-fuzz/crash-<target>-* to replay with
# `build-fuzz/tests/fuzz/fuzz_<target> FILE`. Exits non-zero when a build or a target fails.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
seconds=${1:-30}
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds == 0)); then
    echo "usage: tests/fuzz/run.sh [seconds]  (a positive number of seconds per target)" >&2
    exit 2
fi
build_dir=${CRMSYNC_FUZZ_BUILD_DIR:-build-fuzz}
targets=(${CRMSYNC_FUZZ_TARGETS:-url time retry_after json_body copy_row binary_copy})
if ! command -v clang++ >/dev/null; then
    echo "run.sh: clang++ is needed for libFuzzer (apt-get install clang)" >&2
    exit 2
fi

cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
    -DCRMSYNC_FUZZ=ON -DCRMSYNC_TESTS=OFF >/dev/null
cmake --build "$build_dir" -j2 --target "${targets[@]/#/fuzz_}"

failed=()
for t in "${targets[@]}"; do
    scratch="$build_dir/fuzz-corpus/$t"
    mkdir -p "$scratch"
    echo "==> fuzz_$t for ${seconds}s"
    if ! "$build_dir/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$build_dir/crash-$t-" \
        "$scratch" "tests/fuzz/corpus/$t" 2>&1 | tail -n 20; then
        failed+=("$t")
    fi
done
if ((${#failed[@]} > 0)); then
    echo "fuzz: FAILED: ${failed[*]}"
    exit 1
fi
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each without a finding"
