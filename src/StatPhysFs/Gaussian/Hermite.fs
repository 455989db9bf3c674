namespace StatPhysFs.Gaussian

open System
open StatPhysFs

/// A one-dimensional quadrature rule for E[f(Z)], Z ~ N(0, 1): E[f(Z)] ~ sum_i Weights[i] * f(Nodes[i]).
/// Weights sum to one (probabilists' normalisation, not the physicists' weight e^{-x^2}).
type Rule1D = { Nodes: float[]; Weights: float[] }

/// Gauss-Hermite rules for the standard normal weight.
[<RequireQualifiedAccess>]
module GaussHermite =
    /// Orthonormal probabilists' Hermite values p_{n-1}(x), p_n(x), each scaled by e^{-x^2/4} so that the
    /// recurrence neither overflows nor underflows for orders in the hundreds.
    let private scaledPair (n: int) (x: float) =
        let mutable pPrev = 0.0
        let mutable p = exp (-x * x / 4.0)

        for k in 0 .. n - 1 do
            let next = (x * p - sqrt (float k) * pPrev) / sqrt (float (k + 1))
            pPrev <- p
            p <- next

        pPrev, p

    /// The n-point Gauss-Hermite rule, exact for polynomials of degree <= 2n-1.
    /// Golub-Welsch (eigenvalues of the Jacobi matrix) gives the nodes; one to three Newton steps on the orthonormal
    /// polynomial polish them, and the weights come from the Christoffel-Darboux identity
    /// w_i = 1 / (n p_{n-1}(x_i)^2), which keeps full relative accuracy for the tiny tail weights that the
    /// eigenvector formula loses.
    [<CompiledName("Rule")>]
    let rule (n: int) : Rule1D =
        Check.intInRange "order" 1 2000 n

        if n = 1 then
            {
                Nodes = [| 0.0 |]
                Weights = [| 1.0 |]
            }
        else
            let jac = Array2D.zeroCreate n n

            for k in 1 .. n - 1 do
                jac[k, k - 1] <- sqrt (float k)
                jac[k - 1, k] <- sqrt (float k)

            let evd =
                (Linalg.ofArray2D jac).Evd(MathNet.Numerics.LinearAlgebra.Symmetricity.Symmetric)

            let x = evd.EigenValues |> Seq.map (fun z -> z.Real) |> Array.ofSeq |> Array.sort
            // Exact symmetry about zero: average each node with its mirror before polishing.
            for i in 0 .. n / 2 - 1 do
                let a = 0.5 * (x[n - 1 - i] - x[i])
                x[i] <- -a
                x[n - 1 - i] <- a

            if n % 2 = 1 then
                x[n / 2] <- 0.0

            let w = Array.zeroCreate n

            for i in 0 .. n - 1 do
                let mutable xi = x[i]

                for _ in 1..3 do
                    let pm, p = scaledPair n xi
                    // p_n' = sqrt(n) p_{n-1}; the e^{-x^2/4} scale cancels in the ratio.
                    if pm <> 0.0 then
                        xi <- xi - p / (sqrt (float n) * pm)

                x[i] <- xi
                let pm, _ = scaledPair n xi
                w[i] <- exp (-xi * xi / 2.0) / (float n * pm * pm)

            // Restore exact mirror symmetry after polishing.
            for i in 0 .. n / 2 - 1 do
                let a = 0.5 * (x[n - 1 - i] - x[i])
                let b = 0.5 * (w[i] + w[n - 1 - i])
                x[i] <- -a
                x[n - 1 - i] <- a
                w[i] <- b
                w[n - 1 - i] <- b

            if n % 2 = 1 then
                x[n / 2] <- 0.0

            { Nodes = x; Weights = w }

    /// E[f(Z)] for Z ~ N(0, 1) with the n-point rule.
    [<CompiledName("Expect")>]
    let expect (n: int) (f: float -> float) =
        let r = rule n
        let mutable s = 0.0

        for i in 0 .. n - 1 do
            s <- s + r.Weights[i] * f r.Nodes[i]

        s
