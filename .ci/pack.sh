#!/usr/bin/env bash
# Packs the NuGet packages (StatPhysFs, StatPhysFs.CSharp, the statphys tool) from an existing Release build into
# a local folder feed, then consumes them as a project outside the repository would:
#   1. builds and runs samples/LearningCurve (a C# console app referencing StatPhysFs.CSharp by version; its
#      nuget.config adds the folder feed) with an empty, private package cache, so a stale cache cannot hide a
#      broken package;
#   2. installs the statphys tool from the folder feed into a temporary tool path and runs one command.
# Each of the two counts as one test. Usage: .ci/pack.sh [FEED_DIR (default artifacts/packages)] [--summary FILE]
set -uo pipefail
cd "$(dirname "$0")/.."
feed=artifacts/packages; summary=""
while (( $# )); do
  case "$1" in
    --summary) summary=$2; shift 2 ;;
    *) feed=$1; shift ;;
  esac
done
version=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' Directory.Build.props | head -1)
passed=0; failed=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

start=$SECONDS
rm -rf "$feed"; mkdir -p "$feed"
# Only the three packable projects produce packages (IsPackable is false everywhere else).
if ! dotnet pack StatPhysFs.sln -c Release --no-build --nologo -v q -clp:ErrorsOnly -o "$feed" >&2; then
  echo "pack: dotnet pack failed" >&2
  [[ -n $summary ]] && echo "0 2" > "$summary"
  exit 1
fi
echo "pack: packages in $feed ($((SECONDS - start)) s):"
( cd "$feed" && for f in *.nupkg *.snupkg; do printf '  %-40s %10d bytes\n' "$f" "$(stat -c %s "$f")"; done )

# The sample restores from the folder feed (samples/nuget.config) into a private, empty package cache.
# NUGET_FEED (Paket's variable) is removed: a project outside the repository does not have it. obj/ and bin/ are
# removed so that nothing of an earlier run (restored against another cache) is reused.
start=$SECONDS
rm -rf samples/LearningCurve/obj samples/LearningCurve/bin
if env -u NUGET_FEED NUGET_PACKAGES="$work/packages" dotnet run --project samples/LearningCurve -c Release --nologo \
     -p:RestoreNoCache=true -p:StatPhysFsVersion="$version"; then
  echo "pack: sample LearningCurve passed ($((SECONDS - start)) s)"; passed=$((passed + 1))
else
  echo "pack: sample LearningCurve FAILED ($((SECONDS - start)) s)"; failed=$((failed + 1))
fi

# The tool: install from the folder feed only, run it, measure what it occupies.
start=$SECONDS
if env -u NUGET_FEED NUGET_PACKAGES="$work/packages" dotnet tool install statphys --version "$version" --tool-path "$work/tool" \
     --add-source "$feed" >&2 &&
   "$work/tool/statphys" online linear --t-end 2 --points 3 >"$work/tool.json" &&
   grep -q '"eg"' "$work/tool.json"; then
  echo "pack: tool statphys installed ($(du -sb "$work/tool" | cut -f1) bytes installed) and ran ($((SECONDS - start)) s)"
  passed=$((passed + 1))
else
  echo "pack: tool statphys FAILED to install or run ($((SECONDS - start)) s)"; failed=$((failed + 1))
fi

[[ -n $summary ]] && echo "$passed $failed" > "$summary"
echo "pack: $passed passed, $failed failed"
(( failed == 0 ))
