namespace StatPhysFs.Dmft

open System
open StatPhysFs

[<RequireQualifiedAccess>]
module Dmft =
    /// Memory (bytes) of the forward sweep's arrays, counted as the sampler allocates them: per chunk of 256 samples
    /// (padded to 16) the inputs z (m* + (K+1) m), the signals g ((K+1) m) and h = -g'/delta ((K+1) m^2), a few
    /// rows of scratch, and the block scratch of the back substitution (ScalarChunk.Doubles, BlockChunk.Doubles);
    /// shared, the columns' kernels C, R, R_g, Sigma_u, R^T in blocks (5 (K+1)^2 m^2) and the Cholesky factor of the
    /// Gaussian path ((m* + (K+1) m)^2). Linear in N: the responses D are recomputed, not stored. The process's peak
    /// resident memory grows ~4% faster per sample than this (the GC's heap regions; measured at 20 000 and 80 000
    /// samples, README "DMFT Monte Carlo").
    [<CompiledName("SweepMemory")>]
    let sweepMemory (samples: int) (p: DmftProblem) =
        let m, ms = DmftProblem.widths p
        let points = p.Steps + 1
        let dim = ms + m * points
        let cs = RowSampler.ChunkSize

        let chunk size =
            if size = 0 then 0.0
            elif m = 1 then ScalarChunk.Doubles(size, points, ms, dim, ScalarKernels.wide)
            else BlockChunk.Doubles(size, points, m, ms, dim, ScalarKernels.wide)

        let full = samples / cs
        let chunks = float full * chunk cs + chunk (samples - full * cs)
        let kernels = 5.0 * float points * float points * float (m * m)
        let shared = kernels + float dim * float dim + float (2 * points * m * ms)
        8.0 * (chunks + shared)

    let private memoryBudget = 1.5e9

    /// The strategy Auto resolves to.
    [<CompiledName("ResolveStrategy")>]
    let resolveStrategy (s: DmftSettings) (p: DmftProblem) =
        match s.Strategy with
        | Auto when sweepMemory s.Samples p <= memoryBudget -> ForwardSweep
        | Auto ->
            // Memory per extra sample (without the shared kernels, which do not scale with the batch).
            let perSample = (sweepMemory 1024 p - sweepMemory 0 p) / 1024.0
            // Capped at 4096: the batch size does not change the iteration's estimator, and smaller batches keep the
            // first sweep and each batch step short (cancellation latency).
            let batch =
                max 64 (int (memoryBudget / 4.0 / perSample)) |> min 4096 |> min s.Samples

            FixedPoint(batch, 0.5, 10)
        | other -> other

    let private kernelOf (ct: Threading.CancellationToken) (points: int) (m: int) (runs: float[][]) (full: int) =
        let mm = m * m
        let data = Cancellable.zeroed ct (points * points * mm)

        for run in runs do
            for k in 0 .. points - 1 do
                ct.ThrowIfCancellationRequested()

                for l in 0 .. points - 1 do
                    for e in 0 .. mm - 1 do
                        data[(k * points + l) * mm + e] <-
                            data[(k * points + l) * mm + e]
                            + run[(k * full + l) * mm + e] / float runs.Length

        {
            Points = points
            Width = m
            Data = data
        }

    /// The discrete DMFT at the problem's own step, every replica averaged; `progress` receives the fraction done.
    let private solveAtStep (s: DmftSettings) (progress: float -> unit) (p: DmftProblem) =
        let clock = Diagnostics.Stopwatch.StartNew()
        let ct = s.Control.CancellationToken
        // Also checks the fine grid of the extrapolation (twice the steps).
        DmftProblem.validate p
        // The fine solve of the extrapolation starts after the coarse one: no kernels before a look at the token.
        ct.ThrowIfCancellationRequested()
        let strategy = resolveStrategy s p
        let model = RowModel.create p.Model
        let n = p.Steps + 1
        let m, ms = DmftProblem.widths p

        let replicas, ticksPer =
            match strategy with
            | ExactClosure -> 1, n
            | FixedPoint(_, _, it) -> s.Replicas, n + it
            | _ -> s.Replicas, n

        let mutable ticks = 0
        let total = float (replicas * ticksPer)

        let tick () =
            ticks <- ticks + 1
            progress (float ticks / total)

        let runs =
            Array.init replicas (fun r ->
                match strategy with
                | ExactClosure ->
                    match p.Model with
                    | Glm(GlmLoss.Square, GlmTeacher.Linear) -> ()
                    | _ ->
                        invalidArg
                            "strategy"
                            "the exact closure needs an affine l: the square loss with a linear teacher (GLM)."

                    let columns = Columns(p, ct)
                    let closure = ExactClosure(p, columns, ct)
                    let train, reached, status = DmftSweep.sweep p columns ct tick closure.Step

                    {
                        Reached = reached
                        Train = train
                        Columns = columns
                        Status = status
                        Detail = "exact moment closure (no Monte Carlo)"
                        Residual = nan
                    }
                | FixedPoint(batch, beta, iterations) ->
                    let columns, train, reached, status, residual =
                        DmftFixedPoint.run s p model r batch beta iterations tick

                    {
                        Reached = reached
                        Train = train
                        Columns = columns
                        Status = status
                        Detail =
                            $"damped fixed point (batch %d{batch}, damping %g{beta}, %d{iterations} iterations, last change of q %.2e{residual})"
                        Residual = residual
                    }
                | _ ->
                    let columns, train, reached, status =
                        DmftSweep.forwardSweep s p model r s.Samples 0 tick

                    {
                        Reached = reached
                        Train = train
                        Columns = columns
                        Status = status
                        Detail = "forward sweep"
                        Residual = nan
                    })

        // The solution's kernels below are O(K^2) copies: a run cancelled at its last step stops here, not after them.
        ct.ThrowIfCancellationRequested()
        let reached = runs |> Array.map (fun r -> r.Reached) |> Array.min

        let status =
            runs
            |> Array.map (fun r -> r.Status)
            |> Array.sortBy (function
                | Diverged(t, _) -> t
                | _ -> infinity)
            |> Array.head

        let series (f: ReplicaRun -> int -> float) =
            SeriesEstimate.ofRuns (runs |> Array.map (fun r -> Array.init reached (f r)))

        let qs =
            Array2D.init m m (fun a b -> series (fun r k -> r.Columns.C[r.Columns.Index k k + a * m + b]))

        let mss =
            Array2D.init m ms (fun a b -> series (fun r k -> r.Columns.M[k * m * ms + a * ms + b]))

        let test =
            series (fun r k -> Observables.testLoss p (r.Columns.QAt k) (r.Columns.MAt k))

        let testError =
            match Observables.testError p (runs[0].Columns.QAt 0) (runs[0].Columns.MAt 0) with
            | Some _ -> Some(series (fun r k -> (Observables.testError p (r.Columns.QAt k) (r.Columns.MAt k)).Value))
            | None -> None

        let samples =
            match strategy with
            | ExactClosure -> "no samples"
            | _ -> $"%d{s.Samples} samples x %d{replicas} replicas"

        {
            Problem = p
            T = Array.init reached (fun k -> float k * p.Dt)
            Q = qs
            M = mss
            TrainLoss = series (fun r k -> r.Train[k])
            TestLoss = test
            TestError = testError
            Correlation = kernelOf ct reached m (runs |> Array.map (fun r -> r.Columns.C)) n
            Response = kernelOf ct reached m (runs |> Array.map (fun r -> r.Columns.R)) n
            NoiseCovariance =
                kernelOf
                    ct
                    reached
                    m
                    (runs
                     |> Array.map (fun r ->
                         let su = Array.copy r.Columns.Su
                         let mm = m * m
                         // Only l <= k is estimated; Sigma_u(l, k) = Sigma_u(k, l)^T.
                         for k in 0 .. n - 1 do
                             for l in k + 1 .. n - 1 do
                                 for a in 0 .. m - 1 do
                                     for b in 0 .. m - 1 do
                                         su[(k * n + l) * mm + a * m + b] <- su[(l * n + k) * mm + b * m + a]

                         su))
                    n
            Status = status
            Method = $"%s{runs[0].Detail}, %s{samples}"
            Statistics =
                {
                    Strategy = strategy
                    Samples =
                        (if strategy = DmftStrategy.ExactClosure then
                             0
                         else
                             s.Samples)
                    Replicas = replicas
                    FixedPointResidual = runs |> Array.map (fun r -> r.Residual) |> Array.max
                    WallSeconds = clock.Elapsed.TotalSeconds
                }
        }

    /// Richardson extrapolation in the step (spec section 5.1): solves at Dt and Dt/2 (twice the steps) and returns,
    /// on the coarse grid, 2 v(Dt/2) - v(Dt) for q, m, the losses and the test error, removing the O(Dt) weak error
    /// of Euler-Maruyama against the continuous SGF. Standard errors combine as sqrt(4 se_fine^2 + se_coarse^2)
    /// (independent replicas). Kernels are those of the fine solve, sampled on the coarse grid.
    let private solveExtrapolated (s: DmftSettings) (p: DmftProblem) =
        // The fine solve has twice the steps of the coarse one: about 1/3 and 2/3 of the work.
        let coarse = solveAtStep s (fun f -> RunControl.report s.Control (f / 3.0)) p

        let fine =
            solveAtStep
                { s with Seed = s.Seed + 7919 }
                (fun f -> RunControl.report s.Control (1.0 / 3.0 + 2.0 * f / 3.0))
                { p with
                    Dt = p.Dt / 2.0
                    Steps = 2 * p.Steps
                }

        let n = min coarse.T.Length ((fine.T.Length + 1) / 2)
        // The coarse-grid kernels below are O(K^2) copies.
        s.Control.CancellationToken.ThrowIfCancellationRequested()

        let combine (c: SeriesEstimate) (f: SeriesEstimate) =
            {
                Mean = Array.init n (fun k -> Richardson.extrapolate 1 c.Mean[k] f.Mean[2 * k])
                StdErr = Array.init n (fun k -> Richardson.stdErr c.StdErr[k] f.StdErr[2 * k])
            }

        let sub (k: Kernel) =
            let m = k.Width

            {
                Points = n
                Width = m
                Data =
                    Array.init (n * n * m * m) (fun idx ->
                        let e = idx % (m * m)
                        let rest = idx / (m * m)
                        let i, j = rest / n, rest % n
                        k.Data[((2 * i * k.Points + 2 * j) * m * m) + e])
            }

        { fine with
            Problem = p
            T = coarse.T[.. n - 1]
            Q =
                Array2D.init (Array2D.length1 coarse.Q) (Array2D.length2 coarse.Q) (fun a b ->
                    combine coarse.Q[a, b] fine.Q[a, b])
            M =
                Array2D.init (Array2D.length1 coarse.M) (Array2D.length2 coarse.M) (fun a b ->
                    combine coarse.M[a, b] fine.M[a, b])
            TrainLoss = combine coarse.TrainLoss fine.TrainLoss
            TestLoss = combine coarse.TestLoss fine.TestLoss
            TestError = Option.map2 combine coarse.TestError fine.TestError
            Correlation = sub fine.Correlation
            Response = sub fine.Response
            NoiseCovariance = sub fine.NoiseCovariance
            Status =
                match coarse.Status, fine.Status with
                | Completed, st -> st
                | st, _ -> st
            Method = $"Richardson in dt (%g{p.Dt} and %g{(p.Dt / 2.0)}): %s{fine.Method}"
            Statistics =
                { fine.Statistics with
                    WallSeconds = coarse.Statistics.WallSeconds + fine.Statistics.WallSeconds
                }
        }

    /// Solve the discrete DMFT of the SGF (dmft-sgf.md section 3) for every replica and average, or with
    /// settings.ExtrapolateInStep its Richardson extrapolation in the step. Throws OperationCanceledException when
    /// settings.Control's token is cancelled (checked at least once per chunk of 256 samples and per step).
    [<CompiledName("Solve")>]
    let solve (settings: DmftSettings) (problem: DmftProblem) : DmftSolution =
        DmftProblem.validate problem
        DmftSettings.validate settings
        settings.Control.CancellationToken.ThrowIfCancellationRequested()

        if settings.ExtrapolateInStep then
            solveExtrapolated settings problem
        else
            solveAtStep settings (RunControl.report settings.Control) problem
