// What a double-precision Gaussian costs here, in CPU time per draw (best of 7), against NormalBlock.Fill:
//   raw    eight xoshiro256** lanes in one Vector512 (the 11-instruction step NormalBlock uses), the 64 random bits
//          stored (no Gaussian at all): the floor of any generator on these lanes;
//   gather raw + the fast path of the 256-layer ziggurat NormalBlock used before (layer, abscissa, four table gathers,
//          comparison, product) on every lane, with no miss handling: that generator's floor, which the branch-free
//          Box-Muller with its misses-free vector loop now undercuts;
//   Fill   NormalBlock.Fill (Box-Muller), everything included.
// Run from the repository root after ./build.sh build:
//   DOTNET_TieredCompilation=0 dotnet fsi --optimize+ bench/StatPhysFs.Micro/scripts/normal-floor.fsx
#r "../../../src/StatPhysFs/bin/Release/net10.0/StatPhysFs.dll"
#load "timing.fsx"
#nowarn "9"
open System
open System.Runtime.Intrinsics
open System.Runtime.Intrinsics.X86
open Microsoft.FSharp.NativeInterop
open StatPhysFs
open Timing

// Any increasing table of 256 entries times the same as the real one (the values only change the numbers).
let xTab = GC.AllocateArray<float>(256, true)
let ratioTab = GC.AllocateArray<float>(256, true)

for i in 0..255 do
    xTab[i] <- 3.7 * (1.0 - float i / 256.0)
    ratioTab[i] <- 0.985

let gather (p: nativeptr<float>) (idx: Vector256<uint64>) =
    Avx2.GatherVector256(p, idx.AsInt64(), 8uy)

let loop (t: float[]) (withGaussian: bool) =
    use px = fixed xTab
    use pr = fixed ratioTab
    let mutable s0 = Vector512.Create(1UL, 2UL, 3UL, 4UL, 5UL, 6UL, 7UL, 8UL)
    let mutable s1 = Vector512.Create(11UL, 12UL, 13UL, 14UL, 15UL, 16UL, 17UL, 18UL)
    let mutable s2 = Vector512.Create(21UL, 22UL, 23UL, 24UL, 25UL, 26UL, 27UL, 28UL)
    let mutable s3 = Vector512.Create(31UL, 32UL, 33UL, 34UL, 35UL, 36UL, 37UL, 38UL)
    let mask = Vector512.Create 255UL
    let sign = Vector512.Create 0x8000000000000000UL
    let ones = Vector512.Create 0x3FF0000000000000UL
    let one = Vector512.Create 1.0
    let sp = Span t
    let mutable misses = 0
    let mutable j = 0

    while j < t.Length do
        let m5 = Vector512.ShiftLeft(s1, 2) + s1
        let rl = Avx512F.RotateLeft(m5, 7uy)
        let r = Vector512.ShiftLeft(rl, 3) + rl
        let a = s0
        let b = s1
        let c = s2
        let d = s3
        s0 <- Avx512F.TernaryLogic(a, d, b, 0x96uy)
        s1 <- Avx512F.TernaryLogic(b, c, a, 0x96uy)
        s2 <- Avx512F.TernaryLogic(c, a, Vector512.ShiftLeft(b, 17), 0x96uy)
        s3 <- Avx512F.RotateLeft(d ^^^ b, 45uy)

        if withGaussian then
            let i = r &&& mask
            let m = (Vector512.ShiftRightLogical(r, 12) ||| ones).AsDouble() - one
            let lo = i.GetLower()
            let hi = i.GetUpper()
            let ratio = (gather pr lo).ToVector512Unsafe().WithUpper(gather pr hi)
            let xi = (gather px lo).ToVector512Unsafe().WithUpper(gather px hi)
            let ok = uint32 (Vector512.ExtractMostSignificantBits(Vector512.LessThan(m, ratio)))
            let z = ((m * xi).AsUInt64() ^^^ (Vector512.ShiftLeft(r, 55) &&& sign)).AsDouble()
            z.CopyTo(sp.Slice(j, 8))

            if ok <> 255u then
                misses <- misses + 1
        else
            r.AsDouble().CopyTo(sp.Slice(j, 8))

        j <- j + 8

    misses

let draws = Array.zeroCreate<float> 10_000
let block = NormalBlock(Rng(3, 2))
let perDraw us = us * 1e3 / 1e4
printfn "raw lanes      %.3f ns/draw" (cpu (fun () -> loop draws false |> ignore) 3000 |> perDraw)

printfn
    "gather floor   %.3f ns/draw (the former ziggurat, misses not counted)"
    (cpu (fun () -> loop draws true |> ignore) 3000 |> perDraw)

printfn "NormalBlock    %.3f ns/draw (Box-Muller)" (cpu (fun () -> block.Fill(Span draws)) 3000 |> perDraw)
