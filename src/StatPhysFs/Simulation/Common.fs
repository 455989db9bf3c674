namespace StatPhysFs.Simulation

open System
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

    /// Validates the options and the observation times and returns the SGD steps of all seeds together (seeds times
    /// last time times d), the `totalWork` of `Ensemble.run` when each run ticks its steps.
    let work (o: SimulationOptions) (times: float[]) =
        validate o

        Check.that
            "times"
            (times.Length > 0
             && times[0] >= 0.0
             && Array.forall2 (<) times[.. times.Length - 2] times[1..])
            "times must be non-negative and strictly increasing."

        float o.Seeds * Math.Round(times[times.Length - 1] * float o.Dim) |> max 1.0

/// What the online simulators report in the ODE solution's shape besides their estimates.
[<RequireQualifiedAccess>]
module internal SimulationOutcome =
    /// (run index, divergence time) of the runs that diverged, in run order.
    let divergences (times: float option[]) =
        times
        |> Array.mapi (fun r dv -> dv |> Option.map (fun t -> r, t))
        |> Array.choose id
        |> List.ofArray

    /// Completed, or Diverged at the earliest divergence time when any run (run index, time) diverged.
    let status (o: SimulationOptions) (divergences: (int * float) list) =
        match divergences with
        | [] -> Completed
        | ds ->
            Diverged(
                ds |> List.map snd |> List.min,
                $"%d{ds.Length} of %d{o.Seeds} runs exceeded the divergence bound %g{o.DivergenceBound}"
            )

    /// A simulation takes no ODE steps.
    let noOdeStats: StatPhysFs.Ode.OdeStats =
        {
            Steps = 0
            Rejected = 0
            Evaluations = 0
        }
