// Shared by the benchmark scripts here (#load "timing.fsx"): CPU time of a call, in microseconds, the best of 7
// rounds of n calls after one warm-up call. On a shared machine CPU time is inflated less than wall time, and the
// best round drops the rounds another process disturbed.
module Timing

open System

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
