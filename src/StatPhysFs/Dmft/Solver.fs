namespace StatPhysFs.Dmft

open System
open StatPhysFs
open StatPhysFs.Ode
open StatPhysFs.Simulation

/// One replica's solution, before averaging.
type internal ReplicaRun =
    {
        Reached: int
        Train: float[]
        Columns: Columns
        Status: RunStatus
        Detail: string
    }

[<RequireQualifiedAccess>]
module Dmft =
    let private divergenceBound = 1e8

    /// Kernels of row k from the sample sums (spec section 3.2): R_g = Delta E[J D], Sigma_u = E[g g^T]/delta, mu by
    /// Stein on the teacher field.
    let private setRow (p: DmftProblem) (columns: Columns) (k: int) (rgSum: float[]) (suSum: float[]) (lw: float[]) =
        let mm = columns.Width * columns.Width

        for l in 0..k do
            let o = columns.Index k l

            for e in 0 .. mm - 1 do
                columns.Rg[o + e] <- p.Dt * rgSum[l * mm + e]
                columns.Su[o + e] <- suSum[l * mm + e] / p.Alpha

        columns.SetMu(k, lw)

    let private scaled (a: float[]) (c: float) = a |> Array.map (fun x -> x * c)

    let private diverged (p: DmftProblem) (columns: Columns) (k: int) =
        let s = columns.DiagonalSize k

        if s > divergenceBound then
            Some(Diverged(float k * p.Dt, sprintf "q exceeded the divergence bound %g" divergenceBound))
        else
            None

    /// The causal sweep: row step k (by `rowStep`, which sets the kernels of row k and returns the train loss),
    /// then the columns to k + 1.
    let private sweep (p: DmftProblem) (columns: Columns) (ct: Threading.CancellationToken) tick rowStep =
        let n = p.Steps + 1
        let train = Array.create n nan
        let mutable status = Completed
        let mutable k = 0

        while k < n && status = Completed do
            ct.ThrowIfCancellationRequested()
            train[k] <- rowStep k

            if k < n - 1 then
                columns.Advance k

                match diverged p columns (k + 1) with
                | Some s -> status <- s
                | None -> ()

            tick ()
            k <- k + 1

        // On divergence the row at the last reached step was never sampled: report up to the step before.
        let reached = if status = Completed then n else k
        train, reached, status

    let private rngFor (seed: int) (replica: int) (iteration: int) (batch: int) (chunk: int) =
        Rng(
            uint64 (int64 seed),
            (uint64 replica <<< 44)
            ^^^ (uint64 iteration <<< 32)
            ^^^ (uint64 batch <<< 20)
            ^^^ uint64 chunk
        )

    /// The forward sweep of one replica; `storeResponses` selects the O(N K^2) stored-responses sampler (the test
    /// oracle of the default back-substitution one, see SampleChunk).
    let internal forwardSweepWith
        storeResponses
        (s: DmftSettings)
        (p: DmftProblem)
        (model: RowModel)
        replica
        samples
        stream
        tick
        =
        let columns = Columns(p)
        let path = GaussianPath(columns)
        path.AddTeacher()

        let sampler =
            RowSampler(
                p,
                model,
                columns,
                path,
                samples,
                rngFor s.Seed replica stream 0,
                s.MaxParallelism,
                storeResponses
            )

        let rowStep k =
            path.AddStep k
            sampler.Step k
            let t = sampler.Total
            let inv = 1.0 / float t.Count
            setRow p columns k (scaled t.Rg inv) (scaled t.Su inv) (scaled t.LwStar inv)
            t.Loss * inv

        let train, reached, status = sweep p columns s.CancellationToken tick rowStep
        columns, train, reached, status

    let private forwardSweep s p model replica samples stream tick =
        forwardSweepWith false s p model replica samples stream tick

    /// Strategy B: damped fixed-point iteration over whole trajectories, samples processed in batches of `batch`.
    let private fixedPoint (s: DmftSettings) (p: DmftProblem) model replica batch beta iterations tick =
        // Start from a forward sweep on one batch: already exact up to its Monte Carlo noise.
        let columns, train0, reached, status =
            forwardSweep s p model replica (min batch s.Samples) 1 ignore

        if status <> Completed then
            columns, train0, reached, status, nan
        else
            let n = p.Steps + 1
            let m, ms = columns.Width, columns.TeacherWidth
            let mm = m * m
            let path = GaussianPath(columns)
            // Damped raw estimates E[J D], E[g g^T], E[l w*^T], E[L] per row.
            let estRg = Array.zeroCreate (n * n * mm)
            let estSu = Array.zeroCreate (n * n * mm)
            let estLw = Array.zeroCreate (n * m * ms)
            let estLoss = Array.copy train0

            for k in 0 .. n - 1 do
                for l in 0..k do
                    for e in 0 .. mm - 1 do
                        estRg[(k * n + l) * mm + e] <- columns.Rg[columns.Index k l + e] / p.Dt
                        estSu[(k * n + l) * mm + e] <- columns.Su[columns.Index k l + e] * p.Alpha
                // Recover E[l w*^T] = (mu rho + sum R_g M)/Delta from the sweep's mu.
                let tmp = Array.zeroCreate (m * ms)
                Small.mulAdd 1.0 columns.Mu (k * m * ms) columns.Rho 0 false tmp 0 m ms ms

                for l in 0..k do
                    Small.mulAdd 1.0 columns.Rg (columns.Index k l) columns.M (l * m * ms) false tmp 0 m m ms

                for e in 0 .. m * ms - 1 do
                    estLw[k * m * ms + e] <- tmp[e] / p.Dt

            let batches = (s.Samples + batch - 1) / batch
            let mutable status = Completed
            let mutable reached = n
            let mutable residual = nan
            let mutable it = 0
            let avgRg = Array.zeroCreate (n * n * mm)
            let avgSu = Array.zeroCreate (n * n * mm)
            let avgLw = Array.zeroCreate (n * m * ms)
            let avgLoss = Array.zeroCreate n
            let mutable averaged = 0

            // The columns from scratch with given kernels (mu needs M up to its own row: causal).
            let recompute (rg: float[]) (su: float[]) (lw: float[]) =
                columns.Reset()
                let mutable k = 0

                while k < n && status = Completed do
                    setRow
                        p
                        columns
                        k
                        rg[k * n * mm .. (k * n + k + 1) * mm - 1]
                        su[k * n * mm .. (k * n + k + 1) * mm - 1]
                        lw[k * m * ms .. (k + 1) * m * ms - 1]

                    if k < n - 1 then
                        columns.Advance k

                        match diverged p columns (k + 1) with
                        | Some d ->
                            status <- d
                            reached <- k + 1
                        | None -> ()

                    k <- k + 1

            while it < iterations && status = Completed do
                s.CancellationToken.ThrowIfCancellationRequested()
                path.Rebuild()
                let sumRg = Array.zeroCreate (n * n * mm)
                let sumSu = Array.zeroCreate (n * n * mm)
                let sumLw = Array.zeroCreate (n * m * ms)
                let sumLoss = Array.zeroCreate n
                let mutable count = 0

                for b in 0 .. batches - 1 do
                    let size = min batch (s.Samples - b * batch)

                    let sampler =
                        RowSampler(
                            p,
                            model,
                            columns,
                            path,
                            size,
                            rngFor s.Seed replica (it + 2) b,
                            s.MaxParallelism,
                            false
                        )

                    for k in 0 .. n - 1 do
                        // A whole iteration can take minutes: cancellation is checked per batch step.
                        s.CancellationToken.ThrowIfCancellationRequested()
                        sampler.Step k
                        let t = sampler.Total

                        for e in 0 .. (k + 1) * mm - 1 do
                            sumRg[k * n * mm + e] <- sumRg[k * n * mm + e] + t.Rg[e]
                            sumSu[k * n * mm + e] <- sumSu[k * n * mm + e] + t.Su[e]

                        for e in 0 .. m * ms - 1 do
                            sumLw[k * m * ms + e] <- sumLw[k * m * ms + e] + t.LwStar[e]

                        sumLoss[k] <- sumLoss[k] + t.Loss

                    count <- count + size

                let inv = 1.0 / float count

                let mix (a: float[]) (b: float[]) =
                    for i in 0 .. a.Length - 1 do
                        a[i] <- (1.0 - beta) * a[i] + beta * b[i] * inv

                mix estRg sumRg
                mix estSu sumSu
                mix estLw sumLw
                mix estLoss sumLoss
                let before = Array.init n (fun k -> columns.DiagonalSize k)
                recompute estRg estSu estLw
                residual <- Array.init n (fun k -> abs (columns.DiagonalSize k - before[k])) |> Array.max
                // Polyak averaging over the second half: fresh samples every iteration make the iterates noisy
                // (the map amplifies kernel noise at late times); their average is not.
                if 2 * (it + 1) > iterations then
                    for (a, b) in [ avgRg, estRg; avgSu, estSu; avgLw, estLw; avgLoss, estLoss ] do
                        for i in 0 .. a.Length - 1 do
                            a[i] <- a[i] + b[i]

                    averaged <- averaged + 1

                tick ()
                it <- it + 1

            if status = Completed && averaged > 1 then
                for a in [ avgRg; avgSu; avgLw; avgLoss ] do
                    for i in 0 .. a.Length - 1 do
                        a[i] <- a[i] / float averaged

                recompute avgRg avgSu avgLw
                Array.blit avgLoss 0 estLoss 0 n

            columns, estLoss, reached, status, residual

    /// Memory (bytes) of the forward sweep's samples: per sample the Gaussian inputs (m* + (K+1) m), the signals g
    /// ((K+1) m) and Jacobians g' ((K+1) m^2), plus per chunk of 256 the sums and scratch (~4 (K+1) m^2 doubles)
    /// and the columns' kernels (6 (K+1)^2 m^2 doubles). Linear in N: the responses D are recomputed, not stored.
    [<CompiledName("SweepMemory")>]
    let sweepMemory (samples: int) (p: DmftProblem) =
        let m, ms = DmftProblem.widths p
        let n = float (p.Steps + 1)
        let mm = float (m * m)
        let chunks = float ((samples + RowSampler.ChunkSize - 1) / RowSampler.ChunkSize)
        let perSample = float ms * 2.0 + n * (2.0 * float m + mm) + 4.0
        8.0 * (float samples * perSample + chunks * 4.0 * n * mm + 6.0 * n * n * mm)

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

    let private kernelOf (points: int) (m: int) (runs: float[][]) (full: int) =
        let mm = m * m
        let data = Array.zeroCreate (points * points * mm)

        for run in runs do
            for k in 0 .. points - 1 do
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

    /// Solve the discrete DMFT of the SGF (dmft-sgf.md section 3) for every replica and average. Throws
    /// OperationCanceledException when the token is cancelled.
    [<CompiledName("Solve")>]
    let solve (s: DmftSettings) (p: DmftProblem) =
        DmftProblem.validate p
        DmftSettings.validate s
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
            s.Progress(float ticks / total)

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

                    let columns = Columns(p)
                    let closure = ExactClosure(p, columns)
                    let train, reached, status = sweep p columns s.CancellationToken tick closure.Step

                    {
                        Reached = reached
                        Train = train
                        Columns = columns
                        Status = status
                        Detail = "exact moment closure (no Monte Carlo)"
                    }
                | FixedPoint(batch, beta, iterations) ->
                    let columns, train, reached, status, residual =
                        fixedPoint s p model r batch beta iterations tick

                    {
                        Reached = reached
                        Train = train
                        Columns = columns
                        Status = status
                        Detail =
                            sprintf
                                "damped fixed point (batch %d, damping %g, %d iterations, last change of q %.2e)"
                                batch
                                beta
                                iterations
                                residual
                    }
                | _ ->
                    let columns, train, reached, status = forwardSweep s p model r s.Samples 0 tick

                    {
                        Reached = reached
                        Train = train
                        Columns = columns
                        Status = status
                        Detail = "forward sweep"
                    })

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
            | _ -> sprintf "%d samples x %d replicas" s.Samples replicas

        {
            Problem = p
            T = Array.init reached (fun k -> float k * p.Dt)
            Q = qs
            M = mss
            TrainLoss = series (fun r k -> r.Train[k])
            TestLoss = test
            TestError = testError
            Correlation = kernelOf reached m (runs |> Array.map (fun r -> r.Columns.C)) n
            Response = kernelOf reached m (runs |> Array.map (fun r -> r.Columns.R)) n
            NoiseCovariance =
                kernelOf
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
            Method = sprintf "%s, %s" runs[0].Detail samples
        }

    /// Richardson extrapolation in the step (spec section 5.1): solves at Dt and Dt/2 (twice the steps) and returns,
    /// on the coarse grid, 2 v(Dt/2) - v(Dt) for q, m, the losses and the test error, removing the O(Dt) weak error
    /// of Euler-Maruyama against the continuous SGF. Standard errors combine as sqrt(4 se_fine^2 + se_coarse^2)
    /// (independent replicas). Kernels are those of the fine solve, sampled on the coarse grid.
    [<CompiledName("SolveExtrapolated")>]
    let solveExtrapolated (s: DmftSettings) (p: DmftProblem) =
        let coarse = solve s p

        let fine =
            solve
                { s with Seed = s.Seed + 7919 }
                { p with
                    Dt = p.Dt / 2.0
                    Steps = 2 * p.Steps
                }

        let n = min coarse.T.Length ((fine.T.Length + 1) / 2)

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
            Method = sprintf "Richardson in dt (%g and %g): %s" p.Dt (p.Dt / 2.0) fine.Method
        }
