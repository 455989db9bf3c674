namespace StatPhysFs

open System
open MathNet.Numerics.LinearAlgebra

/// Small dense linear algebra over MathNet.Numerics, in the shapes the Gaussian toolbox needs.
[<RequireQualifiedAccess>]
module Linalg =
    let ofArray2D (a: float[,]) = Matrix<float>.Build.DenseOfArray a

    let checkSymmetric (name: string) (c: float[,]) =
        let n = Array2D.length1 c
        Check.that name (n = Array2D.length2 c && n >= 1) ($"%s{name} must be a non-empty square matrix.")
        let scale = Seq.max (seq { for i in 0 .. n - 1 -> abs c[i, i] }) |> max 1.0

        for i in 0 .. n - 1 do
            for j in 0 .. n - 1 do
                Check.finite ($"%s{name}[%d{i},%d{j}]") c[i, j]

                if abs (c[i, j] - c[j, i]) > 1e-10 * scale then
                    Check.that
                        name
                        false
                        ($"%s{name} must be symmetric: entry [%d{i},%d{j}] = %g{c[i, j]} but [%d{j},%d{i}] = %g{c[j, i]}.")

    /// Cholesky factor, or None when C is not numerically positive definite (a tiny pivot counts as failure,
    /// because the factor of a nearly singular C is inaccurate).
    let private tryCholesky (c: float[,]) =
        let n = Array2D.length1 c

        try
            let l = (ofArray2D c).Cholesky().Factor.ToArray()

            if
                Seq.forall
                    (fun i -> Double.IsFinite l[i, i] && l[i, i] > 1e-7 * sqrt (abs c[i, i] + 1e-300))
                    [ 0 .. n - 1 ]
            then
                Some l
            else
                None
        with _ ->
            None

    /// Eigen-decomposition of a symmetric matrix: eigenvalues and the factor V sqrt(max(Lambda, 0)).
    let private eigenFactor (c: float[,]) =
        let n = Array2D.length1 c
        let evd = (ofArray2D c).Evd(Symmetricity.Symmetric)
        let lam = evd.EigenValues |> Seq.map (fun z -> z.Real) |> Array.ofSeq
        let v = evd.EigenVectors
        lam, Array2D.init n n (fun i j -> v[i, j] * sqrt (max lam[j] 0.0))

    /// A factor L with L L^T = C for a symmetric positive semi-definite C. Cholesky when C is positive definite,
    /// otherwise V sqrt(max(Lambda, 0)) from the eigen-decomposition, so singular covariances (u = v, a frozen
    /// field) are handled exactly. Eigenvalues below -1e-10 * max|Lambda| are rejected as not PSD.
    let psdFactor (name: string) (c: float[,]) : float[,] =
        checkSymmetric name c

        match tryCholesky c with
        | Some l -> l
        | None ->
            let lam, l = eigenFactor c
            let top = lam |> Array.map abs |> Array.max |> max 1e-300

            match lam |> Array.tryFind (fun x -> x < -1e-10 * top) with
            | Some bad ->
                Check.that name false ($"%s{name} must be positive semi-definite; it has eigenvalue %g{bad}.")
                l
            | None -> l

    /// Checks that C is symmetric positive semi-definite, as `psdFactor` does, without building a factor: a plain
    /// Cholesky pass decides the positive definite case (the usual one), so a validation does not pay for loading
    /// and compiling the MathNet factorisations (~0.15 s of a cold process); anything else goes to `psdFactor`
    /// (same criterion, same messages).
    let checkPsd (name: string) (c: float[,]) =
        checkSymmetric name c
        let n = Array2D.length1 c
        let l = Array2D.zeroCreate n n
        let mutable definite = true
        let mutable j = 0

        while definite && j < n do
            let mutable d = c[j, j]

            for k in 0 .. j - 1 do
                d <- d - l[j, k] * l[j, k]

            // The pivot test of tryCholesky (a tiny pivot counts as failure).
            if not (d > 0.0) || not (sqrt d > 1e-7 * sqrt (abs c[j, j] + 1e-300)) then
                definite <- false
            else
                let ljj = sqrt d
                l[j, j] <- ljj

                for i in j + 1 .. n - 1 do
                    let mutable s = c[i, j]

                    for k in 0 .. j - 1 do
                        s <- s - l[i, k] * l[j, k]

                    l[i, j] <- s / ljj

                j <- j + 1

        if not definite then
            psdFactor name c |> ignore

    /// A factor of the nearest PSD matrix (negative eigenvalues set to zero), never throwing. For right-hand sides:
    /// an integrator's trial stage can leave the PSD cone by roundoff, and the closed forms clip the same way
    /// (asin arguments, square roots), as the spec asks.
    let psdFactorClipped (c: float[,]) : float[,] =
        match tryCholesky c with
        | Some l -> l
        | None -> snd (eigenFactor c)

    /// Maximum real part of the eigenvalues of a square matrix.
    let maxRealEigenvalue (a: float[,]) =
        (ofArray2D a).Evd().EigenValues |> Seq.map (fun z -> z.Real) |> Seq.max

    /// The matrix exponential e^A by scaling and squaring with an 18-term Taylor series on A/2^s, |A/2^s|_1 <= 1/4
    /// (truncation ~1e-28 relative; the squarings dominate the rounding error). For the small generators of moment
    /// ODEs (dimension up to a few hundred).
    [<CompiledName("Expm")>]
    let expm (a: float[,]) =
        let m = ofArray2D a
        let norm = m.L1Norm()

        let s =
            if norm <= 0.25 then
                0
            else
                int (Math.Ceiling(Math.Log2(norm / 0.25)))

        let b = m / Math.Pow(2.0, float s)
        let id = Matrix<float>.Build.DenseIdentity(m.RowCount)
        let mutable term = id
        let mutable sum = id

        for k in 1..18 do
            term <- term * b / float k
            sum <- sum + term

        for _ in 1..s do
            sum <- sum * sum

        sum.ToArray()
