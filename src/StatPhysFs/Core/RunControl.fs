namespace StatPhysFs

open System.Threading

/// Run control shared by every `solve`: cancellation, progress and budgets. It is part of the settings, never of the
/// problem, so it does not change the numbers.
type RunControl =
    {
        CancellationToken: CancellationToken
        /// Called with the fraction of the run done, in [0, 1], at most ~100 times per run.
        Progress: (float -> unit) option
        /// Largest memory the run may plan to use, in bytes (checked up front where a solver can estimate it).
        MaxMemoryBytes: int64
        /// Largest wall-clock time, in seconds (infinity for none).
        MaxSeconds: float
    }

[<RequireQualifiedAccess>]
module RunControl =
    /// No cancellation, no progress, 75% of physical memory, no time limit.
    [<CompiledName("Default")>]
    let defaults =
        {
            CancellationToken = CancellationToken.None
            Progress = None
            MaxMemoryBytes =
                let total = System.GC.GetGCMemoryInfo().TotalAvailableMemoryBytes

                if total > 0L then
                    total / 4L * 3L
                else
                    System.Int64.MaxValue
            MaxSeconds = infinity
        }

    [<CompiledName("WithCancellation")>]
    let withCancellation (ct: CancellationToken) (rc: RunControl) = { rc with CancellationToken = ct }

    [<CompiledName("WithProgress")>]
    let withProgress (progress: float -> unit) (rc: RunControl) = { rc with Progress = Some progress }

    /// Reports progress when asked for; cheap when not.
    let report (rc: RunControl) (fraction: float) =
        match rc.Progress with
        | Some p -> p fraction
        | None -> ()
