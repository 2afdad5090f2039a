#!/usr/bin/env bash
# Fails when a first-party C++ file differs from what clang-format (.clang-format) makes of it.
#   tests/check_format.sh          check, list the files that differ
#   tests/check_format.sh --fix    reformat them in place
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

command -v clang-format >/dev/null 2>&1 || {
    echo "check_format.sh: error: clang-format not found (tests/deps.sh installs it)" >&2
    exit 1
}
files=()
while IFS= read -r -d '' f; do files+=("$f"); done < <(
    find cmd lib drivers tests \( -name '*.cpp' -o -name '*.hpp' \) -type f -print0 | sort -z)

if [[ ${1:-} == --fix ]]; then
    clang-format -i "${files[@]}"
    exit 0
fi
bad=()
for f in "${files[@]}"; do
    clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if ((${#bad[@]} > 0)); then
    echo "check_format.sh: ${#bad[@]} file(s) differ from clang-format's style:" >&2
    printf '  %s\n' "${bad[@]}" >&2
    echo "check_format.sh: hint: run tests/check_format.sh --fix and commit the result" >&2
    exit 1
fi
echo "check_format.sh: ${#files[@]} files formatted"
