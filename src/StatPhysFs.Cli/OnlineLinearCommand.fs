/// `statphys online linear`: the ODE of online SGD on linear regression, optionally against simulation.
module StatPhysFs.Cli.OnlineLinearCommand

open System
open System.Diagnostics
open System.Threading
open StatPhysFs
open StatPhysFs.Ode
open StatPhysFs.Models
open StatPhysFs.Simulation
open StatPhysFs.Cli.Output

type Settings =
    {
        Params: OnlineLinearParams
        TEnd: float
        Points: int
        Grid: GridKind
        Algorithm: OdeAlgorithm
        Simulation: SimulationOptions option
        /// A run whose |m| or q exceeds this is reported as divergent, with the time it happened.
        DivergenceBound: float
        ForceProgress: bool
    }

let parse (argv: string list) =
    let a = Args.parse Options.onlineLinear argv

    let p =
        {
            Rho = Args.float a "rho"
            NoiseVar = Args.float a "noise-var"
            Lr = Args.float a "lr"
            Ridge = Args.float a "ridge"
            Batch = Args.int a "batch"
            M0 = Args.float a "m0"
            Q0 = Args.float a "q0"
        }

    let rtol = Args.float a "rtol"
    // Below 1e-14 the step size underflows against rounding (reported as a divergence at t = 0); above 1e-2 the
    // result is not a solution of the ODE.
    Check.inRange "rtol" 1e-14 1e-2 rtol

    let alg =
        match Args.choice a "solver" with
        | "rk4" -> RungeKutta4(Args.float a "dt")
        | "euler" -> Euler(Args.float a "dt")
        | _ ->
            Dopri5
                {
                    RelTol = rtol
                    AbsTol = rtol * 1e-2
                    InitialStep = 0.0
                    MaxStep = infinity
                }

    let sim =
        if a.Flags.Contains "simulate" then
            Some
                { SimulationOptions.defaults with
                    Dim = Args.int a "dim"
                    Seeds = Args.int a "seeds"
                    Seed = Args.int a "seed"
                    DivergenceBound = Args.float a "divergence-bound"
                }
        else
            for o in [ "dim"; "seeds"; "seed" ] do
                if a.Values.ContainsKey o then
                    raise (Args.UsageError($"--%s{o} needs --simulate"))

            None

    {
        Params = p
        TEnd = Args.float a "t-end"
        Points = Args.int a "points"
        Grid = Args.grid a
        Algorithm = alg
        Simulation = sim
        DivergenceBound = Args.float a "divergence-bound"
        ForceProgress = a.Flags.Contains "progress"
    },
    a.Values.TryFind "out",
    a.Values.TryFind "plot"

/// Run the theory (and the simulation if asked) and build the output document.
/// The amplification factor of a fixed-step method on y' = lambda y, z = h lambda.
let private amplification (alg: OdeAlgorithm) (z: Numerics.Complex) =
    match alg with
    | Euler _ -> Numerics.Complex.Abs(1.0 + z)
    | RungeKutta4 _ -> Numerics.Complex.Abs(1.0 + z + z * z / 2.0 + z * z * z / 6.0 + z * z * z * z / 24.0)
    | Dopri5 _
    | Dop853 _ -> 0.0

/// The largest stable fixed step for the decaying modes of the (linear) ODE, by bisection on the amplification.
let private maxStableStep (alg: OdeAlgorithm) (eigen: Numerics.Complex[]) =
    let decaying = eigen |> Array.filter (fun z -> z.Real < 0.0)

    if decaying.Length = 0 then
        infinity
    else
        let stable h =
            decaying |> Array.forall (fun z -> amplification alg (h * z) <= 1.0 + 1e-12)

        let mutable lo = 0.0
        let mutable hi = 1.0

        while stable hi && hi < 1e12 do
            lo <- hi
            hi <- 2.0 * hi

        for _ in 1..100 do
            let mid = 0.5 * (lo + hi)
            if stable mid then lo <- mid else hi <- mid

        lo

let run (ctx: Validate.Context) (s: Settings) : Document =
    let p = s.Params
    OnlineLinear.validate p
    Check.positive "t-end" s.TEnd
    Check.intInRange "points" 2 10_000_000 s.Points
    Check.positive "divergence-bound" s.DivergenceBound
    let warnings = ResizeArray<string>()

    let problem = OnlineLinear.problem p s.TEnd
    let odeProblem = OnlineLinear.odeProblem p s.TEnd

    match s.Algorithm with
    | RungeKutta4 dt
    | Euler dt ->
        Check.positive "dt" dt
        Validate.Budget.steps "the fixed-step integration" (s.TEnd / dt) [ "t-end"; "dt" ]
        Validate.Budget.work ctx "the fixed-step integration" (s.TEnd / dt * 100.0) 1 [ "t-end"; "dt" ] |> ignore
        // The ODE is linear: its Jacobian's eigenvalues give the method's stability limit exactly.
        let eigen = StatPhysFs.Models.Analysis.spectrum odeProblem.Rhs odeProblem.Y0
        let hMax = maxStableStep s.Algorithm eigen

        if dt > hMax then
            raise (
                Args.UsageError(
                    $"""--dt %g{dt} is above the stability limit %.4g{hMax} of %s{(match s.Algorithm with | Euler _ -> "euler" | _ -> "rk4")} for this ODE (its fastest decaying mode); use --dt <= %.3g{hMax} or --solver dopri5"""
                )
            )
    | Dopri5 _
    | Dop853 _ -> ()

    Validate.Budget.memory ctx "the output grid" (float s.Points * 8.0 * 40.0) [ "points" ] |> ignore

    match s.Simulation with
    | Some o ->
        Check.intInRange "dim" 1 100_000_000 o.Dim
        Check.intInRange "seeds" 1 1_000_000 o.Seeds
        Validate.Budget.memory ctx "the simulation" (8.0 * 4.0 * float o.Dim * float Environment.ProcessorCount) [ "dim" ]
        // t d SGD steps per seed, each O(d).
        Validate.Budget.work ctx
            "the simulation"
            (5.0 * float o.Seeds * s.TEnd * float o.Dim * float o.Dim * float p.Batch)
            Environment.ProcessorCount
            [ "dim"; "seeds"; "t-end"; "batch" ]
        |> ignore
    | None -> ()

    let sw = Stopwatch.StartNew()

    let settings =
        { OnlineLinear.defaultSettings with
            Algorithm = s.Algorithm
            Points = s.Points
            Grid = s.Grid
            DivergenceBound = s.DivergenceBound
            // The early-stopping event rides on this one integration.
            EarlyStopping = true
            Control =
                { RunControl.defaults with
                    CancellationToken = ctx.Token
                }
        }

    let sol = OnlineLinear.solve settings problem
    let odeTime = sw.Elapsed.TotalSeconds
    let early = sol.EarlyStopping
    let grid = sol.T
    let nt = grid.Length
    let m, q, eg = sol.M, sol.Q, sol.Eg
    let closed = grid |> Array.map (OnlineLinear.closedForm p)

    let maxRel =
        Array.init nt (fun k ->
            if Double.IsFinite m[k] then
                max
                    (abs (m[k] - closed[k].M) / max 1.0 (abs closed[k].M))
                    (abs (q[k] - closed[k].Q) / max 1.0 (abs closed[k].Q))
            else
                0.0)
        |> Array.max

    let crit = OnlineLinear.criticalLearningRate p

    // The closed form is an independent oracle: a coarse fixed step (or a loose tolerance) shows up here.
    if maxRel > 1e-4 && sol.Status = Completed then
        Validate.warn
            warnings
            ($"the integration differs from the closed form by up to %.2g{maxRel} (relative); use a smaller --dt or --rtol")

    if p.Lr > crit.Value && sol.Status = Completed then
        Validate.warn
            warnings
            ($"--lr %g{p.Lr} is above the critical learning rate %.4g{crit.Value}: the dynamics are unstable and diverge at longer times, although this run stayed within --divergence-bound up to t-end")

    let steady =
        match OnlineLinear.steadyState p with
        | Some ss -> Obj [ "m", Num ss.M; "q", Num ss.Q; "eg", Num ss.Eg ]
        | None -> Null

    let solverName, solverMeta =
        match s.Algorithm with
        | Dopri5 o -> "dopri5", [ "rtol", Num o.RelTol; "atol", Num o.AbsTol ]
        | RungeKutta4 dt -> "rk4", [ "dt", Num dt ]
        | Euler dt -> "euler", [ "dt", Num dt ]
        | Dop853 o -> "dop853", [ "rtol", Num o.RelTol; "atol", Num o.AbsTol ]

    let simSeries, simMeta =
        match s.Simulation with
        | None -> [], []
        | Some o ->
            let bar =
                Progress.create ($"simulating d=%d{o.Dim}, %d{o.Seeds} seeds") s.ForceProgress

            let sw = Stopwatch.StartNew()
            let r =
                OnlineLinearSim.simulate
                    o
                    { settings with
                        SaveAt = grid
                        Control = { settings.Control with Progress = Some bar.Report }
                    }
                    problem

            let errors = r.Errors.Value
            bar.Done()

            [
                "m_sim", r.M
                "m_sim_stderr", errors.M
                "q_sim", r.Q
                "q_sim_stderr", errors.Q
                "eg_sim", r.Eg
                "eg_sim_stderr", errors.Eg
            ],
            Output.simulation o errors.Divergences sw.Elapsed.TotalSeconds

    {
        Parameters =
            [
                "model", Str "online-linear"
                "rho", Num p.Rho
                "noise_var", Num p.NoiseVar
                "lr", Num p.Lr
                "ridge", Num p.Ridge
                "batch", Int p.Batch
                "m0", Num p.M0
                "q0", Num p.Q0
                "t_end", Num s.TEnd
                "points", Int s.Points
                "grid",
                Str(
                    match s.Grid with
                    | LogGrid -> "log"
                    | LinearGrid -> "linear"
                )
            ]
        T = grid
        Series = [ "m", m; "q", q; "eg", eg ] @ simSeries
        Kernels = []
        Meta =
            [
                "time_unit", Str "SGD steps / d"
                "eg_definition", Str "(rho - 2m + q)/2, label noise excluded; test MSE = 2 eg + noise_var"
                "solver",
                Obj(
                    [ "name", Str solverName ]
                    @ solverMeta
                    @ [
                        "steps", Int sol.Stats.Steps
                        "rejected", Int sol.Stats.Rejected
                        "evaluations", Int sol.Stats.Evaluations
                        "wall_time_s", Num odeTime
                    ]
                )
                "closed_form_max_rel_diff", Num maxRel
                "critical_lr", Obj [ "value", Num crit.Value; "convention", Str crit.Convention ]
                "critical_lr_other_convention",
                Str "2/c_x for inputs of variance c_x (curvature convention); not this model's threshold"
                "steady_state", steady
            ]
            @ Output.status sol.Status
            @ Output.warnings warnings
            @ Output.earlyStopping early
            @ simMeta
    }

/// The standard figure: eg(t) theory, and simulation with error bars when present.
let plot (path: string) (d: Document) =
    Plot.learningCurveOf
        path
        "Online SGD on linear regression"
        (Plot.caption
            d
            [
                "lr", "lr"
                "rho", "rho"
                "noise_var", "sigma^2"
                "ridge", "ridge"
                "batch", "B"
                "q0", "q0"
                "m0", "m0"
            ])
        d
        d

let main (ctx: Validate.Context) (argv: string list) = Plot.execute parse (run ctx) plot argv
