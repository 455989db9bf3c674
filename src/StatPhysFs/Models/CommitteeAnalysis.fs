namespace StatPhysFs.Models

open System
open StatPhysFs

/// The unspecialised plateau, its escape, and the convergence phase of a realisable committee
/// (online-sgd.md sections 3.5 and 5): K = M, T = I, v = vT = 1 fixed unless stated by the parameters.
type Plateau =
    {
        /// The symmetric fixed point: Q_ii = Q, Q_ij = C, R_ii = R, R_in = S (all equal on the unspecialised plateau).
        State: CommitteeState
        Eg: float
        /// omega_esc: the largest real part of the full Jacobian's eigenvalues at the plateau (> 0: it is a saddle).
        EscapeRate: float
    }

/// Everything the committee analysis reports, from one Jacobian pencil.
type LearningRateAnalysis =
    {
        Plateau: Plateau option
        /// NaN where the growth rate does not change sign on (1e-6, 1e3).
        EtaMax: float
        EtaOpt: float
        RateAtEtaOpt: float
        /// The slowest decay rate at the model's own learning rate.
        Rate: float
    }

[<RequireQualifiedAccess>]
module CommitteeAnalysis =
    let private symmetricGuess (k: int) =
        let q = 1.0 / float (2 * k - 1)
        let r = 1.0 / sqrt (float (k * (2 * k - 1)))

        {
            Q = Array2D.create k k q
            R = Array2D.create k k r
            V = Array.create k 1.0
        }

    /// The plateau closed form as eta -> 0 (spec 3.5): eg* = (K/pi)(pi/6 - K asin(1/(2K))) for erf, K = M, T = I.
    [<CompiledName("PlateauErrorSmallLr")>]
    let plateauErrorSmallLr (k: int) =
        Check.positiveInt "K" k
        float k / Math.PI * (Math.PI / 6.0 - float k * asin (1.0 / float (2 * k)))

    /// The symmetric state with Q_ii = x[0], Q_ij = x[1], R_ii = x[2], R_in = x[3] (K = 1: Q = x[0], R = x[1]).
    let private symmetricState (k: int) (x: float[]) =
        let q, c, r, s =
            if k = 1 then x[0], x[0], x[1], x[1] else x[0], x[1], x[2], x[3]

        {
            Q = Array2D.init k k (fun i j -> if i = j then q else c)
            R = Array2D.init k k (fun i j -> if i = j then r else s)
            V = Array.create k 1.0
        }

    /// The unspecialised plateau at the model's (finite) learning rate, by Newton's method from the eta -> 0 closed
    /// form; None when no physical fixed point is found (it can cease to exist near eta_max, spec 5.2): a root whose
    /// field covariance is not positive semi-definite is rejected rather than returned.
    /// The permutation symmetry maps symmetric states to symmetric velocities, so Newton runs on the 4 numbers
    /// (Q, C, R, S) (2 at K = 1) instead of the K(K+1)/2 + K^2 components: 8 right-hand sides per iteration, and one
    /// full Jacobian at the root for the escape rate.
    [<CompiledName("Plateau")>]
    let plateau (p: CommitteeParams) =
        Check.that "K" (p.K = p.M) "the unspecialised plateau needs K = M."
        let k = p.K
        let guess = symmetricGuess k
        let rhs = Committee.rhs p guess.V
        // Packed indices of Q[0,0], Q[0,1], R[0,0], R[0,1].
        let iR = k * (k + 1) / 2
        let picks = if k = 1 then [| 0; iR |] else [| 0; 1; iR; iR + 1 |]
        let full = Array.zeroCreate (CommitteeLayout.size p)

        let reduced: Ode.Rhs =
            fun t x dx ->
                rhs t (CommitteeLayout.pack p (symmetricState k x)) full

                for i in 0 .. picks.Length - 1 do
                    dx[i] <- full[picks[i]]

        let x0 =
            if k = 1 then
                [| guess.Q[0, 0]; guess.R[0, 0] |]
            else
                [| guess.Q[0, 0]; guess.Q[0, 1]; guess.R[0, 0]; guess.R[0, 1] |]

        match Analysis.fixedPoint 1e-12 reduced x0 with
        | None -> None
        | Some x ->
            let s = symmetricState k x
            let y = CommitteeLayout.pack p s

            let physical =
                try
                    Linalg.psdFactor "plateau covariance" (CommitteeLayout.fieldCovariance p s) |> ignore
                    true
                with :? ArgumentException ->
                    false

            if not physical then
                None
            else
                Some
                    {
                        State = s
                        Eg = Committee.generalisationError p s
                        EscapeRate = Analysis.growthRate rhs y
                    }

    /// Predicted plateau length ln(1/s0)/omega_esc for an initial asymmetry s0 (spec 5.2).
    [<CompiledName("PlateauLength")>]
    let plateauLength (plateau: Plateau) (asymmetry: float) =
        Check.inRange "asymmetry" 1e-300 1.0 asymmetry
        log (1.0 / asymmetry) / plateau.EscapeRate

    let private perfect (k: int) =
        {
            Q = Array2D.init k k (fun i j -> if i = j then 1.0 else 0.0)
            R = Array2D.init k k (fun i j -> if i = j then 1.0 else 0.0)
            V = Array.create k 1.0
        }

    /// The Jacobian at the perfect solution as a polynomial in the learning rate: the right-hand side is
    /// -eta A + eta^2 B - kappa C (momentum divides all three by 1 - beta), so J(eta) = J0 + eta J1 + eta^2 J2
    /// exactly. Three finite-difference Jacobians (eta = 0, 1, -1 through a constant schedule) give every J(eta), so
    /// a scan over eta costs one eigen-decomposition per point instead of 2 n right-hand sides plus one.
    type private Pencil =
        {
            J0: float[,]
            J1: float[,]
            J2: float[,]
        }

    let private pencil (p: CommitteeParams) (progress: float -> unit) =
        let s = perfect p.K
        let y = CommitteeLayout.pack p s

        let jac eta (lo: float) (hi: float) =
            Analysis.jacobianWithProgress
                (fun f -> progress (lo + (hi - lo) * f))
                (Committee.rhsWith CommitteeQuadrature.defaults p (LearningRateSchedule.Custom("constant", fun _ -> eta)) s.V)
                y

        let jp = jac 1.0 0.0 0.5
        let jm = jac -1.0 0.5 1.0
        let n = y.Length
        // With no decay the eta^0 part vanishes identically (no drift at eta = 0).
        let j0 =
            if p.WeightDecay = 0.0 then
                Array2D.zeroCreate n n
            else
                jac 0.0 1.0 1.0

        {
            J0 = j0
            J1 = Array2D.init n n (fun i j -> 0.5 * (jp[i, j] - jm[i, j]))
            J2 = Array2D.init n n (fun i j -> 0.5 * (jp[i, j] + jm[i, j]) - j0[i, j])
        }

    let private pencilGrowth (pc: Pencil) (eta: float) =
        let n = Array2D.length1 pc.J1

        let j =
            Array2D.init n n (fun a b -> pc.J0[a, b] + eta * (pc.J1[a, b] + eta * pc.J2[a, b]))

        (Linalg.ofArray2D j).Evd().EigenValues
        |> Seq.map (fun z -> z.Real)
        |> Seq.max

    /// Slowest decay rate min(-Re omega) of the Jacobian at the perfect solution Q = R = I (realisable, noiseless).
    [<CompiledName("ConvergenceRate")>]
    let convergenceRate (p: CommitteeParams) =
        let s = perfect p.K
        -(Analysis.growthRate (Committee.rhs p s.V) (CommitteeLayout.pack p s))

    // eta_max by doubling/halving, then the Illinois variant of regula falsi on the growth rate (superlinear where
    // the crossing eigenvalue is smooth in eta) with a bisection step whenever the bracket fails to halve, to 1e-13
    // relative: ~10 eigen-decompositions instead of ~45 for bisection alone.
    let private maxFromGrowth (growth: float -> float) (progress: float -> unit) =
        let mutable hi = 1.0
        let mutable ghi = growth hi

        while ghi < 0.0 && hi < 1e3 do
            hi <- 2.0 * hi
            ghi <- growth hi

        let mutable lo = hi / 2.0
        let mutable glo = growth lo

        while glo > 0.0 && lo > 1e-6 do
            lo <- lo / 2.0
            glo <- growth lo

        RootFinding.illinois 1e-13 (fun i -> progress (float i / 12.0)) growth (lo, glo) (hi, ghi)

    // eta_opt by golden-section search of the decay rate on (1e-3 eta_max, eta_max), one evaluation per step,
    // to 1e-9 relative. The optimum usually sits where two eigenvalues collide (a kink, a defective eigenvalue), so
    // eta_opt and the rate there are only determined to ~1e-5 relative by a finite-difference Jacobian (sqrt of its
    // ~1e-10 error) whatever the search tolerance.
    let private optimalFromRate (rate: float -> float) (etaMax: float) (progress: float -> unit) =
        let g = (sqrt 5.0 - 1.0) / 2.0
        let mutable a = 1e-3 * etaMax
        let mutable b = etaMax
        let mutable c = b - g * (b - a)
        let mutable d = a + g * (b - a)
        let mutable fc = rate c
        let mutable fd = rate d
        let mutable i = 0

        while i < 80 && b - a > 1e-9 * etaMax do
            if fc > fd then
                b <- d
                d <- c
                fd <- fc
                c <- b - g * (b - a)
                fc <- rate c
            else
                a <- c
                c <- d
                fc <- fd
                d <- a + g * (b - a)
                fd <- rate d

            i <- i + 1
            progress (float i / 43.0)

        let eta = 0.5 * (a + b)
        eta, rate eta

    /// eta_max: the learning rate at which the perfect solution loses stability (largest eigenvalue crosses 0).
    [<CompiledName("MaxLearningRate")>]
    let maxLearningRate (p: CommitteeParams) =
        let pc = pencil p ignore
        maxFromGrowth (pencilGrowth pc) ignore

    /// eta_opt: the learning rate in (0, eta_max) maximising the slowest decay rate, by golden-section search.
    [<CompiledName("OptimalLearningRate")>]
    let optimalLearningRate (p: CommitteeParams) =
        let pc = pencil p ignore
        let growth = pencilGrowth pc
        optimalFromRate (fun eta -> -(growth eta)) (maxFromGrowth growth ignore) ignore

    /// Plateau, eta_max, eta_opt and the decay rates in one pass, reporting progress in [0, 1]. Cost: the plateau's
    /// Newton on 4 numbers plus one Jacobian (2 n right-hand sides, n = K(K+1)/2 + K^2), the pencil (4 n right-hand
    /// sides) and ~100 eigen-decompositions of n x n. NaN where a rate does not exist (no sign change of the growth).
    /// True when the fixed-point analyses (plateau, eta_max, eta_opt) apply to the problem: the realisable case the
    /// spec treats, K = M, T = I, erf, fixed second layer v = vT = 1, no noise or weight decay, no biases.
    [<CompiledName("Applies")>]
    let applies (problem: CommitteeProblem) =
        let p = problem.Model

        let identityT =
            Seq.forall
                (fun (i, j) -> p.T[i, j] = (if i = j then 1.0 else 0.0))
                (seq {
                    for i in 0 .. p.M - 1 do
                        for j in 0 .. p.M - 1 -> i, j
                })

        p.K = p.M
        && identityT
        && p.LrSecond.IsNone
        && Array.forall ((=) 1.0) problem.Init.V
        && Array.forall ((=) 1.0) p.VTeacher
        && p.NoiseVar = 0.0
        && p.WeightDecay = 0.0
        && p.Activation = StatPhysFs.Gaussian.Erf
        && not (CommitteeLayout.needsSampling p)

    [<CompiledName("Analyse")>]
    let analyse (p: CommitteeParams) (progress: float -> unit) =
        let stage lo hi (f: float) =
            progress (lo + (hi - lo) * max 0.0 (min 1.0 f))

        let plateau = plateau p
        stage 0.0 0.15 1.0
        let pc = pencil p (stage 0.15 0.5)
        let growth = pencilGrowth pc

        let etaMax =
            try
                maxFromGrowth growth (stage 0.5 0.7)
            with :? ArgumentException ->
                nan

        let etaOpt, rateOpt =
            if Double.IsNaN etaMax then
                nan, nan
            else
                optimalFromRate (fun eta -> -(growth eta)) etaMax (stage 0.7 1.0)

        progress 1.0

        {
            Plateau = plateau
            EtaMax = etaMax
            EtaOpt = etaOpt
            RateAtEtaOpt = rateOpt
            Rate = -(growth p.Lr)
        }
