namespace StatPhysFs.Simulation

open System
open System.Threading
open System.Threading.Tasks
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
        let v = Array.copy s0.V
        let x = Array.zeroCreate d
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
                    rng.FillNormal(Span x)
                    let mutable y = sigma * rng.NextNormal()

                    for m in 0 .. p.M - 1 do
                        nu[m] <- Blas.dotArr teacher[m] x / sd + mu[p.K + m]
                        y <- y + p.VTeacher[m] * Activation.value gT nu[m]

                    let mutable yhat = 0.0

                    for i in 0 .. p.K - 1 do
                        lam[i] <- Blas.dotArr w[i] x / sd + mu[i]
                        yhat <- yhat + v[i] * Activation.value g lam[i]

                    let delta = yhat - y

                    for i in 0 .. p.K - 1 do
                        coef[i] <- v[i] * Activation.derivative g lam[i] * delta
                        gradV[i] <- gradV[i] + Activation.value g lam[i] * delta
                        // Plain SGD updates in place; everything else accumulates the batch gradient first.
                        if plain then
                            Blas.axpby (-eta / sd * coef[i]) (ReadOnlySpan x) decay (Span w[i])
                        else
                            Blas.axpby coef[i] (ReadOnlySpan x) 1.0 (Span gradW[i])

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
                    let q0 = Blas.dotArr w[0] w[0] / float d

                    if not (q0 <= o.DivergenceBound) then
                        diverged <- Some(float step / float d)

            tick chunk

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
    let simulate (sim: SimulationOptions) (settings: CommitteeSettings) (problem: CommitteeProblem) : CommitteeSolution =
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
