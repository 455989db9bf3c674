namespace StatPhysFs.Sde

open System
open StatPhysFs

/// A weak-order study on the exact least-squares oracles (no Monte Carlo, sme-smf.md V5): at each learning rate eta,
/// |E phi(SGD) - E phi(model)| at the horizon for GF, SME1, SMF1 and SMF2, one point (phi = tr x x^T) and two points
/// (phi = |x - y|^2, same samples / same noise).
type WeakOrderProblem =
    {
        /// Rows a_i of f_i(x) = (a_i.x - y_i)^2/2 + ridge |x|^2/2.
        Features: float[][]
        Labels: float[]
        Ridge: float
        /// Distinct learning rates, each <= TEnd.
        Etas: float[]
        /// Horizon T (floor(T/eta) SGD steps at each eta).
        TEnd: float
        /// Two initial points: the first alone for the one-point errors, both for the two-point ones.
        InitialPoints: float[][]
    }

type WeakOrderSettings =
    {
        /// The slopes are fitted over this many of the finest learning rates (the coarse end is pre-asymptotic).
        FitPoints: int
        Control: RunControl
    }

/// The errors at each eta and their fitted log-log slopes (the weak orders).
type WeakOrderSolution =
    {
        Problem: WeakOrderProblem
        /// The learning rates (the axis of the errors).
        Etas: float[]
        /// (name, |E phi(SGD) - E phi(model)| per eta): gf_one_point, sme1_one_point, smf1_one_point,
        /// smf2_one_point, smf1_two_point, smf2_two_point.
        Errors: (string * float[]) list
        /// (name, fitted slope) over the finest FitPoints learning rates.
        Slopes: (string * float) list
        Status: RunStatus
        WallSeconds: float
    }

    interface ISolution with
        member s.Times = s.Etas
        member s.Status = s.Status

        member s.Observables =
            s.Errors |> List.map (fun (n, e) -> { Name = n; Values = e; StdErr = None })

[<RequireQualifiedAccess>]
module WeakOrderProblem =
    /// eta = 1/8, 1/16, ..., 1/256.
    [<CompiledName("DefaultEtas")>]
    let defaultEtas =
        [| 1.0 / 8.0; 1.0 / 16.0; 1.0 / 32.0; 1.0 / 64.0; 1.0 / 128.0; 1.0 / 256.0 |]

    /// The two initial points of the CLI and the notebook: x0^1_c = 1 + 0.3 c, x0^2_c = -0.5 (1 + 0.3 c).
    [<CompiledName("StandardInitialPoints")>]
    let standardInitialPoints (dim: int) (points: int) =
        Check.positiveInt "dim" dim
        Check.positiveInt "points" points
        Array.init points (fun j -> Array.init dim (fun c -> (if j % 2 = 0 then 1.0 else -0.5) * (1.0 + 0.3 * float c)))

    /// The study on a data set with the default learning rates, horizon 2 and the standard two initial points.
    [<CompiledName("Create")>]
    let create (ridge: float) (data: DataSet) =
        {
            Features = data.Features
            Labels = data.Labels
            Ridge = ridge
            Etas = defaultEtas
            TEnd = 2.0
            InitialPoints = standardInitialPoints data.Features[0].Length 2
        }

    [<CompiledName("Validate")>]
    let validate (p: WeakOrderProblem) =
        Check.that "features" (not (isNull p.Features) && p.Features.Length > 0) "give at least one data row."
        Check.that "labels" (not (isNull p.Labels) && p.Labels.Length = p.Features.Length) "give one label per row."
        Check.nonNegative "ridge" p.Ridge
        Check.positive "tEnd" p.TEnd
        Check.that "etas" (not (isNull p.Etas) && p.Etas.Length >= 2) "give at least two learning rates."

        Check.that
            "etas"
            (p.Etas |> Array.forall (fun e -> Double.IsFinite e && e > 0.0))
            "every learning rate must be a finite number > 0."

        Check.that
            "etas"
            ((Array.distinct p.Etas).Length = p.Etas.Length)
            "give distinct learning rates (a log-log slope needs distinct points)."

        Check.that
            "etas"
            (Array.forall (fun e -> e <= p.TEnd) p.Etas)
            ($"every learning rate must be <= tEnd (%g{p.TEnd}): each takes floor(tEnd/eta) steps.")

        Check.that "x0" (not (isNull p.InitialPoints) && p.InitialPoints.Length = 2) "give two initial points."

[<RequireQualifiedAccess>]
module WeakOrder =
    [<CompiledName("Defaults")>]
    let defaults =
        {
            FitPoints = 3
            Control = RunControl.defaults
        }

    /// The exact weak errors of GF, SME1, SMF1 and SMF2 against SGD at every eta, and their fitted slopes
    /// (expected: GF, SME1, SMF1 1; SMF2 2).
    [<CompiledName("Solve")>]
    let solve (settings: WeakOrderSettings) (problem: WeakOrderProblem) : WeakOrderSolution =
        WeakOrderProblem.validate problem
        let etas = problem.Etas
        Check.intInRange "fitPoints" 2 etas.Length settings.FitPoints

        let a, y, ridge, horizon, x0 =
            problem.Features, problem.Labels, problem.Ridge, problem.TEnd, problem.InitialPoints

        let ct = settings.Control.CancellationToken
        let sw = Diagnostics.Stopwatch.StartNew()

        let sgd =
            etas
            |> Array.map (fun eta ->
                ct.ThrowIfCancellationRequested()
                LeastSquaresOracle.sgdCancellable ct ridge a y eta horizon x0)

        let errors (model: SdeModel) (points: int) (f: PointMoments -> float) =
            etas
            |> Array.mapi (fun k eta ->
                ct.ThrowIfCancellationRequested()
                let x = x0[.. points - 1]

                let s =
                    if points = 2 then
                        sgd[k]
                    else
                        LeastSquaresOracle.sgdCancellable ct ridge a y eta horizon x

                abs (f s - f (LeastSquaresOracle.moments model ridge a y eta horizon x)))

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

        let tail (v: float[]) = v[v.Length - settings.FitPoints ..]

        {
            Problem = problem
            Etas = etas
            Errors = series
            Slopes = series |> List.map (fun (n, e) -> n, Stats.logLogSlope (tail etas) (tail e))
            Status = Completed
            WallSeconds = sw.Elapsed.TotalSeconds
        }
