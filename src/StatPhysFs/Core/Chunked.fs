namespace StatPhysFs

open System.Threading
open System.Runtime.ExceptionServices

/// Shared state of one `Chunked` loop: indices are claimed one at a time from a counter, so a worker that starts
/// late (or never) holds nothing up, and the caller waits only for workers that have already started.
type internal ChunkedLoop<'s>(count: int, ct: CancellationToken, init: unit -> 's, body: 's -> int -> unit) =
    // Last claimed index. After a failure or a cancellation it jumps to `count`, so the rest is skipped at once
    // (claiming and skipping the indices one by one took ~0.4 s for 10^7 Monte Carlo paths).
    let mutable claimed = -1
    // Workers inside Work. A worker enters before its first claim and leaves after its last index, so once the
    // caller's own Work has returned (the counter is past `count`), every index claimed elsewhere belongs to a
    // worker counted here; a worker the pool starts later finds nothing left to claim.
    let mutable working = 0
    let mutable failure: ExceptionDispatchInfo = null
    let gate = obj ()

    member _.Work() =
        Interlocked.Increment(&working) |> ignore
        let mutable state = Unchecked.defaultof<'s>
        let mutable hasState = false
        let mutable go = true

        while go do
            let i = Interlocked.Increment(&claimed)

            // i < 0: the counter wrapped past Int32.MaxValue (count near it, several workers claiming past it).
            if i >= count || i < 0 then
                go <- false
            elif not (isNull (Volatile.Read(&failure))) || ct.IsCancellationRequested then
                Interlocked.Exchange(&claimed, count) |> ignore
                go <- false
            else
                try
                    if not hasState then
                        state <- init ()
                        hasState <- true

                    body state i
                with e ->
                    Interlocked.CompareExchange(&failure, ExceptionDispatchInfo.Capture e, null) |> ignore
                    Interlocked.Exchange(&claimed, count) |> ignore

        if Interlocked.Decrement(&working) = 0 then
            lock gate (fun () -> Monitor.PulseAll gate)

    /// After the caller's own Work: waits until every worker that started has finished its indices.
    member _.Wait() =
        lock gate (fun () ->
            while Volatile.Read(&working) > 0 do
                Monitor.Wait gate |> ignore)

    member _.Failure = failure

/// Parallel loops over independent indices that never wait for a thread-pool thread to become free: the calling
/// thread works through the indices itself and helpers join when the pool gives them a thread. With
/// `Parallel.For`, a loop waits for every replica it queued, so under a starved pool (a test host, a sweep that
/// already holds the pool) each loop, and each cancellation, could wait the pool's thread-injection delay
/// (~0.5 s). Index i's work must write only its own slots, so the numbers do not depend on the thread count.
[<RequireQualifiedAccess>]
module Chunked =
    /// Runs `body state i` for i = 0 .. count - 1 on at most `maxParallelism` threads, the caller's among them;
    /// `init ()` makes one state (scratch buffers) per participating thread, on first use. The first exception a
    /// body throws is rethrown unwrapped once the indices in flight are done (the rest are skipped); a
    /// cancellation of `ct` skips the indices not yet started and ends in OperationCanceledException.
    [<CompiledName("ForWith")>]
    let forWith (maxParallelism: int) (ct: CancellationToken) (count: int) (init: unit -> 's) (body: 's -> int -> unit) =
        Check.positiveInt "max parallelism" maxParallelism
        Check.intInRange "count" 0 System.Int32.MaxValue count
        let workers = min maxParallelism count

        if workers <= 1 then
            let mutable state = Unchecked.defaultof<'s>
            let mutable hasState = false

            let mutable i = 0

            while i < count && not ct.IsCancellationRequested do
                if not hasState then
                    state <- init ()
                    hasState <- true

                body state i
                i <- i + 1
        else
            let loop = ChunkedLoop(count, ct, init, body)

            for _ in 1 .. workers - 1 do
                ThreadPool.UnsafeQueueUserWorkItem((fun _ -> loop.Work()), null) |> ignore

            loop.Work()
            loop.Wait()

            match loop.Failure with
            | null -> ()
            | f -> f.Throw()

        ct.ThrowIfCancellationRequested()

    /// `forWith` without per-thread state.
    [<CompiledName("For")>]
    let forEach (maxParallelism: int) (ct: CancellationToken) (count: int) (body: int -> unit) =
        forWith maxParallelism ct count ignore (fun () i -> body i)
