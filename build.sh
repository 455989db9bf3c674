#!/usr/bin/env bash
# One entry point for users and CI:  ./build.sh demo [ARGS]   ./build.sh test   ./build.sh statphys ARGS
#                                     ./build.sh bench   ./build.sh notebooks   ./build.sh build   ./build.sh format
# It installs the local dotnet tools, restores with Paket and builds, so a fresh clone needs only the .NET SDK.
set -euo pipefail
cd "$(dirname "$0")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

# Paket reads its feed from NUGET_FEED; default it to the machine's first enabled NuGet source.
if [[ -z "${NUGET_FEED:-}" ]]; then
  NUGET_FEED=$(dotnet nuget list source --format short 2>/dev/null | awk '$1 ~ /^E/ {print $2; exit}')
  export NUGET_FEED
fi
[[ -n "${NUGET_FEED:-}" ]] || { echo "build.sh: no NuGet source found; set NUGET_FEED" >&2; exit 2; }

CONFIG=${CONFIG:-Release}
log() { echo "build.sh: $*" >&2; }

prepare() {
  if [[ ! -f .paket/.restored || paket.lock -nt .paket/.restored ]]; then
    log "restoring tools and packages"
    dotnet tool restore >/dev/null
    dotnet paket restore >&2
    touch .paket/.restored
  fi
}

build() {
  prepare
  log "building ($CONFIG)"
  dotnet build StatPhysFs.sln -c "$CONFIG" -nologo -v q -clp:ErrorsOnly >&2
}

cli_dll=src/StatPhysFs.Cli/bin/$CONFIG/net10.0/statphys.dll

cmd=${1:-help}
shift || true
case "$cmd" in
  build) build ;;
  demo) build; dotnet "$cli_dll" demo "$@" ;;
  statphys) build; dotnet "$cli_dll" "$@" ;;
  bench) build; dotnet "bench/StatPhysFs.Benchmarks/bin/$CONFIG/net10.0/StatPhysFs.Benchmarks.dll" "$@" ;;
  notebooks) build; bash notebooks/run.sh "$@" ;;
  test) build; bash .ci/test-all.sh "$CONFIG" ;;
  format) prepare; dotnet fantomas src tests bench ;;
  *) echo "usage: ./build.sh demo|test|statphys ARGS|bench|notebooks|build|format" >&2; exit 2 ;;
esac
