namespace StatPhysFs.Sde

open System
open StatPhysFs

/// A 1-D finite data set for the deterministic oracle: f_i'(x) and f_i''(x).
type Problem1D =
    {
        Samples: int
        Derivative: int -> float -> float
        Curvature: int -> float -> float
    }

/// The deterministic 1-D oracle of sme-smf.md section 5.5 (no Monte Carlo): on Chebyshev points of [-R, R], SGD's
/// transfer operator P phi(x) = (1/n) sum_i phi(x - eta f_i'(x)) applied K times, and the SDE's backward Kolmogorov
/// equation u_t = L u by collocation and the matrix exponential, with the diffusion multiplied by the steep cutoff
/// 1 - (x/R)^40 so that no boundary condition is needed.
[<RequireQualifiedAccess>]
module Kolmogorov1D =
    /// Chebyshev points x_j = R cos(pi j / N) and the collocation differentiation matrix (Trefethen, cheb.m).
    let private cheb (nDeg: int) (r: float) =
        let n = nDeg
        let x = Array.init (n + 1) (fun j -> cos (Math.PI * float j / float n))

        let c =
            Array.init (n + 1) (fun j -> (if j = 0 || j = n then 2.0 else 1.0) * (if j % 2 = 0 then 1.0 else -1.0))

        let d =
            Array2D.init (n + 1) (n + 1) (fun i j -> if i <> j then c[i] / c[j] / (x[i] - x[j]) else 0.0)

        for i in 0..n do
            let mutable s = 0.0

            for j in 0..n do
                if j <> i then
                    s <- s + d[i, j]

            d[i, i] <- -s

        x |> Array.map (fun v -> r * v), Array2D.map (fun v -> v / r) d

    /// Barycentric interpolation row: the weights that evaluate the interpolant of node values at xi.
    let private interpRow (nodes: float[]) (xi: float) =
        let n = nodes.Length - 1

        let w j =
            (if j = 0 || j = n then 0.5 else 1.0) * (if j % 2 = 0 then 1.0 else -1.0)

        match nodes |> Array.tryFindIndex (fun v -> v = xi) with
        | Some k -> Array.init nodes.Length (fun j -> if j = k then 1.0 else 0.0)
        | None ->
            let raw = Array.init nodes.Length (fun j -> w j / (xi - nodes[j]))
            let s = Array.sum raw
            raw |> Array.map (fun v -> v / s)

    /// E phi(x_K), K = floor(T/eta), for SGD (batch 1, with replacement) from x0.
    [<CompiledName("Sgd")>]
    let sgd
        (degree: int)
        (radius: float)
        (p: Problem1D)
        (eta: float)
        (horizon: float)
        (x0: float)
        (phi: float -> float)
        =
        let nodes, _ = cheb degree radius
        let m = nodes.Length

        let pm =
            let a = Array2D.zeroCreate m m

            for j in 0 .. m - 1 do
                for i in 0 .. p.Samples - 1 do
                    let row = interpRow nodes (nodes[j] - eta * p.Derivative i nodes[j])

                    for k in 0 .. m - 1 do
                        a[j, k] <- a[j, k] + row[k] / float p.Samples

            Linalg.ofArray2D a

        let k = Steps.count "horizon" horizon "eta" eta

        let mutable u =
            MathNet.Numerics.LinearAlgebra.Vector<float>.Build.DenseOfArray(nodes |> Array.map phi)

        for _ in 1..k do
            u <- pm * u

        Array.fold2 (fun acc w v -> acc + w * v) 0.0 (interpRow nodes x0) (u.ToArray())

    /// E phi(X_T) for a diffusion model at T = floor(T/eta) eta (the same grid time as SGD): GradientFlow, Sme(1, _),
    /// and Sme(2, _) / Smf 2 (one-point laws coincide with the SMF's, spec 3.2).
    [<CompiledName("Model")>]
    let model
        (degree: int)
        (radius: float)
        (p: Problem1D)
        (m: SdeModel)
        (eta: float)
        (horizon: float)
        (x0: float)
        (phi: float -> float)
        =
        let nodes, d = cheb degree radius
        let nn = nodes.Length
        let n = float p.Samples

        let order, noise =
            match m with
            | GradientFlow -> 1, false
            | Sme(o, _) -> o, true
            | Smf o -> o, true
            | SmfPerBlock(o, _) -> o, true

        let drift x =
            let g = (Seq.sum (seq { for i in 0 .. p.Samples - 1 -> p.Derivative i x })) / n

            if order = 2 then
                let h = (Seq.sum (seq { for i in 0 .. p.Samples - 1 -> p.Curvature i x })) / n
                -g - 0.5 * eta * h * g
            else
                -g

        let sigma x =
            let g = (Seq.sum (seq { for i in 0 .. p.Samples - 1 -> p.Derivative i x })) / n

            (Seq.sum (seq { for i in 0 .. p.Samples - 1 -> let gi = g - p.Derivative i x in gi * gi }))
            / n

        let dM = Linalg.ofArray2D d
        let d2 = dM * dM
        let t = float (Steps.count "horizon" horizon "eta" eta) * eta

        let l =
            Array2D.init nn nn (fun i j ->
                let x = nodes[i]
                let cut = 1.0 - (x / radius) ** 40.0
                let diff = if noise then 0.5 * eta * sigma x * cut else 0.0
                t * (drift x * d[i, j] + diff * d2[i, j]))

        let e = Linalg.expm l

        let u =
            Array.init nn (fun i -> Seq.sum (seq { for j in 0 .. nn - 1 -> e[i, j] * phi nodes[j] }))

        Array.fold2 (fun acc w v -> acc + w * v) 0.0 (interpRow nodes x0) u

    /// The V1 fixture: n = 3, f_i = log(1 + e^{-c_i x}) + lambda_i x^2/2, c = (2, -1, 0.7), lambda = (0.3, 1, 0.2).
    [<CompiledName("LogisticFixture")>]
    let logisticFixture =
        let c = [| 2.0; -1.0; 0.7 |]
        let l = [| 0.3; 1.0; 0.2 |]
        let sigmoid z = 1.0 / (1.0 + exp (-z))

        {
            Samples = 3
            Derivative = fun i x -> -c[i] * sigmoid (-c[i] * x) + l[i] * x
            Curvature = fun i x -> let s = sigmoid (c[i] * x) in c[i] * c[i] * s * (1.0 - s) + l[i]
        }
