namespace StatPhysFs.Sde

open System
open StatPhysFs
open StatPhysFs.Simulation

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

/// SGD on fresh samples and the SMF with fresh-sample randomised increments (sme-smf.md section 5.3 b):
/// Delta M = sqrt(eta h / M) sum_r G(x, theta_r) xi_r, theta_r fresh, xi_r standard normal, G = grad F - grad f: mean 0
/// and covariance exactly eta h Sigma(x, y) jointly across points for any M (weak order 1 in h, non-Gaussian).
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

    let private steps = Flows.steps
    let private monteCarlo = Flows.monteCarlo

    /// SGD with a fresh sample per step (batch B averages B fresh samples), every point using the same samples.
    [<CompiledName("Sgd")>]
    let sgd (s: SdeSettings) (p: OnlineProblem) (x0: float[][]) (observables: (float[][] -> float)[]) =
        SdeSettings.validate s
        let d = p.Dim

        monteCarlo s 0 observables (fun rng ->
            let xs = x0 |> Array.map Array.copy
            let g = Array.zeroCreate d
            let acc = Array.init xs.Length (fun _ -> Array.zeroCreate d)

            for _ in 1 .. steps s do
                for a in acc do
                    Array.Clear a

                for _ in 1 .. s.Batch do
                    let theta = p.Sample rng

                    for j in 0 .. xs.Length - 1 do
                        p.Gradient theta xs[j] g

                        for c in 0 .. d - 1 do
                            acc[j][c] <- acc[j][c] + g[c]

                for j in 0 .. xs.Length - 1 do
                    for c in 0 .. d - 1 do
                        xs[j][c] <- xs[j][c] - s.Eta / float s.Batch * acc[j][c]

            xs)

    /// The SMF of the given order with `freshPerStep` fresh samples per step for the noise (Euler-Maruyama, or
    /// Richardson extrapolation over independent runs as in Flows.simulate).
    [<CompiledName("Smf")>]
    let smf
        (s: SdeSettings)
        (order: int)
        (freshPerStep: int)
        (p: OnlineProblem)
        (x0: float[][])
        (observables: (float[][] -> float)[])
        =
        SdeSettings.validate s
        Check.intInRange "order" 1 2 order
        Check.intInRange "fresh samples per step" 1 1_000_000 freshPerStep
        let d = p.Dim

        let run stream (h: float) (nSteps: int) =
            monteCarlo s stream observables (fun rng ->
                let xs = x0 |> Array.map Array.copy
                let full = Array.zeroCreate d
                let hv = Array.zeroCreate d
                let g = Array.zeroCreate d
                let incr = Array.init xs.Length (fun _ -> Array.zeroCreate d)
                let amp = sqrt (s.Eta * h / float freshPerStep / float s.Batch)

                for _ in 1..nSteps do
                    for a in incr do
                        Array.Clear a
                    // The same fresh samples and multipliers for every point: the multi-point motion.
                    for _ in 1..freshPerStep do
                        let theta = p.Sample rng
                        let xi = rng.NextNormal()

                        for j in 0 .. xs.Length - 1 do
                            p.PopulationGradient xs[j] full
                            p.Gradient theta xs[j] g

                            for c in 0 .. d - 1 do
                                incr[j][c] <- incr[j][c] + amp * (full[c] - g[c]) * xi

                    for j in 0 .. xs.Length - 1 do
                        let x = xs[j]
                        p.PopulationGradient x full

                        if order = 2 then
                            p.PopulationHessianVector x full hv

                        for c in 0 .. d - 1 do
                            let b = -full[c] - (if order = 2 then 0.5 * s.Eta * hv[c] else 0.0)
                            x[c] <- x[c] + h * b + incr[j][c]

                xs)

        Flows.schemeEstimates s run
