#!/usr/bin/env bash
# The native (Native AOT) statphys against the JIT one: a set of representative commands run with both, their
# documents compared number by number (wall-time fields ignored), their exit codes and error lines compared.
#   bash .ci/native-compare.sh NATIVE [JIT_DLL] [--summary FILE]
# NATIVE: the native binary (artifacts/statphys-linux-x64/statphys); JIT_DLL: statphys.dll of the Release build.
# One test per command; ends with "N passed, M failed" (and writes "N M" to FILE with --summary).
# Same seed, same numbers: both builds run the same IL, so the documents must agree to the last bit except where
# the JIT and the native compiler may fuse or reorder floating-point operations differently: relative 1e-12.
set -uo pipefail
cd "$(dirname "$0")/.."
native=${1:?usage: native-compare.sh NATIVE [JIT_DLL] [--summary FILE]}
jit=${2:-src/StatPhysFs.Cli/bin/Release/net10.0/statphys.dll}
summary=
[[ ${3:-} == --summary ]] && summary=${4:-}
[[ ${2:-} == --summary ]] && { jit=src/StatPhysFs.Cli/bin/Release/net10.0/statphys.dll; summary=${3:-}; }
py=/usr/bin/python3
[[ -x $py ]] || py=python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0; failed=0

# The peer's K = 2 initial state as an --init document (kept in the repository's own words: Q, R, T, v, vTeacher).
cat > "$work/init.json" <<'EOF'
{"Q": [[0.2, 0.01], [0.01, 0.3]], "R": [[0.02, -0.01], [0.0, 0.015]], "T": [[1, 0], [0, 1]], "v": [1, 1], "vTeacher": [1, 1]}
EOF

# compare NAME EXT ARGS...: runs `ARGS --out FILE.EXT` with both; the documents must agree.
compare() {
  local name=$1 ext=$2; shift 2
  local a="$work/$name.jit.$ext" b="$work/$name.native.$ext"
  local ra rb
  dotnet "$jit" "$@" --out "$a" 2> "$work/$name.jit.err"; ra=$?
  "$native" "$@" --out "$b" 2> "$work/$name.native.err"; rb=$?
  if (( ra != rb )); then
    echo "FAIL $name: exit codes $ra (JIT) and $rb (native)"; sed 's/^/  /' "$work/$name.native.err" | head -3
    failed=$((failed + 1)); return
  fi
  if (( ra != 0 )); then
    echo "FAIL $name: both exited with $ra"; sed 's/^/  /' "$work/$name.jit.err" | head -3
    failed=$((failed + 1)); return
  fi
  if agree "$a" "$b"; then
    echo "ok   $name"; passed=$((passed + 1))
  else
    echo "FAIL $name: the documents differ"; failed=$((failed + 1))
  fi
}

# agree A B: the two documents (JSON or CSV) agree number by number (relative 1e-12), wall times ignored.
agree() {
  "$py" - "$1" "$2" <<'EOF'
import json, math, sys
a, b = sys.argv[1], sys.argv[2]
# Wall-clock fields differ run to run; the library version line of a sweep folder is the same build.
def timing(k):
    return "wall" in k or k.endswith("_seconds") or k in ("elapsed", "elapsed_s", "time_s", "solver_seconds")
bad = []
def num(x, y, where):
    if x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)):
        return
    if abs(x - y) > 1e-12 * max(abs(x), abs(y), 1e-300):
        bad.append(f"{where}: {x!r} vs {y!r}")
def walk(x, y, where):
    if isinstance(x, dict) and isinstance(y, dict):
        for k in sorted(set(x) | set(y)):
            if timing(k):
                continue
            if k not in x or k not in y:
                bad.append(f"{where}/{k}: only in one")
            else:
                walk(x[k], y[k], f"{where}/{k}")
    elif isinstance(x, list) and isinstance(y, list):
        if len(x) != len(y):
            bad.append(f"{where}: lengths {len(x)} vs {len(y)}")
        for i, (u, v) in enumerate(zip(x, y)):
            walk(u, v, f"{where}[{i}]")
    elif isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool):
        num(float(x), float(y), where)
    elif x != y:
        bad.append(f"{where}: {str(x)[:60]!r} vs {str(y)[:60]!r}")
if a.endswith(".json"):
    walk(json.load(open(a)), json.load(open(b)), "")
else:
    # CSV: '#' lines must match except wall times; numbers cell by cell.
    la, lb = open(a).read().splitlines(), open(b).read().splitlines()
    if len(la) != len(lb):
        bad.append(f"line counts {len(la)} vs {len(lb)}")
    for i, (u, v) in enumerate(zip(la, lb)):
        if u.startswith("#") or v.startswith("#"):
            strip = lambda s: " ".join(w for w in s.split() if "wall" not in w)
            if strip(u) != strip(v):
                bad.append(f"line {i + 1}: {u[:60]!r} vs {v[:60]!r}")
            continue
        for j, (p, q) in enumerate(zip(u.split(","), v.split(","))):
            try:
                num(float(p), float(q), f"line {i + 1} col {j + 1}")
            except ValueError:
                if p != q:
                    bad.append(f"line {i + 1} col {j + 1}: {p!r} vs {q!r}")
for x in bad[:5]:
    print("  " + x)
sys.exit(1 if bad else 0)
EOF
}

# refuse NAME ARGS...: a bad input; both must exit 2 with the same one line on standard error.
refuse() {
  local name=$1; shift
  local ea eb ra rb
  ea=$(dotnet "$jit" "$@" 2>&1 >/dev/null); ra=$?
  eb=$("$native" "$@" 2>&1 >/dev/null); rb=$?
  if (( ra == 2 && rb == 2 )) && [[ $ea == "$eb" ]] && [[ $(printf '%s\n' "$eb" | wc -l) == 1 ]]; then
    echo "ok   $name"; passed=$((passed + 1))
  else
    echo "FAIL $name: exit $ra / $rb; JIT: $ea; native: $eb"; failed=$((failed + 1))
  fi
}

# same NAME ARGS...: standard output and exit code identical (help texts, version).
same() {
  local name=$1; shift
  local oa ob ra rb
  oa=$(dotnet "$jit" "$@" 2>&1); ra=$?
  ob=$("$native" "$@" 2>&1); rb=$?
  if (( ra == rb )) && [[ $oa == "$ob" ]]; then
    echo "ok   $name"; passed=$((passed + 1))
  else
    echo "FAIL $name: exit $ra / $rb, or the texts differ"; diff <(echo "$oa") <(echo "$ob") | head -5
    failed=$((failed + 1))
  fi
}

same version --version
same help help
same committee-help online committee --help
compare linear json online linear --t-end 5 --points 11
compare linear-csv csv online linear --t-end 5 --points 11 --ridge 0.1 --grid log
compare linear-simulate json online linear --t-end 2 --points 5 --simulate --dim 200 --seeds 2
compare linear-diverged json online linear --lr 5 --t-end 5 --points 6
compare committee json online committee --t-end 50 --points 6
compare committee-init json online committee --init "$work/init.json" --t-end 1e4 --points 5
compare committee-init-csv csv online committee --init "$work/init.json" --t-end 100 --points 5
compare committee-simulate json online committee --t-end 2 --points 3 --simulate --dim 100 --seeds 2
compare committee-relu json online committee --student relu --lr2 0.1 --t-end 5 --points 3
compare dmft-exact json dmft glm --exact --t-end 2
compare dmft-logistic json dmft glm --loss logistic --teacher sign --rho 4 --t-end 1 --mc-samples 500 --replicas 2
compare dmft-committee json dmft committee --t-end 0.5 --mc-samples 200 --replicas 2
compare simulate-sgf json simulate sgf --t-end 0.5 --dim 100 --seeds 2
compare sde json sde --paths 500 --t-end 0.5
compare sde-weak-order json sde weak-order --t-end 0.5
# A sweep: run into a folder and merge it, with each binary (a folder records the library version, which holds
# the commit: each binary merges its own folder).
if dotnet "$jit" sweep run examples/sweeps/online-linear-ridge.json --out "$work/sweep.jit" --parallel 2 2>/dev/null &&
   "$native" sweep run examples/sweeps/online-linear-ridge.json --out "$work/sweep.native" --parallel 2 2>/dev/null &&
   dotnet "$jit" sweep merge "$work/sweep.jit" --no-wall-time --out "$work/sweep.jit.csv" 2>/dev/null &&
   "$native" sweep merge "$work/sweep.native" --no-wall-time --out "$work/sweep.native.csv" 2>/dev/null &&
   agree "$work/sweep.jit.csv" "$work/sweep.native.csv"; then
  echo "ok   sweep-run-merge"; passed=$((passed + 1))
else
  echo "FAIL sweep-run-merge: a sweep failed or the tables differ"; failed=$((failed + 1))
fi

# A figure (the plotting stack loads only for --plot): the same SVG bytes.
dotnet "$jit" online linear --t-end 5 --out "$work/p.jit.json" --plot "$work/p.jit.svg" 2>/dev/null
"$native" online linear --t-end 5 --out "$work/p.native.json" --plot "$work/p.native.svg" 2>/dev/null
if [[ -s $work/p.native.svg ]] && cmp -s "$work/p.jit.svg" "$work/p.native.svg"; then
  echo "ok   plot-svg"; passed=$((passed + 1))
else
  echo "FAIL plot-svg: the figures differ or the native one is missing"; failed=$((failed + 1))
fi
refuse bad-lr online linear --lr -1
refuse bad-option online committee --nonsense 3
refuse bad-init online committee --init "$work/missing.json"
refuse bad-ext online linear --out "$work/x.txt"

echo "$passed passed, $failed failed"
[[ -n $summary ]] && echo "$passed $failed" > "$summary"
(( failed == 0 ))
