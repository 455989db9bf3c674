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

/// Large work arrays that honour a cancellation token while they are set up.
[<RequireQualifiedAccess>]
module internal Cancellable =
    /// 2^17 doubles = 1 MB: the most memory set up between two looks at the token.
    let private chunk = 131072

    /// A zeroed float array of `length` that looks at `ct` before allocating and after every 1 MB it zeroes. A fresh
    /// large array is zeroed inside the allocation, out of the token's reach (reused memory is cleared by a memset
    /// that takes seconds for hundreds of MB on a loaded machine), so large ones are allocated uninitialised and
    /// cleared here, chunk by chunk.
    let zeroed (ct: CancellationToken) (length: int) : float[] =
        ct.ThrowIfCancellationRequested()

        if length <= chunk then
            Array.zeroCreate length
        else
            let a = System.GC.AllocateUninitializedArray<float> length
            let mutable i = 0

            while i < length do
                ct.ThrowIfCancellationRequested()
                let len = min chunk (length - i)
                System.Array.Clear(a, i, len)
                i <- i + len

            a
