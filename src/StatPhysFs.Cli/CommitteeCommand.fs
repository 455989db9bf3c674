/// `statphys online committee`: the K x M teacher-student ODE, optionally against simulation.
module StatPhysFs.Cli.CommitteeCommand

open System
open System.Diagnostics
open System.IO
open System.Text.Json
open System.Threading
open StatPhysFs
open StatPhysFs.Ode
open StatPhysFs.Gaussian
open StatPhysFs.Models
open StatPhysFs.Simulation
open StatPhysFs.Cli.Output

type Settings =
    {
        Params: CommitteeParams
        Init: CommitteeState
        Schedule: LearningRateSchedule
        ScheduleName: string
        TEnd: float
        Points: int
        Grid: GridKind
        RelTol: float
        Simulation: SimulationOptions option
        Normalised: bool
        ForceProgress: bool
        /// Run the plateau / eta_max / eta_opt analysis (--analysis).
        Analysis: bool
    }

let private readInit (path: string) (k: int) (m: int) =
    if Directory.Exists path then
        raise (Args.UsageError($"--init: '%s{path}' is a directory, not an initial-state file"))

    if not (File.Exists path) then
        raise (
            Args.UsageError(
                $"--init: no such file '%s{path}' (give default|small|informed|random or a JSON file)"
            )
        )

    let fail (msg: string) =
        raise (Args.UsageError($"--init %s{path}: %s{msg}"))

    let text =
        try
            File.ReadAllText path
        with e ->
            fail ($"cannot read the file (%s{e.Message})")

    if String.IsNullOrWhiteSpace text then
        fail "the file is empty; expected a JSON object {\"Q\": [[...]], \"R\": [[...]], ...}"

    use doc =
        try
            JsonDocument.Parse text
        with :? JsonException as e ->
            fail ($"not valid JSON (%s{e.Message})")

    let root = doc.RootElement

    if root.ValueKind <> JsonValueKind.Object then
        fail ($"expected a JSON object with fields Q, R (and optional T, v, vTeacher, b, bTeacher), got a %O{root.ValueKind}")

    let number (field: string) (e: JsonElement) =
        match e.ValueKind with
        | JsonValueKind.Number ->
            let v = e.GetDouble()

            if not (Double.IsFinite v) then
                fail ($"field %s{field} holds a non-finite number")

            v
        | kind -> fail ($"field %s{field} must hold numbers, found a %O{kind}")

    let matrix name rows cols (fallback: float[,] option) =
        match root.TryGetProperty(name: string) with
        | true, e ->
            let shape = $"a %d{rows}x%d{cols} array of arrays of numbers"

            if e.ValueKind <> JsonValueKind.Array then
                fail ($"field %s{name} must be %s{shape}, found a %O{e.ValueKind}")

            let a =
                e.EnumerateArray()
                |> Seq.map (fun r ->
                    if r.ValueKind <> JsonValueKind.Array then
                        fail ($"field %s{name} must be %s{shape}, found a row that is a %O{r.ValueKind}")

                    r.EnumerateArray() |> Seq.map (number name) |> Array.ofSeq)
                |> Array.ofSeq

            if a.Length <> rows || a |> Array.exists (fun r -> r.Length <> cols) then
                fail (
                    $"""field %s{name} must be %d{rows}x%d{cols} (K = %d{k}, M = %d{m}), got %d{a.Length} rows of lengths %s{(a |> Array.map (fun r -> string r.Length) |> String.concat ",")}"""
                )

            Array2D.init rows cols (fun i j -> a[i][j])
        | _ ->
            match fallback with
            | Some f -> f
            | None -> fail ($"field %s{name} (%d{rows}x%d{cols}) is required")

    let vector name n fallback =
        match root.TryGetProperty(name: string) with
        | true, e ->
            if e.ValueKind <> JsonValueKind.Array then
                fail ($"field %s{name} must be an array of %d{n} numbers, found a %O{e.ValueKind}")

            let a = e.EnumerateArray() |> Seq.map (number name) |> Array.ofSeq

            if a.Length <> n then
                fail ($"field %s{name} must have %d{n} entries, got %d{a.Length}")

            a
        | _ -> fallback

    let t =
        matrix "T" m m (Some(Array2D.init m m (fun i j -> if i = j then 1.0 else 0.0)))

    {
        Q = matrix "Q" k k None
        R = matrix "R" k m None
        V = vector "v" k (Array.create k 1.0)
    },
    t,
    vector "vTeacher" m (Array.create m 1.0),
    vector "b" k [||],
    vector "bTeacher" m [||]

let parse (ctx: Validate.Context) (argv: string list) =
    let a = Args.parse Options.onlineCommittee argv
    let k = Args.int a "K"
    let m = Args.int a "M"

    if k < 1 || m < 1 || k > 1000 || m > 1000 then
        raise (Args.UsageError($"--K and --M must lie in [1, 1000], got K = %d{k}, M = %d{m}"))

    let student = Args.string a "student"
    let teacher = Args.tryValue a "teacher" |> Option.defaultValue student

    let activation flag name =
        try
            Activation.ofName name
        with :? ArgumentException as e ->
            raise (Args.UsageError($"--%s{flag}: %s{e.Message}"))

    let act = activation "student" student
    let teacherAct = activation "teacher" teacher

    let lr = Args.float a "lr"
    let seed = Args.int a "seed"
    let baseP = Committee.create k m

    let init, t, vT, b, bT =
        match Args.string a "init" with
        | "default" -> CommitteeInitialState.spec k m, baseP.T, baseP.VTeacher, [||], [||]
        | "small" -> CommitteeInitialState.small k m, baseP.T, baseP.VTeacher, [||], [||]
        | "informed" -> CommitteeInitialState.informed k m, baseP.T, baseP.VTeacher, [||], [||]
        | "random" ->
            let d = Args.int a "dim"
            Check.intInRange "dim" 1 100_000_000 d
            Validate.Budget.memory ctx "--init random" (8.0 * float (k + m) * float d) [ "dim"; "K"; "M" ]
            CommitteeInitialState.random k m d seed, baseP.T, baseP.VTeacher, [||], [||]
        | file -> readInit file k m

    // The normalised committee: outputs (1/K) sum g and (1/M) sum g, i.e. v = 1/K and vT = 1/M, fixed.
    let init, vT =
        if a.Flags.Contains "normalised" then
            { init with
                V = Array.create k (1.0 / float k)
            },
            Array.create m (1.0 / float m)
        else
            init, vT

    let ridge = Args.float a "ridge"

    let p =
        { baseP with
            Activation = act
            TeacherActivation = (if teacher = student then None else Some teacherAct)
            Lr = lr
            LrSecond =
                (if a.Values.ContainsKey "lr2" then
                     Some(Args.float a "lr2")
                 else
                     None)
            NoiseVar = Args.float a "noise-var"
            WeightDecay = lr * ridge
            Batch = Args.int a "batch"
            Momentum = Args.float a "momentum"
            T = t
            VTeacher = vT
            Bias = b
            BiasTeacher = bT
        }

    let schedule =
        match Args.choice a "schedule" with
        | "inverse" ->
            let c = Args.float a "schedule-c"
            let s = LearningRateSchedule.Inverse c
            LearningRateSchedule.validate s
            s
        | _ -> LearningRateSchedule.Constant

    let scheduleName = LearningRateSchedule.describe schedule

    let sim =
        if a.Flags.Contains "simulate" then
            Some
                { SimulationOptions.defaults with
                    Dim = Args.int a "dim"
                    Seeds = Args.int a "seeds"
                    Seed = seed
                }
        else
            None

    {
        Params = p
        Init = init
        Schedule = schedule
        ScheduleName = scheduleName
        TEnd = Args.float a "t-end"
        Points = Args.int a "points"
        Grid = Args.grid a
        RelTol = Args.float a "rtol"
        Simulation = sim
        Normalised = a.Flags.Contains "normalised"
        ForceProgress = a.Flags.Contains "progress"
        Analysis = a.Flags.Contains "analysis"
    },
    a.Values.TryFind "out",
    a.Values.TryFind "plot"

let private matrixValue (a: float[,]) =
    Arr
        [
            for i in 0 .. Array2D.length1 a - 1 -> Arr [ for j in 0 .. Array2D.length2 a - 1 -> Num a[i, j] ]
        ]

let run (ctx: Validate.Context) (s: Settings) : Document =
    let p = s.Params
    Committee.validate p
    Check.positive "t-end" s.TEnd
    Check.inRange "rtol" 1e-14 1e-2 s.RelTol
    Check.intInRange "points" 2 10_000_000 s.Points
    let warnings = ResizeArray<string>()
    let state = float (p.K * p.K + p.K * p.M + p.K)
    let units = float (p.K + p.M)
    Validate.Budget.memory ctx "the committee ODE output" (8.0 * float s.Points * state * 6.0) [ "points"; "K"; "M" ]
    // One right-hand side costs about 60 (K+M)^4 operations (measured, erf closed forms); a run takes at least a
    // few hundred evaluations.
    let rhsOps = 60.0 * units ** 4.0

    Validate.Budget.work ctx "the committee ODE" (rhsOps * 6.0 * max 200.0 s.TEnd) 1 [ "K"; "M"; "t-end" ]
    |> ignore

    match s.Simulation with
    | Some o ->
        Check.intInRange "dim" 1 100_000_000 o.Dim
        Check.intInRange "seeds" 1 1_000_000 o.Seeds

        Validate.Budget.memory ctx
            "the simulation"
            (8.0 * units * float o.Dim * 4.0 * float Environment.ProcessorCount)
            [ "dim"; "K"; "M" ]

        // t d SGD steps per seed, each O((K+M) d).
        Validate.Budget.work ctx
            "the simulation"
            (4.0 * float o.Seeds * s.TEnd * float o.Dim * units * float o.Dim * float p.Batch)
            Environment.ProcessorCount
            [ "dim"; "seeds"; "t-end"; "K"; "M" ]
        |> ignore
    | None -> ()

    let problem: CommitteeProblem =
        {
            Model = p
            Schedule = s.Schedule
            Init = s.Init
            TEnd = s.TEnd
        }

    let bar = Progress.create ($"integrating K=%d{p.K} M=%d{p.M}") s.ForceProgress
    let sw = Stopwatch.StartNew()

    let settings =
        { Committee.defaultSettings with
            Algorithm = Ode.dopri5 s.RelTol (s.RelTol * 1e-5)
            Points = s.Points
            Grid = s.Grid
            DivergenceBound = 1e8
            // The early-stopping event rides on this one integration.
            EarlyStopping = true
            Control =
                { RunControl.defaults with
                    Progress = Some bar.Report
                    CancellationToken = ctx.Token
                }
        }

    let sol = Committee.solve settings problem

    bar.Done()
    let odeTime = sw.Elapsed.TotalSeconds
    let grid = sol.T
    let early = sol.EarlyStopping
    let states = sol.States
    let eg = sol.Eg

    let overlaps =
        (sol :> ISolution).Observables
        |> List.filter (fun o -> o.Name <> "eg" && o.Name <> "train_loss")
        |> List.map (fun o -> o.Name, o.Values)

    // Without the (optional) eta_max analysis, a run above the stability threshold can end "completed" while the
    // student norms grow without bound. A learning student keeps Q_ii of the order of T_nn and of its start: say so.
    let known = states |> Array.choose id

    if sol.Status = Completed && known.Length >= 3 then
        let diagMax (st: CommitteeState) = Seq.init p.K (fun i -> st.Q[i, i]) |> Seq.max
        let teacher = Seq.init p.M (fun n -> p.T[n, n]) |> Seq.max
        let scale = max 1.0 (max (diagMax known[0]) teacher)
        let last = diagMax known[known.Length - 1]
        let before = diagMax known[max 0 (known.Length * 9 / 10 - 1)]

        if last > 10.0 * scale && last > before then
            Validate.warn
                warnings
                ($"the student norms grow without bound (max Q_ii = %.3g{last} at t-end, %.3g{before} at 90%% of the run, teacher %.3g{teacher}): --lr %g{p.Lr} is likely above eta_max (--analysis computes it) and the run does not converge")

    let simSeries, simMeta =
        match s.Simulation with
        | None -> [], []
        | Some o ->
            let bar =
                Progress.create ($"simulating d=%d{o.Dim}, %d{o.Seeds} seeds") s.ForceProgress

            let sw = Stopwatch.StartNew()

            let r = OnlineCommitteeSim.simulate o { settings with SaveAt = grid; Control = { settings.Control with Progress = Some bar.Report } } problem
            let errors = r.Errors.Value

            bar.Done()

            [ "eg_sim", r.Eg; "eg_sim_stderr", errors.Eg ],
            Output.simulation o errors.Divergences sw.Elapsed.TotalSeconds
    // Analyses defined for the realisable case the spec treats: K = M, T = I, v = vT = 1 fixed, no noise or decay.
    let analysis =
        if
            s.Analysis
            && CommitteeAnalysis.applies problem
            && (let ops = 100.0 * state * rhsOps

                if ops / Validate.Budget.opsPerSecond > 30.0 then
                    Validate.warn
                        warnings
                        ($"the fixed-point analysis (plateau, eta_max, eta_opt) was skipped: about %.0f{(ops / Validate.Budget.opsPerSecond)} s of work at K = %d{p.K}")

                    false
                else
                    true)
        then
            let bar = Progress.create ($"analysis K=%d{p.K}") s.ForceProgress

            // An analysis that fails numerically (e.g. a non-converging eigen-solver at an absurd lr) gives no value.
            let r =
                try
                    Some(CommitteeAnalysis.analyse p bar.Report)
                with
                | :? ArgumentException -> None
                | e when e.GetType().Name = "NonConvergenceException" -> None

            bar.Done()

            let plateau =
                match r |> Option.bind (fun r -> r.Plateau) with
                | Some pl ->
                    Obj
                        [
                            "eg", Num pl.Eg
                            "Q", Num pl.State.Q[0, 0]
                            "C", Num(if p.K > 1 then pl.State.Q[0, 1] else nan)
                            "R", Num pl.State.R[0, 0]
                            "S", Num(if p.K > 1 then pl.State.R[0, 1] else nan)
                            "escape_rate", Num pl.EscapeRate
                        ]
                | None -> Str "no physical symmetric fixed point at this learning rate"

            let value (f: LearningRateAnalysis -> float) = r |> Option.map f |> Option.defaultValue nan
            let etaMax = value (fun r -> r.EtaMax)

            // Above eta_max the perfect-learning fixed point is unstable: say so even when the run has not blown up.
            if p.Lr > etaMax && sol.Status = Completed then
                Validate.warn
                    warnings
                    ($"--lr %g{p.Lr} is above eta_max = %.4g{etaMax} (the perfect-learning fixed point is unstable): the run has not diverged by t-end but does not converge")

            [
                "analysis",
                Obj
                    [
                        "plateau", plateau
                        "plateau_eg_small_lr", Num(CommitteeAnalysis.plateauErrorSmallLr p.K)
                        "eta_max", Num etaMax
                        "eta_opt", Num(value (fun r -> r.EtaOpt))
                        "convergence_rate_at_eta_opt", Num(value (fun r -> r.RateAtEtaOpt))
                        "convergence_rate", Num(value (fun r -> r.Rate))
                    ]
            ]
        else
            []

    {
        Parameters =
            [
                "model", Str "online-committee"
                "K", Int p.K
                "M", Int p.M
                "activation", Str p.Activation.Name
                "teacher_activation", Str (CommitteeLayout.teacherActivation p).Name
                "lr", Num p.Lr
                "lr2",
                (match p.LrSecond with
                 | Some x -> Num x
                 | None -> Null)
                "noise_var", Num p.NoiseVar
                "weight_decay_per_step", Num p.WeightDecay
                "batch", Int p.Batch
                "momentum", Num p.Momentum
                "schedule", Str s.ScheduleName
                "t_end", Num s.TEnd
                "points", Int s.Points
                "init",
                Obj
                    [
                        "Q", matrixValue s.Init.Q
                        "R", matrixValue s.Init.R
                        "T", matrixValue p.T
                        "v", Arr(s.Init.V |> Array.map Num |> List.ofArray)
                        "vTeacher", Arr(p.VTeacher |> Array.map Num |> List.ofArray)
                        "b", Arr(p.Bias |> Array.map Num |> List.ofArray)
                        "bTeacher", Arr(p.BiasTeacher |> Array.map Num |> List.ofArray)
                    ]
            ]
        T = grid
        Series =
            [ "eg", eg; "train_loss", sol.TrainLoss ]
            @ overlaps
            @ simSeries
        Kernels = []
        Meta =
            [
                "time_unit", Str "SGD steps / d"
                "output_convention",
                Str(
                    if s.Normalised then
                        "normalised committee: (1/K) sum_k g(lambda_k), teacher (1/M) sum_n g(nu_n)"
                    else
                        "plain sum: sum_k v_k g(lambda_k), teacher sum_n vT_n g(nu_n)"
                )
                "train_loss_definition", Str "expected training loss per sample = eg + noise_var/2"
                "conventions",
                Str
                    "erf = erf(x/sqrt 2), I2 = (2/pi) asin(.); committee output sum_k v_k g(lambda_k) (not normalised); eg excludes label noise"
                "integrals",
                Str(
                    match p.Activation with
                    | _ when CommitteeLayout.hasBias p -> "common-random-number QMC (biases)"
                    | _ when CommitteeLayout.needsSampling p ->
                        "common-random-number QMC (student and teacher activations differ)"
                    | Erf
                    | Linear -> "closed forms"
                    | Relu -> "closed I2, J2, I3; I4 by Stein + Plackett (1-D Gauss-Legendre)"
                    | Custom _ -> "common-random-number QMC"
                )
                "solver",
                Obj
                    [
                        "name", Str "dopri5"
                        "rtol", Num s.RelTol
                        "atol", Num(s.RelTol * 1e-5)
                        "steps", Int sol.Stats.Steps
                        "rejected", Int sol.Stats.Rejected
                        "evaluations", Int sol.Stats.Evaluations
                        "wall_time_s", Num odeTime
                    ]
            ]
            @ Output.status sol.Status
            @ Output.earlyStopping early
            @ analysis
            @ Output.warnings warnings
            @ simMeta
    }

let plot (path: string) (d: Document) =
    Plot.learningCurveOf
        path
        ($"""Online SGD, committee K = %s{(Plot.parameter d "K")}, M = %s{(Plot.parameter d "M")}""")
        (Plot.caption
            d
            [
                "activation", "g"
                "lr", "lr"
                "lr2", "lr2"
                "noise_var", "sigma^2"
                "batch", "B"
                "schedule", "schedule"
            ])
        d
        d

let main (ctx: Validate.Context) (argv: string list) = Plot.execute (parse ctx) (run ctx) plot argv
