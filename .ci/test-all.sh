#!/usr/bin/env bash
# Runs every test suite (F# Expecto, C# xunit, notebooks, packages) on an already built (Release) tree and ends with the one line
# "N passed, M failed" summed over all of them. Exit status is non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:-Release}
results=$(mktemp -d)
passed=0; failed=0

echo "== F# tests (Expecto + FsCheck)"
dotnet "tests/StatPhysFs.Tests/bin/$CONFIG/net10.0/StatPhysFs.Tests.dll" --summary --no-spinner --junit-summary "$results/expecto.xml" \
  | tee "$results/expecto.log"
rc=${PIPESTATUS[0]}
f=0; e=0
if [[ -f $results/expecto.xml ]]; then
  count() { grep -o "$1" "$results/expecto.xml" | wc -l; }
  t=$(count '<testcase '); f=$(count '<failure'); e=$(count '<error'); s=$(count '<skipped')
  passed=$((passed + t - f - e - s)); failed=$((failed + f + e))
else
  failed=$((failed + 1))
fi
(( rc != 0 && ${f:-0} + ${e:-0} == 0 )) && failed=$((failed + 1))

echo "== C# facade tests (xunit)"
dotnet test tests/StatPhysFs.CSharp.Tests/StatPhysFs.CSharp.Tests.csproj -c "$CONFIG" --no-build --nologo \
  --logger "trx;LogFileName=$results/xunit.trx" --results-directory "$results"
rc=$?
if [[ -f $results/xunit.trx ]]; then
  p=$(grep -o 'passed="[0-9]*"' "$results/xunit.trx" | head -1 | grep -o '[0-9]*')
  f=$(grep -o ' failed="[0-9]*"' "$results/xunit.trx" | head -1 | grep -o '[0-9]*')
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  (( rc != 0 && ${f:-0} == 0 )) && failed=$((failed + 1))
else
  failed=$((failed + 1))
fi

echo "== notebooks (dotnet-repl, the Polyglot kernels; one test per notebook)"
bash notebooks/execute.sh --out "$results/notebooks" --summary "$results/notebooks.txt"
if [[ -f $results/notebooks.txt ]]; then
  read -r p f < "$results/notebooks.txt"
  passed=$((passed + p)); failed=$((failed + f))
else
  failed=$((failed + 1))
fi

echo "== NuGet packages (pack into a folder feed; the sample app and the tool consume them; one test each)"
bash .ci/pack.sh artifacts/packages --summary "$results/pack.txt"
if [[ -f $results/pack.txt ]]; then
  read -r p f < "$results/pack.txt"
  passed=$((passed + p)); failed=$((failed + f))
else
  failed=$((failed + 1))
fi

echo "== the native CLI (Native AOT) against the JIT one (STATPHYS_SKIP_NATIVE=1 skips it)"
if [[ ${STATPHYS_SKIP_NATIVE:-0} == 1 ]]; then
  echo "  skipped: STATPHYS_SKIP_NATIVE=1"
else
  bash .ci/native-test.sh "$CONFIG" "$results/native.txt"
  if [[ -f $results/native.txt ]]; then
    read -r p f < "$results/native.txt"; passed=$((passed + p)); failed=$((failed + f))
  else
    failed=$((failed + 1))
  fi
fi

echo "== sweep on a one-node Slurm cluster (deploy/slurm; needs root and apt; STATPHYS_SKIP_SLURM=1 skips it)"
if [[ ${STATPHYS_SKIP_SLURM:-0} == 1 ]]; then
  echo "  skipped: STATPHYS_SKIP_SLURM=1"
else
  bash .ci/sweep-slurm-test.sh "$CONFIG" "$results/slurm.txt"
  if [[ -f $results/slurm.txt ]]; then
    read -r p f < "$results/slurm.txt"; passed=$((passed + p)); failed=$((failed + f))
  else
    failed=$((failed + 1))
  fi
fi

rm -rf "$results"
echo "$passed passed, $failed failed"
(( failed == 0 ))
