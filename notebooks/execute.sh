#!/usr/bin/env bash
# Executes every Polyglot notebook in this folder on the real .NET Interactive kernels (the local tool dotnet-repl,
# restored by `dotnet tool restore`) and writes the executed notebooks, with their outputs and inline figures, to
# OUT (default docs/notebooks). A cell that throws, or a failed check (checks are written as `failwith`), makes
# dotnet-repl exit non-zero and that notebook fail. Each notebook counts as one test.
# Needs a Release build of the library, the reporting library and the facade (`./build.sh build`).
# Usage: notebooks/execute.sh [--out DIR] [--summary FILE] [NOTEBOOK.ipynb ...]
set -uo pipefail
shopt -s nullglob
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out="$root/docs/notebooks"; summary=""; books=()
while (( $# )); do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --summary) summary=$2; shift 2 ;;
    *) books+=("$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"); shift ;;
  esac
done
(( ${#books[@]} )) || books=("$here"/*.ipynb)
for dll in src/StatPhysFs/bin/Release/net10.0/StatPhysFs.dll src/StatPhysFs.Reporting/bin/Release/net10.0/StatPhysFs.Reporting.dll \
           facade/StatPhysFs.CSharp/bin/Release/net10.0/StatPhysFs.CSharp.dll; do
  [[ -f $root/$dll ]] || { echo "notebooks: build first (./build.sh build): $dll is missing" >&2; exit 2; }
done
mkdir -p "$out"; out=$(cd "$out" && pwd)
passed=0; failed=0; total=$SECONDS
for nb in "${books[@]}"; do
  name=$(basename "$nb" .ipynb)
  start=$SECONDS
  # Relative #r paths resolve against the working directory, so run from the notebook's folder.
  (cd "$(dirname "$nb")" && dotnet tool run dotnet-repl -- --run "$(basename "$nb")" --exit-after-run \
     --default-kernel fsharp --output-path "$out/$name.ipynb" </dev/null >"$out/.$name.log" 2>&1)
  rc=$?
  # Links to the documentation are written relative to notebooks/; the executed copy lives in docs/notebooks/.
  [[ -f $out/$name.ipynb ]] && sed -i 's#](\.\./docs/#](../#g' "$out/$name.ipynb"
  if (( rc == 0 )); then
    echo "notebook $name: passed ($((SECONDS - start)) s)"; passed=$((passed + 1)); rm -f "$out/.$name.log"
  else
    echo "notebook $name: FAILED, exit code $rc ($((SECONDS - start)) s); executed notebook: $out/$name.ipynb"
    failed=$((failed + 1))
    # The failing cells' errors, from the executed notebook (or dotnet-repl's own output when there is none).
    if [[ -f $out/$name.ipynb ]] && command -v jq >/dev/null; then
      jq -r '.cells | to_entries[] | .key as $k | .value.outputs[]? | select(.output_type == "error")
             | "  cell \($k): \(.evalue)"' "$out/$name.ipynb" | head -40
    else
      tail -n 40 "$out/.$name.log"
    fi
  fi
done
[[ -n $summary ]] && echo "$passed $failed" > "$summary"
echo "notebooks: $passed passed, $failed failed ($((SECONDS - total)) s)"
(( failed == 0 ))
