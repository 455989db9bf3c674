// Per-step CPU cost of the online simulators and the per-draw cost of their inputs (best of 7), for A/B comparisons
// of two builds: run it in each checkout, interleaved, on a quiet machine. From the repository root after
// ./build.sh build:
//   DOTNET_TieredCompilation=0 dotnet fsi --optimize+ bench/StatPhysFs.Micro/scripts/sim-steps.fsx
#r "../../../src/StatPhysFs/bin/Release/net10.0/StatPhysFs.dll"
#load "timing.fsx"

open System
open StatPhysFs
open Timing
open StatPhysFs.Models
open StatPhysFs.Simulation

let draws = Array.zeroCreate<float> 10_000
let block = NormalBlock(Rng(3, 2))
let nsBlock = cpu (fun () -> block.Fill(Span draws)) 3000 * 1e3 / 1e4

let committee d k = committeeStep 2000 d k

let linear d =
    let steps = 4000
    let p = OnlineLinear.defaults

    let o =
        { SimulationOptions.defaults with
            Dim = d
            Seeds = 1
            MaxParallelism = 1
        }

    cpu
        (fun () ->
            OnlineLinearSim.run o ignore Threading.CancellationToken.None p [| 0.0; float steps / float d |]
            |> ignore)
        1
    / float steps

printfn
    "block %.3f ns/draw | committee d=1e4 K=2 %.1f us | d=1e4 K=10 %.1f us | linear d=1e4 %.1f us"
    nsBlock
    (committee 10_000 2)
    (committee 10_000 10)
    (linear 10_000)
