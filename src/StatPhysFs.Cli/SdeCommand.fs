/// `statphys sde` and `statphys sde weak-order`: SGD against its diffusion models (SME, SMF) at small learning rate
/// on a built-in finite data set, with Monte Carlo statistics, and the weak-order slopes on the exact oracles.
module StatPhysFs.Cli.SdeCommand

open System
open System.Diagnostics
open StatPhysFs
open StatPhysFs.Sde
open StatPhysFs.Cli.Output

/// The user's data set (--data FILE.csv: features then the label on each row), if given.
let private userData (a: Args.Parsed) =
    match a.Values.TryFind "data" with
    | None -> None
    | Some path ->
        for o in [ "params"; "n"; "data-seed" ] do
            if a.Values.ContainsKey o then
                raise (Args.UsageError($"--%s{o} does not apply with --data (the data set fixes it)"))

        Some(DataSet.readCsv path)

/// The data set: the user's (--data), else the library's built-in one (DataSet.gaussian): rows a_i ~ N(0, I/d),
/// labels y_i ~ N(0, 1) (least squares) or their signs (logistic).
let private dataSet (a: Args.Parsed) =
    match userData a with
    | Some ds -> ds
    | None ->
        let d = Args.int a "params"
        let n = Args.int a "n"
        DataSet.gaussian d n (Args.int a "data-seed")

let private data (a: Args.Parsed) =
    let ds = dataSet a
    ds.Features, ds.Labels

/// The data set's entry in the JSON parameters: file, SHA-256 of its bytes, rows, columns, header.
let private dataParameter (a: Args.Parsed) =
    match a.Values.TryFind "data" with
    | None -> Str "built-in (seeded by --data-seed)"
    | Some path ->
        let ds = (userData a).Value

        Obj
            [
                "file", Str(IO.Path.GetFullPath path)
                "sha256", Str ds.Sha256
                "rows", Int ds.Rows
                "columns", Int ds.Columns
                "header", Bool ds.HasHeader
                "label_column", Str "last"
            ]

let private problem (a: Args.Parsed) =
    let kind =
        Args.choice a "problem"

    let ridge = Args.float a "ridge"
    // Least squares and logistic loss are bounded below only for ridge >= 0 (negative risks otherwise).
    Check.nonNegative "ridge" ridge

    match userData a with
    | Some ds ->
        match kind with
        | "logistic" -> DataSet.logistic ridge ds
        | "least-squares" -> DataSet.leastSquares ridge ds
        | other -> raise (Args.UsageError($"--data works with --problem least-squares|logistic, got '%s{other}'"))
    | None ->
        let ds = dataSet a

        match kind with
        | "two-layer" -> DataSet.twoLayerTeacher (Args.int a "data-seed") ds
        | "mean-field" ->
            Check.intInRange "width" 1 100_000 (Args.int a "width")
            MeanField.problem (fst (MeanField.fixture (Args.int a "width") (Args.int a "data-seed")))
        | "logistic" -> DataSet.logisticBySign ridge ds
        | _ -> DataSet.leastSquares ridge ds

/// --x0 v1,v2,... (one initial point) or v1,...;w1,... (several, one per --inits): each of length `dim`.
let private userInitialPoints (a: Args.Parsed) (dim: int) =
    match a.Values.TryFind "x0" with
    | None -> None
    | Some s ->
        let points =
            s.Split(';')
            |> Array.mapi (fun j p ->
                let v =
                    p.Split(',')
                    |> Array.map (fun x ->
                        match
                            Double.TryParse(
                                x.Trim(),
                                Globalization.NumberStyles.Float,
                                Globalization.CultureInfo.InvariantCulture
                            )
                        with
                        | true, v when Double.IsFinite v -> v
                        | _ ->
                            raise (
                                Args.UsageError(
                                    $"--x0 expects comma-separated finite numbers, got '%s{(x.Trim())}'"
                                )
                            ))

                if v.Length <> dim then
                    raise (
                        Args.UsageError(
                            $"""--x0%s{(if s.Contains ';' then $" point %d{(j + 1)}" else "")} has %d{v.Length} values; the parameter dimension is %d{dim}"""
                        )
                    )

                v)

        Some points

let private initialPoints (d: int) (m: int) =
    WeakOrderProblem.standardInitialPoints d m

let private modelOf (name: string) =
    match name with
    | "gf" -> GradientFlow
    | "sme1" -> Sme(1, true)
    | "sme2" -> Sme(2, true)
    | "smf1" -> Smf 1
    | _ -> Smf 2

let private runSimulate (ctx: Validate.Context) (a: Args.Parsed) =
    let p = problem a
    let meanField = Args.string a "problem" = "mean-field"
    let given = userInitialPoints a p.Dim

    // With --x0 the number of points is the number of vectors given (--inits, if also given, must agree).
    let inits = Args.tryValue a "inits" |> Option.map (fun _ -> Args.int a "inits")

    let m =
        match given with
        | Some xs ->
            match inits with
            | Some k when k <> xs.Length ->
                raise (
                    Args.UsageError(
                        $"--inits %d{k} but --x0 gives %d{xs.Length} point(s); separate points by ';'"
                    )
                )
            | _ -> ()

            xs.Length
        | None ->
            match inits with
            | Some k -> k
            | None -> if meanField then 1 else 2

    Check.intInRange "inits" 1 64 m

    if meanField && m <> 1 then
        raise (Args.UsageError "--problem mean-field takes one initial point (the particle system)")

    let x0 =
        match given with
        | Some xs -> xs
        | None when meanField ->
            [|
                snd (MeanField.fixture (Args.int a "width") (Args.int a "data-seed"))
            |]
        | None -> initialPoints p.Dim m

    let modelName =
        Args.choice a "model"

    let bar = Progress.create "sde" (a.Flags.Contains "progress")

    let s =
        { SdeSettings.defaults with
            Control =
                { RunControl.defaults with
                    CancellationToken = ctx.Token
                    Progress = Some bar.Report
                }
            SubSteps = Args.int a "substeps"
            Paths = Args.int a "paths"
            Seed = Args.int a "seed"
            Scheme =
                match Args.choice a "scheme" with
                | "em" -> EulerMaruyama
                | "heun" -> HeunDrift
                | _ -> EulerRichardson
        }

    // The learning rate, batch and horizon are the problem's (set below once the process is known).
    let eta, horizon, batch =
        Args.float a "lr", Args.float a "t-end", Args.int a "batch"

    let risk (x: float[]) =
        (Seq.sum (seq { for i in 0 .. p.Samples - 1 -> p.Loss i x })) / float p.Samples

    let names, obs =
        if meanField then
            let data =
                fst (MeanField.fixture (Args.int a "width") (Args.int a "data-seed"))

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
    Check.positive "lr" eta
    Check.positive "t-end" horizon
    Check.intInRange "batch" 1 1_000_000 batch

    if horizon < eta then
        raise (
            Args.UsageError(
                $"--t-end (%g{horizon}) must be >= --lr (%g{eta}): the run takes floor(t-end/lr) SGD steps"
            )
        )

    // Steps per path (SDE schemes: sub-steps, and Richardson runs h and h/2) must fit the integrators' int counters.
    let sgdSteps = Math.Floor(horizon / eta + 1e-9)

    let schemeSteps, passes =
        if modelName = "sgd" then
            sgdSteps * float batch, 1.0
        else
            match s.Scheme with
            | EulerRichardson -> sgdSteps * float s.SubSteps * 2.0, 2.0
            | HeunDrift -> sgdSteps * float s.SubSteps * 2.0, 1.0
            | EulerMaruyama -> sgdSteps * float s.SubSteps, 1.0

    Validate.Budget.steps "sde" schemeSteps [ "t-end"; "lr"; "substeps" ]
    let cores = min s.MaxParallelism Environment.ProcessorCount
    // Per path state: m points of d coordinates; the SDE work buffers hold n x d per-sample gradients per point.
    let perPath = float m * float p.Dim * (if modelName = "sgd" then 1.0 else float p.Samples + 8.0)

    Validate.Budget.memory ctx
        "sde"
        (8.0 * (float s.Paths * float (obs.Length + 1) + float cores * perPath))
        [ "paths"; "inits"; "params"; "n"; "width" ]

    // Measured cost per point and step (2 cores): about 1 us of overhead plus 15 ns per sample-coordinate for the
    // SDE models (all n per-sample gradients), 0.7 us plus a gradient per batch element for SGD.
    let workPerStep =
        if modelName = "sgd" then
            float m * (1400.0 + 30.0 * float p.Dim)
        else
            float m * (2000.0 + 30.0 * float p.Dim * float p.Samples)

    Validate.Budget.work ctx
        "sde"
        (float s.Paths * passes * schemeSteps * workPerStep)
        cores
        [ "paths"; "t-end"; "lr"; "substeps"; "params"; "n"; "width" ]
    |> ignore

    let bound = Args.float a "divergence-bound"
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

        if lmax > 0.0 && eta > 2.0 / lmax then
            Validate.warn
                warnings
                ($"--lr %g{eta} is above 2/lambda_max = %.4g{(2.0 / lmax)} (largest Hessian eigenvalue of the risk at the initial point): gradient steps of this size are unstable, so the run may diverge or be far from its small-eta models")

    let sw = Stopwatch.StartNew()

    let proc =
        if modelName = "sgd" then
            SdeProcess.Sgd(
                match Args.choice a "sampling" with
                | "without" -> WithoutReplacement
                | _ -> WithReplacement
            )
        else
            let model = modelOf modelName

            match model with
            | Sme _ when m > 1 ->
                eprintfn
                    "statphys: note: the SME's multi-point statistics are only order 1 (shared W); use smf for them"
            | _ -> ()

            SdeProcess.Diffusion model

    let problem =
        {
            Data = SdeData.FiniteSum p
            Process = proc
            Eta = eta
            Batch = batch
            InitialPoints = x0
            TEnd = horizon
            Observables = List.map2 (fun n f -> { Name = n; Value = f }) names obs
        }

    let sol = Flows.solve { s with DivergenceBound = bound } problem
    bar.Done()
    let est = sol.Estimates
    let worst = sol.Statistics.MaxAbsState
    let status = sol.Status

    let diverged =
        match status with
        | RunStatus.Diverged _ -> true
        | _ -> false

    if diverged then
        eprintfn $"statphys: warning: the %s{modelName} run diverged (max |x| = %g{worst} > %g{bound}); its statistics are written as null; lower --eta"

    let value (x: float) = if diverged then nan else x

    {
        Parameters =
            [
                "problem", Str p.Name
                "data", dataParameter a
                "dim", Int p.Dim
                "samples", Int p.Samples
                "x0", Arr [ for x in x0 -> Arr [ for v in x -> Num v ] ]
                "model", Str modelName
                "eta", Num eta
                "horizon", Num horizon
                "substeps", Int s.SubSteps
                "batch", Int batch
                "points", Int m
                "paths", Int s.Paths
                "seed", Int s.Seed
            ]
        T = sol.T
        Series =
            List.zip names (List.ofArray est)
            |> List.collect (fun (n, e) -> [ n, [| value e.Mean |]; n + "_stderr", [| value e.StdErr |] ])
        Kernels = []
        Meta =
            [
                "time_unit", Str "SGD steps x eta"
                "scheme",
                Str(
                    match s.Scheme with
                    | EulerMaruyama -> "EulerMaruyama"
                    | EulerRichardson -> "EulerRichardson"
                    | HeunDrift -> "HeunDrift"
                )
                "wall_time_s", Num sw.Elapsed.TotalSeconds
                "max_abs_state", Num worst
                "divergence_bound", Num bound
            ]
            @ Output.status status
            @ Output.warnings warnings
    }

let private runWeakOrder (ctx: Validate.Context) (a: Args.Parsed) =
    if a.Values.ContainsKey "x0" then
        raise (Args.UsageError "--x0 is for `statphys sde`; weak-order uses its two fixed initial points")

    let rows, y = data a
    let horizon = Args.float a "t-end"

    Check.positive "t-end" horizon

    let etas = Validate.floatList "lrs" (Args.string a "lrs")

    Check.that
        "lrs"
        (etas.Length >= 2 && Array.forall (fun e -> e > 0.0) etas)
        "give at least two positive learning rates."

    // A slope needs distinct learning rates; each must take at least one step before the horizon.
    Check.that "lrs" ((Array.distinct etas).Length = etas.Length) "give distinct learning rates (a log-log slope needs distinct points)."

    Check.that
        "lrs"
        (Array.forall (fun e -> e <= horizon) etas)
        ($"every learning rate must be <= --t-end (%g{horizon}): each takes floor(t-end/lr) steps.")

    let totalSteps = etas |> Array.sumBy (fun e -> float (Steps.count "t-end" horizon "lrs" e))
    Validate.Budget.steps "weak-order" (horizon / Array.min etas) [ "lrs"; "t-end" ]
    let d0 = float rows[0].Length

    Validate.Budget.work ctx
        "weak-order"
        (totalSteps * 12.0 * float rows.Length * d0 * d0 * d0 * d0)
        1
        [ "lrs"; "t-end"; "params"; "n" ]
    |> ignore

    let ridge = Args.float a "ridge"
    Check.nonNegative "ridge" ridge
    let d = rows[0].Length
    let x0 = initialPoints d 2
    let sw = Stopwatch.StartNew()

    let sol =
        WeakOrder.solve
            { WeakOrder.defaults with
                Control = RunControl.withCancellation ctx.Token RunControl.defaults
            }
            {
                Features = rows
                Labels = y
                Ridge = ridge
                Etas = etas
                TEnd = horizon
                InitialPoints = x0
            }

    let series = sol.Errors
    let slopes = sol.Slopes |> List.map (fun (n, v) -> n, Num v)

    {
        Parameters =
            [
                "problem", Str "least squares (exact oracles)"
                "data", dataParameter a
                "dim", Int d
                "samples", Int rows.Length
                "ridge", Num ridge
                "horizon", Num horizon
                "x0", Arr [ for x in x0 -> Arr [ for v in x -> Num v ] ]
                "observables", Str "one point: tr E[x x^T]; two points: E|x - y|^2 (same samples / same noise)"
            ]
        T = etas
        Series = series
        Kernels = []
        Meta =
            [
                "axis_name", Str "eta"
                "axis",
                Str "the eta column holds the learning rate; series are |E phi(SGD) - E phi(model)| at the horizon"
                "slopes", Obj slopes
                "expected", Str "GF, SME1, SMF1: 1; SMF2: 2 (one and two points)"
                "wall_time_s", Num sw.Elapsed.TotalSeconds
            ]
    }

/// Weak error against eta on log-log axes: each model's exact errors as markers joined by lines, the fitted slope
/// (finest three etas) in the legend, and reference slopes 1 and 2.
let plotWeakOrder (path: string) (d: Document) =
    let slopes =
        match d.Meta |> List.tryFind (fst >> (=) "slopes") with
        | Some(_, Obj kv) -> kv
        | _ -> []

    let slopeOf name =
        match slopes |> List.tryFind (fst >> (=) name) with
        | Some(_, Num s) -> $" (fitted slope %.2f{s})"
        | _ -> ""

    let pretty (name: string) =
        name
            .Replace("_one_point", ", one point")
            .Replace("_two_point", ", two points")
            .ToUpperInvariant()
            .Replace("ONE POINT", "one point")
            .Replace("TWO POINTS", "two points")

    let etas = d.T
    let lo, hi = Array.min etas, Array.max etas

    // Reference lines C eta^p anchored half a decade below the smallest-eta error of the series with that order.
    let anchored (name: string) (p: float) =
        match d.Series |> List.tryFind (fst >> (=) name) with
        | Some(_, e) ->
            let k = Array.findIndex ((=) lo) etas
            let c = e[k] / 3.0 / lo ** p
            Some(Plot.reference ($"reference slope %g{p}") [| lo; hi |] [| c * lo ** p; c * hi ** p |])
        | None -> None

    Plot.render
        path
        {
            Title = "Weak error of SDE models of SGD (least squares, exact oracles)"
            Caption =
                Plot.caption d [ "dim", "d"; "samples", "n"; "ridge", "ridge"; "horizon", "horizon T" ]
                + "; one point: tr E[x x^T], two points: E|x - y|^2"
            XLabel = "learning rate eta"
            YLabel = "|E phi(SGD) - E phi(model)| at T"
            XScale = Plot.Log
            YScale = Plot.Log
            Curves =
                [
                    for name, e in d.Series -> Plot.lineMarkers (pretty name + slopeOf name) etas e
                    yield! Option.toList (anchored "gf_one_point" 1.0)
                    yield! Option.toList (anchored "smf2_one_point" 2.0)
                ]
        }

let private parseWith (spec: Args.CommandSpec) (argv: string list) =
    let a = Args.parse spec argv
    a, a.Values.TryFind "out", a.Values.TryFind "plot"

let main (ctx: Validate.Context) (argv: string list) =
    match argv with
    | "weak-order" :: rest -> Plot.execute (parseWith Options.sdeWeakOrder) (runWeakOrder ctx) plotWeakOrder rest
    | _ -> Plot.execute (parseWith Options.sde) (runSimulate ctx) (fun _ _ -> ()) argv

let runWeakOrderArgs (ctx: Validate.Context) (argv: string list) =
    runWeakOrder ctx (Args.parse Options.sdeWeakOrder argv)
