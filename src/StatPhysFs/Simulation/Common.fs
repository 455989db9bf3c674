namespace StatPhysFs.Simulation

open System
open System.Threading
open System.Threading.Tasks
open StatPhysFs

/// Finite-dimension settings shared by the simulators.
type SimulationOptions =
    {
        /// Input dimension d.
        Dim: int
        /// Number of independent runs averaged.
        Seeds: int
        /// Base seed; run r uses the stream (Seed, r), so results do not depend on the thread count.
        Seed: int
        /// A run whose q exceeds this (or turns NaN) is stopped and reported as divergent.
        DivergenceBound: float
        /// Largest number of runs in flight at once (1 = sequential); does not change the numbers.
        MaxParallelism: int
    }


[<RequireQualifiedAccess>]
module SimulationOptions =
    [<CompiledName("Defaults")>]
    let defaults =
        {
            Dim = 1000
            Seeds = 5
            Seed = 1
            DivergenceBound = 1e8
            MaxParallelism = Environment.ProcessorCount
        }

    let validate (o: SimulationOptions) =
        Check.intInRange "dim" 2 100_000_000 o.Dim
        Check.intInRange "seeds" 1 1_000_000 o.Seeds
        Check.positive "divergence bound" o.DivergenceBound
        Check.positiveInt "max parallelism" o.MaxParallelism

/// Runs independent seeds in parallel with shared progress. Run r draws from the stream (Seed, r), so the numbers do
/// not depend on the number of threads.
[<RequireQualifiedAccess>]
module Seeds =
    /// `runOne run tick` simulates run `run`, calling `tick n` after each n SGD steps; `progress` receives the fraction
    /// of all steps done (total = seeds * last time * d).
    let run
        (o: SimulationOptions)
        (progress: float -> unit)
        (ct: CancellationToken)
        (times: float[])
        (runOne: int -> (int64 -> unit) -> 'r)
        =
        SimulationOptions.validate o

        Check.that
            "times"
            (times.Length > 0
             && times[0] >= 0.0
             && Array.forall2 (<) times[.. times.Length - 2] times[1..])
            "times must be non-negative and strictly increasing."

        let total =
            float o.Seeds * Math.Round(times[times.Length - 1] * float o.Dim) |> max 1.0

        let mutable done' = 0L
        let gate = obj ()

        // Every run reports its steps through `tick`: checking the token here bounds the latency of a cancellation
        // by one reporting interval (a few SGD steps), not by a whole seed.
        let tick (n: int64) =
            ct.ThrowIfCancellationRequested()
            let f = float (Interlocked.Add(&done', n)) / total
            lock gate (fun () -> progress (min 1.0 f))

        let results = Array.zeroCreate o.Seeds

        let po =
            ParallelOptions(MaxDegreeOfParallelism = o.MaxParallelism, CancellationToken = ct)

        Parallel.For(0, o.Seeds, po, fun r -> results[r] <- runOne r tick) |> ignore
        results
