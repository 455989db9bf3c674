#!/usr/bin/env bash
# The native (Native AOT) CLI in CI: no printf-family call left that the native binary cannot format (one test),
# `./build.sh publish --native-only` (one test; installs clang and zlib1g-dev with apt when missing and root),
# then .ci/native-compare.sh: representative commands with the native and the JIT build, documents compared.
#   bash .ci/native-test.sh CONFIG SUMMARY_FILE    (writes "passed failed" to SUMMARY_FILE)
set -uo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:-Release}
summary=${2:?usage: native-test.sh CONFIG SUMMARY_FILE}
passed=0; failed=0
start=$(date +%s)

if /usr/bin/python3 .ci/printf-to-interpolated.py --check $(git ls-files 'src/*.fs' 2>/dev/null || find src -name '*.fs'); then
  echo "ok   no printf-family call with arguments in src (the native binary cannot format them)"; passed=$((passed + 1))
else
  echo "FAIL printf-family calls left: run python3 .ci/printf-to-interpolated.py on the files above"; failed=$((failed + 1))
fi

# The native link needs a C toolchain: clang (any clang-N) and zlib.
if ! { command -v clang || ls /usr/bin/clang-[0-9]*; } >/dev/null 2>&1 || [[ ! -e /usr/include/zlib.h ]]; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "installing clang and zlib1g-dev (apt)"
    apt-get update -qq >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clang zlib1g-dev >/dev/null 2>&1
  fi
fi

if CONFIG=$CONFIG ./build.sh publish --native-only; then
  echo "ok   native publish ($(($(date +%s) - start)) s so far)"; passed=$((passed + 1))
  bash .ci/native-compare.sh artifacts/statphys-linux-x64/statphys "src/StatPhysFs.Cli/bin/$CONFIG/net10.0/statphys.dll" \
    --summary "$summary.compare"
  if [[ -f $summary.compare ]]; then
    read -r p f < "$summary.compare"; passed=$((passed + p)); failed=$((failed + f)); rm -f "$summary.compare"
  else
    failed=$((failed + 1))
  fi
else
  echo "FAIL native publish"; failed=$((failed + 1))
fi
echo "native: $(($(date +%s) - start)) s"
echo "$passed $failed" > "$summary"
