namespace StatPhysFs.Sde

open System
open StatPhysFs

/// Closed forms for SGD and its diffusion models on quadratics (sme-smf.md section 6.1): 1-D additive noise with
/// curvature lambda and noise variance C (grad f = lambda (x - x*) + xi, Var xi = C).
[<RequireQualifiedAccess>]
module AdditiveNoiseQuadratic =
    let private check (eta: float) (lambda: float) =
        Check.positive "eta" eta
        Check.positive "lambda" lambda
        Check.that "eta" (eta * lambda < 2.0) ($"SGD needs eta lambda < 2 (got %g{(eta * lambda)}).")

    /// Stationary variances (SGD, SME1, SMF): eta C/(lambda (2 - eta lambda)), eta C/(2 lambda),
    /// eta C/(2 lambda (1 + eta lambda/2)).
    [<CompiledName("StationaryVariances")>]
    let stationaryVariances (eta: float) (lambda: float) (c: float) =
        check eta lambda

        eta * c / (lambda * (2.0 - eta * lambda)),
        eta * c / (2.0 * lambda),
        eta * c / (2.0 * lambda * (1.0 + eta * lambda / 2.0))

    /// SGD's exact mean and variance after k steps from a deterministic e0 (the AR(1) recursion in closed form).
    [<CompiledName("SgdMoments")>]
    let sgdMoments (eta: float) (lambda: float) (c: float) (e0: float) (k: int) =
        check eta lambda
        let r = 1.0 - eta * lambda
        r ** float k * e0, eta * eta * c * (1.0 - (r * r) ** float k) / (1.0 - r * r)

    /// The exact modified OU process dX = -lambda~ X dt + sqrt(eta c~) dW with SGD's law at every grid time
    /// (Gaussian noise, eta lambda < 1): lambda~ = -ln(1 - eta lambda)/eta, c~ = 2 lambda~ C/(2 lambda - eta lambda^2).
    [<CompiledName("ModifiedOu")>]
    let modifiedOu (eta: float) (lambda: float) (c: float) =
        check eta lambda
        Check.that "eta" (eta * lambda < 1.0) "the exact modified OU needs eta lambda < 1."
        let lt = -Math.Log(1.0 - eta * lambda) / eta
        lt, 2.0 * lt * c / (2.0 * lambda - eta * lambda * lambda)

    /// Mean and variance of the OU process dX = -l X dt + sqrt(eta c) dW at time t from x0.
    [<CompiledName("OuMoments")>]
    let ouMoments (eta: float) (l: float) (c: float) (x0: float) (t: float) =
        exp (-l * t) * x0, eta * c * (-(Special.expm1 (-2.0 * l * t))) / (2.0 * l)

    /// SGD's stationary third cumulant with skewed noise (E xi^3 = kappa3): -eta^3 kappa3 / (1 - (1 - eta lambda)^3).
    /// Every Gaussian diffusion gives 0: the O(eta^2) floor of weak order 2.
    [<CompiledName("StationaryThirdCumulant")>]
    let stationaryThirdCumulant (eta: float) (lambda: float) (kappa3: float) =
        check eta lambda
        -(eta ** 3.0) * kappa3 / (1.0 - (1.0 - eta * lambda) ** 3.0)

/// Online Gaussian least squares (sme-smf.md section 6.3): inputs a ~ N(0, H), labels y = a.w* + eps, Var eps = s^2,
/// in H's eigenbasis with eigenvalues lambda_j. E = tr(H P) is twice the excess risk.
[<RequireQualifiedAccess>]
module OnlineGaussianLeastSquares =
    /// Which dynamics.
    type Dynamics =
        | Sgd
        | Sme1
        | Smf

    /// sigma of E_inf = s^2 sigma/(1 - sigma): SGD sum eta l/(2(1 - eta l)); SMF eta tr H/2; SME1 sum eta l/(2 - eta l).
    [<CompiledName("Sigma")>]
    let sigma (dyn: Dynamics) (eta: float) (lambdas: float[]) =
        Check.positive "eta" eta

        match dyn with
        | Sgd -> lambdas |> Array.sumBy (fun l -> eta * l / (2.0 * (1.0 - eta * l)))
        | Smf -> eta * Array.sum lambdas / 2.0
        | Sme1 -> lambdas |> Array.sumBy (fun l -> eta * l / (2.0 - eta * l))

    /// Stationary E_inf = s^2 sigma/(1 - sigma), None when there is no stationary state: sigma >= 1, or a mode whose
    /// stationary p_j = eta (E + s^2) {1/(2(1 - eta l)), 1/2, 1/(2 - eta l)} is not positive (eta l >= 1 for SGD,
    /// eta l >= 2 for SME1), where the table's sum no longer means anything.
    [<CompiledName("StationaryExcess")>]
    let stationaryExcess (dyn: Dynamics) (eta: float) (lambdas: float[]) (s2: float) =
        let modesOk =
            match dyn with
            | Sgd -> lambdas |> Array.forall (fun l -> eta * l < 1.0)
            | Sme1 -> lambdas |> Array.forall (fun l -> eta * l < 2.0)
            | Smf -> true

        let sg = sigma dyn eta lambdas

        if not modesOk || sg >= 1.0 then
            None
        else
            Some(s2 * sg / (1.0 - sg))

    /// The diagonal p_j of P evolved to time t = k eta: SGD by its exact recursion, SMF and SME1 by their moment ODEs
    /// (classical RK4 with 20 sub-steps per eta: error ~1e-12 at these rates). Returns E = sum lambda_j p_j.
    [<CompiledName("Excess")>]
    let excess (dyn: Dynamics) (eta: float) (lambdas: float[]) (s2: float) (p0: float[]) (k: int) =
        let p = Array.copy p0

        let e () =
            Array.fold2 (fun acc l pj -> acc + l * pj) 0.0 lambdas p

        match dyn with
        | Sgd ->
            for _ in 1..k do
                let tot = e () + s2

                for j in 0 .. p.Length - 1 do
                    let l = lambdas[j]
                    p[j] <- (1.0 - 2.0 * eta * l + 2.0 * eta * eta * l * l) * p[j] + eta * eta * l * tot
        | _ ->
            let extra = if dyn = Sme1 then 1.0 else 0.0

            let rhs (q: float[]) =
                let tot = Array.fold2 (fun acc l qj -> acc + l * qj) 0.0 lambdas q + s2

                Array.init q.Length (fun j ->
                    let l = lambdas[j] in -2.0 * l * q[j] + extra * eta * l * l * q[j] + eta * l * tot)

            let h = eta / 20.0

            for _ in 1 .. 20 * k do
                let add (a: float[]) (b: float[]) c = Array.map2 (fun x y -> x + c * y) a b
                let k1 = rhs p
                let k2 = rhs (add p k1 (h / 2.0))
                let k3 = rhs (add p k2 (h / 2.0))
                let k4 = rhs (add p k3 h)

                for j in 0 .. p.Length - 1 do
                    p[j] <- p[j] + h / 6.0 * (k1[j] + 2.0 * k2[j] + 2.0 * k3[j] + k4[j])

        e ()

    /// The exact finite reduction of the cylindrical noise (spec 5.3 a) for a diagonal H = diag(lambdas): the
    /// coefficient vectors <G(x, .), phi> of the d(d+1)/2 + d orthonormal functions z_j z_k (j < k),
    /// (z_j^2 - 1)/sqrt 2 and z_j eps/s, given e = x - w*. Their sum of outer products between two points is
    /// Sigma(x, y) = (e_x^T H e_y) H + H e_y e_x^T H + s^2 H.
    [<CompiledName("NoiseCoefficients")>]
    let noiseCoefficients (lambdas: float[]) (s: float) (e: float[]) =
        let d = lambdas.Length
        let sq = lambdas |> Array.map sqrt
        let u = Array.init d (fun j -> sq[j] * e[j])

        let unit j (v: float) =
            Array.init d (fun r -> if r = j then v else 0.0)

        [|
            for j in 0 .. d - 1 do
                for k in j + 1 .. d - 1 ->
                    Array.init d (fun r ->
                        if r = j then -sq[j] * u[k]
                        elif r = k then -sq[k] * u[j]
                        else 0.0)
            for j in 0 .. d - 1 -> unit j (-sqrt 2.0 * u[j] * sq[j])
            for j in 0 .. d - 1 -> unit j (s * sq[j])
        |]
