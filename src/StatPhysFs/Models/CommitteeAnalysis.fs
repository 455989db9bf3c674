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

    /// The unspecialised plateau at the model's (finite) learning rate, by Newton's method from the eta -> 0 closed
    /// form; None when no physical fixed point is found (it can cease to exist near eta_max, spec 5.2): a root whose
    /// field covariance is not positive semi-definite is rejected rather than returned.
    [<CompiledName("Plateau")>]
    let plateau (p: CommitteeParams) =
        Check.that "K" (p.K = p.M) "the unspecialised plateau needs K = M."
        let guess = symmetricGuess p.K
        let rhs = Committee.rhs p guess.V

        match Analysis.fixedPoint 1e-12 rhs (Committee.pack p guess) with
        | None -> None
        | Some y ->
            let s = Committee.unpack p guess.V y

            let physical =
                try
                    Linalg.psdFactor "plateau covariance" (Committee.fieldCovariance p s) |> ignore
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

    /// Slowest decay rate min(-Re omega) of the Jacobian at the perfect solution Q = R = I (realisable, noiseless).
    [<CompiledName("ConvergenceRate")>]
    let convergenceRate (p: CommitteeParams) =
        let s = perfect p.K
        -(Analysis.growthRate (Committee.rhs p s.V) (Committee.pack p s))

    /// eta_max: the learning rate at which the perfect solution loses stability (largest eigenvalue crosses 0).
    [<CompiledName("MaxLearningRate")>]
    let maxLearningRate (p: CommitteeParams) =
        let growth eta = -(convergenceRate { p with Lr = eta })
        let mutable hi = 1.0

        while growth hi < 0.0 && hi < 1e3 do
            hi <- 2.0 * hi

        let mutable lo = hi / 2.0

        while growth lo > 0.0 && lo > 1e-6 do
            lo <- lo / 2.0

        Analysis.threshold growth lo hi

    /// eta_opt: the learning rate in (0, eta_max) maximising the slowest decay rate, by golden-section search.
    [<CompiledName("OptimalLearningRate")>]
    let optimalLearningRate (p: CommitteeParams) =
        let etaMax = maxLearningRate p
        let f eta = convergenceRate { p with Lr = eta }
        let g = (sqrt 5.0 - 1.0) / 2.0
        let mutable a = 1e-3 * etaMax
        let mutable b = etaMax
        let mutable c = b - g * (b - a)
        let mutable d = a + g * (b - a)

        for _ in 1..80 do
            if f c > f d then b <- d else a <- c
            c <- b - g * (b - a)
            d <- a + g * (b - a)

        let eta = 0.5 * (a + b)
        eta, f eta
