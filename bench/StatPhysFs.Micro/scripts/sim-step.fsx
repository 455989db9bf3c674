// Per-step CPU time of the committee simulator (1000 steps, best of 5; CPU time, so other processes on a shared
// machine inflate it less than wall time). Run from the repository root after ./build.sh build:
//   DOTNET_TieredCompilation=0 dotnet fsi --optimize+ bench/StatPhysFs.Micro/scripts/sim-step.fsx
#r "../../../src/StatPhysFs/bin/Release/net10.0/StatPhysFs.dll"

open System
open StatPhysFs
open StatPhysFs.Models
open StatPhysFs.Simulation

let time d k steps =
    let problem =
        Committee.problem (Committee.create k k) (CommitteeInitialState.spec k k) (float steps / float d)

    let o =
        { SimulationOptions.defaults with
            Dim = d
            Seeds = 1
            MaxParallelism = 1
        }

    let s =
        { Committee.defaultSettings with
            SaveAt = [| 0.0; float steps / float d |]
        }

    OnlineCommitteeSim.simulate o s problem |> ignore
    let best = ref infinity

    for _ in 1..5 do
        let p = Diagnostics.Process.GetCurrentProcess()
        let c0 = p.TotalProcessorTime
        OnlineCommitteeSim.simulate o s problem |> ignore
        p.Refresh()
        best.Value <- min best.Value ((p.TotalProcessorTime - c0).TotalMilliseconds * 1000.0 / float steps)

    printfn "d=%d K=M=%d: best CPU %.2f us/step" d k best.Value

for (d, k) in [ 1000, 2; 10000, 2; 100000, 2; 10000, 10 ] do
    time d k 1000
