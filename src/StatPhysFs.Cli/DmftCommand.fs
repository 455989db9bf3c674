/// `statphys dmft glm|committee` and `statphys simulate sgf|sgd`: multi-pass SGD on n = alpha d samples, the DMFT
/// of its stochastic gradient flow, and the finite-d processes it describes.
module StatPhysFs.Cli.DmftCommand

open System
open System.Diagnostics
open System.Threading
open StatPhysFs
open StatPhysFs.Dmft
open StatPhysFs.Gaussian
open StatPhysFs.Simulation
open StatPhysFs.Cli.Output

let private vector (defaults: Args.CommandSpec) (a: Args.Parsed) (name: string) =
    match Args.stringIn defaults a name with
    | s ->
        try
            s.Split(',')
            |> Array.map (fun x -> Double.Parse(x, Globalization.CultureInfo.InvariantCulture))
        with _ ->
            raise (Args.UsageError($"--%s{name} needs comma-separated numbers, got '%s{s}'"))

/// The problem from the options: a GLM or a committee.
let private problem (a: Args.Parsed) (committee: bool) =
    // The defaults are the model's (dmft glm and dmft committee differ; simulate takes them from --model).
    let defaults =
        if committee then
            Options.dmftCommittee
        else
            Options.dmftGlm

    let num name = Args.floatIn defaults a name
    let word name = Args.stringIn defaults a name

    let foreign =
        if committee then
            [ "loss"; "rho" ]
        else
            [ "student"; "v"; "v-teacher" ]

    for o in foreign do
        if a.Values.ContainsKey o then
            raise (Args.UsageError($"""--%s{o} does not apply to --model %s{(if committee then "committee" else "glm")}"""))

    let dt = num "dt"
    let tEnd = num "t-end"
    Check.positive "dt" dt
    Check.positive "t-end" tEnd
    Validate.Budget.steps "the DMFT grid" (tEnd / dt) [ "t-end"; "dt" ]
    let steps = int (Math.Round(tEnd / dt))

    let baseP =
        if committee then
            let net =
                {
                    Student = Activation.ofName (word "student")
                    V = vector defaults a "v"
                    Teacher = Activation.ofName (word "teacher")
                    VTeacher = vector defaults a "v-teacher"
                }

            DmftProblem.twoLayer net (num "q0")
        else
            let loss =
                match word "loss" with
                | "logistic" -> GlmLoss.Logistic
                | "hinge" -> GlmLoss.Hinge
                | _ -> GlmLoss.Square

            let teacher =
                match word "teacher" with
                | "sign" -> GlmTeacher.Sign
                | "linear" -> GlmTeacher.Linear
                | other -> raise (Args.UsageError($"--teacher must be one of linear|sign for a GLM, got '%s{other}'"))

            DmftProblem.glm loss teacher
            |> DmftProblem.withRho (num "rho")
            |> DmftProblem.withQ0 (num "q0")

    { baseP with
        Alpha = num "alpha"
        Tau = num "tau"
        Ridge = num "ridge"
        NoiseVar = num "noise-var"
        Dt = dt
        Steps = max 1 steps
    }

let private parameters (p: DmftProblem) =
    let model =
        match p.Model with
        | Glm(l, t) ->
            [
                "model", Str "glm"
                "loss", Str l.Name
                "teacher", Str t.Name
                "rho", Num p.Rho[0, 0]
            ]
        | TwoLayer n ->
            [
                "model", Str "committee"
                "student", Str n.Student.Name
                "teacher", Str n.Teacher.Name
                "v", Arr(n.V |> Array.map Num |> List.ofArray)
                "v_teacher", Arr(n.VTeacher |> Array.map Num |> List.ofArray)
            ]

    model
    @ [
        "alpha", Num p.Alpha
        "tau", Num p.Tau
        "ridge", Num p.Ridge
        "noise_var", Num p.NoiseVar
        "q0", Num p.Q0[0, 0]
        "dt", Num p.Dt
        "steps", Int p.Steps
    ]

/// A solution's observables as named columns (the library names them: m, q or Q<ab>, M<ab>, the losses), each
/// followed by <name>_stderr where it is an estimate; `suffix` tags an overlay (_sim, _sgd).
let private observableSeries suffix (sol: ISolution) =
    [
        for o in sol.Observables do
            yield o.Name + suffix, o.Values

            match o.StdErr with
            | Some e -> yield o.Name + suffix + "_stderr", e
            | None -> ()
    ]

let private simOptions (a: Args.Parsed) =
    { SimulationOptions.defaults with
        Dim = Args.int a "dim"
        Seeds = Args.int a "seeds"
        Seed = Args.int a "seed"
    }

let private sgdProcess (a: Args.Parsed) =
    let sampling =
        match Args.choice a "sampling" with
        | "without" -> WithoutReplacement
        | _ -> WithReplacement

    Sgd(Args.int a "batch", sampling)

let private simulate (ctx: Validate.Context) (a: Args.Parsed) (p: DmftProblem) (proc: MultiPassProcess) (label: string) suffix =
    let o = simOptions a

    let bar =
        Progress.create ($"%s{label} d=%d{o.Dim}, %d{o.Seeds} seeds") (a.Flags.Contains "progress")

    let r =
        MultiPassSim.solve
            {
                Process = proc
                Options = o
                Control =
                    RunControl.defaults
                    |> RunControl.withCancellation ctx.Token
                    |> RunControl.withProgress bar.Report
            }
            p

    bar.Done()

    observableSeries suffix r,
    [
        (if suffix = "" then "simulation" else "simulation" + suffix),
        Obj(
            [
                "process", Str label
                "dim", Int o.Dim
                "seeds", Int o.Seeds
                "seed", Int o.Seed
                "n", Int(int (Math.Round(p.Alpha * float o.Dim)))
                "divergences",
                Arr(
                    r.Divergences
                    |> Array.map (fun (run, t) -> Obj [ "run", Int run; "time", Num t ])
                    |> List.ofArray
                )
                "wall_time_s", Num r.WallSeconds
            ]
        )
    ]

/// A simulation overlay's length may differ from the theory's (divergence): pad with NaN to the grid.
let private fit (n: int) (series: (string * float[]) list) =
    series
    |> List.map (fun (k, v) -> k, Array.init n (fun i -> if i < v.Length then v[i] else nan))

let private leastSquaresMeta (p: DmftProblem) =
    match p.Model with
    | Glm(GlmLoss.Square, GlmTeacher.Linear) ->
        let law = MarchenkoPastur.ofAlpha p.Alpha

        let ls = LeastSquaresProblem.ofDmft p

        // The t -> infinity limits may not exist (alpha = 1, ridge = 0: the error grows like sqrt t) although every
        // finite-time value is well defined: report the limit as absent, with the reason, and keep the curve.
        let tc =
            try
                Num(LeastSquaresSgf.criticalTau law p.Ridge)
            with :? ArgumentException ->
                Null

        let stationary, absent =
            try
                (match LeastSquaresSgf.stationary law ls with
                 | Some(e, l) -> Obj [ "e", Num e; "test_loss", Num(e + p.NoiseVar); "train_loss", Num l ]
                 | None -> Null),
                []
            with :? ArgumentException as e ->
                Null, [ "stationary_absent", Str(e.Message.Split(" (Parameter")[0]) ]

        [ "tau_c", tc; "stationary", stationary ] @ absent
    | _ -> []

/// Memory and work of the DMFT solve and of the finite-d overlays, refused up front when over budget.
let private budget (ctx: Validate.Context) (a: Args.Parsed) (p: DmftProblem) =
    let steps = float p.Steps + 1.0

    let width =
        match p.Model with
        | TwoLayer n -> float n.V.Length
        | Glm _ -> 1.0

    let exact = a.Flags.Contains "exact"
    let samples = float (Args.int a "mc-samples")
    let replicas = float (Args.int a "replicas")
    Check.intInRange "mc-samples" 2 100_000_000 (Args.int a "mc-samples")
    Check.intInRange "replicas" 1 1000 (Args.int a "replicas")
    // --extrapolate also solves at dt/2: twice the steps.
    let refine = if a.Flags.Contains "extrapolate" then 2.0 else 1.0
    let n = steps * refine
    let w2 = width * width
    // Kernels C, R, Sigma_u (t x t, width^2 each), their copy in the document, and the JSON text (~25 bytes each).
    let kernelBytes = 3.0 * n * n * w2 * 8.0 * 2.0

    let textBytes =
        if a.Flags.Contains "no-kernels" then 0.0 else 3.0 * steps * steps * w2 * 25.0

    // Forward sweep: per sample its inputs, signals g and Jacobians g' (n (2 width + width^2) doubles, see
    // Dmft.sweepMemory; the responses are recomputed, not stored), with 50% for the runtime's headroom.
    let samplerBytes =
        if exact then 0.0 else 1.5 * samples * n * (2.0 * width + w2) * 8.0

    Validate.Budget.memory ctx
        "the DMFT solve"
        (kernelBytes + textBytes + samplerBytes)
        [ "t-end"; "dt"; "mc-samples" ]

    let ops =
        if exact then
            10.0 * n * n
        else
            let fp =
                match Args.choice a "strategy" with
                | "fixed-point" -> float (max 1 (Args.int a "iterations"))
                | _ -> 1.0

            // Each sample's field carries the memory integral over the past: t^2 per sample, width^2 per term; the
            // constant is measured (default glm: 20000 samples, 61 steps, 25 s on 2 cores).
            fp * samples * n * n * w2 * 1200.0 + replicas * n * n * w2 * 20.0

    Validate.Budget.work ctx "the DMFT solve" ops Environment.ProcessorCount [ "t-end"; "dt"; "mc-samples" ]
    |> ignore

    if a.Flags.Contains "simulate" || a.Flags.Contains "sgd" then
        let o = simOptions a
        Check.intInRange "dim" 1 10_000_000 o.Dim
        Check.intInRange "seeds" 1 1_000_000 o.Seeds
        let d = float o.Dim
        let nData = max 1.0 (Math.Round(p.Alpha * d))
        let cores = float (min o.Seeds Environment.ProcessorCount)
        Validate.Budget.memory ctx "the simulation" (cores * (nData * d + 4.0 * (nData + d) * width) * 8.0) [ "dim"; "alpha" ]
        let batch = float (Args.int a "batch")

        let sgdWork =
            if a.Flags.Contains "sgd" then
                // eta = tau B: t d / eta steps of B per-sample gradients, O(d width) each.
                float p.Steps * p.Dt * d / (max 1e-300 (p.Tau * batch)) * batch * d * width * 2.0
            else
                0.0

        let sgfWork =
            if a.Flags.Contains "simulate" then float p.Steps * nData * d * width * 4.0 else 0.0

        Validate.Budget.work ctx
            "the simulation"
            (float o.Seeds * (sgdWork + sgfWork))
            Environment.ProcessorCount
            [ "dim"; "seeds"; "t-end"; "dt"; "tau" ]
        |> ignore

/// Real SGD has eta = tau B: tau must be positive (tau = 0 is gradient flow, simulated by the SGF).
let private checkSgd (a: Args.Parsed) (p: DmftProblem) =
    Check.intInRange "batch" 1 10_000_000 (Args.int a "batch")

    if p.Tau <= 0.0 then
        raise (
            Args.UsageError(
                $"real SGD needs --tau = eta/B > 0, got %g{p.Tau} (tau = 0 is gradient flow: use the SGF)"
            )
        )

let private runDmft (ctx: Validate.Context) (a: Args.Parsed) (committee: bool) =
    let p = problem a committee
    budget ctx a p

    if a.Flags.Contains "sgd" then
        checkSgd a p
    let sw = Stopwatch.StartNew()
    let exactFlag = a.Flags.Contains "exact"

    if a.Flags.Contains "continuous" && not exactFlag then
        raise (Args.UsageError "--continuous needs --exact")

    let bar = Progress.create "DMFT" (a.Flags.Contains "progress")

    let theory, kernels, t, status, methodName =
        if exactFlag && a.Flags.Contains "continuous" then
            match p.Model with
            | Glm(GlmLoss.Square, GlmTeacher.Linear) -> ()
            | _ -> raise (Args.UsageError "--exact needs --loss square --teacher linear")

            let c =
                LeastSquaresSgf.solve
                    { LeastSquaresSettings.defaults with
                        Scheme = Continuous
                        Control = RunControl.defaults |> RunControl.withCancellation ctx.Token
                    }
                    (LeastSquaresProblem.ofDmft p)

            bar.Done()

            observableSeries "" c,
            [],
            c.T,
            c.Status,
            "continuous-time Volterra equation over Marchenko-Pastur (trapezoid, O(dt^2))"
        else
            let strategy =
                if exactFlag then
                    ExactClosure
                else
                    match Args.choice a "strategy" with
                    | "sweep" -> ForwardSweep
                    | "fixed-point" ->
                        FixedPoint(Args.int a "fp-batch", Args.float a "damping", Args.int a "iterations")
                    | _ -> Auto

            if exactFlag then
                match p.Model with
                | Glm(GlmLoss.Square, GlmTeacher.Linear) -> ()
                | _ -> raise (Args.UsageError "--exact needs --loss square --teacher linear")

            let s =
                Dmft.solve
                    { DmftSettings.defaults with
                        Samples = Args.int a "mc-samples"
                        Replicas = Args.int a "replicas"
                        Seed = Args.int a "seed"
                        Strategy = strategy
                        ExtrapolateInStep = a.Flags.Contains "extrapolate"
                        Control =
                            RunControl.defaults
                            |> RunControl.withCancellation ctx.Token
                            |> RunControl.withProgress bar.Report
                    }
                    p

            bar.Done()

            observableSeries "" s,
            (if a.Flags.Contains "no-kernels" then
                 []
             else
                 let named (name: string) (k: Kernel) =
                     [
                         for x in 0 .. k.Width - 1 do
                             for y in 0 .. k.Width - 1 ->
                                 (if k.Width = 1 then
                                      name
                                  else
                                      $"%s{name}%d{(x + 1)}%d{(y + 1)}"),
                                 Array2D.init k.Points k.Points (fun i j -> k[i, j, x, y])
                     ]

                 named "C" s.Correlation
                 @ named "R" s.Response
                 @ named "Sigma_u" s.NoiseCovariance),
            s.T,
            s.Status,
            s.Method

    let theoryTime = sw.Elapsed.TotalSeconds
    let n = t.Length

    let simSeries, simMeta =
        if a.Flags.Contains "simulate" then
            simulate ctx a p Sgf "sgf" "_sim"
        else
            [], []

    let sgdSeries, sgdMeta =
        if a.Flags.Contains "sgd" then
            simulate ctx a p (sgdProcess a) "sgd" "_sgd"
        else
            [], []

    {
        Parameters = parameters p
        T = t
        Series = theory @ fit n simSeries @ fit n sgdSeries
        Kernels = kernels
        Meta =
            [
                "time_unit", Str "SGF time t = SGD steps x eta / d"
                "method", Str methodName
                "wall_time_s", Num theoryTime
            ]
            @ leastSquaresMeta p
            @ Output.status status
            @ simMeta
            @ sgdMeta
    }

let private runSimulation (ctx: Validate.Context) (a: Args.Parsed) (kind: string) =
    let committee = Args.choice a "model" = "committee"
    let p = problem a committee

    if kind = "sgd" then
        checkSgd a p

    // The simulation alone: no DMFT solve, so only the overlay's budget counts.
    Validate.Budget.memory ctx "the output" (float (p.Steps + 1) * 8.0 * 40.0) [ "t-end"; "dt" ]

    (let o = simOptions a
     Check.intInRange "dim" 1 10_000_000 o.Dim
     Check.intInRange "seeds" 1 1_000_000 o.Seeds
     let d = float o.Dim
     let nData = max 1.0 (Math.Round(p.Alpha * d))
     Validate.Budget.memory ctx "the simulation" (float (min o.Seeds Environment.ProcessorCount) * nData * d * 8.0 * 1.5) [ "dim"; "alpha" ]

     let ops =
         if kind = "sgd" then
             float p.Steps * p.Dt * d / max 1e-300 p.Tau * d * 2.0
         else
             float p.Steps * nData * d * 4.0

     Validate.Budget.work ctx "the simulation" (float o.Seeds * ops) Environment.ProcessorCount [ "dim"; "seeds"; "t-end"; "dt"; "tau" ]
     |> ignore)

    let proc = if kind = "sgd" then sgdProcess a else Sgf

    let series, meta = simulate ctx a p proc kind ""

    {
        Parameters = parameters p
        T = Array.init (p.Steps + 1) (fun k -> float k * p.Dt)
        Series = series
        Kernels = []
        Meta = [ "time_unit", Str "SGF time t = SGD steps x eta / d" ] @ meta
    }

/// Train and test curves: the DMFT as lines (inside their standard-error bands when it is a Monte Carlo solve), the
/// finite-d SGF and SGD as markers with standard-error bars. A document of `simulate sgf|sgd` (no theory) is drawn
/// and titled as the simulation it is.
let plot (path: string) (d: Document) =
    let get name =
        d.Series |> List.tryFind (fst >> (=) name) |> Option.map snd

    let meta k =
        d.Meta |> List.tryFind (fst >> (=) k) |> Option.map snd

    let isTheory = (meta "method").IsSome

    let simInfo key =
        match meta key with
        | Some(Obj kv) ->
            let get k =
                kv |> List.tryFind (fst >> (=) k) |> Option.map snd

            match get "process", get "dim", get "seeds" with
            | Some(Str pr), Some(Int dim), Some(Int seeds) -> Some(pr, dim, seeds)
            | _ -> None
        | _ -> None

    let processName pr = if pr = "sgf" then "SGF" else "SGD"

    let pretty (name: string) = name.Replace('_', ' ')

    let curves =
        [
            for name in [ "train_loss"; "test_loss" ] do
                if isTheory then
                    match get name, get (name + "_stderr") with
                    | Some y, Some e -> yield Plot.band ($"%s{(pretty name)}, DMFT (+- s.e. band)") d.T y e
                    | Some y, None -> yield Plot.line ($"%s{(pretty name)}, DMFT") d.T y
                    | _ -> ()

                    for suffix, key in [ "_sim", "simulation_sim"; "_sgd", "simulation_sgd" ] do
                        match get (name + suffix), get (name + suffix + "_stderr"), simInfo key with
                        | Some y, Some e, Some(pr, dim, _) ->
                            yield
                                Plot.points
                                    ($"%s{(pretty name)}, %s{(processName pr)} simulated, d = %d{dim} (mean +- s.e.)")
                                    d.T
                                    y
                                    e
                        | _ -> ()
                else
                    match get name, get (name + "_stderr"), simInfo "simulation" with
                    | Some y, Some e, Some(pr, _, _) ->
                        yield Plot.points ($"%s{(pretty name)}, %s{(processName pr)} (mean +- s.e.)") d.T y e
                    | _ -> ()
        ]

    let title =
        if isTheory then
            "Multi-pass SGD: DMFT of the stochastic gradient flow"
        else
            match simInfo "simulation" with
            | Some("sgf", dim, seeds) ->
                $"Stochastic gradient flow simulated at d = %d{dim} (%d{seeds} seeds, no theory)"
            | Some(_, dim, seeds) -> $"Mini-batch SGD simulated at d = %d{dim} (%d{seeds} seeds, no theory)"
            | None -> "Multi-pass SGD simulation"

    Plot.render
        path
        {
            Title = title
            Caption =
                Plot.caption
                    d
                    [
                        "model", "model"
                        "loss", "loss"
                        "student", "student"
                        "teacher", "teacher"
                        "alpha", "alpha"
                        "tau", "tau"
                        "ridge", "ridge"
                        "noise_var", "sigma^2"
                        "dt", "dt"
                    ]
            XLabel = "SGF time t = steps x eta / d"
            YLabel = "loss"
            XScale = Plot.Linear
            YScale = Plot.Auto
            Curves = curves
        }

let private parseWith (spec: Args.CommandSpec) (argv: string list) =
    let a = Args.parse spec argv
    a, a.Values.TryFind "out", a.Values.TryFind "plot"

let mainGlm (ctx: Validate.Context) (argv: string list) =
    Plot.execute (parseWith Options.dmftGlm) (fun a -> runDmft ctx a false) plot argv

let mainCommittee (ctx: Validate.Context) (argv: string list) =
    Plot.execute (parseWith Options.dmftCommittee) (fun a -> runDmft ctx a true) plot argv

let mainSimulate (ctx: Validate.Context) (kind: string) (argv: string list) =
    Plot.execute (parseWith (Options.simulate kind)) (fun a -> runSimulation ctx a kind) plot argv

/// Run `dmft glm` (committee = false) or `dmft committee` from argument tokens, returning the document.
let runArgs (ctx: Validate.Context) (committee: bool) (argv: string list) =
    runDmft ctx (Args.parse (if committee then Options.dmftCommittee else Options.dmftGlm) argv) committee
