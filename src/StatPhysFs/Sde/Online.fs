namespace StatPhysFs.Sde

open StatPhysFs

/// Online (fresh-sample) data: a sampler of data points theta (as vectors), per-sample gradients, and the population
/// gradient grad F and its Hessian-vector product, which the drift of the SMF needs.
type OnlineProblem =
    {
        Name: string
        Dim: int
        /// Draws one data point.
        Sample: Rng -> float[]
        /// Gradient theta x out: grad f(x, theta).
        Gradient: float[] -> float[] -> float[] -> unit
        /// Population gradient x out: grad F(x).
        PopulationGradient: float[] -> float[] -> unit
        /// Population Hessian-vector product x v out.
        PopulationHessianVector: float[] -> float[] -> float[] -> unit
    }

/// Online data sets. SGD on fresh samples and the SMF with fresh-sample randomised increments (sme-smf.md section
/// 5.3 b) run through `Flows.solve` with `SdeData.Online`: Delta M = sqrt(eta h / M) sum_r G(x, theta_r) xi_r, theta_r
/// fresh, xi_r standard normal, G = grad F - grad f: mean 0 and covariance exactly eta h Sigma(x, y) jointly across
/// points for any M (weak order 1 in h, non-Gaussian).
[<RequireQualifiedAccess>]
module Online =
    /// Online Gaussian least squares (spec 6.3): a = H^{1/2} z with H = diag(lambdas), y = a.w* + eps, Var eps = s^2;
    /// theta = (a, y). Parameters are measured from w* = 0, so x = e.
    [<CompiledName("GaussianLeastSquares")>]
    let gaussianLeastSquares (lambdas: float[]) (s2: float) =
        let d = lambdas.Length
        let sq = lambdas |> Array.map sqrt

        {
            Name = "online Gaussian least squares"
            Dim = d
            Sample =
                fun rng ->
                    let a = Array.init d (fun j -> sq[j] * rng.NextNormal())
                    Array.append a [| sqrt s2 * rng.NextNormal() |]
            Gradient =
                fun theta x out ->
                    let mutable r = -theta[d]

                    for j in 0 .. d - 1 do
                        r <- r + theta[j] * x[j]

                    for j in 0 .. d - 1 do
                        out[j] <- theta[j] * r
            PopulationGradient =
                fun x out ->
                    for j in 0 .. d - 1 do
                        out[j] <- lambdas[j] * x[j]
            PopulationHessianVector =
                fun _ v out ->
                    for j in 0 .. d - 1 do
                        out[j] <- lambdas[j] * v[j]
        }
