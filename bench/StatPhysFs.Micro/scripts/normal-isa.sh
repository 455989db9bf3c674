#!/usr/bin/env bash
# NormalBlock's numbers on every instruction set this machine can pretend to have: AVX-512, AVX2 (Vector256 with
# hardware FMA), no AVX2 (software Vector256 and FMA) and no hardware intrinsics at all. The same seed must give the
# same bytes (every operation of the generator is IEEE-exact elementwise). Run from the repository root after
# ./build.sh build:  bash bench/StatPhysFs.Micro/scripts/normal-isa.sh
set -euo pipefail
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/dump.fsx" <<FSX
#r "$PWD/src/StatPhysFs/bin/Release/net10.0/StatPhysFs.dll"
let xs = Array.zeroCreate<float> 100_003
StatPhysFs.NormalBlock(StatPhysFs.Rng(42, 7)).Fill(System.Span xs)
let bytes = Array.zeroCreate<byte> (xs.Length * 8)
System.Buffer.BlockCopy(xs, 0, bytes, 0, bytes.Length)
System.IO.File.WriteAllBytes(fsi.CommandLineArgs[1], bytes)
FSX
run() { env "$@" dotnet fsi --optimize+ "$tmp/dump.fsx" "$tmp/$1.bin"; md5sum "$tmp/$1.bin" | cut -d' ' -f1; }
ref=$(run DOTNET_X=default)
status=0
for knob in DOTNET_EnableAVX512=0 DOTNET_EnableAVX2=0 DOTNET_EnableHWIntrinsic=0; do
  sum=$(run "$knob")
  if [[ $sum == "$ref" ]]; then echo "same bytes: $knob"; else echo "DIFFERENT: $knob"; status=1; fi
done
exit $status
