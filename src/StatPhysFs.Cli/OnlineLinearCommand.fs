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

let usage =
    """usage: statphys online linear [--rho 1] [--noise-var 0.1] [--lr 0.5] [--ridge 0] [--batch 1] [--m0 0] [--q0 0.1]
                               [--t-end 10] [--points 101] [--grid linear|log]
                               [--solver dopri5|rk4|euler] [--rtol 1e-10] [--dt 0.01]
                               [--simulate [--dim 1000] [--seeds 5] [--seed 1]]
                               [--out FILE.json|FILE.csv] [--plot FILE.svg|FILE.png] [--progress]
                               [--divergence-bound 1e8]
  Time t = SGD steps / d. Ridge is the loss term (lambda/2)|w|^2/d (critical lr 2B(1+lambda)).
  Without --out the JSON document goes to standard output."""

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

let private valued =
    [
        "rho"
        "noise-var"
        "lr"
        "ridge"
        "batch"
        "m0"
        "q0"
        "t-end"
        "points"
        "grid"
        "solver"
        "rtol"
        "dt"
        "dim"
        "seeds"
        "seed"
        "out"
        "plot"
        "divergence-bound"
    ]

let private flags = [ "simulate"; "progress" ]

let parse (argv: string list) =
    let a = Args.parse valued flags argv
    let d = OnlineLinear.defaults

    let p =
        {
            Rho = Args.float a "rho" 1.0
            NoiseVar = Args.float a "noise-var" d.NoiseVar
            Lr = Args.float a "lr" d.Lr
            Ridge = Args.float a "ridge" 0.0
            Batch = Args.int a "batch" 1
            M0 = Args.float a "m0" 0.0
            Q0 = Args.float a "q0" d.Q0
        }

    let rtol = Args.float a "rtol" 1e-10

    let alg =
        match Args.choice a "solver" [ "dopri5"; "rk4"; "euler" ] "dopri5" with
        | "rk4" -> RungeKutta4(Args.float a "dt" 0.01)
        | "euler" -> Euler(Args.float a "dt" 0.01)
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
                    Dim = Args.int a "dim" 1000
                    Seeds = Args.int a "seeds" 5
                    Seed = Args.int a "seed" 1
                    DivergenceBound = Args.float a "divergence-bound" 1e8
                }
        else
            for o in [ "dim"; "seeds"; "seed" ] do
                if a.Values.ContainsKey o then
                    raise (Args.UsageError(sprintf "--%s needs --simulate" o))

            None

    {
        Params = p
        TEnd = Args.float a "t-end" 10.0
        Points = Args.int a "points" 101
        Grid = Args.grid a
        Algorithm = alg
        Simulation = sim
        DivergenceBound = Args.float a "divergence-bound" 1e8
        ForceProgress = a.Flags.Contains "progress"
    },
    a.Values.TryFind "out",
    a.Values.TryFind "plot"

/// Run the theory (and the simulation if asked) and build the output document.
let run (s: Settings) : Document =
    let p = s.Params
    OnlineLinear.validate p
    Check.positive "t-end" s.TEnd
    let grid = Grid.make s.Grid 0.0 s.TEnd s.Points
    let sw = Stopwatch.StartNew()
    Check.positive "divergence-bound" s.DivergenceBound

    let problem = OnlineLinear.problem p s.TEnd

    let egOf (y: float[]) =
        OnlineLinear.generalisationError p y[0] y[1]

    // The early-stopping event rides on this one integration.
    let sol =
        Ode.solve
            { Ode.defaultOptions with
                SaveAt = grid
                DivergenceBound = s.DivergenceBound
                Dense = false
                Events = [ EarlyStopping.event problem.Rhs egOf ]
            }
            s.Algorithm
            problem

    let odeTime = sw.Elapsed.TotalSeconds

    let early = EarlyStopping.ofSolution egOf 0.0 s.TEnd sol

    let nt = grid.Length

    let series i =
        Array.init nt (fun k ->
            if k < sol.T.Length && sol.T[k] = grid[k] then
                sol.Y[k][i]
            else
                nan)

    let m, q = series 0, series 1
    let eg = Array.map2 (OnlineLinear.generalisationError p) m q
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

    let steady =
        match OnlineLinear.steadyState p with
        | Some ss -> Obj [ "m", Num ss.M; "q", Num ss.Q; "eg", Num ss.Eg ]
        | None -> Null

    let solverName, solverMeta =
        match s.Algorithm with
        | Dopri5 o -> "dopri5", [ "rtol", Num o.RelTol; "atol", Num o.AbsTol ]
        | RungeKutta4 dt -> "rk4", [ "dt", Num dt ]
        | Euler dt -> "euler", [ "dt", Num dt ]

    let simSeries, simMeta =
        match s.Simulation with
        | None -> [], []
        | Some o ->
            let bar =
                Progress.create (sprintf "simulating d=%d, %d seeds" o.Dim o.Seeds) s.ForceProgress

            let sw = Stopwatch.StartNew()
            let r = OnlineLinearSim.run o bar.Report CancellationToken.None p grid
            bar.Done()

            [
                "m_sim", r.M.Mean
                "m_sim_stderr", r.M.StdErr
                "q_sim", r.Q.Mean
                "q_sim_stderr", r.Q.StdErr
                "eg_sim", r.Eg.Mean
                "eg_sim_stderr", r.Eg.StdErr
            ],
            Output.simulation o r.Divergences sw.Elapsed.TotalSeconds

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

let main (argv: string list) = Plot.execute parse run plot argv
