#!/usr/bin/env bash
# Executes every Polyglot notebook in this folder the way CI can (no .NET kernel is installable here): the F# code
# cells of a notebook run, in order, as one `dotnet fsi` session; a cell that throws, or a failed check (checks are
# written as `failwith`), makes that notebook fail. Each notebook counts as one test.
# Usage: notebooks/run.sh [--config Release] [--summary FILE] [NOTEBOOK.ipynb ...]
set -uo pipefail
shopt -s nullglob
here=$(cd "$(dirname "$0")" && pwd)
config=Release; summary=""; books=()
while (( $# )); do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --summary) summary=$2; shift 2 ;;
    *) books+=("$1"); shift ;;
  esac
done
(( ${#books[@]} )) || books=("$here"/*.ipynb)
lib="$here/../src/StatPhysFs.Cli/bin/$config/net10.0"
[[ -f $lib/StatPhysFs.dll ]] || { echo "notebooks: build first (./build.sh build); $lib has no StatPhysFs.dll" >&2; exit 2; }
passed=0; failed=0
for nb in "${books[@]}"; do
  name=$(basename "$nb" .ipynb)
  script="$(cd "$(dirname "$nb")" && pwd)/.$name.run.fsx"
  bad=$(jq -r '[.cells[] | select(.cell_type=="code") | (.metadata.polyglot_notebook.kernelName // "fsharp")
               | select(. != "fsharp")] | length' "$nb")
  if [[ $bad != 0 ]]; then
    echo "notebooks: $name has $bad code cells in a kernel this runner cannot execute (only fsharp)" >&2
    failed=$((failed + 1)); continue
  fi
  {
    echo "#I \"$lib\""
    jq -r '.cells | to_entries[] | select(.value.cell_type=="code")
           | "printfn \"--- cell \(.key) ---\"\n" + (.value.source | if type=="array" then join("") else . end) + "\n;;"' "$nb"
  } > "$script"
  start=$SECONDS
  if dotnet fsi --quiet --exec "$script"; then
    echo "notebook $name: passed ($((SECONDS - start)) s)"; passed=$((passed + 1))
  else
    echo "notebook $name: FAILED ($((SECONDS - start)) s)"; failed=$((failed + 1))
  fi
  rm -f "$script"
done
[[ -n $summary ]] && echo "$passed $failed" > "$summary"
echo "notebooks: $passed passed, $failed failed"
(( failed == 0 ))
