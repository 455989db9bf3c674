namespace StatPhysFs.Dmft

open System
open StatPhysFs

/// Small dense row-major matrix kernels on flat arrays with offsets (m, m* <= 16, so plain loops win).
module internal Small =
    /// c[co..] += alpha * A (r x n) * B (n x s), or B^T when transB (B stored s x n).
    let inline mulAdd
        (alpha: float)
        (a: float[])
        (ao: int)
        (b: float[])
        (bo: int)
        (transB: bool)
        (c: float[])
        (co: int)
        (r: int)
        (n: int)
        (s: int)
        =
        for i in 0 .. r - 1 do
            for j in 0 .. s - 1 do
                let mutable acc = 0.0

                for p in 0 .. n - 1 do
                    let bv = if transB then b[bo + j * n + p] else b[bo + p * s + j]
                    acc <- acc + a[ao + i * n + p] * bv

                c[co + i * s + j] <- c[co + i * s + j] + alpha * acc

/// The column (parameter-coordinate) side of the discrete DMFT for ridge, in closed recursions (dmft-sgf.md
/// section 3.2), with the kernels R_g(k,l), mu_k, Sigma_u(k,l) it consumes. All two-time arrays are dense
/// (K+1) x (K+1) blocks of m x m, indexed [(k (K+1) + l) m^2 + a m + b]. The kernels (O(K^2) memory, 256 MB at
/// K = 2000 with m = 2) are set up under `ct`: a cancellation during their allocation stops it within 1 MB of zeroing.
type internal Columns(p: DmftProblem, ct: Threading.CancellationToken) =
    let m, ms = DmftProblem.widths p
    let n = p.Steps + 1
    let mm = m * m
    let c = Cancellable.zeroed ct (n * n * mm)
    let r = Cancellable.zeroed ct (n * n * mm)
    let mOver = Cancellable.zeroed ct (n * m * ms)
    let rg = Cancellable.zeroed ct (n * n * mm)
    let mu = Cancellable.zeroed ct (n * m * ms)
    let su = Cancellable.zeroed ct (n * n * mm)
    let rho = Array.init (ms * ms) (fun i -> p.Rho[i / ms, i % ms])

    let rhoInv =
        let inv =
            MathNet.Numerics.LinearAlgebra.Matrix<float>.Build.DenseOfArray(p.Rho).Inverse()

        Array.init (ms * ms) (fun i -> inv[i / ms, i % ms])

    let setInitial () =
        for a in 0 .. m - 1 do
            for b in 0 .. m - 1 do
                c[a * m + b] <- p.Q0[a, b]

    let reset () =
        Array.Clear c
        Array.Clear r
        Array.Clear mOver
        setInitial ()

    // The arrays are already zero: clearing them again would touch every page of the O(K^2) kernels a second time.
    do setInitial ()

    member _.Width = m
    member _.TeacherWidth = ms
    member _.Points = n
    member _.C = c
    member _.R = r
    member _.M = mOver
    member _.Rg = rg
    member _.Mu = mu
    member _.Su = su
    member _.Rho = rho
    member _.RhoInv = rhoInv
    member _.Index (k: int) (l: int) = (k * n + l) * mm
    member _.Reset() = reset ()

    /// Advance the column quantities from step k to k + 1 with the kernels of row k.
    member this.Advance(k: int) =
        if m = 1 && ms = 1 then
            this.AdvanceScalar k
        else
            this.AdvanceBlock k

    /// The GLM case (m = m* = 1): the same recursions as AdvanceBlock, arranged so that every inner sum is a
    /// contiguous dot product or axpy (C and R rows), which the JIT vectorises: ~30x faster at 1000 steps.
    member private this.AdvanceScalar(k: int) =
        let dec = 1.0 - p.Dt * p.Ridge
        let k1 = k + 1
        let row i = i * n

        let dot (a: float[]) ao (b: float[]) bo len =
            Blas.dot (ReadOnlySpan(a, ao, len)) (ReadOnlySpan(b, bo, len))
        // R(k+1, j) = dec R(k, j) - sum_{i=j+1}^{k} R_g(k, i) R(i, j): row-wise axpys over i.
        let r1 = row k1

        for j in 0 .. k - 1 do
            r[r1 + j] <- dec * r[row k + j]

        for i in 1..k do
            Blas.axpby -rg[row k + i] (ReadOnlySpan(r, row i, i)) 1.0 (Span(r, r1, i))

        r[r1 + k] <- 1.0
        mOver[k1] <- dec * mOver[k] - dot rg (row k) mOver 0 (k + 1) - mu[k] * rho[0]
        // C(k+1, i) = dec C(k, i) - sum_j R_g(k, j) C(i, j) - mu_k M(i) + sum_{j<i} Sigma_u(k, j) R(i, j).
        for i in 0..k1 do
            let v =
                dec * c[row k + i] - dot rg (row k) c (row i) (k + 1) - mu[k] * mOver[i]
                + dot su (row k) r (row i) i

            c[row k1 + i] <- v
            c[row i + k1] <- v

    member private this.AdvanceBlock(k: int) =
        let ix = this.Index
        let dec = 1.0 - p.Dt * p.Ridge
        let k1 = k + 1
        // R(k+1, k) = I; R(k+1, j) = dec R(k, j) - sum_{i=j+1}^{k} R_g(k, i) R(i, j).
        for a in 0 .. m - 1 do
            r[ix k1 k + a * m + a] <- 1.0

        for j in 0 .. k - 1 do
            let o = ix k1 j

            for e in 0 .. mm - 1 do
                r[o + e] <- dec * r[ix k j + e]

            for i in j + 1 .. k do
                Small.mulAdd -1.0 rg (ix k i) r (ix i j) false r o m m m
        // M(k+1) = dec M(k) - sum_{j<=k} R_g(k, j) M(j) - mu_k rho.
        let mo = k1 * m * ms

        for e in 0 .. m * ms - 1 do
            mOver[mo + e] <- dec * mOver[k * m * ms + e]

        for j in 0..k do
            Small.mulAdd -1.0 rg (ix k j) mOver (j * m * ms) false mOver mo m m ms

        Small.mulAdd -1.0 mu (k * m * ms) rho 0 false mOver mo m ms ms
        // C(k+1, i) for i <= k + 1; C(j, k+1) = C(k+1, j)^T is filled as soon as it is known.
        for i in 0..k1 do
            let o = ix k1 i

            for e in 0 .. mm - 1 do
                c[o + e] <- dec * c[ix k i + e]

            for j in 0..k do
                Small.mulAdd -1.0 rg (ix k j) c (ix j i) false c o m m m
            // - mu_k M(i)^T
            Small.mulAdd -1.0 mu (k * m * ms) mOver (i * m * ms) true c o m ms m
            // + sum_{j<i} Sigma_u(k, j) R(i, j)^T
            for j in 0 .. i - 1 do
                Small.mulAdd 1.0 su (ix k j) r (ix i j) true c o m m m

            if i = k1 then
                // Monte Carlo kernels leave C(k+1,k+1) asymmetric at the noise level; it is a covariance.
                for a in 0 .. m - 1 do
                    for b in a + 1 .. m - 1 do
                        let s = 0.5 * (c[o + a * m + b] + c[o + b * m + a])
                        c[o + a * m + b] <- s
                        c[o + b * m + a] <- s
            else
                let t = ix i k1

                for a in 0 .. m - 1 do
                    for b in 0 .. m - 1 do
                        c[t + b * m + a] <- c[o + a * m + b]

    /// mu_k = (Delta E[l w*^T] - sum_{l<=k} R_g(k,l) M(l)) rho^{-1}, given lwStar = E[l w*^T] (m x m*).
    member this.SetMu(k: int, lwStar: float[]) =
        let tmp = Array.zeroCreate (m * ms)

        for e in 0 .. m * ms - 1 do
            tmp[e] <- p.Dt * lwStar[e]

        for l in 0..k do
            Small.mulAdd -1.0 rg (this.Index k l) mOver (l * m * ms) false tmp 0 m m ms

        Array.Clear(mu, k * m * ms, m * ms)
        Small.mulAdd 1.0 tmp 0 rhoInv 0 false mu (k * m * ms) m ms ms

    /// Largest |C(k,k)_aa| (divergence check).
    member this.DiagonalSize(k: int) =
        let o = this.Index k k
        let mutable s = 0.0

        for a in 0 .. m - 1 do
            let v = c[o + a * m + a]

            s <-
                if Double.IsFinite v then
                    max s (abs v)
                else
                    Double.PositiveInfinity

        s

    /// Q(k) = C(k,k) and M(k) as 2-D arrays.
    member this.QAt(k: int) =
        let o = this.Index k k
        Array2D.init m m (fun a b -> c[o + a * m + b])

    member _.MAt(k: int) =
        Array2D.init m ms (fun a b -> mOver[k * m * ms + a * ms + b])

/// Incremental Cholesky of the covariance of G = (w*, w_0, w_1, ...), one block row per step, accepting zero pivots
/// (theta_0 = 0 makes w_0 = 0) and clipping the tiny negative pivots that Monte Carlo noise in C can produce.
type internal GaussianPath(columns: Columns, ct: Threading.CancellationToken) =
    let m = columns.Width
    let ms = columns.TeacherWidth
    let dim = ms + m * columns.Points
    let l = Cancellable.zeroed ct (dim * dim)

    let cov (i: int) (j: int) =
        // i >= j in the global ordering.
        if i < ms then
            columns.Rho[i * ms + j]
        elif j < ms then
            let k, a = (i - ms) / m, (i - ms) % m
            columns.M[k * m * ms + a * ms + j]
        else
            let k, a = (i - ms) / m, (i - ms) % m
            let q, b = (j - ms) / m, (j - ms) % m
            columns.C[columns.Index k q + a * m + b]

    let addRow (i: int) =
        for j in 0..i do
            let mutable s = cov i j

            for p in 0 .. j - 1 do
                s <- s - l[i * dim + p] * l[j * dim + p]

            if j < i then
                let d = l[j * dim + j]
                l[i * dim + j] <- if d > 0.0 then s / d else 0.0
            else
                let scale = max (abs (cov i i)) 1e-300
                l[i * dim + i] <- if s > 1e-12 * scale then sqrt s else 0.0

    member _.Dimension = dim
    member _.Factor = l

    member _.AddTeacher() =
        for i in 0 .. ms - 1 do
            addRow i

    /// Add the rows of w_k (needs C(k, 0..k) and M(k)).
    member _.AddStep(k: int) =
        for a in 0 .. m - 1 do
            addRow (ms + k * m + a)

    member this.Rebuild() =
        Array.Clear l
        this.AddTeacher()

        for k in 0 .. columns.Points - 1 do
            this.AddStep k
