namespace StatPhysFs

open System

/// One observable across seeds or Monte Carlo draws: mean and standard error at each time (NaN once any draw has
/// diverged).
type SeriesEstimate = { Mean: float[]; StdErr: float[] }


[<RequireQualifiedAccess>]
module SeriesEstimate =
    let ofRuns (runs: float[][]) =
        let nt = runs[0].Length
        let col j = runs |> Array.map (fun r -> r[j])

        let est =
            Array.init nt (fun j ->
                let c = col j

                if c |> Array.exists Double.IsNaN then
                    {
                        Mean = nan
                        StdErr = nan
                        Count = c.Length
                    }
                elif c.Length = 1 then
                    { Mean = c[0]; StdErr = 0.0; Count = 1 }
                else
                    Stats.estimate c)

        {
            Mean = est |> Array.map (fun e -> e.Mean)
            StdErr = est |> Array.map (fun e -> e.StdErr)
        }

/// A named observable of a solution, with its standard error where it is an estimate.
type Observable =
    {
        Name: string
        Values: float[]
        StdErr: float[] option
    }

/// What every solution shares, so that output, plots and sweeps treat all models alike.
type ISolution =
    /// The time grid of the observables.
    abstract Times: float[]
    abstract Status: RunStatus
    /// The observables on `Times`, by name (eg, m, q, Q11, train_loss, ...).
    abstract Observables: Observable list
