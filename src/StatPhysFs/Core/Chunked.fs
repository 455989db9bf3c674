namespace StatPhysFs

open System.Threading
open System.Runtime.ExceptionServices

/// Shared state of one `Chunked` loop: indices are claimed one at a time from a counter, so a worker that starts
/// late (or never) holds nothing up, and the caller waits only for indices another thread has already claimed.
type internal ChunkedLoop<'s>(count: int, ct: CancellationToken, init: unit -> 's, body: 's -> int -> unit) =
    // [0]: last claimed index, [1]: finished indices.
    let counters = [| -1; 0 |]
    let mutable failure: ExceptionDispatchInfo = null
    let finished = new ManualResetEventSlim(false)

    member _.Work() =
        let mutable state = Unchecked.defaultof<'s>
        let mutable hasState = false
        let mutable go = true

        while go do
            let i = Interlocked.Increment(&counters[0])

            if i >= count then
                go <- false
            else
                try
                    // After a failure or a cancellation the remaining indices are claimed and skipped, so the
                    // count of finished indices still reaches `count` and nobody waits for an unstarted worker.
                    if isNull (Volatile.Read(&failure)) && not ct.IsCancellationRequested then
                        if not hasState then
                            state <- init ()
                            hasState <- true

                        body state i
                with e ->
                    Interlocked.CompareExchange(&failure, ExceptionDispatchInfo.Capture e, null) |> ignore

                if Interlocked.Increment(&counters[1]) = count then
                    finished.Set()

    // Not disposed: the thread that sets it may still be inside Set when the waiter returns; without a kernel
    // handle (it is created only after a long wait) there is nothing to release.
    member _.Wait() = finished.Wait()

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

            for i in 0 .. count - 1 do
                if not ct.IsCancellationRequested then
                    if not hasState then
                        state <- init ()
                        hasState <- true

                    body state i
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
