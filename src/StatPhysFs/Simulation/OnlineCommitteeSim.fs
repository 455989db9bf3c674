namespace StatPhysFs.Simulation

open System
open System.Threading
open System.Threading.Tasks
open System.Numerics
open System.Runtime.InteropServices
open System.Runtime.Intrinsics
open StatPhysFs
open StatPhysFs.Gaussian
open StatPhysFs.Models

type CommitteeSimResult =
    {
        T: float[]
        /// Generalisation error measured from the exact overlaps of each run (not estimated from samples).
        Eg: SeriesEstimate
        EgPerRun: float[][]
        /// Overlaps averaged over runs: Q[i,j], R[i,n], v[i] along T.
        Q: SeriesEstimate[,]
        R: SeriesEstimate[,]
        V: SeriesEstimate[]
        Divergences: (int * float) list
    }

/// Finite-d online SGD for the two-layer teacher-student network with the conventions of `Committee`:
///   w_k <- w_k - (eta/sqrt d) v_k g'(lambda_k) Delta x - (kappa/d) w_k,  v_k <- v_k - (etaV/d) g(lambda_k) Delta - (kappa/d) v_k
/// (mini-batch: gradients averaged over B fresh samples), t = steps/d. The student starts with the exact overlaps
/// Q(0), R(0) of the given initial state and the teacher with exactly T.
[<RequireQualifiedAccess>]
module OnlineCommitteeSim =
    /// Vectors with exactly the Gram matrix [[T, R^T], [R, Q]] (teacher first), scaled by d: Gaussian directions
    /// orthonormalised, then combined by the PSD factor of the Gram matrix.
    let initialWeights (p: CommitteeParams) (s0: CommitteeState) (d: int) (rng: Rng) =
        let n = p.K + p.M
        Check.that "dim" (d >= n) ($"dim must be >= K + M = %d{n}.")
        let basis = Array.init n (fun _ -> Array.init d (fun _ -> rng.NextNormal()))
        // Gram-Schmidt to |e|^2 = d, mutually orthogonal.
        for i in 0 .. n - 1 do
            for j in 0 .. i - 1 do
                let c = Blas.dotArr basis[i] basis[j] / float d
                Blas.axpby (-c) (ReadOnlySpan basis[j]) 1.0 (Span basis[i])

            let s = sqrt (float d / Blas.dotArr basis[i] basis[i])

            for x in 0 .. d - 1 do
                basis[i][x] <- basis[i][x] * s

        let c = CommitteeLayout.fieldCovariance p s0
        // Order teacher first so that T's factor does not depend on the student's.
        let perm = Array.init n (fun i -> if i < p.M then p.K + i else i - p.M)
        let g = Array2D.init n n (fun i j -> c[perm[i], perm[j]])
        let l = Linalg.psdFactor "initial covariance [[Q, R], [R^T, T]]" g

        let vecs =
            Array.init n (fun i ->
                let v = Array.zeroCreate d

                for j in 0 .. n - 1 do
                    if l[i, j] <> 0.0 then
                        Blas.axpby l[i, j] (ReadOnlySpan basis[j]) 1.0 (Span v)

                v)

        let teacher = Array.init p.M (fun m -> vecs[m])
        let student = Array.init p.K (fun k -> vecs[p.M + k])
        teacher, student

    /// Coordinates per block of the fused passes: 4 KB of x, so a block drawn stays in L1 while the K + M rows use it.
    [<Literal>]
    let private Block = 512

    /// sum_j a[o + j] x[o + j], j < n, with four independent accumulators (one would wait on the adder's latency).
    let private dotAt (a: float[]) (x: float[]) (o: int) (n: int) =
        let va = MemoryMarshal.Cast<float, Vector<float>>(ReadOnlySpan(a, o, n))
        let vx = MemoryMarshal.Cast<float, Vector<float>>(ReadOnlySpan(x, o, n))
        let mutable s0 = Vector<float>.Zero
        let mutable s1 = s0
        let mutable s2 = s0
        let mutable s3 = s0
        let mutable i = 0

        while i + 4 <= va.Length do
            s0 <- s0 + va[i] * vx[i]
            s1 <- s1 + va[i + 1] * vx[i + 1]
            s2 <- s2 + va[i + 2] * vx[i + 2]
            s3 <- s3 + va[i + 3] * vx[i + 3]
            i <- i + 4

        while i < va.Length do
            s0 <- s0 + va[i] * vx[i]
            i <- i + 1

        let mutable s = Vector.Sum((s0 + s1) + (s2 + s3))

        for j in o + va.Length * Vector<float>.Count .. o + n - 1 do
            s <- s + a[j] * x[j]

        s

    /// w[o + j] <- b w[o + j] + a x[o + j], j < n (the plain SGD update of one block, two vectors per iteration).
    let private axpbyAt (a: float) (x: float[]) (b: float) (w: float[]) (o: int) (n: int) =
        let vx = MemoryMarshal.Cast<float, Vector<float>>(ReadOnlySpan(x, o, n))
        let vw = MemoryMarshal.Cast<float, Vector<float>>(Span(w, o, n))
        let va = Vector<float>(a)
        let vb = Vector<float>(b)
        let mutable i = 0

        while i + 2 <= vw.Length do
            vw[i] <- vb * vw[i] + va * vx[i]
            vw[i + 1] <- vb * vw[i + 1] + va * vx[i + 1]
            i <- i + 2

        while i < vw.Length do
            vw[i] <- vb * vw[i] + va * vx[i]
            i <- i + 1

        for j in o + vw.Length * Vector<float>.Count .. o + n - 1 do
            w[j] <- b * w[j] + a * x[j]

    /// Coordinates per register tile: 8 Vector512, so that a tile of x and of xPrev stays in registers while every
    /// row passes over it.
    [<Literal>]
    let private Tile = 64

    /// Students' update and products on one tile [j, j + 64): w_k <- decay w_k + pend[k] xPrev, then
    /// acc[k] += w_k * x lane-wise; each student row is read and written once for both. x and xPrev are loaded once
    /// per tile for all students. Plain products and sums (no FMA), so the numbers are the same on every x64 with
    /// AVX-512. (Two functions rather than one with a branch: F# split the latter into a continuation that took the
    /// tile's vectors on the stack.)
    let private tileUpdate
        (rows: float[][])
        (k: int)
        (pend: float[])
        (decay: float)
        (xPrev: float[])
        (x: float[])
        (accs: Vector512<float>[])
        (j: int)
        =
        let x0 = Vector512.LoadUnsafe(&x[j])
        let x1 = Vector512.LoadUnsafe(&x[j + 8])
        let x2 = Vector512.LoadUnsafe(&x[j + 16])
        let x3 = Vector512.LoadUnsafe(&x[j + 24])
        let x4 = Vector512.LoadUnsafe(&x[j + 32])
        let x5 = Vector512.LoadUnsafe(&x[j + 40])
        let x6 = Vector512.LoadUnsafe(&x[j + 48])
        let x7 = Vector512.LoadUnsafe(&x[j + 56])
        let p0 = Vector512.LoadUnsafe(&xPrev[j])
        let p1 = Vector512.LoadUnsafe(&xPrev[j + 8])
        let p2 = Vector512.LoadUnsafe(&xPrev[j + 16])
        let p3 = Vector512.LoadUnsafe(&xPrev[j + 24])
        let p4 = Vector512.LoadUnsafe(&xPrev[j + 32])
        let p5 = Vector512.LoadUnsafe(&xPrev[j + 40])
        let p6 = Vector512.LoadUnsafe(&xPrev[j + 48])
        let p7 = Vector512.LoadUnsafe(&xPrev[j + 56])
        let vd = Vector512.Create decay

        for r in 0 .. k - 1 do
            let w = rows[r]
            let a = Vector512.Create pend[r]
            let w0 = vd * Vector512.LoadUnsafe(&w[j]) + a * p0
            let w1 = vd * Vector512.LoadUnsafe(&w[j + 8]) + a * p1
            let w2 = vd * Vector512.LoadUnsafe(&w[j + 16]) + a * p2
            let w3 = vd * Vector512.LoadUnsafe(&w[j + 24]) + a * p3
            let w4 = vd * Vector512.LoadUnsafe(&w[j + 32]) + a * p4
            let w5 = vd * Vector512.LoadUnsafe(&w[j + 40]) + a * p5
            let w6 = vd * Vector512.LoadUnsafe(&w[j + 48]) + a * p6
            let w7 = vd * Vector512.LoadUnsafe(&w[j + 56]) + a * p7
            w0.StoreUnsafe(&w[j])
            w1.StoreUnsafe(&w[j + 8])
            w2.StoreUnsafe(&w[j + 16])
            w3.StoreUnsafe(&w[j + 24])
            w4.StoreUnsafe(&w[j + 32])
            w5.StoreUnsafe(&w[j + 40])
            w6.StoreUnsafe(&w[j + 48])
            w7.StoreUnsafe(&w[j + 56])

            accs[r] <-
                accs[r]
                + (((w0 * x0 + w1 * x1) + (w2 * x2 + w3 * x3))
                   + ((w4 * x4 + w5 * x5) + (w6 * x6 + w7 * x7)))

    /// acc[r] += rows[r] * x lane-wise on one tile [j, j + 64), rows r0.. (the teachers, and the students when no
    /// update is pending).
    let private tileDot (rows: float[][]) (r0: int) (x: float[]) (accs: Vector512<float>[]) (j: int) =
        let x0 = Vector512.LoadUnsafe(&x[j])
        let x1 = Vector512.LoadUnsafe(&x[j + 8])
        let x2 = Vector512.LoadUnsafe(&x[j + 16])
        let x3 = Vector512.LoadUnsafe(&x[j + 24])
        let x4 = Vector512.LoadUnsafe(&x[j + 32])
        let x5 = Vector512.LoadUnsafe(&x[j + 40])
        let x6 = Vector512.LoadUnsafe(&x[j + 48])
        let x7 = Vector512.LoadUnsafe(&x[j + 56])

        for r in r0 .. rows.Length - 1 do
            let w = rows[r]

            let s =
                ((Vector512.LoadUnsafe(&w[j]) * x0 + Vector512.LoadUnsafe(&w[j + 8]) * x1)
                 + (Vector512.LoadUnsafe(&w[j + 16]) * x2 + Vector512.LoadUnsafe(&w[j + 24]) * x3))
                + ((Vector512.LoadUnsafe(&w[j + 32]) * x4 + Vector512.LoadUnsafe(&w[j + 40]) * x5)
                   + (Vector512.LoadUnsafe(&w[j + 48]) * x6 + Vector512.LoadUnsafe(&w[j + 56]) * x7))

            accs[r] <- accs[r] + s

    /// One blockwise pass over the coordinates, reading every row once: applies the pending plain-SGD update
    /// w_k <- decay w_k + pend[k] xPrev (when `pending`), draws the next input into x (d + 1 normals: x[0..d-1] and
    /// the label noise x[d]) and sets dots[r] = rows[r] . x (rows: the K students, then the M teachers). Fusing the
    /// update of one step with the projections of the next saves a read of the students per step; drawing x in
    /// blocks keeps each block in L1 for its K + M products, and register tiles (`tileUpdate`, `tileDot`, with
    /// AVX-512) read x and xPrev once per tile for all rows.
    let private drawAndProject
        (normals: NormalBlock)
        (rows: float[][])
        (k: int)
        (pending: bool)
        (pend: float[])
        (decay: float)
        (xPrev: float[])
        (x: float[])
        (dots: float[])
        (accs: Vector512<float>[])
        =
        let d = x.Length - 1
        Array.Clear dots
        let tiles = Vector512.IsHardwareAccelerated

        if tiles then
            Array.Clear accs

        let mutable o = 0

        while o <= d do
            let nb = min Block (d + 1 - o)
            let nd = min nb (d - o)
            // The update reads xPrev only, so x's block can be drawn first.
            normals.Fill(Span(x, o, nb))
            let nt = if tiles then nd / Tile * Tile else 0
            let mutable j = o

            while j < o + nt do
                if pending then
                    tileUpdate rows k pend decay xPrev x accs j

                tileDot rows (if pending then k else 0) x accs j
                j <- j + Tile

            if nt < nd then
                if pending then
                    for i in 0 .. k - 1 do
                        axpbyAt pend[i] xPrev decay rows[i] (o + nt) (nd - nt)

                for r in 0 .. rows.Length - 1 do
                    dots[r] <- dots[r] + dotAt rows[r] x (o + nt) (nd - nt)

            o <- o + nb

        if tiles then
            for r in 0 .. rows.Length - 1 do
                dots[r] <- dots[r] + Vector512.Sum accs[r]

    /// The pending plain-SGD update alone (before the students are measured), blockwise so x stays in L1.
    let private applyPending (w: float[][]) (pend: float[]) (decay: float) (xPrev: float[]) =
        let d = xPrev.Length - 1
        let mutable o = 0

        while o < d do
            let nb = min Block (d - o)

            for i in 0 .. w.Length - 1 do
                axpbyAt pend[i] xPrev decay w[i] o nb

            o <- o + nb

    let private runOne
        (p: CommitteeParams)
        (schedule: LearningRateSchedule)
        (s0: CommitteeState)
        (o: SimulationOptions)
        (times: float[])
        (run: int)
        (ct: CancellationToken)
        (tick: int64 -> unit)
        =
        let d = o.Dim
        let rng = Rng(o.Seed, run)
        let teacher, w = initialWeights p s0 d rng
        // The inputs (and label noise) come from eight SIMD Box-Muller lanes cut from the run's generator: a different
        // stream from rng.FillNormal, same law (see NormalBlock).
        let normals = NormalBlock(rng)
        let rows = Array.append w teacher
        let v = Array.copy s0.V
        // Two input buffers of d + 1 (x and the label noise): the current draw, and the previous one while its plain
        // SGD update is pending (applied in the next pass, or before w is read).
        let mutable x = Array.zeroCreate (d + 1)
        let mutable xPrev = Array.zeroCreate (d + 1)
        let pend = Array.zeroCreate p.K
        let mutable pending = false
        let dots = Array.zeroCreate (p.K + p.M)
        let accs = Array.zeroCreate<Vector512<float>>(p.K + p.M)
        let sd = sqrt (float d)
        let sigma = sqrt p.NoiseVar
        let g = p.Activation
        let gT = CommitteeLayout.teacherActivation p
        let lam = Array.zeroCreate p.K
        let nu = Array.zeroCreate p.M
        let gradW = Array.init p.K (fun _ -> Array.zeroCreate d)
        let gradV = Array.zeroCreate p.K
        let coef = Array.zeroCreate p.K
        let mu = CommitteeLayout.fieldMean p
        let decay = 1.0 - p.WeightDecay / float d
        let mutable eta = p.Lr
        let beta = p.Momentum
        // Heavy-ball velocities (used when beta > 0): vel <- beta vel - step; w <- w + vel.
        let velW =
            if beta > 0.0 then
                Array.init p.K (fun _ -> Array.zeroCreate d)
            else
                [||]

        let velV = Array.zeroCreate p.K
        let plain = beta = 0.0 && p.Batch = 1
        let nt = times.Length
        let states = Array.zeroCreate nt
        let mutable diverged = None
        let mutable step = 0L
        let mutable k = 0

        let measure () =
            {
                Q = Array2D.init p.K p.K (fun i j -> Blas.dotArr w[i] w[j] / float d)
                R = Array2D.init p.K p.M (fun i n -> Blas.dotArr w[i] teacher[n] / float d)
                V = Array.copy v
            }

        while k < nt && diverged.IsNone do
            let target = int64 (Math.Round(times[k] * float d))
            let chunk = target - step

            while step < target && diverged.IsNone do
                // A schedule eta(t) sets the first-layer rate at t = step/d, as in the ODE.
                match schedule with
                | LearningRateSchedule.Constant -> ()
                | s -> eta <- LearningRateSchedule.eta p.Lr s (float step / float d)

                if not plain then
                    for i in 0 .. p.K - 1 do
                        Array.Clear gradW[i]

                Array.Clear gradV

                for _ in 1 .. p.Batch do
                    drawAndProject normals rows p.K pending pend decay xPrev x dots accs
                    pending <- false
                    let mutable y = sigma * x[d]

                    for m in 0 .. p.M - 1 do
                        nu[m] <- dots[p.K + m] / sd + mu[p.K + m]
                        y <- y + p.VTeacher[m] * Activation.value gT nu[m]

                    let mutable yhat = 0.0

                    for i in 0 .. p.K - 1 do
                        lam[i] <- dots[i] / sd + mu[i]
                        yhat <- yhat + v[i] * Activation.value g lam[i]

                    let delta = yhat - y

                    for i in 0 .. p.K - 1 do
                        coef[i] <- v[i] * Activation.derivative g lam[i] * delta
                        gradV[i] <- gradV[i] + Activation.value g lam[i] * delta
                        // Plain SGD updates w in the next pass (pending); everything else accumulates the batch
                        // gradient first.
                        if plain then
                            pend[i] <- -eta / sd * coef[i]
                        else
                            Blas.axpby coef[i] (ReadOnlySpan(x, 0, d)) 1.0 (Span gradW[i])

                    if plain then
                        pending <- true
                        let t = xPrev
                        xPrev <- x
                        x <- t

                let b = float p.Batch

                if not plain then
                    for i in 0 .. p.K - 1 do
                        if beta = 0.0 then
                            Blas.axpby (-eta / (sd * b)) (ReadOnlySpan gradW[i]) decay (Span w[i])
                        else
                            // vel <- beta vel - (eta/(B sqrt d)) grad - (kappa/d) w;  w <- w + vel
                            Blas.axpby (-eta / (sd * b)) (ReadOnlySpan gradW[i]) beta (Span velW[i])
                            Blas.axpby (-p.WeightDecay / float d) (ReadOnlySpan w[i]) 1.0 (Span velW[i])
                            Blas.axpby 1.0 (ReadOnlySpan velW[i]) 1.0 (Span w[i])

                match p.LrSecond with
                | Some etaV ->
                    for i in 0 .. p.K - 1 do
                        if beta = 0.0 then
                            v[i] <- v[i] * decay - etaV / (float d * b) * gradV[i]
                        else
                            velV[i] <-
                                beta * velV[i]
                                - etaV / (float d * b) * gradV[i]
                                - p.WeightDecay / float d * v[i]

                            v[i] <- v[i] + velV[i]
                | None -> ()

                step <- step + 1L

                // Cancellation every 256 steps, so that a large d still stops within milliseconds.
                if step &&& 255L = 0L then
                    ct.ThrowIfCancellationRequested()

                if step % int64 d = 0L then
                    ct.ThrowIfCancellationRequested()

                    if pending then
                        applyPending w pend decay xPrev
                        pending <- false

                    let q0 = Blas.dotArr w[0] w[0] / float d

                    if not (q0 <= o.DivergenceBound) then
                        diverged <- Some(float step / float d)

            tick chunk

            if pending then
                applyPending w pend decay xPrev
                pending <- false

            if diverged.IsNone then
                states[k] <- Some(measure ())

            k <- k + 1

        states, diverged

    /// Runs `Seeds` independent simulations in parallel with the first-layer learning rate eta(t) = schedule t
    /// (t = steps/d) when given; overlaps are measured exactly at the requested times.
    let private runWithSchedule
        (o: SimulationOptions)
        (progress: float -> unit)
        (ct: CancellationToken)
        (p: CommitteeParams)
        (schedule: LearningRateSchedule)
        (s0: CommitteeState)
        (times: float[])
        =
        Committee.validate p

        let results =
            Ensemble.run o.MaxParallelism ct progress (SimulationOptions.work o times) o.Seeds (fun r tick ->
                runOne p schedule s0 o times r ct tick)

        let series (f: CommitteeState -> float) =
            results
            |> Array.map (fun (st: CommitteeState option[], _) ->
                st
                |> Array.map (function
                    | Some s -> f s
                    | None -> nan))

        let egRuns = series (Committee.generalisationError p)

        {
            T = Array.copy times
            Eg = SeriesEstimate.ofRuns egRuns
            EgPerRun = egRuns
            Q = Array2D.init p.K p.K (fun i j -> SeriesEstimate.ofRuns (series (fun s -> s.Q[i, j])))
            R = Array2D.init p.K p.M (fun i n -> SeriesEstimate.ofRuns (series (fun s -> s.R[i, n])))
            V = Array.init p.K (fun i -> SeriesEstimate.ofRuns (series (fun s -> s.V[i])))
            Divergences = SimulationOutcome.divergences (Array.map snd results)
        }

    /// Runs `Seeds` independent simulations in parallel; overlaps are measured exactly at the requested times.
    [<CompiledName("Run")>]
    let run
        (o: SimulationOptions)
        (progress: float -> unit)
        (ct: CancellationToken)
        (p: CommitteeParams)
        (s0: CommitteeState)
        (times: float[])
        =
        runWithSchedule o progress ct p LearningRateSchedule.Constant s0 times

    /// Simulates the problem at finite d (`sim`: dimension, seeds, seed) on the settings' output times, with their
    /// run control, and returns the ODE's solution shape with standard errors over runs: States are the mean
    /// overlaps, `Errors` their standard errors; the status is Diverged at the earliest divergence when a run
    /// diverged. Cancellation throws OperationCanceledException.
    [<CompiledName("Simulate")>]
    let simulate
        (sim: SimulationOptions)
        (settings: CommitteeSettings)
        (problem: CommitteeProblem)
        : CommitteeSolution =
        Committee.validateProblem problem
        let p = problem.Model
        let times = Committee.outputTimes settings problem

        let r =
            runWithSchedule
                sim
                (RunControl.report settings.Control)
                settings.Control.CancellationToken
                p
                problem.Schedule
                problem.Init
                times

        let state (f: SeriesEstimate -> float[]) j =
            let q = Array2D.init p.K p.K (fun a b -> (f r.Q[a, b])[j])
            let rr = Array2D.init p.K p.M (fun a n -> (f r.R[a, n])[j])
            let v = Array.init p.K (fun a -> (f r.V[a])[j])

            if Double.IsNaN r.Eg.Mean[j] then
                None
            else
                Some { Q = q; R = rr; V = v }

        {
            Problem = problem
            T = r.T
            States = Array.init times.Length (state (fun e -> e.Mean))
            Eg = r.Eg.Mean
            Errors =
                Some
                    {
                        Eg = r.Eg.StdErr
                        States = Array.init times.Length (state (fun e -> e.StdErr))
                        EgPerRun = r.EgPerRun
                        Divergences = r.Divergences
                    }
            Status = SimulationOutcome.status sim r.Divergences
            EarlyStopping = None
            Stats = SimulationOutcome.noOdeStats
        }
