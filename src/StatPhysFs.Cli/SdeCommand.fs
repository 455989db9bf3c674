/// `statphys sde` and `statphys sde weak-order`: SGD against its diffusion models (SME, SMF) at small learning rate
/// on a built-in finite data set, with Monte Carlo statistics, and the weak-order slopes on the exact oracles.
module StatPhysFs.Cli.SdeCommand

open System
open System.Diagnostics
open StatPhysFs
open StatPhysFs.Sde
open StatPhysFs.Simulation
open StatPhysFs.Cli.Output

let usage =
    """usage: statphys sde [--problem least-squares|logistic|two-layer|mean-field] [--dim 3] [--samples 6] [--ridge 0]
                    [--width 100] [--data-seed 7]
                    [--model sgd|gf|sme1|sme2|smf1|smf2] [--scheme em|richardson|heun] [--substeps 2]
                    [--eta 0.05] [--horizon 1] [--batch 1] [--sampling with|without] [--points 2]
                    [--paths 10000] [--seed 1] [--divergence-bound 1e8] [--progress] [--out FILE.json|FILE.csv]
       statphys sde weak-order [--etas 0.125,0.0625,0.03125,0.015625,0.0078125] [--horizon 2]
                    [--out FILE] [--plot FILE.svg|FILE.png]
  Time t = SGD steps x eta. `sde` reports, at the horizon, tr E[x x^T] of the first point, E[x_1], E[F(x)] and
  (two or more points, driven by the same samples / the same data-indexed noise) E|x - y|^2, with standard errors.
  two-layer: an erf network with K = 2 units on --dim inputs against a two-unit teacher on --samples points.
  mean-field: the N = --width particle tanh network of sme-smf.md V4 (one point = the particle system); it reports
  the output at z = 0.7 and z = -1.3 and the training risk.
  A path whose state leaves |x_c| <= --divergence-bound (or turns non-finite) makes the run's status "diverged";
  its statistics are then written as null. --ridge must be >= 0 (a negative ridge makes the loss unbounded below).
  `weak-order` measures |E phi(SGD) - E phi(model)| on the exact least-squares oracles (no Monte Carlo) for GF, SME1,
  SMF1 and SMF2, one- and two-point, and fits the log-log slopes."""

let valued =
    [
        "problem"
        "dim"
        "samples"
        "ridge"
        "data-seed"
        "width"
        "model"
        "scheme"
        "substeps"
        "eta"
        "etas"
        "horizon"
        "batch"
        "sampling"
        "points"
        "paths"
        "seed"
        "out"
        "plot"
        "divergence-bound"
    ]

let private flags = [ "progress" ]

/// The built-in data set: rows a_i ~ N(0, I/d), labels y_i ~ N(0, 1) (least squares) or +-1 (logistic).
let private data (a: Args.Parsed) =
    let d = Args.int a "dim" 3
    let n = Args.int a "samples" 6
    Check.intInRange "dim" 1 10_000 d
    Check.intInRange "samples" 1 1_000_000 n
    let rng = Rng(Args.int a "data-seed" 7, 1)

    let rows =
        Array.init n (fun _ -> Array.init d (fun _ -> rng.NextNormal() / sqrt (float d)))

    let y = Array.init n (fun _ -> rng.NextNormal())
    rows, y

let private problem (a: Args.Parsed) =
    let rows, y = data a
    let ridge = Args.float a "ridge" 0.0
    // Least squares and logistic loss are bounded below only for ridge >= 0 (negative risks otherwise).
    Check.nonNegative "ridge" ridge

    match Args.choice a "problem" [ "least-squares"; "logistic"; "two-layer"; "mean-field" ] "least-squares" with
    | "two-layer" ->
        // Inputs x ~ N(0, I_N) (the rows rescaled), a fixed teacher w*_m ~ N(0, I_N), m = 1, 2, erf units.
        let nIn = rows[0].Length
        let inputs = rows |> Array.map (Array.map (fun v -> v * sqrt (float nIn)))
        let trng = Rng(Args.int a "data-seed" 7, 2)
        let teacher = Array.init 2 (fun _ -> Array.init nIn (fun _ -> trng.NextNormal()))

        let g z =
            Gaussian.Activation.value Gaussian.Activation.Erf z

        let labels =
            inputs
            |> Array.map (fun x -> teacher |> Array.sumBy (fun w -> g (Blas.dotArr w x / sqrt (float nIn))))

        FiniteSumProblem.twoLayer Gaussian.Activation.Erf [| 1.0; 1.0 |] inputs labels
    | "mean-field" ->
        Check.intInRange "width" 1 100_000 (Args.int a "width" 100)
        MeanField.problem (fst (MeanField.fixture (Args.int a "width" 100) (Args.int a "data-seed" 7)))
    | "logistic" ->
        let c =
            Array.map2 (fun (r: float[]) yi -> r |> Array.map (fun v -> if yi >= 0.0 then v else -v)) rows y

        FiniteSumProblem.logistic (Array.create rows.Length ridge) c
    | _ -> FiniteSumProblem.leastSquares ridge rows y

let private initialPoints (d: int) (m: int) =
    Array.init m (fun j -> Array.init d (fun c -> (if j % 2 = 0 then 1.0 else -0.5) * (1.0 + 0.3 * float c)))

let private modelOf (name: string) =
    match name with
    | "gf" -> GradientFlow
    | "sme1" -> Sme(1, true)
    | "sme2" -> Sme(2, true)
    | "smf1" -> Smf 1
    | _ -> Smf 2

let private runSimulate (a: Args.Parsed) =
    let p = problem a
    let meanField = Args.string a "problem" "" = "mean-field"
    let m = if meanField then 1 else Args.int a "points" 2
    Check.intInRange "points" 1 64 m

    let x0 =
        if meanField then
            [|
                snd (MeanField.fixture (Args.int a "width" 100) (Args.int a "data-seed" 7))
            |]
        else
            initialPoints p.Dim m

    let modelName =
        Args.choice a "model" [ "sgd"; "gf"; "sme1"; "sme2"; "smf1"; "smf2" ] "smf2"

    let s =
        { SdeSettings.defaults with
            Eta = Args.float a "eta" 0.05
            Horizon = Args.float a "horizon" 1.0
            SubSteps = Args.int a "substeps" 2
            Batch = Args.int a "batch" 1
            Paths = Args.int a "paths" 10000
            Seed = Args.int a "seed" 1
            Scheme =
                match Args.choice a "scheme" [ "em"; "richardson"; "heun" ] "richardson" with
                | "em" -> EulerMaruyama
                | "heun" -> HeunDrift
                | _ -> EulerRichardson
        }

    let risk (x: float[]) =
        (Seq.sum (seq { for i in 0 .. p.Samples - 1 -> p.Loss i x })) / float p.Samples

    let names, obs =
        if meanField then
            let data =
                fst (MeanField.fixture (Args.int a "width" 100) (Args.int a "data-seed" 7))

            [
                "output_z0.7", (fun (xs: float[][]) -> MeanField.output xs[0] 0.7)
                "output_z-1.3", (fun xs -> MeanField.output xs[0] -1.3)
                "risk", (fun xs -> MeanField.risk data xs[0])
            ]
            |> List.unzip
        else
            [
                yield "trace_second_moment", (fun (xs: float[][]) -> xs[0] |> Array.sumBy (fun v -> v * v))
                yield "mean_x1", (fun xs -> xs[0][0])
                yield "risk", (fun xs -> risk xs[0])
                if m > 1 then
                    yield
                        "two_point_sq_distance",
                        (fun xs -> Array.map2 (fun u v -> (u - v) * (u - v)) xs[0] xs[1] |> Array.sum)
            ]
            |> List.unzip

    SdeSettings.validate s

    if s.Horizon < s.Eta then
        raise (
            Args.UsageError(
                sprintf "--horizon (%g) must be >= --eta (%g): the run takes floor(horizon/eta) SGD steps" s.Horizon s.Eta
            )
        )

    // Steps per path (SDE schemes: sub-steps, and Richardson runs h and h/2) must fit the integrators' int counters.
    let sgdSteps = Math.Floor(s.Horizon / s.Eta + 1e-9)

    let schemeSteps, passes =
        if modelName = "sgd" then
            sgdSteps * float s.Batch, 1.0
        else
            match s.Scheme with
            | EulerRichardson -> sgdSteps * float s.SubSteps * 2.0, 2.0
            | HeunDrift -> sgdSteps * float s.SubSteps * 2.0, 1.0
            | EulerMaruyama -> sgdSteps * float s.SubSteps, 1.0

    Validate.Budget.steps "sde" schemeSteps [ "horizon"; "eta"; "substeps" ]
    let cores = min s.MaxParallelism Environment.ProcessorCount
    // Per path state: m points of d coordinates; the SDE work buffers hold n x d per-sample gradients per point.
    let perPath = float m * float p.Dim * (if modelName = "sgd" then 1.0 else float p.Samples + 8.0)

    Validate.Budget.memory
        "sde"
        (8.0 * (float s.Paths * float (obs.Length + 1) + float cores * perPath))
        [ "paths"; "points"; "dim"; "samples"; "width" ]

    // Measured cost per point and step (2 cores): about 1 us of overhead plus 15 ns per sample-coordinate for the
    // SDE models (all n per-sample gradients), 0.7 us plus a gradient per batch element for SGD.
    let workPerStep =
        if modelName = "sgd" then
            float m * (1400.0 + 30.0 * float p.Dim)
        else
            float m * (2000.0 + 30.0 * float p.Dim * float p.Samples)

    Validate.Budget.work
        "sde"
        (float s.Paths * passes * schemeSteps * workPerStep)
        cores
        [ "paths"; "horizon"; "eta"; "substeps"; "dim"; "samples"; "width" ]
    |> ignore

    let bound = Args.float a "divergence-bound" 1e8
    Check.positive "divergence-bound" bound
    let warnings = ResizeArray<string>()

    // Stability: gradient descent with step eta on F is unstable for eta > 2/lambda_max(Hessian of F). Estimated at
    // the first initial point (exact for least squares); a run above it may not have blown up by the horizon.
    if p.Dim <= 300 && float p.Dim * float p.Dim * float p.Samples <= 1e7 then
        let grad: Ode.Rhs =
            fun _ x out ->
                let g = Array.zeroCreate p.Dim
                Array.Clear out

                for i in 0 .. p.Samples - 1 do
                    p.Gradient i x g

                    for c in 0 .. p.Dim - 1 do
                        out[c] <- out[c] + g[c] / float p.Samples

        let h = StatPhysFs.Models.Analysis.jacobian grad x0[0]
        let hs = Array2D.init p.Dim p.Dim (fun i j -> 0.5 * (h[i, j] + h[j, i]))

        let lmax =
            (Linalg.ofArray2D hs).Evd().EigenValues.ToArray()
            |> Array.map (fun z -> z.Real)
            |> Array.max

        if lmax > 0.0 && s.Eta > 2.0 / lmax then
            Validate.warn
                warnings
                (sprintf
                    "--eta %g is above 2/lambda_max = %.4g (largest Hessian eigenvalue of the risk at the initial point): gradient steps of this size are unstable, so the run may diverge or be far from its small-eta models"
                    s.Eta
                    (2.0 / lmax))

    // Divergence: the largest |x_c| over every path and point at the horizon (infinity for a non-finite state), and
    // progress: paths done out of the total. Both ride on one extra observable, evaluated once per path.
    let gate = obj ()
    let mutable worst = 0.0
    let mutable pathsDone = 0
    let totalPaths = float s.Paths * passes
    let bar = Progress.create "sde" (a.Flags.Contains "progress")

    let monitor (xs: float[][]) =
        let mutable w = 0.0

        for x in xs do
            for v in x do
                let av = if Double.IsFinite v then abs v else infinity
                if av > w then w <- av

        lock gate (fun () ->
            if w > worst then worst <- w
            pathsDone <- pathsDone + 1)

        bar.Report(float pathsDone / totalPaths)
        0.0

    let obs = Array.ofList (obs @ [ monitor ])
    let sw = Stopwatch.StartNew()

    let est =
        if modelName = "sgd" then
            let sampling =
                match Args.choice a "sampling" [ "with"; "without" ] "with" with
                | "without" -> WithoutReplacement
                | _ -> WithReplacement

            Flows.sgd s sampling p x0 obs
        else
            let model = modelOf modelName

            match model with
            | Sme _ when m > 1 ->
                eprintfn
                    "statphys: note: the SME's multi-point statistics are only order 1 (shared W); use smf for them"
            | _ -> ()

            Flows.simulate s model p x0 obs

    bar.Done()
    let est = est[.. est.Length - 2]

    let diverged = not (worst <= bound)

    let status =
        if diverged then
            Ode.Diverged(
                s.Horizon,
                (if Double.IsFinite worst then
                     sprintf "a path reached |x| = %.3g > divergence-bound %g by the horizon" worst bound
                 else
                     "a path's state became non-finite by the horizon")
            )
        else
            Ode.Completed

    if diverged then
        eprintfn
            "statphys: warning: the %s run diverged (max |x| = %g > %g); its statistics are written as null; lower --eta"
            modelName
            worst
            bound

    let value (x: float) = if diverged then nan else x

    {
        Parameters =
            [
                "problem", Str p.Name
                "dim", Int p.Dim
                "samples", Int p.Samples
                "model", Str modelName
                "eta", Num s.Eta
                "horizon", Num s.Horizon
                "substeps", Int s.SubSteps
                "batch", Int s.Batch
                "points", Int m
                "paths", Int s.Paths
                "seed", Int s.Seed
            ]
        T = [| Math.Floor(s.Horizon / s.Eta + 1e-9) * s.Eta |]
        Series =
            List.zip names (List.ofArray est)
            |> List.collect (fun (n, e) -> [ n, [| value e.Mean |]; n + "_stderr", [| value e.StdErr |] ])
        Kernels = []
        Meta =
            [
                "time_unit", Str "SGD steps x eta"
                "scheme", Str(sprintf "%A" s.Scheme)
                "wall_time_s", Num sw.Elapsed.TotalSeconds
                "max_abs_state", Num worst
                "divergence_bound", Num bound
            ]
            @ Output.status status
            @ Output.warnings warnings
    }

let private runWeakOrder (a: Args.Parsed) =
    let rows, y = data a
    let horizon = Args.float a "horizon" 2.0

    Check.positive "horizon" horizon

    let etas =
        match a.Values.TryFind "etas" with
        | Some s -> Validate.floatList "etas" s
        | None -> [| 1.0 / 8.0; 1.0 / 16.0; 1.0 / 32.0; 1.0 / 64.0; 1.0 / 128.0; 1.0 / 256.0 |]

    Check.that
        "etas"
        (etas.Length >= 2 && Array.forall (fun e -> e > 0.0) etas)
        "give at least two positive learning rates."

    // A slope needs distinct learning rates; each must take at least one step before the horizon.
    Check.that "etas" ((Array.distinct etas).Length = etas.Length) "give distinct learning rates (a log-log slope needs distinct points)."

    Check.that
        "etas"
        (Array.forall (fun e -> e <= horizon) etas)
        (sprintf "every learning rate must be <= --horizon (%g): each takes floor(horizon/eta) steps." horizon)

    let totalSteps = etas |> Array.sumBy (fun e -> Math.Floor(horizon / e + 1e-9))
    Validate.Budget.steps "weak-order" (horizon / Array.min etas) [ "etas"; "horizon" ]
    let d0 = float rows[0].Length

    Validate.Budget.work
        "weak-order"
        (totalSteps * 12.0 * float rows.Length * d0 * d0 * d0 * d0)
        1
        [ "etas"; "horizon"; "dim"; "samples" ]
    |> ignore

    let ridge = Args.float a "ridge" 0.0
    Check.nonNegative "ridge" ridge
    let d = rows[0].Length
    let x0 = initialPoints d 2
    let sw = Stopwatch.StartNew()

    let sgd =
        etas
        |> Array.map (fun eta -> LeastSquaresOracle.sgd ridge rows y eta horizon x0)

    let errors (model: SdeModel) (points: int) (f: PointMoments -> float) =
        etas
        |> Array.mapi (fun k eta ->
            let x = x0[.. points - 1]

            let s =
                if points = 2 then
                    sgd[k]
                else
                    LeastSquaresOracle.sgd ridge rows y eta horizon x

            abs (f s - f (LeastSquaresOracle.moments model ridge rows y eta horizon x)))

    let tr (m: PointMoments) = m.TraceSecond 0
    let two (m: PointMoments) = m.TwoPoint(0, 1)

    let series =
        [
            "gf_one_point", errors GradientFlow 1 tr
            "sme1_one_point", errors (Sme(1, true)) 1 tr
            "smf1_one_point", errors (Smf 1) 1 tr
            "smf2_one_point", errors (Smf 2) 1 tr
            "smf1_two_point", errors (Smf 1) 2 two
            "smf2_two_point", errors (Smf 2) 2 two
        ]

    // Slopes over the finest three learning rates (the coarse end is pre-asymptotic, spec V5).
    let tail (v: float[]) = v[v.Length - 3 ..]

    let slopes =
        series
        |> List.map (fun (n, e) -> n, Num(Stats.logLogSlope (tail etas) (tail e)))

    {
        Parameters =
            [
                "problem", Str "least squares (exact oracles)"
                "dim", Int d
                "samples", Int rows.Length
                "ridge", Num ridge
                "horizon", Num horizon
                "observables", Str "one point: tr E[x x^T]; two points: E|x - y|^2 (same samples / same noise)"
            ]
        T = etas
        Series = series
        Kernels = []
        Meta =
            [
                "axis", Str "the t column holds eta; series are |E phi(SGD) - E phi(model)| at the horizon"
                "slopes", Obj slopes
                "expected", Str "GF, SME1, SMF1: 1; SMF2: 2 (one and two points)"
                "wall_time_s", Num sw.Elapsed.TotalSeconds
            ]
    }

/// Weak error against eta on log-log axes.
let plotWeakOrder (path: string) (d: Document) =
    let logs (v: float[]) = v |> Array.map log10

    Plot.save
        path
        "weak error of SDE models of SGD (least squares, exact oracles)"
        "log10 eta"
        "log10 |E phi(SGD) - E phi(model)|"
        false
        [
            for name, e in d.Series -> Plot.line (name.Replace('_', ' ')) (logs d.T) (logs e)
        ]

let private parseWith (argv: string list) =
    let a = Args.parse valued flags argv
    a, a.Values.TryFind "out", a.Values.TryFind "plot"

let main (argv: string list) =
    match argv with
    | "weak-order" :: rest -> Plot.execute parseWith runWeakOrder plotWeakOrder rest
    | _ ->
        Plot.execute
            parseWith
            runSimulate
            (fun _ _ -> raise (Args.UsageError "--plot is for `statphys sde weak-order`"))
            argv

let runWeakOrderArgs (argv: string list) =
    runWeakOrder (Args.parse valued flags argv)
