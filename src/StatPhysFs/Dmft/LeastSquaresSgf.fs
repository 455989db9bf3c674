namespace StatPhysFs.Dmft

open System
open StatPhysFs

/// Multi-pass SGF on least squares (dmft-sgf.md section 4.1): square loss L = (r - y)^2/2, linear teacher
/// y = r* + eps, ridge lambda (objective term lambda |theta|^2 / 2d), isotropic random start of variance q0, observed
/// on t_k = k Dt, k = 0..Steps (Dt is also the Euler-Maruyama step of the discrete scheme). The limits and closed
/// forms (gradientFlow, stationary, ...) use only the physics fields.
type LeastSquaresProblem =
    {
        /// Sample ratio alpha = n/d (delta in the spec).
        Alpha: float
        /// Noise intensity tau = eta/B (0 = gradient flow).
        Tau: float
        /// Ridge lambda >= 0.
        Ridge: float
        /// Teacher norm rho = |theta*|^2/d.
        Rho: float
        /// Label-noise variance sigma^2.
        NoiseVar: float
        /// Variance q0 of the isotropic initialisation (0: theta_0 = 0).
        Q0: float
        /// Grid step (and Euler-Maruyama step of the discrete scheme).
        Dt: float
        /// Number of steps; the horizon is Steps Dt.
        Steps: int
    }

/// Which least-squares curve to compute.
type LeastSquaresScheme =
    /// The recursion exact for the Euler-Maruyama scheme with step Dt (spec section 4.1).
    | Discrete
    /// The continuous-time Volterra equation by the trapezoidal rule on the grid (error O(Dt^2)).
    | Continuous

type LeastSquaresSettings =
    {
        Scheme: LeastSquaresScheme
        /// Nodes of the Marchenko-Pastur quadrature (MarchenkoPastur.create).
        QuadratureNodes: int
        /// Cancellation (solve throws OperationCanceledException) and progress.
        Control: RunControl
    }

[<RequireQualifiedAccess>]
module LeastSquaresSettings =
    /// The discrete (Euler-Maruyama) recursion over the 400-node law (MarchenkoPastur.ofAlpha).
    [<CompiledName("Defaults")>]
    let defaults =
        {
            Scheme = Discrete
            QuadratureNodes = 400
            Control = RunControl.defaults
        }

/// A least-squares learning curve on t_k = k Dt. E = |theta - theta*|^2/d (test MSE = E + sigma^2),
/// TrainLoss = (1/n)|X theta - y|^2 (mean squared residual, no 1/2), M = theta.theta*/d, Q = |theta|^2/d. No Monte
/// Carlo: the observables carry no standard errors.
type LeastSquaresSolution =
    {
        Problem: LeastSquaresProblem
        Scheme: LeastSquaresScheme
        T: float[]
        E: float[]
        TrainLoss: float[]
        TestLoss: float[]
        M: float[]
        Q: float[]
        /// Completed, or Diverged(t, reason) when the train loss left the divergence bound (tau above critical).
        Status: RunStatus
    }

    interface ISolution with
        member s.Times = s.T
        member s.Status = s.Status

        /// The columns of `statphys dmft glm --exact --continuous`: m, q, train_loss, test_loss.
        member s.Observables =
            [
                for name, v in [ "m", s.M; "q", s.Q; "train_loss", s.TrainLoss; "test_loss", s.TestLoss ] ->
                    {
                        Name = name
                        Values = v
                        StdErr = None
                    }
            ]

[<RequireQualifiedAccess>]
module LeastSquaresProblem =
    /// The spec's defaults: alpha = 2, tau = 1, no ridge, rho = 1, sigma^2 = 0.25, theta_0 = 0, Dt = 0.1, 60 steps.
    [<CompiledName("Defaults")>]
    let defaults =
        {
            Alpha = 2.0
            Tau = 1.0
            Ridge = 0.0
            Rho = 1.0
            NoiseVar = 0.25
            Q0 = 0.0
            Dt = 0.1
            Steps = 60
        }

    /// The least-squares problem of a DMFT problem with the square loss and a linear teacher (GLM), same grid.
    [<CompiledName("OfDmft")>]
    let ofDmft (p: DmftProblem) =
        match p.Model with
        | Glm(GlmLoss.Square, GlmTeacher.Linear) ->
            {
                Alpha = p.Alpha
                Tau = p.Tau
                Ridge = p.Ridge
                Rho = p.Rho[0, 0]
                NoiseVar = p.NoiseVar
                Q0 = p.Q0[0, 0]
                Dt = p.Dt
                Steps = p.Steps
            }
        | _ -> invalidArg "problem" "the least-squares closure needs the square loss with a linear teacher (GLM)."

    /// The physics fields only (the limits and closed forms read nothing else).
    [<CompiledName("Validate")>]
    let validate (p: LeastSquaresProblem) =
        Check.positive "alpha" p.Alpha
        Check.nonNegative "tau" p.Tau
        Check.nonNegative "ridge" p.Ridge
        Check.positive "rho" p.Rho
        Check.nonNegative "noise variance" p.NoiseVar
        Check.nonNegative "q0" p.Q0

[<RequireQualifiedAccess>]
module LeastSquaresSgf =
    let private validate = LeastSquaresProblem.validate

    let private divergenceBound = 1e8

    /// a_t(s) = (1 - e^{-(s+lambda) t})/(s + lambda), = t when s + lambda = 0.
    let private aCont lambda t s =
        let k = s + lambda
        if k = 0.0 then t else -(Special.expm1 (-k * t)) / k

    /// The Euler-Maruyama a_k(s) = (1 - (1 - dt(s+lambda))^k)/(s + lambda) = dt sum_{j<k} (1 - dt(s+lambda))^j.
    let private aDisc lambda dt (k: int) s =
        let x = s + lambda

        if x = 0.0 then
            float k * dt
        else
            (1.0 - (1.0 - dt * x) ** float k) / x

    /// (e, L_tr, m) of gradient flow given a(s) and the decay factor of the initial condition, decay(s) = e^{-(s+l)t}.
    let private gfFrom (p: LeastSquaresProblem) (law: MarchenkoPastur) (a: float -> float) (decay: float -> float) =
        let mutable e = 0.0
        let mutable ltr = 0.0
        let mutable m = 0.0
        let mutable fitted = 0.0

        for i in 0 .. law.Nodes.Length - 1 do
            let s = law.Nodes[i]
            let w = law.Weights[i]
            let at = a s
            let one = 1.0 - s * at
            let dec = decay s

            e <-
                e
                + w * (p.Rho * one * one + p.NoiseVar / p.Alpha * s * at * at + p.Q0 * dec * dec)

            ltr <- ltr + w * (p.Rho * s * one * one + p.Q0 * s * dec * dec)
            fitted <- fitted + w * (1.0 - one * one)
            m <- m + w * p.Rho * s * at

        e, ltr + p.NoiseVar * (1.0 - fitted / p.Alpha), m

    /// Gradient flow (tau = 0) in continuous time, closed form over the law: (e_GF, L_GF, m_GF) at time t.
    [<CompiledName("GradientFlow")>]
    let gradientFlow (law: MarchenkoPastur) (p: LeastSquaresProblem) (t: float) =
        validate p
        Check.nonNegative "t" t
        gfFrom p law (aCont p.Ridge t) (fun s -> exp (-(s + p.Ridge) * t))

    /// Gradient-flow limits t -> infinity (e_inf, L_inf) by quadrature over the law (spec section 4.2).
    [<CompiledName("GradientFlowLimit")>]
    let gradientFlowLimit (law: MarchenkoPastur) (p: LeastSquaresProblem) =
        validate p
        let l = p.Ridge

        Check.that
            "alpha"
            (l > 0.0 || p.Alpha <> 1.0)
            "at alpha = 1 and ridge = 0 the gradient-flow error grows without bound (sqrt t); no limit exists."

        // a_inf(s) = 1/(s + lambda) on the band; at the atom s = 0 with lambda = 0, s a = 0 and s a^2 = 0.
        let a s =
            if s + l = 0.0 then 0.0 else 1.0 / (s + l)

        gfFrom { p with Q0 = 0.0 } law a (fun _ -> 0.0)

    /// The closed forms of the limits (spec section 4.2, V2): delta > 1, lambda = 0: (sigma^2/(delta-1),
    /// sigma^2 (1 - 1/delta)); delta < 1, lambda = 0: (rho(1-delta) + sigma^2 delta/(1-delta), 0); lambda > 0: both
    /// from the Stieltjes transform m = m(-lambda), m' = m'(-lambda): e_inf = rho lambda^2 m' + sigma^2/delta
    /// (m - lambda m') and L_inf = rho lambda^2 (m - lambda m') + sigma^2 (1 - (1 - lambda^2 m')/delta) (the
    /// integrals of s lambda^2/(s+lambda)^2 and 1 - lambda^2/(s+lambda)^2 written through 1/(s+lambda) and
    /// 1/(s+lambda)^2; the atom at s = 0 contributes 0 to both, as it should).
    [<CompiledName("GradientFlowLimitClosedForm")>]
    let gradientFlowLimitClosedForm (p: LeastSquaresProblem) =
        validate p
        let d = p.Alpha
        let s2 = p.NoiseVar

        if p.Ridge > 0.0 then
            let m = MarchenkoPastur.stieltjes d (-p.Ridge)
            let m' = MarchenkoPastur.stieltjesDerivative d (-p.Ridge)
            let l = p.Ridge
            let e = p.Rho * l * l * m' + s2 / d * (m - l * m')
            let lInf = p.Rho * l * l * (m - l * m') + s2 * (1.0 - (1.0 - l * l * m') / d)
            e, lInf
        elif d > 1.0 then
            s2 / (d - 1.0), s2 * (1.0 - 1.0 / d)
        elif d < 1.0 then
            p.Rho * (1.0 - d) + s2 * d / (1.0 - d), 0.0
        else
            invalidArg "alpha" "at alpha = 1 and ridge = 0 the gradient-flow error grows without bound (sqrt t)."

    /// tau_c = 2 / int s^2/(s + lambda) d nu (spec section 4.4): the Volterra equation is stable iff tau < tau_c.
    [<CompiledName("CriticalTau")>]
    let criticalTau (law: MarchenkoPastur) (ridge: float) =
        Check.nonNegative "ridge" ridge
        // The atom at s = 0 (alpha < 1) contributes 0 even when ridge = 0.
        2.0
        / (law
           |> MarchenkoPastur.expect (fun s -> if s = 0.0 then 0.0 else s * s / (s + ridge)))

    /// Stationary (e_inf, L_inf) of the SGF for tau < tau_c (spec section 4.4); None at or above tau_c.
    [<CompiledName("Stationary")>]
    let stationary (law: MarchenkoPastur) (p: LeastSquaresProblem) =
        validate p

        let k2 =
            law
            |> MarchenkoPastur.expect (fun s -> if s = 0.0 then 0.0 else s * s / (s + p.Ridge))

        if p.Tau * k2 / 2.0 >= 1.0 then
            None
        else
            let eGf, lGf, _ = gradientFlowLimit law p
            let lInf = lGf / (1.0 - p.Tau / 2.0 * k2)

            let k1 =
                law
                |> MarchenkoPastur.expect (fun s -> if s = 0.0 then 0.0 else s / (s + p.Ridge))

            Some(eGf + p.Tau / 2.0 * lInf * k1, lInf)

    let private checkGrid dt steps =
        Check.positive "dt" dt
        Check.intInRange "steps" 1 10_000_000 steps

    /// K_tr(j) = int s^2 r(s)^j d nu and K_te(j) = int s r(s)^j d nu, j < n: both kernels are geometric in j per node
    /// (r = (1 - dt(s+l))^2 for the scheme, e^{-2(s+l)dt} in continuous time).
    let private kernels (ct: Threading.CancellationToken) (law: MarchenkoPastur) (n: int) (ratio: float -> float) =
        let ktr = Cancellable.zeroed ct n
        let kte = Cancellable.zeroed ct n

        for i in 0 .. law.Nodes.Length - 1 do
            let s = law.Nodes[i]
            let w = law.Weights[i]
            let r = ratio s
            let mutable pw = 1.0

            for j in 0 .. n - 1 do
                // On a long grid the kernels alone take seconds: the token is seen every 2^15 terms.
                if j &&& 32767 = 0 then
                    ct.ThrowIfCancellationRequested()

                ktr[j] <- ktr[j] + w * s * s * pw
                kte[j] <- kte[j] + w * s * pw
                pw <- pw * r

        ktr, kte

    /// March k = 0..Steps: `step k ltr` returns (e_k, L_k, m_k) from L_0..L_{k-1}; stops when L leaves the bound.
    let private march
        (control: RunControl)
        (scheme: LeastSquaresScheme)
        (p: LeastSquaresProblem)
        (step: int -> float[] -> float * float * float)
        =
        let n = p.Steps + 1
        let ct = control.CancellationToken
        // 8 n bytes each (80 MB at 10^7 steps): set up under the token.
        let e = Cancellable.zeroed ct n
        let ltr = Cancellable.zeroed ct n
        let m = Cancellable.zeroed ct n
        let mutable status = Completed
        let mutable k = 0
        let every = max 1 (n / 100)

        while k < n && status = Completed do
            // A step costs O(nodes + k): the token is seen every step, progress about 100 times per run.
            ct.ThrowIfCancellationRequested()
            let ek, lk, mk = step k ltr
            e[k] <- ek
            ltr[k] <- lk
            m[k] <- mk

            if not (Double.IsFinite lk) || lk > divergenceBound then
                status <- Diverged(float k * p.Dt, $"train loss exceeded the divergence bound %g{divergenceBound}")

            if k % every = 0 then
                RunControl.report control (float (k + 1) / float n)

            k <- k + 1

        // The solution's arrays below are as long as the run: a run cancelled at its last step stops here. A
        // completed run keeps its arrays; only a diverged one is cut at the step reached.
        ct.ThrowIfCancellationRequested()
        let cut (a: float[]) = if k = n then a else a[.. k - 1]
        let e, ltr, m = cut e, cut ltr, cut m

        {
            Problem = p
            Scheme = scheme
            T = Array.init k (fun i -> float i * p.Dt)
            E = e
            TrainLoss = ltr
            TestLoss = e |> Array.map (fun x -> x + p.NoiseVar)
            M = m
            Q = Array.map2 (fun e m -> e + 2.0 * m - p.Rho) e m
            Status = status
        }

    /// The Volterra recursion exact for the Euler-Maruyama scheme with step dt (spec section 4.1): e^{-(s+l)t} ->
    /// (1 - dt(s+l))^k and the convolutions -> dt sum_{j<k} with kernel index k - 1 - j. Values at t_k = k dt,
    /// k = 0..steps.
    let private discrete (control: RunControl) (law: MarchenkoPastur) (p: LeastSquaresProblem) =
        let dt, steps = p.Dt, p.Steps
        let l = p.Ridge

        let ktr, kte =
            kernels control.CancellationToken law (steps + 1) (fun s -> (1.0 - dt * (s + l)) ** 2.0)

        march control Discrete p (fun k ltr ->
            let eg, lg, mg =
                gfFrom p law (aDisc l dt k) (fun s -> (1.0 - dt * (s + l)) ** float k)

            let mutable sl = 0.0
            let mutable se = 0.0

            for j in 0 .. k - 1 do
                sl <- sl + ktr[k - 1 - j] * ltr[j]
                se <- se + kte[k - 1 - j] * ltr[j]

            eg + p.Tau * dt * se, lg + p.Tau * dt * sl, mg)

    /// The continuous-time Volterra equation L = L_GF + tau K_tr * L, e = e_GF + tau K_te * L solved with the
    /// trapezoidal rule on t_k = k dt (error O(dt^2)).
    let private continuous (control: RunControl) (law: MarchenkoPastur) (p: LeastSquaresProblem) =
        let dt, steps = p.Dt, p.Steps

        let ktr, kte =
            kernels control.CancellationToken law (steps + 1) (fun s -> exp (-2.0 * (s + p.Ridge) * dt))

        march control Continuous p (fun k ltr ->
            let eg, lg, mg = gradientFlow law p (float k * dt)

            if k = 0 then
                eg, lg, mg
            else
                let mutable sl = 0.5 * ktr[k] * ltr[0]
                let mutable se = 0.5 * kte[k] * ltr[0]

                for j in 1 .. k - 1 do
                    sl <- sl + ktr[k - j] * ltr[j]
                    se <- se + kte[k - j] * ltr[j]

                // The trapezoid's own end point L_k appears on both sides: solve the scalar equation for it.
                let lk = (lg + p.Tau * dt * sl) / (1.0 - 0.5 * p.Tau * dt * ktr[0])
                eg + p.Tau * dt * (se + 0.5 * kte[0] * lk), lk, mg)

    /// The least-squares learning curve on the problem's grid over the Marchenko-Pastur law of settings'
    /// QuadratureNodes: exact for the Euler-Maruyama scheme (Discrete) or the continuous-time Volterra equation by
    /// the trapezoid (Continuous). Throws OperationCanceledException when settings.Control's token is cancelled.
    [<CompiledName("Solve")>]
    let solve (settings: LeastSquaresSettings) (problem: LeastSquaresProblem) : LeastSquaresSolution =
        validate problem
        checkGrid problem.Dt problem.Steps
        Check.intInRange "quadrature nodes" 8 1_000_000 settings.QuadratureNodes
        settings.Control.CancellationToken.ThrowIfCancellationRequested()
        let law = MarchenkoPastur.create settings.QuadratureNodes problem.Alpha

        match settings.Scheme with
        | Discrete -> discrete settings.Control law problem
        | Continuous -> continuous settings.Control law problem
