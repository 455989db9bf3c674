#!/usr/bin/env bash
# One entry point for users and CI:  ./build.sh demo [ARGS]   ./build.sh test   ./build.sh statphys ARGS
#                                     ./build.sh bench   ./build.sh notebooks   ./build.sh build   ./build.sh format
#                                     ./build.sh pack    (NuGet packages into ./artifacts/packages)
#                                     ./build.sh publish (optional: the native CLI into ./artifacts/statphys-linux-x64)
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
  # The published CLI (./build.sh publish: native, starts in milliseconds) when it is newer than the build, else the
  # JIT build.
  statphys) build_if_changed
            published=artifacts/statphys-linux-x64/statphys
            if [[ -x $published && $published -nt $cli_dll ]]; then exec "$published" "$@"; fi
            dotnet "$cli_dll" "$@" ;;
  # `bench micro [BenchmarkDotNet args]`: the kernels (I4 pair sum, committee right-hand side, DMFT sweep, simulator
  # step) under BenchmarkDotNet, in process, with the memory diagnoser; anything else: the whole-process tables.
  bench) build
         if [[ ${1:-} == micro ]]; then shift; dotnet "bench/StatPhysFs.Micro/bin/$CONFIG/net10.0/StatPhysFs.Micro.dll" "$@"
         else dotnet "bench/StatPhysFs.Benchmarks/bin/$CONFIG/net10.0/StatPhysFs.Benchmarks.dll" "$@"; fi ;;
  notebooks) build; bash notebooks/execute.sh "$@" ;;
  pack) build; bash .ci/pack.sh "$@" ;;
  # The CLI as one native executable (Native AOT: no JIT, starts in milliseconds), artifacts/statphys-linux-x64/
  # statphys; the ILCompiler packs restore from the feed; the native link needs clang (Debian: apt-get install clang
  # zlib1g-dev). STATPHYS_ISA (default native: this machine's instruction set, so Vector<T> is as wide as under the
  # JIT and the numbers agree bit for bit; x86-64-v2 or x86-64-v3 for a binary that runs on other machines).
  # `publish --ready-to-run`, or when the native compile fails: the ReadyToRun build (framework-dependent, JIT for
  # the rest), same place. `publish --native-only`: fail instead of falling back.
  publish) prepare
           out=artifacts/statphys-linux-x64
           rm -rf "$out"
           ready_to_run() {
             dotnet publish src/StatPhysFs.Cli -c "$CONFIG" -r linux-x64 --self-contained false \
               -p:PublishReadyToRun=true -o "$out" -nologo -v q -clp:ErrorsOnly >&2
             log "published $out/statphys (ReadyToRun; runs on the installed .NET runtime)"
           }
           if [[ ${1:-} == --ready-to-run ]]; then ready_to_run
           elif dotnet publish src/StatPhysFs.Cli -c "$CONFIG" -r linux-x64 -p:PublishAot=true \
                  -p:IlcInstructionSet="${STATPHYS_ISA:-native}" -o "$out" -nologo -v q -clp:ErrorsOnly >&2; then
             rm -f "$out"/*.pdb "$out"/*.xml "$out"/*.dbg
             log "published $out/statphys (native, $(du -h "$out/statphys" | cut -f1); the plotting libraries beside it)"
           elif [[ ${1:-} == --native-only ]]; then
             log "the native compile failed"; exit 1
           else
             log "the native compile failed (Debian: apt-get install clang zlib1g-dev); publishing ReadyToRun instead"
             rm -rf "$out"; ready_to_run
           fi ;;
  test) build; bash .ci/test-all.sh "$CONFIG" ;;
  format) prepare; dotnet fantomas src tests bench ;;
  *) echo "usage: ./build.sh demo|test|statphys ARGS|bench|notebooks|build|pack|publish [--ready-to-run]|format" >&2; exit 2 ;;
esac
