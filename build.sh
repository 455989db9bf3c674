#!/usr/bin/env bash
# One entry point for users and CI:  ./build.sh demo [ARGS]   ./build.sh test   ./build.sh statphys ARGS
#                                     ./build.sh bench   ./build.sh notebooks   ./build.sh build   ./build.sh format
#                                     ./build.sh pack    (NuGet packages into ./artifacts/packages)
#                                     ./build.sh publish (optional: ReadyToRun CLI into ./artifacts/statphys-linux-x64)
# It installs the local dotnet tools, restores with Paket and builds, so a fresh clone needs only the .NET SDK.
set -euo pipefail
cd "$(dirname "$0")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

# Paket reads its feed from NUGET_FEED; default it to the machine's first enabled NuGet source. (Looked up only
# when restoring or building: a `statphys` call that needs no build skips the ~1 s lookup.)
feed() {
  if [[ -z "${NUGET_FEED:-}" ]]; then
    NUGET_FEED=$(dotnet nuget list source --format short 2>/dev/null | awk '$1 ~ /^E/ {print $2; exit}')
    export NUGET_FEED
  fi
  [[ -n "${NUGET_FEED:-}" ]] || { echo "build.sh: no NuGet source found; set NUGET_FEED" >&2; exit 2; }
}

CONFIG=${CONFIG:-Release}
log() { echo "build.sh: $*" >&2; }

prepare() {
  feed
  if [[ ! -f .paket/.restored || paket.lock -nt .paket/.restored || .config/dotnet-tools.json -nt .paket/.restored ]]; then
    log "restoring tools and packages"
    dotnet tool restore >/dev/null
    dotnet paket restore >&2
    touch .paket/.restored
  fi
}

build() {
  prepare
  log "building ($CONFIG)"
  touch "$stamp.new"
  dotnet build StatPhysFs.sln -c "$CONFIG" -nologo -v q -clp:ErrorsOnly >&2
  mv -f "$stamp.new" "$stamp"
}

# --- no-rebuild (ecosystem): `statphys` and `demo` build only when an input changed since the last successful build
# (the stamp is touched when that build started), so a repeated command costs no MSBuild time.
stamp=.paket/.built-$CONFIG
build_if_changed() {
  if [[ -f $stamp && -f $cli_dll && ! paket.lock -nt $stamp && ! Directory.Build.props -nt $stamp ]] &&
     [[ -z $(find src facade -newer "$stamp" -type f ! -path '*/bin/*' ! -path '*/obj/*' -print -quit) ]]; then
    return 0
  fi
  build
}
# --- end no-rebuild

cli_dll=src/StatPhysFs.Cli/bin/$CONFIG/net10.0/statphys.dll

cmd=${1:-help}
shift || true
case "$cmd" in
  build) build ;;
  demo) build_if_changed; dotnet "$cli_dll" demo "$@" ;;
  statphys) build_if_changed; dotnet "$cli_dll" "$@" ;;
  # `bench micro [BenchmarkDotNet args]`: the kernels (I4 pair sum, committee right-hand side, DMFT sweep, simulator
  # step) under BenchmarkDotNet, in process, with the memory diagnoser; anything else: the whole-process tables.
  bench) build
         if [[ ${1:-} == micro ]]; then shift; dotnet "bench/StatPhysFs.Micro/bin/$CONFIG/net10.0/StatPhysFs.Micro.dll" "$@"
         else dotnet "bench/StatPhysFs.Benchmarks/bin/$CONFIG/net10.0/StatPhysFs.Benchmarks.dll" "$@"; fi ;;
  notebooks) build; bash notebooks/execute.sh "$@" ;;
  pack) build; bash .ci/pack.sh "$@" ;;
  # Optional, not used by CI: the CLI precompiled (ReadyToRun) for linux-x64, framework-dependent; it starts with
  # less JIT work (run artifacts/statphys-linux-x64/statphys). Needs the runtime and crossgen2 packs from the feed.
  publish) prepare; dotnet publish src/StatPhysFs.Cli -c "$CONFIG" -r linux-x64 --self-contained false \
             -p:PublishReadyToRun=true -o artifacts/statphys-linux-x64 -nologo -v q -clp:ErrorsOnly >&2
           log "published artifacts/statphys-linux-x64/statphys" ;;
  test) build; bash .ci/test-all.sh "$CONFIG" ;;
  format) prepare; dotnet fantomas src tests bench ;;
  *) echo "usage: ./build.sh demo|test|statphys ARGS|bench|notebooks|build|pack|publish|format" >&2; exit 2 ;;
esac
