namespace StatPhysFs

open System.Threading

/// Independent members (simulation seeds, Monte Carlo paths) run in parallel. Member i's result lands at index i and
/// member i draws only from its own stream (Rng(seed, i) or an offset of it), so the numbers do not depend on the
/// thread count or on the scheduling.
[<RequireQualifiedAccess>]
module Ensemble =
    /// Runs members 0 .. count - 1, at most `maxParallelism` at once. `runOne i tick` computes member i and calls
    /// `tick n` after each n units of its work; `progress` receives the fraction of `totalWork` done (at most 1),
    /// serialised. Cancellation: `ct` is checked at every tick (a few work units of latency, not a whole member)
    /// and before a member starts (OperationCanceledException). A member's exception comes out unwrapped.
    [<CompiledName("Run")>]
    let run
        (maxParallelism: int)
        (ct: CancellationToken)
        (progress: float -> unit)
        (totalWork: float)
        (count: int)
        (runOne: int -> (int64 -> unit) -> 'r)
        : 'r[] =
        Check.positiveInt "max parallelism" maxParallelism
        Check.intInRange "members" 0 System.Int32.MaxValue count
        Check.positive "total work" totalWork
        let mutable done' = 0L
        let gate = obj ()

        let tick (n: int64) =
            ct.ThrowIfCancellationRequested()
            let f = float (Interlocked.Add(&done', n)) / totalWork
            lock gate (fun () -> progress (min 1.0 f))

        let results = Array.zeroCreate count

        Chunked.forEach maxParallelism ct count (fun i -> results[i] <- runOne i tick)
        results

    /// Runs members 0 .. count - 1 as `run` (no progress), member i drawing from the stream
    /// Rng(seed, firstStream + i): `runOne i rng`.
    [<CompiledName("Sample")>]
    let sample maxParallelism (ct: CancellationToken) (seed: int) firstStream count (runOne: int -> Rng -> 'r) =
        run maxParallelism ct ignore 1.0 count (fun i _ -> runOne i (Rng(seed, firstStream + i)))
