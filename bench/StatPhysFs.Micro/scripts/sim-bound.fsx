// The committee simulator's step against its bound, all in CPU time (best of 7; on a shared machine CPU time is
// inflated less than wall time). Run from the repository root after ./build.sh build:
//   DOTNET_TieredCompilation=0 dotnet fsi --optimize+ bench/StatPhysFs.Micro/scripts/sim-bound.fsx
// Memory term: bytes a fused step must move, 8 d (2 + 2K + M) (read the previous x, write the new x, read and write
// the K students, read the M teachers), over the triad bandwidth measured at the step's working set 8 d (K + M + 2)
// (three arrays of W/24 doubles: the same cache level). RNG term: (d + 1) draws at NormalBlock's ns per draw.
#r "../../../src/StatPhysFs/bin/Release/net10.0/StatPhysFs.dll"
#load "timing.fsx"

open System
open System.Numerics
open System.Runtime.InteropServices
open StatPhysFs
open Timing
open StatPhysFs.Models
open StatPhysFs.Simulation

let triad (n: int) =
    let a, b, c = Array.create n 1.0, Array.create n 2.0, Array.create n 3.0

    let us =
        cpu
            (fun () ->
                let ra = MemoryMarshal.Cast<float, Vector<float>>(Span a)
                let rb = MemoryMarshal.Cast<float, Vector<float>>(ReadOnlySpan b)
                let rc = MemoryMarshal.Cast<float, Vector<float>>(ReadOnlySpan c)
                let s = Vector<float>(0.5)

                for i in 0 .. ra.Length - 1 do
                    ra[i] <- rb[i] + s * rc[i])
            (max 3 (20_000_000 / n))

    24.0 * float n / us / 1e3 // GB/s

for n in [ 1_000; 10_000; 100_000; 1_000_000; 10_000_000 ] do
    printfn "triad n = %8d (%8.0f KB): %6.1f GB/s" n (24.0 * float n / 1e3) (triad n)

let draws = Array.zeroCreate 10_000
let block = NormalBlock(Rng(3, 2))
let scalar = Rng(3, 1)
let nsBlock = cpu (fun () -> block.Fill(Span draws)) 2000 * 1e3 / 1e4
let nsScalar = cpu (fun () -> scalar.FillNormal(Span draws)) 500 * 1e3 / 1e4
printfn "normals: NormalBlock %.2f ns/draw, Rng.FillNormal %.2f ns/draw" nsBlock nsScalar

let step d k = committeeStep 1000 d k

printfn
    "| d | K = M | step (us) | bytes/step | bandwidth (GB/s) | memory term (us) | RNG term (us) | bound (us) | step / bound | step / memory term |"

printfn "|---|---|---|---|---|---|---|---|---|---|"

for d, k in [ 1_000, 2; 10_000, 2; 100_000, 2; 10_000, 10 ] do
    let t = step d k
    let bytes = 8.0 * float d * float (2 + 2 * k + k)
    let bw = triad (max 1000 (8 * d * (2 * k + 2) / 24))
    let mem = bytes / bw / 1e3
    let rng = float (d + 1) * nsBlock / 1e3

    printfn
        "| %d | %d | %.1f | %.0f KB | %.0f | %.1f | %.1f | %.1f | %.2f | %.1f |"
        d
        k
        t
        (bytes / 1e3)
        bw
        mem
        rng
        (mem + rng)
        (t / (mem + rng))
        (t / mem)
