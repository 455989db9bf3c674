// Shared by the benchmark scripts here (#load "timing.fsx" after their #r of StatPhysFs.dll).
module Timing

open System
open StatPhysFs.Models
open StatPhysFs.Simulation

/// CPU time of a call, in microseconds, the best of 7 rounds of n calls after one warm-up call. On a shared machine
/// CPU time is inflated less than wall time, and the best round drops the rounds another process disturbed.
let cpu (f: unit -> unit) n =
    let p = Diagnostics.Process.GetCurrentProcess()
    f ()
    let mutable best = infinity

    for _ in 1..7 do
        p.Refresh()
        let c0 = p.TotalProcessorTime

        for _ in 1..n do
            f ()

        p.Refresh()
        best <- min best ((p.TotalProcessorTime - c0).TotalMilliseconds * 1e3 / float n)

    best

/// CPU microseconds per step of the committee simulator, K = M = k from the spec 6.7 state, one seed, one thread,
/// `steps` steps at dimension d.
let committeeStep (steps: int) (d: int) (k: int) =
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

    cpu (fun () -> OnlineCommitteeSim.simulate o s problem |> ignore) 1
    / float steps
