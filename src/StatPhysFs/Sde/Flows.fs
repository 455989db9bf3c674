namespace StatPhysFs.Sde

open System
open System.Threading
open System.Threading.Tasks
open StatPhysFs
open StatPhysFs.Simulation

/// The diffusion models of SGD at small learning rate eta (sme-smf.md sections 2-3), time t = k eta.
type SdeModel =
    /// dX = -grad F dt.
    | GradientFlow
    /// SME of order 1 or 2 with noise sqrt(eta) Sigma(X)^{1/2} dW. For several points, `sharedNoise` drives them
    /// with one W (else independent W per point); either way the cross diffusion is wrong (spec 3.3).
    | Sme of order: int * sharedNoise: bool
    /// SMF of order 1 or 2: noise sqrt(eta/n) sum_i G_i(X) d beta^i, one Brownian motion per data point, common to
    /// every point of a multi-point motion.
    | Smf of order: int
    /// A deliberately wrong SMF for particle systems: an independent noise xi in R^n for every block of `block`
    /// coordinates (one particle), instead of one xi common to all. Its fluctuations average out over particles;
    /// the data reject it (sme-smf.md V4).
    | SmfPerBlock of order: int * block: int

/// Time stepping with step h = eta / SubSteps.
type SdeScheme =
    /// Euler-Maruyama, weak order 1 in h.
    | EulerMaruyama
    /// Talay-Tubaro extrapolation 2 E phi(X^{h/2}) - E phi(X^h) (independent paths), weak order 2 in h.
    | EulerRichardson
    /// Heun (trapezoidal) drift with Euler noise: error O(h^2 + eta h) for these small-noise SDEs.
    | HeunDrift

type SdeSettings =
    {
        /// Learning rate eta.
        Eta: float
        /// Horizon T (floor(T/eta) SGD steps).
        Horizon: float
        /// Sub-steps m per eta of the SDE schemes (h = eta/m).
        SubSteps: int
        Scheme: SdeScheme
        /// Mini-batch B (with replacement: noise / sqrt B).
        Batch: int
        /// Monte Carlo paths.
        Paths: int
        Seed: int
        MaxParallelism: int
        CancellationToken: CancellationToken
    }

[<RequireQualifiedAccess>]
module SdeSettings =
    [<CompiledName("Defaults")>]
    let defaults =
        {
            Eta = 0.05
            Horizon = 1.0
            SubSteps = 2
            Scheme = EulerRichardson
            Batch = 1
            Paths = 10000
            Seed = 1
            MaxParallelism = Environment.ProcessorCount
            CancellationToken = CancellationToken.None
        }

    let validate (s: SdeSettings) =
        Check.positive "eta" s.Eta
        Check.positive "horizon" s.Horizon
        Check.intInRange "sub-steps" 1 100_000 s.SubSteps
        Check.intInRange "batch" 1 1_000_000 s.Batch
        Check.intInRange "paths" 2 100_000_000 s.Paths
        Check.positiveInt "max parallelism" s.MaxParallelism

/// Monte Carlo of SGD and of its diffusion models from m initial points driven by common randomness (the m-point
/// motion of sme-smf.md section 1), returning each observable's mean and standard error at the horizon.
[<RequireQualifiedAccess>]
module Flows =
    let internal steps (s: SdeSettings) =
        Steps.count "horizon" s.Horizon "eta" s.Eta

    /// Paths in parallel, path r drawing from the stream (Seed, r): the same numbers at any thread count.
    let internal monteCarlo
        (s: SdeSettings)
        (stream: int)
        (observables: (float[][] -> float)[])
        (runPath: Rng -> float[][])
        =
        let values = Array.init observables.Length (fun _ -> Array.zeroCreate s.Paths)

        Ensemble.sample s.MaxParallelism s.CancellationToken s.Seed (stream * 100_000_000) s.Paths (fun r rng ->
            let xs = runPath rng

            for o in 0 .. observables.Length - 1 do
                values[o][r] <- observables[o] xs)
        |> ignore

        values |> Array.map Stats.estimate

    let private checkPoints (p: FiniteSumProblem) (x0: float[][]) =
        Check.that "x0" (x0.Length > 0) "give at least one initial point."

        Check.that
            "x0"
            (x0 |> Array.forall (fun x -> x.Length = p.Dim))
            (sprintf "every initial point needs length d = %d." p.Dim)

    /// Mini-batch SGD x <- x - (eta/B) sum_b grad f_{i_b}(x) from every initial point with the same samples.
    [<CompiledName("Sgd")>]
    let sgd
        (s: SdeSettings)
        (sampling: BatchSampling)
        (p: FiniteSumProblem)
        (x0: float[][])
        (observables: (float[][] -> float)[])
        =
        SdeSettings.validate s
        checkPoints p x0
        let k = steps s
        let d = p.Dim
        let n = p.Samples

        monteCarlo s 0 observables (fun rng ->
            let xs = x0 |> Array.map Array.copy
            let g = Array.zeroCreate d
            let acc = Array.init xs.Length (fun _ -> Array.zeroCreate d)
            let sampler = BatchSampler(sampling, n, rng)
            let next () = sampler.Next()

            for step in 1..k do
                // A long path must stop soon after a cancellation, not at its end.
                if step &&& 255 = 0 then
                    s.CancellationToken.ThrowIfCancellationRequested()

                for a in acc do
                    Array.Clear a

                for _ in 1 .. s.Batch do
                    let i = next ()

                    for j in 0 .. xs.Length - 1 do
                        p.Gradient i xs[j] g

                        for c in 0 .. d - 1 do
                            acc[j][c] <- acc[j][c] + g[c]

                for j in 0 .. xs.Length - 1 do
                    for c in 0 .. d - 1 do
                        xs[j][c] <- xs[j][c] - s.Eta / float s.Batch * acc[j][c]

            xs)

    /// Per-point work buffers: per-sample gradients (n x d), grad F, drift, noise increment.
    type private Work(p: FiniteSumProblem) =
        member val Grads = Array.init p.Samples (fun _ -> Array.zeroCreate<float> p.Dim)
        member val Full = Array.zeroCreate<float> p.Dim
        member val Hv = Array.zeroCreate<float> p.Dim
        member val Drift = Array.zeroCreate<float> p.Dim
        member val Drift2 = Array.zeroCreate<float> p.Dim
        member val Incr = Array.zeroCreate<float> p.Dim
        member val Pred = Array.zeroCreate<float> p.Dim

    let private gradients (p: FiniteSumProblem) (w: Work) (x: float[]) =
        Array.Clear w.Full

        for i in 0 .. p.Samples - 1 do
            p.Gradient i x w.Grads[i]

            for c in 0 .. p.Dim - 1 do
                w.Full[c] <- w.Full[c] + w.Grads[i][c]

        for c in 0 .. p.Dim - 1 do
            w.Full[c] <- w.Full[c] / float p.Samples

    /// b^eta(x) = -grad F - (order = 2 ? (eta/2) grad^2 F grad F : 0) into out; leaves the gradients in w.
    let private drift (p: FiniteSumProblem) (order: int) (eta: float) (w: Work) (x: float[]) (out: float[]) =
        gradients p w x

        if order >= 2 then
            FiniteSumProblem.hessianVector p x w.Full w.Hv

            for c in 0 .. p.Dim - 1 do
                out[c] <- -w.Full[c] - 0.5 * eta * w.Hv[c]
        else
            for c in 0 .. p.Dim - 1 do
                out[c] <- -w.Full[c]

    /// Sigma(x)^{1/2} zeta from the gradients in w (symmetric square root by eigen-decomposition).
    let private smeNoise (p: FiniteSumProblem) (w: Work) (zeta: float[]) (out: float[]) =
        let d = p.Dim
        let n = float p.Samples

        let sigma =
            Array2D.init d d (fun a b ->
                let mutable v = 0.0

                for i in 0 .. p.Samples - 1 do
                    v <- v + (w.Full[a] - w.Grads[i][a]) * (w.Full[b] - w.Grads[i][b])

                v / n)

        let evd =
            (Linalg.ofArray2D sigma).Evd(MathNet.Numerics.LinearAlgebra.Symmetricity.Symmetric)

        let q = evd.EigenVectors
        let lam = evd.EigenValues |> Seq.map (fun z -> sqrt (max 0.0 z.Real)) |> Array.ofSeq

        for a in 0 .. d - 1 do
            let mutable v = 0.0

            for k in 0 .. d - 1 do
                let mutable qz = 0.0

                for b in 0 .. d - 1 do
                    qz <- qz + q[b, k] * zeta[b]

                v <- v + q[a, k] * lam[k] * qz

            out[a] <- v

    /// One path of the SDE model from every initial point with step h; `common` noise for SMF and shared SME.
    let private sdePath
        (s: SdeSettings)
        (model: SdeModel)
        (p: FiniteSumProblem)
        (x0: float[][])
        (h: float)
        (nSteps: int)
        (rng: Rng)
        =
        let d = p.Dim
        let n = p.Samples
        let xs = x0 |> Array.map Array.copy
        let works = xs |> Array.map (fun _ -> Work p)
        let xi = Array.zeroCreate n
        let zeta = Array.zeroCreate d
        let amp = sqrt (s.Eta * h / float s.Batch)

        let order =
            match model with
            | GradientFlow -> 1
            | Sme(o, _) -> o
            | Smf o -> o
            | SmfPerBlock(o, b) ->
                Check.that "block" (b >= 1 && d % b = 0) (sprintf "block must divide the dimension %d." d)
                o

        let xiBlocks =
            match model with
            | SmfPerBlock(_, b) -> Array.init (d / b) (fun _ -> Array.zeroCreate n)
            | _ -> [||]

        Check.intInRange "order" 1 2 order

        for step in 1..nSteps do
            if step &&& 63 = 0 then
                s.CancellationToken.ThrowIfCancellationRequested()

            match model with
            | Smf _ -> rng.FillNormal(Span xi)
            | Sme(_, true) -> rng.FillNormal(Span zeta)
            | SmfPerBlock _ ->
                for xb in xiBlocks do
                    rng.FillNormal(Span xb)
            | _ -> ()

            for j in 0 .. xs.Length - 1 do
                let w = works[j]
                let x = xs[j]
                drift p order s.Eta w x w.Drift
                // The noise increment from the gradients at x (Euler noise for every scheme).
                match model with
                | GradientFlow -> Array.Clear w.Incr
                | Smf _ ->
                    let c = amp / sqrt (float n)

                    for a in 0 .. d - 1 do
                        let mutable v = 0.0

                        for i in 0 .. n - 1 do
                            v <- v + (w.Full[a] - w.Grads[i][a]) * xi[i]

                        w.Incr[a] <- c * v
                | SmfPerBlock(_, blk) ->
                    let c = amp / sqrt (float n)

                    for a in 0 .. d - 1 do
                        let xb = xiBlocks[a / blk]
                        let mutable v = 0.0

                        for i in 0 .. n - 1 do
                            v <- v + (w.Full[a] - w.Grads[i][a]) * xb[i]

                        w.Incr[a] <- c * v
                | Sme(_, shared) ->
                    if not shared then
                        rng.FillNormal(Span zeta)

                    smeNoise p w zeta w.Incr

                    for a in 0 .. d - 1 do
                        w.Incr[a] <- amp * w.Incr[a]

                match s.Scheme with
                | HeunDrift ->
                    for a in 0 .. d - 1 do
                        w.Pred[a] <- x[a] + h * w.Drift[a] + w.Incr[a]

                    drift p order s.Eta w w.Pred w.Drift2

                    for a in 0 .. d - 1 do
                        x[a] <- x[a] + 0.5 * h * (w.Drift[a] + w.Drift2[a]) + w.Incr[a]
                | _ ->
                    for a in 0 .. d - 1 do
                        x[a] <- x[a] + h * w.Drift[a] + w.Incr[a]

        xs

    /// Run a scheme: `run stream h steps` once (EM, Heun) or at h and h/2 on independent streams combined as
    /// 2 E^{h/2} - E^h (EulerRichardson), standard errors combined accordingly.
    let internal schemeEstimates (s: SdeSettings) (run: int -> float -> int -> Estimate[]) =
        let k = steps s * s.SubSteps
        let h = s.Eta / float s.SubSteps

        match s.Scheme with
        | EulerRichardson -> Array.map2 Richardson.ofEstimates (run 1 h k) (run 2 (h / 2.0) (2 * k))
        | _ -> run 1 h k

    /// Monte Carlo of an SDE model at the horizon: E[observable] with standard errors. EulerRichardson combines
    /// independent runs at h and h/2 as 2 E^{h/2} - E^h (standard errors combined accordingly).
    [<CompiledName("Simulate")>]
    let simulate
        (s: SdeSettings)
        (model: SdeModel)
        (p: FiniteSumProblem)
        (x0: float[][])
        (observables: (float[][] -> float)[])
        =
        SdeSettings.validate s
        checkPoints p x0

        schemeEstimates s (fun stream h nSteps -> monteCarlo s stream observables (sdePath s model p x0 h nSteps))

    /// The first-order SMF's Euler step with h = eta and the single-sample increment eta G(x, theta_i) in place of
    /// the Gaussian one (sme-smf.md 5.1): x - eta grad F + eta (grad F - grad f_i). It is SGD's step to rounding.
    [<CompiledName("FirstOrderSmfSampleStep")>]
    let firstOrderSmfSampleStep (p: FiniteSumProblem) (eta: float) (i: int) (x: float[]) =
        let w = Work p
        gradients p w x
        Array.init p.Dim (fun a -> x[a] + eta * -w.Full[a] + eta * (w.Full[a] - w.Grads[i][a]))

    /// Sigma(x, y) = (1/n) sum_i G_i(x) G_i(y)^T from the per-sample gradients (the SMF's two-point diffusion / eta).
    [<CompiledName("NoiseCovariance")>]
    let noiseCovariance (p: FiniteSumProblem) (x: float[]) (y: float[]) =
        let wx, wy = Work p, Work p
        gradients p wx x
        gradients p wy y

        Array2D.init p.Dim p.Dim (fun a b ->
            let mutable v = 0.0

            for i in 0 .. p.Samples - 1 do
                v <- v + (wx.Full[a] - wx.Grads[i][a]) * (wy.Full[b] - wy.Grads[i][b])

            v / float p.Samples)
