namespace StatPhysFs.Models

open System
open StatPhysFs
open StatPhysFs.Gaussian
open StatPhysFs.Ode

/// The first-layer learning rate as a function of time (part of the committee problem, not a swapped right-hand
/// side). The second-layer rate LrSecond stays constant.
[<RequireQualifiedAccess>]
type LearningRateSchedule =
    /// eta(t) = Lr.
    | Constant
    /// eta(t) = min(Lr, C/t): the annealed eta0/t family (the CLI's --schedule inverse --schedule-c C).
    | Inverse of c: float
    /// Any eta(t) > 0, with a name for output.
    | Custom of name: string * eta: (float -> float)

    /// The name written to output files: constant, min(lr, C/t), or the custom name.
    member s.Description =
        match s with
        | Constant -> "constant"
        | Inverse c -> $"min(lr, %g{c}/t)"
        | Custom(name, _) -> name

[<RequireQualifiedAccess>]
module LearningRateSchedule =
    let validate (s: LearningRateSchedule) =
        match s with
        | LearningRateSchedule.Inverse c -> Check.positive "schedule-c" c
        | LearningRateSchedule.Constant
        | LearningRateSchedule.Custom _ -> ()

    /// eta at time t for the base rate lr.
    [<CompiledName("Eta")>]
    let eta (lr: float) (s: LearningRateSchedule) (t: float) =
        match s with
        | LearningRateSchedule.Constant -> lr
        | LearningRateSchedule.Inverse c -> if t * lr <= c then lr else c / t
        | LearningRateSchedule.Custom(_, f) -> f t

    /// The name written to output files: constant, min(lr, C/t), or the custom name.
    [<CompiledName("Describe")>]
    let describe (s: LearningRateSchedule) = s.Description

/// The problem `Committee.solve` integrates: the network and its training (`Model`), the learning-rate schedule,
/// the initial overlaps (`CommitteeInitialState` / `CommitteeInitPreset` give the usual ones) and the horizon.
type CommitteeProblem =
    {
        Model: CommitteeParams
        Schedule: LearningRateSchedule
        /// Q(0), R(0) and v(0) (v(0) is the fixed second layer when LrSecond = None).
        Init: CommitteeState
        /// The horizon t_end (t = SGD steps / d).
        TEnd: float
    }

/// Numerics of `Committee.solve`: the integrator, the output grid, the quadrature of the integrals, run control.
type CommitteeSettings =
    {
        /// Default Dormand-Prince 5(4), rtol 1e-9, atol 1e-14 (the small overlaps that seed the escape need it).
        Algorithm: OdeAlgorithm
        /// Output grid: Points times from 0 to TEnd, spaced as Grid; ignored when SaveAt is not empty.
        Points: int
        Grid: GridKind
        /// Explicit output times in [0, TEnd] (strictly increasing); empty to use Points and Grid.
        SaveAt: float[]
        /// A state with some |component| above this (or NaN) ends the run as Diverged.
        DivergenceBound: float
        MaxSteps: int
        /// Record the lowest interior minimum of eg (the early-stopping time) on the same integration.
        EarlyStopping: bool
        /// More events to detect on the integration (a terminal one ends the run as TerminatedByEvent).
        Events: OdeEvent list
        Quadrature: CommitteeQuadrature
        Control: RunControl
    }

/// Standard errors over independent runs (a simulation): eg and each overlap, per time.
type CommitteeErrors =
    {
        Eg: float[]
        /// Standard errors of Q, R, v per time (None where any run had diverged).
        States: CommitteeState option[]
        /// eg of each run along T (NaN once that run diverged).
        EgPerRun: float[][]
        /// (run, time) of every run that diverged.
        Divergences: (int * float) list
    }

/// A committee learning curve, from the ODE (`Committee.solve`) or a simulation (`OnlineCommitteeSim.simulate`):
/// the typed states along T (None where the run did not reach the time), eg, the status and statistics.
type CommitteeSolution =
    {
        Problem: CommitteeProblem
        T: float[]
        /// Q, R and v at each output time (the mean over runs for a simulation); None where not reached.
        States: CommitteeState option[]
        /// The generalisation error (label noise excluded); NaN where not reached.
        Eg: float[]
        /// Simulation only: standard errors and divergences.
        Errors: CommitteeErrors option
        Status: RunStatus
        /// (time, eg) of the lowest interior minimum of eg, when `EarlyStopping` was asked for and one exists.
        EarlyStopping: (float * float) option
        /// ODE statistics (zero for a simulation).
        Stats: OdeStats
    }

    /// The expected training loss per sample eg + sigma^2/2 along T.
    member s.TrainLoss = s.Eg |> Array.map (fun e -> e + 0.5 * s.Problem.Model.NoiseVar)

    /// One component of the states along T (NaN where not reached), e.g. `s.Series(fun st -> st.Q[0, 0])`.
    member s.Series(f: CommitteeState -> float) =
        s.States
        |> Array.map (function
            | Some st -> f st
            | None -> nan)

    interface ISolution with
        member s.Times = s.T
        member s.Status = s.Status

        member s.Observables =
            let p = s.Problem.Model
            let err (f: CommitteeState -> float) =
                s.Errors
                |> Option.map (fun e ->
                    e.States
                    |> Array.map (function
                        | Some st -> f st
                        | None -> nan))

            let obs name f =
                {
                    Name = name
                    Values = s.Series f
                    StdErr = err f
                }

            [
                yield
                    {
                        Name = "eg"
                        Values = s.Eg
                        StdErr = s.Errors |> Option.map (fun e -> e.Eg)
                    }
                yield
                    {
                        Name = "train_loss"
                        Values = s.TrainLoss
                        StdErr = s.Errors |> Option.map (fun e -> e.Eg)
                    }
                for i in 0 .. p.K - 1 do
                    for j in i .. p.K - 1 -> obs ($"Q[%d{(i + 1)},%d{(j + 1)}]") (fun st -> st.Q[i, j])
                for i in 0 .. p.K - 1 do
                    for n in 0 .. p.M - 1 -> obs ($"R[%d{(i + 1)},%d{(n + 1)}]") (fun st -> st.R[i, n])
                if p.LrSecond.IsSome then
                    for i in 0 .. p.K - 1 -> obs ($"v[%d{(i + 1)}]") (fun st -> st.V[i])
            ]

[<RequireQualifiedAccess>]
module Committee =
    let private identity n =
        Array2D.init n n (fun i j -> if i = j then 1.0 else 0.0)

    /// K = M, erf, eta = 0.5, fixed second layer v = vT = 1, T = I, no noise.
    [<CompiledName("Create")>]
    let create (k: int) (m: int) =
        {
            K = k
            M = m
            Activation = Erf
            Lr = 0.5
            LrSecond = None
            NoiseVar = 0.0
            WeightDecay = 0.0
            Batch = 1
            Momentum = 0.0
            T = identity m
            VTeacher = Array.create m 1.0
            Bias = [||]
            TeacherActivation = None
            BiasTeacher = [||]
        }

    /// The normalised committee convention (pyscm's `normalise`, Arnaboldi et al., Veiga et al.): outputs
    /// (1/K) sum_k g(lambda_k) and (1/M) sum_n g(nu_n), i.e. fixed v = 1/K and vT = 1/M. Errors, plateau heights and
    /// critical rates rescale against the plain-sum convention of `create`: map before comparing numbers.
    [<CompiledName("Normalised")>]
    let normalised (k: int) (m: int) =
        { create k m with
            VTeacher = Array.create m (1.0 / float m)
        }

    [<CompiledName("Validate")>]
    let validate (p: CommitteeParams) =
        Check.intInRange "K" 1 1000 p.K
        Check.intInRange "M" 1 1000 p.M
        Check.positive "lr" p.Lr
        p.LrSecond |> Option.iter (Check.positive "lr2")
        Check.nonNegative "noise-var" p.NoiseVar
        Check.nonNegative "weight decay" p.WeightDecay
        Check.positiveInt "batch" p.Batch

        Check.that
            "momentum"
            (p.Momentum >= 0.0 && p.Momentum < 1.0)
            ($"momentum must lie in [0, 1), got %g{p.Momentum}.")

        Check.that "T" (Array2D.length1 p.T = p.M && Array2D.length2 p.T = p.M) ($"T must be %d{p.M}x%d{p.M}.")
        Check.that "vTeacher" (p.VTeacher.Length = p.M) ($"vTeacher must have %d{p.M} entries.")
        Linalg.checkPsd "T" p.T

        Check.that
            "b"
            (p.Bias.Length = 0 || p.Bias.Length = p.K)
            ($"b must be empty or have K = %d{p.K} entries.")

        Check.that
            "bTeacher"
            (p.BiasTeacher.Length = 0 || p.BiasTeacher.Length = p.M)
            ($"bTeacher must be empty or have M = %d{p.M} entries.")

        Array.append p.Bias p.BiasTeacher
        |> Array.iteri (fun i x -> Check.finite ($"bias[%d{i}]") x)

    /// The step sizes at time t: eta (from the schedule), the decay kappa and the noise factor eta^2/B.
    /// Heavy ball: the velocity remembers 1/(1-beta) = O(1) steps, much fewer than d, so every step size (eta, etaV
    /// and the decay kappa, which is part of the step) is divided by 1 - beta (spec 4.4).
    let private stepSizes (p: CommitteeParams) (schedule: LearningRateSchedule) (t: float) =
        let eta0 =
            match schedule with
            | LearningRateSchedule.Constant -> p.Lr
            | s -> LearningRateSchedule.eta p.Lr s t

        let eta = eta0 / (1.0 - p.Momentum)
        eta, p.WeightDecay / (1.0 - p.Momentum), eta * eta / float p.Batch

    /// Runs body 0 .. count - 1, on the pool when count > 1: the one place the erf right-hand side forks. Each index
    /// writes its own outputs, so the result does not depend on the scheduling.
    let private forkJoin (count: int) (body: int -> unit) =
        if count = 1 then
            body 0
        else
            // Chunked, not Parallel.For: a loop must not wait for a pool thread that has not started.
            Chunked.forEach Environment.ProcessorCount System.Threading.CancellationToken.None count body

    /// The erf right-hand side with per-state quantities hoisted out of the loops and the I4 sum vectorised across
    /// (i, l) pairs (`ErfKernels.pairBlock`: one pair per lane, `ErfKernels.Lanes` = 8 or 4 per block), straight from the packed state into
    /// flat arrays, the blocks split into contiguous chunks over the cores above `quad.ParallelThreshold` I4 terms.
    /// Each pair's sum is computed in one lane in a fixed order, so the result is bitwise the same at any thread
    /// count. Equal to the scalar closed forms to rounding (tested against `rhsReference`). The work arrays are reused
    /// between calls (a concurrent call takes fresh ones).
    let private erfRhs (quad: CommitteeQuadrature) (p: CommitteeParams) (schedule: LearningRateSchedule) (v0: float[]) : Rhs =
        let k = p.K
        let m = p.M
        let n = k + m
        let np = ErfKernels.padded n
        let pairs = k * (k + 1) / 2
        let blocks = (pairs + ErfKernels.Lanes - 1) / ErfKernels.Lanes
        let lanes = blocks * ErfKernels.Lanes
        // Pair q = (pi[q], pl[q]) in the packing order of Q; the padding lanes repeat the last pair.
        let pi = Array.zeroCreate lanes
        let pl = Array.zeroCreate lanes
        let mutable o = 0

        for i in 0 .. k - 1 do
            for l in i .. k - 1 do
                pi[o] <- i
                pl[o] <- l
                o <- o + 1

        for q in pairs .. lanes - 1 do
            pi[q] <- pi[pairs - 1]
            pl[q] <- pl[pairs - 1]

        let trained = p.LrSecond.IsSome
        let terms = int64 lanes * int64 (n * (n + 1) / 2)

        let chunks =
            if terms < int64 quad.ParallelThreshold then
                1
            else
                // Four chunks a core: with one a core, a helper that woke late found the caller had claimed both.
                max 1 (min (4 * Environment.ProcessorCount) blocks)

        let newWork () =
            let c = Array.zeroCreate (np * np)

            // The teacher block of the covariance is constant; the student rows are overwritten each call.
            for x in 0 .. m - 1 do
                for z in 0 .. m - 1 do
                    c[(k + x) * np + k + z] <- p.T[x, z]

            {|
                C = c
                /// Output weights a = (v, -vT), zero in the padding.
                A = Array.init np (fun x -> if x >= k && x < n then -p.VTeacher[x - k] else 0.0)
                W = Array.zeroCreate np
                A3 = Array.zeroCreate (k * np)
                B4 = Array.zeroCreate lanes
                Scratch = Array.init chunks (fun _ -> Array.zeroCreate (ErfKernels.blockScratch n))
            |}

        let cache = ref (newWork ())

        fun t y dy ->
            let ws =
                match System.Threading.Interlocked.Exchange(&cache.contents, Unchecked.defaultof<_>) with
                | w when obj.ReferenceEquals(w, null) -> newWork ()
                | w -> w

            let c = ws.C
            let a = ws.A
            let a3 = ws.A3
            let b4 = ws.B4
            let mutable o = 0

            for i in 0 .. k - 1 do
                for j in i .. k - 1 do
                    c[i * np + j] <- y[o]
                    c[j * np + i] <- y[o]
                    o <- o + 1

            for i in 0 .. k - 1 do
                for x in 0 .. m - 1 do
                    c[i * np + k + x] <- y[o]
                    c[(k + x) * np + i] <- y[o]
                    o <- o + 1

            let v = if trained then Array.sub y o k else v0

            for i in 0 .. k - 1 do
                a[i] <- v[i]

            ErfKernels.i3Rows c np n k a ws.W a3

            let perChunk = (blocks + chunks - 1) / chunks

            forkJoin chunks (fun ch ->
                let scratch = ws.Scratch[ch]

                for b in ch * perChunk .. min blocks ((ch + 1) * perChunk) - 1 do
                    ErfKernels.pairBlock c np n a pi pl (b * ErfKernels.Lanes) scratch b4)

            let eta, kap, noise = stepSizes p schedule t

            for q in 0 .. pairs - 1 do
                let i = pi[q]
                let l = pl[q]
                let cil = c[i * np + l]

                let j2 =
                    if p.NoiseVar = 0.0 then
                        0.0
                    else
                        CommitteeIntegrals.erfJ2 c[i * np + i] cil c[l * np + l]

                dy[q] <-
                    -eta * (v[i] * a3[i * np + l] + v[l] * a3[l * np + i])
                    + noise * v[i] * v[l] * (b4[q] + p.NoiseVar * j2)
                    - 2.0 * kap * cil

            let mutable o = pairs

            for i in 0 .. k - 1 do
                for x in 0 .. m - 1 do
                    dy[o] <- -eta * v[i] * a3[i * np + k + x] - kap * c[i * np + k + x]
                    o <- o + 1

            match p.LrSecond with
            | Some etaV ->
                for i in 0 .. k - 1 do
                    let mutable e = 0.0

                    for q in 0 .. n - 1 do
                        e <- e + a[q] * CommitteeIntegrals.erfI2 c[i * np + i] c[i * np + q] c[q * np + q]

                    dy[o + i] <- -etaV / (1.0 - p.Momentum) * e - kap * v[i]
            | None -> ()

            cache.Value <- ws

    let private rhsOf (scalarErf: bool) (quad: CommitteeQuadrature) (p: CommitteeParams) (schedule: LearningRateSchedule) (v0: float[]) : Rhs =
        validate p
        CommitteeQuadrature.validate quad
        LearningRateSchedule.validate schedule
        Check.that "v0" (v0.Length = p.K) ($"v0 must have K = %d{p.K} entries.")
        let n = p.K + p.M

        if p.Activation = Erf && not scalarErf && not (CommitteeLayout.needsSampling p) then
            erfRhs quad p schedule v0
        else
            // Only the sampled paths need the QMC points (the scalar erf reference must not: they stop at n = 30).
            let pts = lazy (CommitteeMoments.points quad.SampledPoints n)

            // Built here when needed, so a size the points cannot serve fails at construction as before.
            match p.Activation with
            | Custom _ -> pts.Force() |> ignore
            | _ when CommitteeLayout.needsSampling p -> pts.Force() |> ignore
            | _ -> ()

            fun t y dy ->
                let s = CommitteeLayout.unpack p v0 y
                let c = CommitteeLayout.fieldCovariance p s
                let a = Array.init n (fun i -> if i < p.K then s.V[i] else -p.VTeacher[i - p.K])

                let mo =
                    match p.Activation with
                    | _ when CommitteeLayout.needsSampling p -> CommitteeMoments.sampledMoments pts.Value p c a
                    | Erf
                    | Linear
                    | Relu -> CommitteeMoments.closedMoments quad.IntegralOrder p c a
                    | Custom _ -> CommitteeMoments.sampledMoments pts.Value p c a

                let eta, kap, noise = stepSizes p schedule t
                let mutable o = 0

                for i in 0 .. p.K - 1 do
                    for k in i .. p.K - 1 do
                        dy[o] <-
                            -eta * (s.V[i] * mo.A3[i, k] + s.V[k] * mo.A3[k, i])
                            + noise * s.V[i] * s.V[k] * (mo.B4[i, k] + p.NoiseVar * mo.J2[i, k])
                            - 2.0 * kap * s.Q[i, k]

                        o <- o + 1

                for i in 0 .. p.K - 1 do
                    for m in 0 .. p.M - 1 do
                        dy[o] <- -eta * s.V[i] * mo.A3[i, p.K + m] - kap * s.R[i, m]
                        o <- o + 1

                match p.LrSecond with
                | Some etaV ->
                    for i in 0 .. p.K - 1 do
                        let mutable e = 0.0

                        for q in 0 .. n - 1 do
                            e <- e + a[q] * mo.I2[i, q]

                        dy[o + i] <- -etaV / (1.0 - p.Momentum) * e - kap * s.V[i]
                | None -> ()

    /// The right-hand side of the general K x M ODE (spec section 3.1) under a learning-rate schedule, with the
    /// integrals evaluated as `quad` says. `v0` is the fixed second layer when it is not trained.
    [<CompiledName("RhsWith")>]
    let rhsWith (quad: CommitteeQuadrature) (p: CommitteeParams) (schedule: LearningRateSchedule) (v0: float[]) : Rhs =
        rhsOf false quad p schedule v0

    /// The right-hand side with erf's integrals evaluated term by term by the scalar closed forms
    /// (`CommitteeIntegrals.erfI3`, `erfI4`), no hoisting, vectorisation or threads: the oracle the fast path is
    /// tested against. Slower by an order of magnitude; identical to `rhs` for other activations.
    [<CompiledName("RhsReference")>]
    let rhsReference (p: CommitteeParams) (v0: float[]) : Rhs =
        rhsOf true CommitteeQuadrature.defaults p LearningRateSchedule.Constant v0

    /// The right-hand side at constant learning rate and default quadrature (for fixed points and Jacobians).
    [<CompiledName("Rhs")>]
    let rhs (p: CommitteeParams) (v0: float[]) =
        rhsOf false CommitteeQuadrature.defaults p LearningRateSchedule.Constant v0

    /// The generalisation error eg = (1/2) a^T I2 a with a = (v, -vT), label noise excluded, at default quadrature.
    [<CompiledName("GeneralisationError")>]
    let generalisationError (p: CommitteeParams) (s: CommitteeState) =
        CommitteeMoments.generalisationError CommitteeQuadrature.defaults p s

    /// The expected training loss per sample, E[(yhat - y)^2]/2 = eg + sigma^2/2 (spec 1.3); the test MSE against noisy
    /// labels is 2 eg + sigma^2.
    [<CompiledName("TrainingLoss")>]
    let trainingLoss (p: CommitteeParams) (s: CommitteeState) =
        generalisationError p s + 0.5 * p.NoiseVar

    /// Default settings: Dormand-Prince rtol 1e-9 / atol 1e-14, 401 linear output points, divergence bound 1e8,
    /// 10^7 steps, no early-stopping event, default quadrature and run control.
    [<CompiledName("DefaultSettings")>]
    let defaultSettings =
        {
            Algorithm = Ode.dopri5 1e-9 1e-14
            Points = 401
            Grid = LinearGrid
            SaveAt = [||]
            DivergenceBound = 1e8
            MaxSteps = 10_000_000
            EarlyStopping = false
            Events = []
            Quadrature = CommitteeQuadrature.defaults
            Control = RunControl.defaults
        }

    /// A problem at constant learning rate from an initial state.
    [<CompiledName("Problem")>]
    let problem (p: CommitteeParams) (init: CommitteeState) (tEnd: float) =
        {
            Model = p
            Schedule = LearningRateSchedule.Constant
            Init = init
            TEnd = tEnd
        }

    /// Checks the problem: the model, the schedule, the initial state's shape and that [[Q, R], [R^T, T]] is PSD.
    [<CompiledName("ValidateProblem")>]
    let validateProblem (problem: CommitteeProblem) =
        let p = problem.Model
        validate p
        LearningRateSchedule.validate problem.Schedule
        Check.positive "t-end" problem.TEnd
        let s0 = problem.Init

        Check.that
            "Q"
            (Array2D.length1 s0.Q = p.K && Array2D.length2 s0.Q = p.K)
            ($"the initial Q must be %d{p.K}x%d{p.K}.")

        Check.that
            "R"
            (Array2D.length1 s0.R = p.K && Array2D.length2 s0.R = p.M)
            ($"the initial R must be %d{p.K}x%d{p.M}.")

        Check.that "v0" (s0.V.Length = p.K) ($"v0 must have K = %d{p.K} entries.")

        Linalg.checkPsd "initial covariance [[Q, R], [R^T, T]]" (CommitteeLayout.fieldCovariance p s0)

    /// The output times the settings ask for over [0, TEnd].
    [<CompiledName("OutputTimes")>]
    let outputTimes (settings: CommitteeSettings) (problem: CommitteeProblem) =
        OutputGrid.times settings.SaveAt settings.Grid settings.Points problem.TEnd

    /// The ODE as a plain initial-value problem (for callers that drive `Ode.solve` themselves, e.g. with events).
    [<CompiledName("OdeProblem")>]
    let odeProblem (quad: CommitteeQuadrature) (problem: CommitteeProblem) =
        validateProblem problem
        let p = problem.Model

        { Ode.problem (rhsWith quad p problem.Schedule problem.Init.V) (CommitteeLayout.pack p problem.Init) 0.0 problem.TEnd with
            Names = CommitteeLayout.names p
        }

    /// Maps the ODE states at the output times to committee states: None (and eg NaN) at the times the run did not
    /// reach.
    let private onGrid (quad: CommitteeQuadrature) (p: CommitteeParams) (v0: float[]) (ys: float[] option[]) =
        let states = ys |> Array.map (Option.map (CommitteeLayout.unpack p v0))

        let eg =
            states
            |> Array.map (function
                | Some st -> CommitteeMoments.generalisationError quad p st
                | None -> nan)

        states, eg

    /// The erf generalisation error (1/2) sum_ij a_i a_j I2(i, j) straight from the packed ODE state, over i <= j (I2
    /// is symmetric): the early-stopping observable, evaluated a few times per step, so it builds no matrices. Equal
    /// to `CommitteeMoments.generalisationError` to rounding (tested).
    let internal erfErrorOf (p: CommitteeParams) (v0: float[]) =
        let k = p.K
        let n = k + p.M
        let trained = p.LrSecond.IsSome

        fun (y: float[]) ->
            let c = Array.zeroCreate (n * n)
            let a = Array.zeroCreate n
            let mutable o = 0

            for i in 0 .. k - 1 do
                for j in i .. k - 1 do
                    c[i * n + j] <- y[o]
                    o <- o + 1

            for i in 0 .. k - 1 do
                for x in 0 .. p.M - 1 do
                    c[i * n + k + x] <- y[o]
                    o <- o + 1

            for x in 0 .. p.M - 1 do
                for z in x .. p.M - 1 do
                    c[(k + x) * n + k + z] <- p.T[x, z]

                a[k + x] <- -p.VTeacher[x]

            for i in 0 .. k - 1 do
                a[i] <- if trained then y[o + i] else v0[i]

            let mutable e = 0.0

            for i in 0 .. n - 1 do
                let di = 1.0 + c[i * n + i]
                e <- e + a[i] * a[i] * asin (max -1.0 (min 1.0 (c[i * n + i] / di)))

                for j in i + 1 .. n - 1 do
                    let r = c[i * n + j] / sqrt (di * (1.0 + c[j * n + j]))
                    e <- e + 2.0 * a[i] * a[j] * asin (max -1.0 (min 1.0 r))

            e / Math.PI

    /// Integrates the committee ODE (spec section 3.1) with the settings' algorithm, saving at the output times.
    /// Never throws on a blow-up: the status says Diverged with the time.
    [<CompiledName("Solve")>]
    let solve (settings: CommitteeSettings) (problem: CommitteeProblem) : CommitteeSolution =
        CommitteeQuadrature.validate settings.Quadrature
        let quad = settings.Quadrature
        let ode = odeProblem quad problem
        let p = problem.Model
        let times = outputTimes settings problem

        let egOf =
            if p.Activation = Erf && not (CommitteeLayout.needsSampling p) then
                erfErrorOf p problem.Init.V
            else
                fun (y: float[]) ->
                    CommitteeMoments.generalisationError quad p (CommitteeLayout.unpack p problem.Init.V y)

        let sol, ys, minimum =
            OutputGrid.solve
                times
                settings.DivergenceBound
                settings.MaxSteps
                settings.Control
                settings.Events
                settings.EarlyStopping
                settings.Algorithm
                egOf
                ode

        let states, eg = onGrid quad p problem.Init.V ys

        {
            Problem = problem
            T = times
            States = states
            Eg = eg
            Errors = None
            Status = sol.Status
            EarlyStopping = minimum
            Stats = sol.Stats
        }
