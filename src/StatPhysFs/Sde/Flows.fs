namespace StatPhysFs.Sde

open System
open System.Threading
open StatPhysFs

/// The diffusion models of SGD at small learning rate eta (sme-smf.md sections 2-3), time t = k eta.
type SdeModel =
    /// dX = -grad F dt.
    | GradientFlow
    /// SME of order 1 or 2 with noise sqrt(eta) Sigma(X)^{1/2} dW. For several points, `sharedNoise` drives them
    /// with one W (else independent W per point); either way the cross diffusion is wrong (spec 3.3).
    | Sme of order: int * sharedNoise: bool
    /// SMF of order 1 or 2: noise sqrt(eta/n) sum_i G_i(X) d beta^i, one Brownian motion per data point, common to
    /// every point of a multi-point motion.
    | Smf of order: int
    /// A deliberately wrong SMF for particle systems: an independent noise xi in R^n for every block of `block`
    /// coordinates (one particle), instead of one xi common to all. Its fluctuations average out over particles;
    /// the data reject it (sme-smf.md V4).
    | SmfPerBlock of order: int * block: int

/// Time stepping with step h = eta / SubSteps.
type SdeScheme =
    /// Euler-Maruyama, weak order 1 in h.
    | EulerMaruyama
    /// Talay-Tubaro extrapolation 2 E phi(X^{h/2}) - E phi(X^h) (independent paths), weak order 2 in h.
    | EulerRichardson
    /// Heun (trapezoidal) drift with Euler noise: error O(h^2 + eta h) for these small-noise SDEs.
    | HeunDrift

/// The data a run learns from.
[<RequireQualifiedAccess>]
type SdeData =
    /// A finite data set: SGD samples its indices, the SDE models' noise is built from all n per-sample gradients.
    | FiniteSum of FiniteSumProblem
    /// Fresh samples every step (the SMF's noise from `FreshSamplesPerStep` fresh samples per step, sme-smf.md 5.3 b).
    | Online of OnlineProblem

    member d.Dim =
        match d with
        | FiniteSum p -> p.Dim
        | Online p -> p.Dim

    member d.Name =
        match d with
        | FiniteSum p -> p.Name
        | Online p -> p.Name

/// Which process the points follow.
[<RequireQualifiedAccess>]
type SdeProcess =
    /// Mini-batch SGD itself, steps of size eta (the sampling applies to finite data; online data draws fresh samples).
    | Sgd of sampling: BatchSampling
    /// A diffusion model of SGD, integrated with the settings' scheme.
    | Diffusion of model: SdeModel

/// A named functional of the points' states (every point of the multi-point motion), averaged over paths.
type PointObservable =
    {
        Name: string
        Value: float[][] -> float
    }

/// SGD (or one of its diffusion models) at learning rate eta from m initial points driven by common randomness (the
/// m-point motion of sme-smf.md section 1), observed at the horizon: time t = SGD steps x eta, floor(TEnd/eta) steps.
type SdeProblem =
    {
        Data: SdeData
        Process: SdeProcess
        /// Learning rate eta.
        Eta: float
        /// Mini-batch B (SGD averages B sampled gradients; the models' noise is divided by sqrt B).
        Batch: int
        /// Initial points x0^1 .. x0^m, each of length d.
        InitialPoints: float[][]
        /// Horizon T: floor(T/eta) SGD steps.
        TEnd: float
        Observables: PointObservable list
    }

[<RequireQualifiedAccess>]
module SdeProblem =
    /// A problem with batch 1 on a finite data set.
    [<CompiledName("Create")>]
    let create (data: FiniteSumProblem) (proc: SdeProcess) (eta: float) (tEnd: float) (x0: float[][]) observables =
        {
            Data = SdeData.FiniteSum data
            Process = proc
            Eta = eta
            Batch = 1
            InitialPoints = x0
            TEnd = tEnd
            Observables = observables
        }

    /// floor(TEnd/eta): the number of SGD steps (the grid of the SDE schemes is SubSteps times finer).
    [<CompiledName("SgdSteps")>]
    let sgdSteps (p: SdeProblem) = float (Steps.count "t-end" p.TEnd "eta" p.Eta)

    /// The time of the last SGD step, floor(TEnd/eta) eta: where the observables are reported.
    [<CompiledName("FinalTime")>]
    let finalTime (p: SdeProblem) = sgdSteps p * p.Eta

    /// Bad parameters are errors naming the field and its valid range (before any work).
    [<CompiledName("Validate")>]
    let validate (p: SdeProblem) =
        Check.positive "eta" p.Eta
        Check.positive "tEnd" p.TEnd

        Check.that
            "tEnd"
            (p.TEnd >= p.Eta)
            ($"tEnd (%g{p.TEnd}) must be >= eta (%g{p.Eta}): the run takes floor(tEnd/eta) SGD steps.")

        Check.intInRange "batch" 1 1_000_000 p.Batch
        Check.that "x0" (not (isNull p.InitialPoints) && p.InitialPoints.Length > 0) "give at least one initial point."
        let d = p.Data.Dim

        Check.that
            "x0"
            (p.InitialPoints
             |> Array.forall (fun x -> not (isNull x) && x.Length = d && Array.forall Double.IsFinite x))
            ($"every initial point needs d = %d{d} finite numbers.")

        Check.that "observables" (not (isNull (box p.Observables))) "give a list of observables (it may be empty)."

        match p.Data, p.Process with
        | SdeData.Online _, SdeProcess.Diffusion(Smf _)
        | SdeData.Online _, SdeProcess.Sgd _
        | SdeData.FiniteSum _, _ -> ()
        | SdeData.Online _, SdeProcess.Diffusion m ->
            // Spelled out, not %A: union fields are not printed by %A in the native (AOT) CLI.
            let shown =
                match m with
                | GradientFlow -> "GradientFlow"
                | Sme(order, shared) -> $"Sme (%d{order}, %b{shared})"
                | Smf order -> $"Smf %d{order}"
                | SmfPerBlock(order, block) -> $"SmfPerBlock (%d{order}, %d{block})"

            Check.that "process" false $"online data runs SGD or the SMF (Smf 1 or Smf 2), not %s{shown}."

/// Numerics of an SDE run: the scheme, Monte Carlo size, seed, divergence bound and run control.
type SdeSettings =
    {
        /// Sub-steps m per eta of the SDE schemes (h = eta/m).
        SubSteps: int
        Scheme: SdeScheme
        /// Monte Carlo paths.
        Paths: int
        /// Path r draws from the stream (Seed, r): the same numbers at any thread count.
        Seed: int
        MaxParallelism: int
        /// Online SMF: fresh samples per step for the noise.
        FreshSamplesPerStep: int
        /// A path whose state leaves |x_c| <= DivergenceBound (or turns non-finite) stops: the run is Diverged at
        /// the first such time over all paths.
        DivergenceBound: float
        Control: RunControl
    }

[<RequireQualifiedAccess>]
module SdeSettings =
    [<CompiledName("Defaults")>]
    let defaults =
        {
            SubSteps = 2
            Scheme = EulerRichardson
            Paths = 10000
            Seed = 1
            MaxParallelism = Environment.ProcessorCount
            FreshSamplesPerStep = 1
            DivergenceBound = 1e8
            Control = RunControl.defaults
        }

    [<CompiledName("Validate")>]
    let validate (s: SdeSettings) =
        Check.intInRange "sub-steps" 1 100_000 s.SubSteps
        Check.intInRange "paths" 2 100_000_000 s.Paths
        Check.positiveInt "max parallelism" s.MaxParallelism
        Check.intInRange "fresh samples per step" 1 1_000_000 s.FreshSamplesPerStep
        Check.positive "divergence bound" s.DivergenceBound

/// How much work a run did.
type SdeStatistics =
    {
        /// Monte Carlo paths per pass (Richardson runs two passes, at h and h/2).
        Paths: int
        /// SGD steps floor(TEnd/eta) per path.
        SgdSteps: int
        /// Time steps per path of the (coarse) scheme: SGD steps for SGD, SGD steps x SubSteps for the models.
        SchemeSteps: int
        /// Largest |x_c| over every path and point at the horizon (the first exceedance when the run diverged).
        MaxAbsState: float
        WallSeconds: float
    }

/// The Monte Carlo estimates of the problem's observables at the horizon, with standard errors, and how the run ended.
type SdeSolution =
    {
        Problem: SdeProblem
        /// [| floor(TEnd/eta) eta |]: the estimates are at the horizon.
        T: float[]
        /// One estimate per observable, in the problem's order (NaN when the run diverged).
        Estimates: Estimate[]
        Status: RunStatus
        Statistics: SdeStatistics
    }

    /// The estimate of the observable with this name.
    member s.Estimate(name: string) =
        match s.Problem.Observables |> List.tryFindIndex (fun o -> o.Name = name) with
        | Some i -> s.Estimates[i]
        | None -> invalidArg "name" ($"no observable named '%s{name}'.")

    interface ISolution with
        member s.Times = s.T
        member s.Status = s.Status

        member s.Observables =
            List.mapi
                (fun i (o: PointObservable) ->
                    {
                        Name = o.Name
                        Values = [| s.Estimates[i].Mean |]
                        StdErr = Some [| s.Estimates[i].StdErr |]
                    })
                s.Problem.Observables

/// Monte Carlo of SGD and of its diffusion models from m initial points driven by common randomness, each path
/// watched for divergence at every step: `problem |> Flows.solve settings`.
[<RequireQualifiedAccess>]
module Flows =
    /// What the path integrators need from the problem and the settings.
    type internal Run =
        {
            Eta: float
            Batch: int
            Scheme: SdeScheme
            Token: CancellationToken
        }

    /// The first divergence over all paths, ordered by (time, pass, path) so that the reported one does not depend
    /// on the thread count; paths stop once past the earliest known divergence (they cannot give an earlier one).
    type internal DivergenceWatch(bound: float) =
        let gate = obj ()
        let mutable first: (float * int * int * float) option = None
        let mutable earliest = infinity

        member _.Bound = bound
        member _.Earliest = earliest
        member _.First = first

        member _.Report(t: float, pass: int, path: int, value: float) =
            lock gate (fun () ->
                match first with
                | Some(t0, p0, r0, _) when (t0, p0, r0) <= (t, pass, path) -> ()
                | _ ->
                    first <- Some(t, pass, path, value)
                    earliest <- min earliest t)

    /// max |x_c| over the points, infinity for a non-finite coordinate.
    let internal largestAbs (xs: float[][]) =
        let mutable w = 0.0

        for x in xs do
            for v in x do
                let av = if Double.IsFinite v then abs v else infinity

                if av > w then
                    w <- av

        w

    /// Paths in parallel, path r drawing from the stream (Seed, pass * 1e8 + r): the same numbers at any thread count.
    /// `runPath rng stop` returns the final states, or None when `stop t xs` (divergence, or past the earliest one)
    /// ended it. Returns the estimates (None when any path stopped) and the largest final |x_c|.
    let internal monteCarlo
        (s: SdeSettings)
        (watch: DivergenceWatch)
        (tick: unit -> unit)
        (pass: int)
        (observables: (float[][] -> float)[])
        (runPath: Rng -> (float -> float[][] -> bool) -> float[][] option)
        =
        // Every path writes its slots of `values` and `finalAbs` (read only when all paths ran), so they need no
        // zeroing: zeroing 10^7-path arrays touches hundreds of MB before the first token check (~1 s on a loaded
        // machine), where the paths touch them gradually, between checks.
        let values =
            Array.init observables.Length (fun _ -> GC.AllocateUninitializedArray<float> s.Paths)

        let finalAbs = GC.AllocateUninitializedArray<float> s.Paths
        let stopped = Array.zeroCreate s.Paths

        Chunked.forEach s.MaxParallelism s.Control.CancellationToken s.Paths (fun r ->
                let stop (t: float) (xs: float[][]) =
                    let w = largestAbs xs

                    if not (w <= watch.Bound) then
                        watch.Report(t, pass, r, w)
                        true
                    else
                        t > watch.Earliest

                match runPath (Rng(s.Seed, pass * 100_000_000 + r)) stop with
                | Some xs ->
                    finalAbs[r] <- largestAbs xs

                    for o in 0 .. observables.Length - 1 do
                        values[o][r] <- observables[o] xs
                | None ->
                    stopped[r] <- true
                    finalAbs[r] <- 0.0

                tick ())

        (if Array.contains true stopped then
             None
         else
             Some(values |> Array.map Stats.estimate)),
        Array.max finalAbs

    /// k steps of mini-batch SGD x <- x - (eta/B) sum_b grad f(x, sample_b) from every initial point with the same
    /// samples, B = run.Batch draws of `draw` a step; None when `stop` ends the path early.
    let private sgdSteps
        (run: Run)
        (d: int)
        (draw: unit -> 'Sample)
        (gradient: 'Sample -> float[] -> float[] -> unit)
        (x0: float[][])
        (k: int)
        (stop: float -> float[][] -> bool)
        =
        let xs = x0 |> Array.map Array.copy
        let g = Array.zeroCreate d
        let acc = Array.init xs.Length (fun _ -> Array.zeroCreate d)
        let mutable step = 1
        let mutable stopped = false

        while not stopped && step <= k do
            // A long path must stop soon after a cancellation, not at its end.
            if step &&& 255 = 0 then
                run.Token.ThrowIfCancellationRequested()

            for a in acc do
                Array.Clear a

            for _ in 1 .. run.Batch do
                let sample = draw ()

                for j in 0 .. xs.Length - 1 do
                    gradient sample xs[j] g

                    for c in 0 .. d - 1 do
                        acc[j][c] <- acc[j][c] + g[c]

            for j in 0 .. xs.Length - 1 do
                for c in 0 .. d - 1 do
                    xs[j][c] <- xs[j][c] - run.Eta / float run.Batch * acc[j][c]

            stopped <- stop (float step * run.Eta) xs
            step <- step + 1

        if stopped then None else Some xs

    /// Mini-batch SGD x <- x - (eta/B) sum_b grad f_{i_b}(x) from every initial point with the same samples.
    let private sgdPath (run: Run) (sampling: BatchSampling) (p: FiniteSumProblem) (x0: float[][]) (k: int) =
        fun (rng: Rng) (stop: float -> float[][] -> bool) ->
            let sampler = BatchSampler(sampling, p.Samples, rng)
            sgdSteps run p.Dim (fun () -> sampler.Next()) p.Gradient x0 k stop

    /// SGD with a fresh sample per step (batch B averages B fresh samples), every point using the same samples.
    let private onlineSgdPath (run: Run) (p: OnlineProblem) (x0: float[][]) (k: int) =
        fun (rng: Rng) (stop: float -> float[][] -> bool) ->
            sgdSteps run p.Dim (fun () -> p.Sample rng) p.Gradient x0 k stop

    /// The online SMF of the given order with `fresh` fresh samples per step for the noise (Euler step h).
    let private onlineSmfPath
        (run: Run)
        (order: int)
        (fresh: int)
        (p: OnlineProblem)
        (x0: float[][])
        (h: float)
        (nSteps: int)
        =
        fun (rng: Rng) (stop: float -> float[][] -> bool) ->
            let d = p.Dim
            let xs = x0 |> Array.map Array.copy
            let full = Array.zeroCreate d
            let hv = Array.zeroCreate d
            let g = Array.zeroCreate d
            let incr = Array.init xs.Length (fun _ -> Array.zeroCreate d)
            let amp = sqrt (run.Eta * h / float fresh / float run.Batch)
            let mutable step = 1
            let mutable stopped = false

            while not stopped && step <= nSteps do
                if step &&& 63 = 0 then
                    run.Token.ThrowIfCancellationRequested()

                for a in incr do
                    Array.Clear a
                // The same fresh samples and multipliers for every point: the multi-point motion.
                for _ in 1..fresh do
                    let theta = p.Sample rng
                    let xi = rng.NextNormal()

                    for j in 0 .. xs.Length - 1 do
                        p.PopulationGradient xs[j] full
                        p.Gradient theta xs[j] g

                        for c in 0 .. d - 1 do
                            incr[j][c] <- incr[j][c] + amp * (full[c] - g[c]) * xi

                for j in 0 .. xs.Length - 1 do
                    let x = xs[j]
                    p.PopulationGradient x full

                    if order = 2 then
                        p.PopulationHessianVector x full hv

                    for c in 0 .. d - 1 do
                        let b = -full[c] - (if order = 2 then 0.5 * run.Eta * hv[c] else 0.0)
                        x[c] <- x[c] + h * b + incr[j][c]

                stopped <- stop (float step * h) xs
                step <- step + 1

            if stopped then None else Some xs

    /// Per-point work buffers: per-sample gradients (n x d), grad F, drift, noise increment.
    type private Work(p: FiniteSumProblem) =
        member val Grads = Array.init p.Samples (fun _ -> Array.zeroCreate<float> p.Dim)
        member val Full = Array.zeroCreate<float> p.Dim
        member val Hv = Array.zeroCreate<float> p.Dim
        member val Drift = Array.zeroCreate<float> p.Dim
        member val Drift2 = Array.zeroCreate<float> p.Dim
        member val Incr = Array.zeroCreate<float> p.Dim
        member val Pred = Array.zeroCreate<float> p.Dim

    let private gradients (p: FiniteSumProblem) (w: Work) (x: float[]) =
        Array.Clear w.Full

        for i in 0 .. p.Samples - 1 do
            p.Gradient i x w.Grads[i]

            for c in 0 .. p.Dim - 1 do
                w.Full[c] <- w.Full[c] + w.Grads[i][c]

        for c in 0 .. p.Dim - 1 do
            w.Full[c] <- w.Full[c] / float p.Samples

    /// b^eta(x) = -grad F - (order = 2 ? (eta/2) grad^2 F grad F : 0) into out; leaves the gradients in w.
    let private drift (p: FiniteSumProblem) (order: int) (eta: float) (w: Work) (x: float[]) (out: float[]) =
        gradients p w x

        if order >= 2 then
            FiniteSumProblem.hessianVector p x w.Full w.Hv

            for c in 0 .. p.Dim - 1 do
                out[c] <- -w.Full[c] - 0.5 * eta * w.Hv[c]
        else
            for c in 0 .. p.Dim - 1 do
                out[c] <- -w.Full[c]

    /// Sigma(x)^{1/2} zeta from the gradients in w (symmetric square root by eigen-decomposition).
    let private smeNoise (p: FiniteSumProblem) (w: Work) (zeta: float[]) (out: float[]) =
        let d = p.Dim
        let n = float p.Samples

        let sigma =
            Array2D.init d d (fun a b ->
                let mutable v = 0.0

                for i in 0 .. p.Samples - 1 do
                    v <- v + (w.Full[a] - w.Grads[i][a]) * (w.Full[b] - w.Grads[i][b])

                v / n)

        let evd =
            (Linalg.ofArray2D sigma).Evd(MathNet.Numerics.LinearAlgebra.Symmetricity.Symmetric)

        let q = evd.EigenVectors
        let lam = evd.EigenValues |> Seq.map (fun z -> sqrt (max 0.0 z.Real)) |> Array.ofSeq

        for a in 0 .. d - 1 do
            let mutable v = 0.0

            for k in 0 .. d - 1 do
                let mutable qz = 0.0

                for b in 0 .. d - 1 do
                    qz <- qz + q[b, k] * zeta[b]

                v <- v + q[a, k] * lam[k] * qz

            out[a] <- v

    /// One path of the SDE model from every initial point with step h; `common` noise for SMF and shared SME.
    let private sdePath
        (run: Run)
        (model: SdeModel)
        (p: FiniteSumProblem)
        (x0: float[][])
        (h: float)
        (nSteps: int)
        (rng: Rng)
        (stop: float -> float[][] -> bool)
        =
        let d = p.Dim
        let n = p.Samples
        let xs = x0 |> Array.map Array.copy
        let works = xs |> Array.map (fun _ -> Work p)
        let xi = Array.zeroCreate n
        let zeta = Array.zeroCreate d
        let amp = sqrt (run.Eta * h / float run.Batch)

        let order =
            match model with
            | GradientFlow -> 1
            | Sme(o, _) -> o
            | Smf o -> o
            | SmfPerBlock(o, b) ->
                Check.that "block" (b >= 1 && d % b = 0) ($"block must divide the dimension %d{d}.")
                o

        let xiBlocks =
            match model with
            | SmfPerBlock(_, b) -> Array.init (d / b) (fun _ -> Array.zeroCreate n)
            | _ -> [||]

        Check.intInRange "order" 1 2 order

        let mutable step = 1
        let mutable stopped = false

        while not stopped && step <= nSteps do
            if step &&& 63 = 0 then
                run.Token.ThrowIfCancellationRequested()

            match model with
            | Smf _ -> rng.FillNormal(Span xi)
            | Sme(_, true) -> rng.FillNormal(Span zeta)
            | SmfPerBlock _ ->
                for xb in xiBlocks do
                    rng.FillNormal(Span xb)
            | _ -> ()

            for j in 0 .. xs.Length - 1 do
                let w = works[j]
                let x = xs[j]
                drift p order run.Eta w x w.Drift
                // The noise increment from the gradients at x (Euler noise for every scheme).
                match model with
                | GradientFlow -> Array.Clear w.Incr
                | Smf _ ->
                    let c = amp / sqrt (float n)

                    for a in 0 .. d - 1 do
                        let mutable v = 0.0

                        for i in 0 .. n - 1 do
                            v <- v + (w.Full[a] - w.Grads[i][a]) * xi[i]

                        w.Incr[a] <- c * v
                | SmfPerBlock(_, blk) ->
                    let c = amp / sqrt (float n)

                    for a in 0 .. d - 1 do
                        let xb = xiBlocks[a / blk]
                        let mutable v = 0.0

                        for i in 0 .. n - 1 do
                            v <- v + (w.Full[a] - w.Grads[i][a]) * xb[i]

                        w.Incr[a] <- c * v
                | Sme(_, shared) ->
                    if not shared then
                        rng.FillNormal(Span zeta)

                    smeNoise p w zeta w.Incr

                    for a in 0 .. d - 1 do
                        w.Incr[a] <- amp * w.Incr[a]

                match run.Scheme with
                | HeunDrift ->
                    for a in 0 .. d - 1 do
                        w.Pred[a] <- x[a] + h * w.Drift[a] + w.Incr[a]

                    drift p order run.Eta w w.Pred w.Drift2

                    for a in 0 .. d - 1 do
                        x[a] <- x[a] + 0.5 * h * (w.Drift[a] + w.Drift2[a]) + w.Incr[a]
                | _ ->
                    for a in 0 .. d - 1 do
                        x[a] <- x[a] + h * w.Drift[a] + w.Incr[a]

            stopped <- stop (float step * h) xs
            step <- step + 1

        if stopped then None else Some xs

    /// Run a scheme: `run pass h steps` once (EM, Heun) or at h and h/2 on independent passes combined as
    /// 2 E^{h/2} - E^h (EulerRichardson), standard errors combined accordingly. None once a path stopped.
    let internal schemeEstimates
        (scheme: SdeScheme)
        (k: int)
        (h: float)
        (run: int -> float -> int -> Estimate[] option * float)
        =
        match scheme with
        | EulerRichardson ->
            let coarse, w1 = run 1 h k
            let fine, w2 = run 2 (h / 2.0) (2 * k)

            (match coarse, fine with
             | Some c, Some f ->
                 Some(Array.map2 Richardson.ofEstimates c f)
             | _ -> None),
            max w1 w2
        | _ -> run 1 h k

    /// Passes of the Monte Carlo a run makes (Richardson: two, at h and h/2).
    let private passes (s: SdeSettings) (p: SdeProblem) =
        match p.Process, s.Scheme with
        | SdeProcess.Diffusion _, EulerRichardson -> 2
        | _ -> 1

    /// Monte Carlo of the problem's process: each observable's mean and standard error at floor(TEnd/eta) eta. A path
    /// that leaves |x_c| <= DivergenceBound (or turns non-finite) stops there; the run is then Diverged at the first
    /// such time over all paths (in SGD time, steps x eta), with NaN estimates. Cancellation throws
    /// OperationCanceledException (from the settings' token), as .NET does.
    [<CompiledName("Solve")>]
    let solve (settings: SdeSettings) (problem: SdeProblem) : SdeSolution =
        SdeSettings.validate settings
        SdeProblem.validate problem
        let sgdSteps = SdeProblem.sgdSteps problem

        let schemeSteps =
            match problem.Process with
            | SdeProcess.Sgd _ -> sgdSteps
            | SdeProcess.Diffusion _ -> sgdSteps * float settings.SubSteps

        // Richardson's fine pass takes twice the coarse steps; every count must fit an int.
        Check.that
            "tEnd"
            (schemeSteps * 2.0 < float Int32.MaxValue)
            ($"tEnd/eta x sub-steps = %g{schemeSteps} steps per path is too many (at most %d{(Int32.MaxValue / 2)}): lower tEnd or raise eta.")

        let k = int schemeSteps
        let x0 = problem.InitialPoints
        let obs = problem.Observables |> List.map (fun o -> o.Value) |> Array.ofList
        let watch = DivergenceWatch settings.DivergenceBound

        let run =
            {
                Eta = problem.Eta
                Batch = problem.Batch
                Scheme = settings.Scheme
                Token = settings.Control.CancellationToken
            }

        // Progress: the fraction of paths done over every pass, reported at most ~100 times.
        let total = settings.Paths * passes settings problem
        let finished = ref 0

        let tick () =
            match settings.Control.Progress with
            | None -> ()
            | Some report ->
                let n = Interlocked.Increment &finished.contents

                if n * 100 / total > (n - 1) * 100 / total then
                    report (float n / float total)

        let sw = Diagnostics.Stopwatch.StartNew()
        let h = problem.Eta / float settings.SubSteps
        let mc = monteCarlo settings watch tick

        let estimates, worst =
            match problem.Data, problem.Process with
            | SdeData.FiniteSum p, SdeProcess.Sgd sampling -> mc 0 obs (sgdPath run sampling p x0 k)
            | SdeData.Online p, SdeProcess.Sgd _ -> mc 0 obs (onlineSgdPath run p x0 k)
            | SdeData.FiniteSum p, SdeProcess.Diffusion model ->
                schemeEstimates settings.Scheme k h (fun pass h nSteps ->
                    mc pass obs (fun rng stop -> sdePath run model p x0 h nSteps rng stop))
            | SdeData.Online p, SdeProcess.Diffusion model ->
                let order =
                    match model with
                    | Smf o -> o
                    | _ -> 0

                Check.intInRange "order" 1 2 order

                schemeEstimates settings.Scheme k h (fun pass h nSteps ->
                    mc pass obs (onlineSmfPath run order settings.FreshSamplesPerStep p x0 h nSteps))

        let status, estimates, worst =
            match watch.First, estimates with
            | Some(t, _, _, w), _ ->
                let reason =
                    if Double.IsFinite w then
                        $"a path reached |x_c| = %.3g{w} > divergence bound %g{settings.DivergenceBound}"
                    else
                        "a path's state became non-finite"

                RunStatus.Diverged(t, reason),
                Array.init obs.Length (fun _ -> { Mean = nan; StdErr = nan; Count = 0 }),
                w
            | None, Some e -> RunStatus.Completed, e, worst
            | None, None -> failwith "unreachable: a path stopped without a divergence"

        {
            Problem = problem
            T = [| SdeProblem.finalTime problem |]
            Estimates = estimates
            Status = status
            Statistics =
                {
                    Paths = settings.Paths
                    SgdSteps = int sgdSteps
                    SchemeSteps = k
                    MaxAbsState = worst
                    WallSeconds = sw.Elapsed.TotalSeconds
                }
        }

    /// The first-order SMF's Euler step with h = eta and the single-sample increment eta G(x, theta_i) in place of
    /// the Gaussian one (sme-smf.md 5.1): x - eta grad F + eta (grad F - grad f_i). It is SGD's step to rounding.
    [<CompiledName("FirstOrderSmfSampleStep")>]
    let firstOrderSmfSampleStep (p: FiniteSumProblem) (eta: float) (i: int) (x: float[]) =
        let w = Work p
        gradients p w x
        Array.init p.Dim (fun a -> x[a] + eta * -w.Full[a] + eta * (w.Full[a] - w.Grads[i][a]))

    /// Sigma(x, y) = (1/n) sum_i G_i(x) G_i(y)^T from the per-sample gradients (the SMF's two-point diffusion / eta).
    [<CompiledName("NoiseCovariance")>]
    let noiseCovariance (p: FiniteSumProblem) (x: float[]) (y: float[]) =
        let wx, wy = Work p, Work p
        gradients p wx x
        gradients p wy y

        Array2D.init p.Dim p.Dim (fun a b ->
            let mutable v = 0.0

            for i in 0 .. p.Samples - 1 do
                v <- v + (wx.Full[a] - wx.Grads[i][a]) * (wy.Full[b] - wy.Grads[i][b])

            v / float p.Samples)
