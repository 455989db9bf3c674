namespace StatPhysFs.Models

open System
open StatPhysFs
open StatPhysFs.Ode

/// Online SGD on linear regression (online-sgd.md section 4): teacher y = w*.x/sqrt d + sigma zeta, student
/// yhat = w.x/sqrt d, fresh x ~ N(0, I_d) at every step, mini-batch B, loss Delta^2/2 + (lambda/2)|w|^2/d.
/// Order parameters m = w.w*/d, q = w.w/d, rho = w*.w*/d; time t = steps/d.
type OnlineLinearParams =
    {
        /// Teacher norm rho = |w*|^2/d (> 0).
        Rho: float
        /// Label-noise variance sigma^2 (>= 0).
        NoiseVar: float
        /// Learning rate eta (> 0); the SGD step is eta/sqrt d on the first-layer weights.
        Lr: float
        /// Ridge lambda of the loss term (lambda/2)|w|^2/d, multiplied by eta (per-step decay eta*lambda/d).
        Ridge: float
        /// Mini-batch size B (>= 1): B fresh samples per step, gradient averaged.
        Batch: int
        /// Initial teacher overlap m(0).
        M0: float
        /// Initial self-overlap q(0) (>= m0^2/rho).
        Q0: float
    }

/// (m, q) at one time, with the generalisation error eg = (rho - 2m + q)/2.
type LinearState = { M: float; Q: float; Eg: float }

/// A stability threshold with the convention it refers to.
type Threshold = { Value: float; Convention: string }

/// The problem `OnlineLinear.solve` integrates: the model with its initial overlaps (M0, Q0), and the horizon.
type OnlineLinearProblem =
    {
        Model: OnlineLinearParams
        /// The horizon t_end (t = SGD steps / d).
        TEnd: float
    }

/// Numerics of `OnlineLinear.solve`.
type OnlineLinearSettings =
    {
        /// Default Dormand-Prince 5(4), rtol 1e-10, atol 1e-12.
        Algorithm: OdeAlgorithm
        /// Output grid: Points times from 0 to TEnd spaced as Grid; ignored when SaveAt is not empty.
        Points: int
        Grid: GridKind
        SaveAt: float[]
        /// A run whose |m| or q exceeds this is reported as divergent, with the time it happened.
        DivergenceBound: float
        MaxSteps: int
        /// Record the lowest interior minimum of eg (the early-stopping time) on the same integration.
        EarlyStopping: bool
        /// More events to detect on the integration (a terminal one ends the run as TerminatedByEvent).
        Events: OdeEvent list
        Control: RunControl
    }

/// Standard errors over independent runs (a simulation).
type LinearErrors =
    {
        M: float[]
        Q: float[]
        Eg: float[]
        /// (run, time) of every run that diverged.
        Divergences: (int * float) list
    }

/// A learning curve of online linear regression, from the ODE (`OnlineLinear.solve`) or a simulation
/// (`OnlineLinearSim.simulate`): m, q and eg along T (NaN where the run did not reach the time).
type OnlineLinearSolution =
    {
        Problem: OnlineLinearProblem
        T: float[]
        M: float[]
        Q: float[]
        Eg: float[]
        /// Simulation only: standard errors and divergences.
        Errors: LinearErrors option
        Status: RunStatus
        /// (time, eg) of the lowest interior minimum of eg, when asked for and one exists.
        EarlyStopping: (float * float) option
        /// ODE statistics (zero for a simulation).
        Stats: OdeStats
    }

    /// The typed state at output index k, or None where the run did not reach it.
    member s.State(k: int) =
        if Double.IsNaN s.M[k] then
            None
        else
            Some { M = s.M[k]; Q = s.Q[k]; Eg = s.Eg[k] }

    interface ISolution with
        member s.Times = s.T
        member s.Status = s.Status

        member s.Observables =
            let e f = s.Errors |> Option.map f

            [
                {
                    Name = "m"
                    Values = s.M
                    StdErr = e (fun x -> x.M)
                }
                {
                    Name = "q"
                    Values = s.Q
                    StdErr = e (fun x -> x.Q)
                }
                {
                    Name = "eg"
                    Values = s.Eg
                    StdErr = e (fun x -> x.Eg)
                }
            ]

[<RequireQualifiedAccess>]
module OnlineLinear =
    [<CompiledName("Defaults")>]
    let defaults =
        {
            Rho = 1.0
            NoiseVar = 0.1
            Lr = 0.5
            Ridge = 0.0
            Batch = 1
            M0 = 0.0
            Q0 = 0.1
        }

    [<CompiledName("Validate")>]
    let validate (p: OnlineLinearParams) =
        Check.positive "rho" p.Rho
        Check.nonNegative "noise-var" p.NoiseVar
        Check.positive "lr" p.Lr
        Check.nonNegative "ridge" p.Ridge
        Check.positiveInt "batch" p.Batch
        Check.finite "m0" p.M0
        Check.nonNegative "q0" p.Q0

        Check.that
            "q0"
            (p.M0 * p.M0 <= p.Rho * p.Q0 * (1.0 + 1e-12))
            ($"q0 must be >= m0^2/rho = %g{(p.M0 * p.M0 / p.Rho)} (Cauchy-Schwarz: the overlaps of real vectors), got %g{p.Q0}.")

    [<CompiledName("GeneralisationError")>]
    let generalisationError (p: OnlineLinearParams) (m: float) (q: float) = 0.5 * (p.Rho - 2.0 * m + q)

    /// The ODE is affine, d(m, q)/dt = A (m, q) + b, with
    ///   dm/dt = eta (rho - (1+lambda) m)
    ///   dq/dt = 2 eta (m - (1+lambda) q) + (eta^2/B) (rho - 2m + q + sigma^2).
    /// Returns (A, b).
    [<CompiledName("Coefficients")>]
    let coefficients (p: OnlineLinearParams) =
        let eta, l, b = p.Lr, p.Ridge, float p.Batch
        let n = eta * eta / b

        let a =
            array2D
                [
                    [ -eta * (1.0 + l); 0.0 ]
                    [ 2.0 * eta - 2.0 * n; -2.0 * eta * (1.0 + l) + n ]
                ]

        a, [| eta * p.Rho; n * (p.Rho + p.NoiseVar) |]

    /// The right-hand side on the state [| m; q |].
    [<CompiledName("Rhs")>]
    let rhs (p: OnlineLinearParams) : Rhs =
        validate p
        let a, b = coefficients p

        fun _ y dy ->
            dy[0] <- a[0, 0] * y[0] + b[0]
            dy[1] <- a[1, 0] * y[0] + a[1, 1] * y[1] + b[1]

    /// The ODE as a plain initial-value problem on [| m; q |] (for callers that drive `Ode.solve` themselves).
    [<CompiledName("OdeProblem")>]
    let odeProblem (p: OnlineLinearParams) (tEnd: float) =
        { Ode.problem (rhs p) [| p.M0; p.Q0 |] 0.0 tEnd with
            Names = [| "m"; "q" |]
        }

    /// The steady state (m*, q*), or None when the learning rate is at or above the critical one.
    [<CompiledName("SteadyState")>]
    let steadyState (p: OnlineLinearParams) =
        validate p
        let a, b = coefficients p

        if a[1, 1] >= 0.0 then
            None
        else
            let m = -b[0] / a[0, 0]
            let q = -(a[1, 0] * m + b[1]) / a[1, 1]

            Some
                {
                    M = m
                    Q = q
                    Eg = generalisationError p m q
                }

    let private expm1OverX = Special.expm1OverX

    /// Exact solution of the affine ODE. A is lower triangular with eigenvalues a1 = -eta(1+lambda) (m) and
    /// a2 = -2 eta(1+lambda) + eta^2/B (q); the m-mode drives q through A21, giving
    ///   m(t) = m* + dm0 e^{a1 t},  q(t) = q* + (dq0 + A21 dm0 t phi) e^{a2 t},  phi = (e^{(a1-a2)t} - 1)/((a1-a2)t),
    /// with (m*, q*) the (possibly unstable) fixed point; a2 = 0 is handled by the limit.
    [<CompiledName("ClosedForm")>]
    let closedForm (p: OnlineLinearParams) (t: float) =
        validate p
        Check.nonNegative "t" t
        let a, b = coefficients p
        let a1, a21, a2 = a[0, 0], a[1, 0], a[1, 1]
        let mStar = -b[0] / a1
        let dm0 = p.M0 - mStar
        let m = mStar + dm0 * Math.Exp(a1 * t)

        let q =
            if abs a2 > 1e-14 then
                let qStar = -(a21 * mStar + b[1]) / a2
                let dq0 = p.Q0 - qStar
                // The q-deviation obeys d(dq)/dt = A21 dm0 e^{a1 t} + a2 dq.
                qStar + (dq0 + a21 * dm0 * t * expm1OverX ((a1 - a2) * t)) * Math.Exp(a2 * t)
            else
                // Marginal case: dq/dt = A21 m(t) + b2 integrates directly.
                let c = a21 * mStar + b[1]
                p.Q0 + c * t + a21 * dm0 * t * expm1OverX (a1 * t)

        {
            M = m
            Q = q
            Eg = generalisationError p m q
        }

    /// The critical learning rate computed from the model as integrated: the eta at which the largest eigenvalue
    /// of the coefficient matrix A(eta) crosses zero, found by bisection on A itself (not on a formula).
    /// Convention: loss-term ridge lambda (per-step decay eta*lambda/d), unit-variance inputs, batch B, for which
    /// the value is 2B(1+lambda). The other convention, the curvature/input-variance bound 2/c_x, is
    /// `criticalLearningRateInputVariance`.
    [<CompiledName("CriticalLearningRate")>]
    let criticalLearningRate (p: OnlineLinearParams) =
        validate p

        let growth eta =
            Linalg.maxRealEigenvalue (fst (coefficients { p with Lr = eta }))

        let mutable lo = 1e-9
        let mutable hi = 1.0

        while growth hi < 0.0 do
            hi <- 2.0 * hi

        for _ in 1..200 do
            let mid = 0.5 * (lo + hi)
            if growth mid < 0.0 then lo <- mid else hi <- mid

        {
            Value = 0.5 * (lo + hi)
            Convention =
                $"eta_c for loss-term ridge lambda = %g{p.Ridge} (per-step decay eta*lambda/d), unit-variance inputs, batch B = %d{p.Batch}: 2B(1+lambda)"
        }

    /// The other convention: online SGD on inputs of variance c_x (or gradient descent on a quadratic of
    /// curvature c_x) is stable iff eta < 2/c_x. With c_x = 1 + lambda this is the 2/(1+lambda) quoted by some
    /// documentation, which is NOT the threshold of the ridge model above.
    [<CompiledName("CriticalLearningRateInputVariance")>]
    let criticalLearningRateInputVariance (inputVariance: float) =
        Check.positive "inputVariance" inputVariance

        {
            Value = 2.0 / inputVariance
            Convention =
                $"eta_c = 2/c_x for inputs of variance c_x = %g{inputVariance} and no ridge (curvature convention)"
        }

    /// The greedy optimal learning rate of spec section 4.3 (no ridge): minimising dD/dt with
    /// dD/dt = -2 eta D + (eta^2/B)(D + sigma^2) gives eta*(t) = B D / (D + sigma^2), D = rho - 2m + q = 2 eg.
    [<CompiledName("GreedyLearningRate")>]
    let greedyLearningRate (p: OnlineLinearParams) (m: float) (q: float) =
        let d = p.Rho - 2.0 * m + q
        float p.Batch * d / (d + p.NoiseVar)

    /// The ODE under the greedy schedule (the state-dependent eta* replaces Lr).
    [<CompiledName("GreedyProblem")>]
    let greedyProblem (p: OnlineLinearParams) (tEnd: float) =
        validate p
        Check.that "ridge" (p.Ridge = 0.0) "the greedy schedule of spec 4.3 is derived without ridge; set ridge = 0."
        Check.positive "noise-var" p.NoiseVar

        let rhs: Rhs =
            fun _ y dy ->
                let eta = greedyLearningRate p y[0] y[1]
                let a, b = coefficients { p with Lr = max eta 1e-300 }
                dy[0] <- a[0, 0] * y[0] + b[0]
                dy[1] <- a[1, 0] * y[0] + a[1, 1] * y[1] + b[1]

        { Ode.problem rhs [| p.M0; p.Q0 |] 0.0 tEnd with
            Names = [| "m"; "q" |]
        }

    /// Under the greedy schedule dD/dt = -B D^2/(D + sigma^2), solved implicitly:
    /// t(D) = (sigma^2/D - sigma^2/D0 + ln(D0/D)) / B. Asymptotically D ~ sigma^2/(B t), eg ~ sigma^2/(2 B t).
    [<CompiledName("GreedyTimeToReach")>]
    let greedyTimeToReach (p: OnlineLinearParams) (d: float) =
        Check.positive "D" d
        let d0 = p.Rho - 2.0 * p.M0 + p.Q0
        let s2 = p.NoiseVar
        (s2 / d - s2 / d0 + log (d0 / d)) / float p.Batch

    /// Default settings: Dormand-Prince rtol 1e-10 / atol 1e-12, 101 linear output points, divergence bound 1e8,
    /// 10^7 steps, no early-stopping event, default run control.
    [<CompiledName("DefaultSettings")>]
    let defaultSettings =
        {
            Algorithm = Ode.dopri5 1e-10 1e-12
            Points = 101
            Grid = LinearGrid
            SaveAt = [||]
            DivergenceBound = 1e8
            MaxSteps = 10_000_000
            EarlyStopping = false
            Events = []
            Control = RunControl.defaults
        }

    [<CompiledName("Problem")>]
    let problem (p: OnlineLinearParams) (tEnd: float) = { Model = p; TEnd = tEnd }

    /// The output times the settings ask for over [0, TEnd].
    [<CompiledName("OutputTimes")>]
    let outputTimes (settings: OnlineLinearSettings) (problem: OnlineLinearProblem) =
        OutputGrid.times settings.SaveAt settings.Grid settings.Points problem.TEnd

    /// Integrates the (m, q) ODE with the settings' algorithm, saving at the output times. Never throws on a
    /// blow-up: the status says Diverged with the time, and m, q, eg are NaN after it.
    [<CompiledName("Solve")>]
    let solve (settings: OnlineLinearSettings) (problem: OnlineLinearProblem) : OnlineLinearSolution =
        let p = problem.Model
        validate p
        Check.positive "t-end" problem.TEnd
        let ode = odeProblem p problem.TEnd
        let times = outputTimes settings problem
        let egOf (y: float[]) = generalisationError p y[0] y[1]

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

        let series i =
            ys
            |> Array.map (function
                | Some y -> y[i]
                | None -> nan)

        let m, q = series 0, series 1

        {
            Problem = problem
            T = times
            M = m
            Q = q
            Eg = Array.map2 (generalisationError p) m q
            Errors = None
            Status = sol.Status
            EarlyStopping = minimum
            Stats = sol.Stats
        }
