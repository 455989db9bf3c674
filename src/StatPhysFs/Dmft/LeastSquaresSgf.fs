namespace StatPhysFs.Dmft

open System
open StatPhysFs
open StatPhysFs.Ode

/// Multi-pass SGF on least squares (dmft-sgf.md section 4.1): square loss L = (r - y)^2/2, linear teacher
/// y = r* + eps, ridge lambda (objective term lambda |theta|^2 / 2d), isotropic random start of variance q0.
type LeastSquaresParams =
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
    }

/// A least-squares learning curve on a uniform grid. E = |theta - theta*|^2/d (test MSE = E + sigma^2),
/// TrainLoss = (1/n)|X theta - y|^2 (mean squared residual, no 1/2), M = theta.theta*/d, Q = |theta|^2/d.
type LeastSquaresCurve =
    {
        T: float[]
        E: float[]
        TrainLoss: float[]
        TestLoss: float[]
        M: float[]
        Q: float[]
        /// Completed, or Diverged(t, reason) when the train loss left the divergence bound (tau above critical).
        Status: RunStatus
    }

[<RequireQualifiedAccess>]
module LeastSquaresSgf =
    [<CompiledName("Defaults")>]
    let defaults =
        {
            Alpha = 2.0
            Tau = 1.0
            Ridge = 0.0
            Rho = 1.0
            NoiseVar = 0.25
            Q0 = 0.0
        }

    [<CompiledName("Validate")>]
    let validate (p: LeastSquaresParams) =
        Check.positive "alpha" p.Alpha
        Check.nonNegative "tau" p.Tau
        Check.nonNegative "ridge" p.Ridge
        Check.positive "rho" p.Rho
        Check.nonNegative "noise variance" p.NoiseVar
        Check.nonNegative "q0" p.Q0

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
    let private gfFrom (p: LeastSquaresParams) (law: MarchenkoPastur) (a: float -> float) (decay: float -> float) =
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
    let gradientFlow (law: MarchenkoPastur) (p: LeastSquaresParams) (t: float) =
        validate p
        Check.nonNegative "t" t
        gfFrom p law (aCont p.Ridge t) (fun s -> exp (-(s + p.Ridge) * t))

    /// Gradient-flow limits t -> infinity (e_inf, L_inf) by quadrature over the law (spec section 4.2).
    [<CompiledName("GradientFlowLimit")>]
    let gradientFlowLimit (law: MarchenkoPastur) (p: LeastSquaresParams) =
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
    /// sigma^2 (1 - 1/delta)); delta < 1, lambda = 0: (rho(1-delta) + sigma^2 delta/(1-delta), 0); lambda > 0: e_inf
    /// from the Stieltjes transform (L_inf by quadrature there; the spec gives no closed form).
    [<CompiledName("GradientFlowLimitClosedForm")>]
    let gradientFlowLimitClosedForm (p: LeastSquaresParams) =
        validate p
        let d = p.Alpha
        let s2 = p.NoiseVar

        if p.Ridge > 0.0 then
            let m = MarchenkoPastur.stieltjes d (-p.Ridge)
            let m' = MarchenkoPastur.stieltjesDerivative d (-p.Ridge)
            let l = p.Ridge
            let e = p.Rho * l * l * m' + s2 / d * (m - l * m')
            let _, lInf, _ = gradientFlowLimit (MarchenkoPastur.ofAlpha d) p
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
    let stationary (law: MarchenkoPastur) (p: LeastSquaresParams) =
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

    let private finish (p: LeastSquaresParams) (t: float[]) (e: float[]) (ltr: float[]) (m: float[]) n status =
        let t, e, ltr, m = t[.. n - 1], e[.. n - 1], ltr[.. n - 1], m[.. n - 1]

        {
            T = t
            E = e
            TrainLoss = ltr
            TestLoss = e |> Array.map (fun x -> x + p.NoiseVar)
            M = m
            Q = Array.map2 (fun e m -> e + 2.0 * m - p.Rho) e m
            Status = status
        }

    let private checkGrid dt steps =
        Check.positive "dt" dt
        Check.intInRange "steps" 1 10_000_000 steps

    /// K_tr(j) = int s^2 r(s)^j d nu and K_te(j) = int s r(s)^j d nu, j < n: both kernels are geometric in j per node
    /// (r = (1 - dt(s+l))^2 for the scheme, e^{-2(s+l)dt} in continuous time).
    let private kernels (law: MarchenkoPastur) (n: int) (ratio: float -> float) =
        let ktr = Array.zeroCreate n
        let kte = Array.zeroCreate n

        for i in 0 .. law.Nodes.Length - 1 do
            let s = law.Nodes[i]
            let w = law.Weights[i]
            let r = ratio s
            let mutable pw = 1.0

            for j in 0 .. n - 1 do
                ktr[j] <- ktr[j] + w * s * s * pw
                kte[j] <- kte[j] + w * s * pw
                pw <- pw * r

        ktr, kte

    /// March k = 0..steps: `step k ltr` returns (e_k, L_k, m_k) from L_0..L_{k-1}; stops when L leaves the bound.
    let private march (p: LeastSquaresParams) (dt: float) (steps: int) (step: int -> float[] -> float * float * float) =
        let n = steps + 1
        let t = Array.init n (fun k -> float k * dt)
        let e = Array.zeroCreate n
        let ltr = Array.zeroCreate n
        let m = Array.zeroCreate n
        let mutable status = Completed
        let mutable k = 0

        while k < n && status = Completed do
            let ek, lk, mk = step k ltr
            e[k] <- ek
            ltr[k] <- lk
            m[k] <- mk

            if not (Double.IsFinite lk) || lk > divergenceBound then
                status <- Diverged(t[k], sprintf "train loss exceeded the divergence bound %g" divergenceBound)

            k <- k + 1

        finish p t e ltr m k status

    /// The Volterra recursion exact for the Euler-Maruyama scheme with step dt (spec section 4.1): e^{-(s+l)t} ->
    /// (1 - dt(s+l))^k and the convolutions -> dt sum_{j<k} with kernel index k - 1 - j. Values at t_k = k dt,
    /// k = 0..steps.
    [<CompiledName("Discrete")>]
    let discrete (law: MarchenkoPastur) (dt: float) (steps: int) (p: LeastSquaresParams) =
        validate p
        checkGrid dt steps
        let l = p.Ridge
        let ktr, kte = kernels law (steps + 1) (fun s -> (1.0 - dt * (s + l)) ** 2.0)

        march p dt steps (fun k ltr ->
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
    [<CompiledName("Continuous")>]
    let continuous (law: MarchenkoPastur) (dt: float) (steps: int) (p: LeastSquaresParams) =
        validate p
        checkGrid dt steps
        let ktr, kte = kernels law (steps + 1) (fun s -> exp (-2.0 * (s + p.Ridge) * dt))

        march p dt steps (fun k ltr ->
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
