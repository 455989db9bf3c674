#!/usr/bin/env bash
# Whole-process times of the CLI (issue 11, start-up): median of 5 runs of each case, for each build given.
#   bash bench/startup-times.sh [LABEL=COMMAND]...
# COMMAND is how the build starts, e.g. jit="dotnet src/StatPhysFs.Cli/bin/Release/net10.0/statphys.dll",
# native=artifacts/statphys-linux-x64/statphys. Default: the JIT build and, when published, artifacts/...
# The peer cases start from ../shared/peers/ic_K2.txt and ic_K10.txt (or $STATPHYS_PEERS) when present.
set -uo pipefail
cd "$(dirname "$0")/.."
builds=("$@")
if (( ${#builds[@]} == 0 )); then
  builds=("jit=dotnet src/StatPhysFs.Cli/bin/Release/net10.0/statphys.dll")
  [[ -x artifacts/statphys-linux-x64/statphys ]] && builds+=("published=artifacts/statphys-linux-x64/statphys")
fi
peers=${STATPHYS_PEERS:-../shared/peers}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The peer's plain-text initial state (K M, Q, R, v) as the CLI's --init document.
to_json() {
  /usr/bin/python3 - "$1" <<'EOF'
import json, sys
x = [float(t) for t in open(sys.argv[1]).read().split()]
K, M = int(x[0]), int(x[1]); x = x[2:]
print(json.dumps({"Q": [x[i*K:(i+1)*K] for i in range(K)], "R": [x[K*K+i*M:K*K+(i+1)*M] for i in range(K)],
                  "T": [[1.0 if i == j else 0.0 for j in range(M)] for i in range(M)],
                  "v": x[K*K+K*M:K*K+K*M+K], "vTeacher": [1.0] * M}))
EOF
}
cases=("--version" "help")
if [[ -f $peers/ic_K2.txt ]]; then
  to_json "$peers/ic_K2.txt" > "$work/k2.json"; to_json "$peers/ic_K10.txt" > "$work/k10.json"
  cases+=("online committee --K 2 --M 2 --lr 0.5 --init $work/k2.json --t-end 1e4 --points 2 --out $work/o.json"
          "online committee --K 10 --M 10 --lr 0.5 --init $work/k10.json --t-end 1000 --points 2 --out $work/o.json")
fi
cases+=("dmft glm --loss logistic --teacher sign --rho 4 --alpha 2 --tau 1 --ridge 0.05 --noise-var 0 --t-end 6 --mc-samples 20000 --replicas 1 --strategy sweep --out $work/o.json")

# Median of 5 wall times and of 5 CPU times (user + system: less sensitive to other load on the machine).
median5() {
  local ws=() cs=() r
  for _ in 1 2 3 4 5; do
    /usr/bin/time -o "$work/time" -f "%e %U %S" $1 $2 > /dev/null 2>&1 || { echo "failed"; return; }
    r=$(tail -1 "$work/time")
    ws+=("$(echo "$r" | awk '{print $1}')"); cs+=("$(echo "$r" | awk '{print $2 + $3}')")
  done
  printf '%s s (cpu %s s)' "$(printf '%s\n' "${ws[@]}" | sort -n | sed -n 3p)" "$(printf '%s\n' "${cs[@]}" | sort -n | sed -n 3p)"
}
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
for c in "${cases[@]}"; do
  short=$(echo "$c" | sed -E "s#$work/##g; s# --out [^ ]+##")
  line="| $short |"
  for b in "${builds[@]}"; do line+=" ${b%%=*} $(median5 "${b#*=}" "$c") |"; done
  echo "$line"
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
