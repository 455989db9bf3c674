namespace StatPhysFs.Dmft

open System
open System.Numerics
open System.Runtime.CompilerServices
open System.Runtime.InteropServices
open System.Runtime.Intrinsics
open StatPhysFs

/// Sums of one row of kernels over samples: sum J D(k,l), sum l w*^T, sum g_k g_l^T, sum of losses.
type internal RowSums(points: int, m: int, ms: int) =
    member val Rg = Array.zeroCreate<float>(points * m * m)
    member val LwStar = Array.zeroCreate<float>(m * ms)
    member val Su = Array.zeroCreate<float>(points * m * m)
    member val Loss = 0.0 with get, set
    member val Count = 0 with get, set

    member s.Clear() =
        Array.Clear s.Rg
        Array.Clear s.LwStar
        Array.Clear s.Su
        s.Loss <- 0.0
        s.Count <- 0

    member s.AddTo(o: RowSums) =
        for i in 0 .. s.Rg.Length - 1 do
            o.Rg[i] <- o.Rg[i] + s.Rg[i]
            o.Su[i] <- o.Su[i] + s.Su[i]

        for i in 0 .. s.LwStar.Length - 1 do
            o.LwStar[i] <- o.LwStar[i] + s.LwStar[i]

        o.Loss <- o.Loss + s.Loss
        o.Count <- o.Count + s.Count

/// One chunk of row samples with its own random stream: Step k advances every sample to step k and leaves the sums
/// of row k in Sums.
type internal IRowChunk =
    abstract Sums: RowSums

    abstract Step:
        k: int * p: DmftProblem * model: RowModel * columns: Columns * path: GaussianPath * rt: float[] -> unit

/// A block of row-process samples with its own random stream: the Gaussian inputs Z, the label noise, the
/// gradient signals g_j, the noisy Jacobians g'_j and the pathwise responses D(k,l) = dr_k/dw_l (spec section 3.2).
///
/// D = L^{-1} with L(k,j) = delta_kj I + delta^{-1} R(k,j) g'_j (block lower triangular), and row k of the sums only
/// needs row k of D. With `storeResponses` every sample keeps all rows of D (N K^2 m^2 / 2 doubles: 2.6 GB at
/// 400 steps x 4000 samples) and row k is built from rows j < k. Without it (the default) row k is recomputed by
/// back substitution X_j = -delta^{-1} (sum_{i=j+1}^{k} X_i R(i,j)) g'_j from X_k = I: the same O(k^2 m^3) work per
/// sample and step, but only O(K m^2) memory per sample, and every inner loop is an axpy along a contiguous row of R.
/// The two differ by roundoff only (same random streams); the stored path is kept as the test oracle. For m = 1
/// without stored responses (every GLM) the sampler uses ScalarChunk instead: the same draws and estimator, laid
/// out along samples for SIMD.
type internal SampleChunk(size: int, points: int, m: int, ms: int, dim: int, rng: Rng, storeResponses: bool) =
    let mm = m * m
    let z = Array.init size (fun _ -> Array.zeroCreate<float> dim)
    let ws = Array.init size (fun _ -> Array.zeroCreate<float> ms)
    let y = Array.zeroCreate<float> size
    let g = Array.init size (fun _ -> Array.zeroCreate<float>(points * m))
    let gp = Array.init size (fun _ -> Array.zeroCreate<float>(points * mm))

    let d =
        if storeResponses then
            Array.init size (fun _ -> Array.zeroCreate<float>(points * (points + 1) / 2 * mm))
        else
            [||]

    let sums = RowSums(points, m, ms)
    // Scratch.
    let w = Array.zeroCreate<float> m
    let r = Array.zeroCreate<float> m
    let l = Array.zeroCreate<float> m
    let jac = Array.zeroCreate<float> mm
    let e = Array.zeroCreate<float>(points * mm)
    let acc = Array.zeroCreate<float>(points * mm)
    // Row k of D for the current sample (back-substitution mode).
    let x =
        if storeResponses then [||] else Array.zeroCreate<float>(points * mm)

    member _.Sums = sums

    /// The stored-responses row: D(k, l) = -delta^{-1} sum_{j=l}^{k-1} E_j D(j, l), E_j = R(k, j) g'_j, from the
    /// sample's rows j < k, then the sums J D(k, l) and g_k g_l^T.
    member private _.StoredRow(k: int, s: int, delta: float, columns: Columns, gs: float[], gps: float[]) =
        let tri = k * (k + 1) / 2
        // D(k, l) = -delta^{-1} sum_{j=l}^{k-1} E_j D(j, l) with E_j = R(k, j) g'_j; D(k, k) = I.
        let ds = d[s]

        if m = 1 then
            Array.Clear(acc, 0, k)

            for j in 0 .. k - 1 do
                let ej = columns.R[columns.Index k j] * gps[j]
                let tj = j * (j + 1) / 2
                Blas.axpby ej (ReadOnlySpan(ds, tj, j + 1)) 1.0 (Span(acc, 0, j + 1))

            for q in 0 .. k - 1 do
                ds[tri + q] <- -acc[q] / delta

            ds[tri + k] <- 1.0
        else
            for j in 0 .. k - 1 do
                Array.Clear(e, j * mm, mm)
                Small.mulAdd 1.0 columns.R (columns.Index k j) gps (j * mm) false e (j * mm) m m m

            Array.Clear(acc, 0, k * mm)

            for j in 0 .. k - 1 do
                let tj = j * (j + 1) / 2

                for q in 0..j do
                    Small.mulAdd 1.0 e (j * mm) ds ((tj + q) * mm) false acc (q * mm) m m m

            for q in 0 .. k - 1 do
                for e' in 0 .. mm - 1 do
                    ds[(tri + q) * mm + e'] <- -acc[q * mm + e'] / delta

            Array.Clear(ds, (tri + k) * mm, mm)

            for a in 0 .. m - 1 do
                ds[(tri + k) * mm + a * m + a] <- 1.0
        // Sums: J D(k, l), l w*^T, g_k g_l^T.
        for q in 0..k do
            Small.mulAdd 1.0 jac 0 ds ((tri + q) * mm) false sums.Rg (q * mm) m m m

            for a in 0 .. m - 1 do
                for b in 0 .. m - 1 do
                    sums.Su[q * mm + a * m + b] <- sums.Su[q * mm + a * m + b] + gs[k * m + a] * gs[q * m + b]

    /// Advance every sample of the chunk to step k given the column quantities and the Gaussian factor.
    member this.Step(k: int, p: DmftProblem, model: RowModel, columns: Columns, path: GaussianPath, rt: float[]) =
        sums.Clear()
        let lf = path.Factor
        let delta = p.Alpha
        let noise = sqrt (p.Tau * delta * p.Dt)
        let sigma = sqrt p.NoiseVar

        for s in 0 .. size - 1 do
            let zs = z[s]

            if k = 0 then
                for b in 0 .. ms - 1 do
                    zs[b] <- rng.NextNormal()

                for b in 0 .. ms - 1 do
                    let mutable v = 0.0

                    for q in 0..b do
                        v <- v + lf[b * dim + q] * zs[q]

                    ws[s][b] <- v

                y[s] <- model.Label ws[s] (sigma * rng.NextNormal())

            for a in 0 .. m - 1 do
                zs[ms + k * m + a] <- rng.NextNormal()

            let xi = rng.NextNormal()
            // w_k from the causal Cholesky rows.
            for a in 0 .. m - 1 do
                let row = ms + k * m + a
                w[a] <- Blas.dot (ReadOnlySpan(lf, row * dim, row + 1)) (ReadOnlySpan(zs, 0, row + 1))
            // r_k = w_k - delta^{-1} sum_{j<k} R(k, j) g_j  (the Onsager memory of this sample).
            Array.blit w 0 r 0 m
            let gs = g[s]

            for j in 0 .. k - 1 do
                let ro = columns.Index k j

                for a in 0 .. m - 1 do
                    let mutable v = 0.0

                    for b in 0 .. m - 1 do
                        v <- v + columns.R[ro + a * m + b] * gs[j * m + b]

                    r[a] <- r[a] - v / delta

            let loss = model.Eval r y[s] l jac
            let fac = p.Dt - noise * xi

            for a in 0 .. m - 1 do
                gs[k * m + a] <- l[a] * fac

            let gps = gp[s]

            for e' in 0 .. mm - 1 do
                gps[k * mm + e'] <- jac[e'] * fac

            if storeResponses then
                this.StoredRow(k, s, delta, columns, gs, gps)
            else
                Array.Clear(acc, 0, k * mm)

                for i = k downto 0 do
                    Array.Clear(x, i * mm, mm)

                    if i = k then
                        for a in 0 .. m - 1 do
                            x[i * mm + a * m + a] <- 1.0
                    else
                        Small.mulAdd (-1.0 / delta) acc (i * mm) gps (i * mm) false x (i * mm) m m m

                    for j in 0 .. i - 1 do
                        Small.mulAdd 1.0 x (i * mm) columns.R (columns.Index i j) false acc (j * mm) m m m

                for q in 0..k do
                    Small.mulAdd 1.0 jac 0 x (q * mm) false sums.Rg (q * mm) m m m

                    for a in 0 .. m - 1 do
                        for b in 0 .. m - 1 do
                            sums.Su[q * mm + a * m + b] <- sums.Su[q * mm + a * m + b] + gs[k * m + a] * gs[q * m + b]

            for a in 0 .. m - 1 do
                for b in 0 .. ms - 1 do
                    sums.LwStar[a * ms + b] <- sums.LwStar[a * ms + b] + l[a] * ws[s][b]

            sums.Loss <- sums.Loss + loss
            sums.Count <- sums.Count + 1

    interface IRowChunk with
        member _.Sums = sums

        member this.Step(k, p, model, columns, path, rt) =
            this.Step(k, p, model, columns, path, rt)

/// Vector kernels of ScalarChunk, along samples: unchecked loads on index ranges checked once per call, and enough
/// independent accumulators to cover the FMA latency. Vectors are System.Numerics.Vector<float> (the machine's
/// preferred width).
module internal ScalarKernels =
    let private outside () =
        invalidOp "ScalarKernels: an index range lies outside its array (a sampler bug)."

    /// Whether the back substitution runs in Vector512 (hardware that runs it, with Vector<float> narrower).
    let wide =
        Vector512.IsHardwareAccelerated && Vector<float>.Count = 4

    /// dst[dOff .. dOff + len) = sum_{q<rows} c[co + q] x[q xs .. q xs + len) for len a multiple of the vector width: a linear
    /// combination of rows, read in memory order when xs = len (each lane sums in q order).
    let combineRowsAt (c: float[]) (co: int) (rows: int) (x: float[]) (xs: int) (len: int) (dst: float[]) (dOff: int) =
        let vw = Vector<float>.Count

        if
            len % vw <> 0
            || dOff < 0
            || dOff + len > dst.Length
            || rows > 0 && (co < 0 || co + rows > c.Length || (rows - 1) * xs + len > x.Length)
        then
            outside ()

        Array.Clear(dst, dOff, len)
        let cr = &MemoryMarshal.GetArrayDataReference c
        let xr = &MemoryMarshal.GetArrayDataReference x
        let dr = &Unsafe.Add(&MemoryMarshal.GetArrayDataReference dst, dOff)
        let mutable q = 0

        while q + 1 < rows do
            let c0 = Vector<float>(Unsafe.Add(&cr, co + q))
            let c1 = Vector<float>(Unsafe.Add(&cr, co + q + 1))
            let o0 = q * xs
            let o1 = o0 + xs
            let mutable v = 0

            while v < len do
                let d = Vector.LoadUnsafe(&dr, unativeint v)
                let d = Vector.FusedMultiplyAdd(c0, Vector.LoadUnsafe(&xr, unativeint (o0 + v)), d)
                let d = Vector.FusedMultiplyAdd(c1, Vector.LoadUnsafe(&xr, unativeint (o1 + v)), d)
                Vector.StoreUnsafe(d, &dr, unativeint v)
                v <- v + vw

            q <- q + 2

        if q < rows then
            let c0 = Vector<float>(Unsafe.Add(&cr, co + q))
            let o0 = q * xs
            let mutable v = 0

            while v < len do
                let d = Vector.LoadUnsafe(&dr, unativeint v)
                let d = Vector.FusedMultiplyAdd(c0, Vector.LoadUnsafe(&xr, unativeint (o0 + v)), d)
                Vector.StoreUnsafe(d, &dr, unativeint v)
                v <- v + vw

    /// combineRowsAt into dst[0 .. len).
    let combineRows (c: float[]) (co: int) (rows: int) (x: float[]) (xs: int) (len: int) (dst: float[]) =
        combineRowsAt c co rows x xs len dst 0

    /// sum_{t<len} a[ao + t] b[bo + t] for len a multiple of 4 vector widths (four accumulators).
    let dot (a: float[]) (ao: int) (b: float[]) (bo: int) (len: int) =
        let vw = Vector<float>.Count

        if len % (4 * vw) <> 0 || ao < 0 || bo < 0 || ao + len > a.Length || bo + len > b.Length then
            outside ()

        let ar = &MemoryMarshal.GetArrayDataReference a
        let br = &MemoryMarshal.GetArrayDataReference b
        let mutable a0 = Vector<float>.Zero
        let mutable a1 = Vector<float>.Zero
        let mutable a2 = Vector<float>.Zero
        let mutable a3 = Vector<float>.Zero
        let mutable t = 0

        while t < len do
            let i = ao + t
            let j = bo + t
            a0 <- Vector.FusedMultiplyAdd(Vector.LoadUnsafe(&ar, unativeint i), Vector.LoadUnsafe(&br, unativeint j), a0)

            a1 <-
                Vector.FusedMultiplyAdd(
                    Vector.LoadUnsafe(&ar, unativeint (i + vw)),
                    Vector.LoadUnsafe(&br, unativeint (j + vw)),
                    a1
                )

            a2 <-
                Vector.FusedMultiplyAdd(
                    Vector.LoadUnsafe(&ar, unativeint (i + 2 * vw)),
                    Vector.LoadUnsafe(&br, unativeint (j + 2 * vw)),
                    a2
                )

            a3 <-
                Vector.FusedMultiplyAdd(
                    Vector.LoadUnsafe(&ar, unativeint (i + 3 * vw)),
                    Vector.LoadUnsafe(&br, unativeint (j + 3 * vw)),
                    a3
                )

            t <- t + 4 * vw

        Vector.Sum((a0 + a1) + (a2 + a3))

    /// Row k of the pathwise responses for one block of two vectors of samples (lanes = 2 vw, from lane b0 of rows
    /// of length `stride`): x_k = 1, x_j = h_j sum_{i=j+1}^{k} R(i, j) x_i with h_j = -g'_j / delta, into
    /// x[i lanes + lane]; and rg[l lanes + lane] += J_k x_l. rt = R^T (rt[j n + i] = R(i, j), contiguous in i).
    /// Four j per pass over i (x_j .. x_{j-3}): eight independent accumulators, each element of R^T loaded once per
    /// eight vector FMAs; the triangle i = j-2 .. j is added after the pass. All in one method, without calls, so
    /// that the accumulators stay in registers.
    let responses (k: int) (n: int) (rt: float[]) (h: float[]) (stride: int) (b0: int) (jk: float[]) (x: float[]) (rg: float[]) =
        let vw = Vector<float>.Count
        let lanes = 2 * vw

        if
            k < 0
            || k >= n
            || rt.Length < k * n + k + 1
            || b0 < 0
            || b0 + lanes > stride
            || h.Length < k * stride + stride
            || jk.Length < stride
            || x.Length < (k + 1) * lanes
            || rg.Length < (k + 1) * lanes
        then
            outside ()

        let rr = &MemoryMarshal.GetArrayDataReference rt
        let hr = &MemoryMarshal.GetArrayDataReference h
        let xr = &MemoryMarshal.GetArrayDataReference x
        let gr = &MemoryMarshal.GetArrayDataReference rg
        let j0 = Vector<float>(jk, b0)
        let j1 = Vector<float>(jk, b0 + vw)
        // x_k = 1: J_k enters R_g(k, k) as it is.
        let ok = k * lanes
        Vector.StoreUnsafe(Vector<float>.One, &xr, unativeint ok)
        Vector.StoreUnsafe(Vector<float>.One, &xr, unativeint (ok + vw))
        Vector.StoreUnsafe(Vector.LoadUnsafe(&gr, unativeint ok) + j0, &gr, unativeint ok)
        Vector.StoreUnsafe(Vector.LoadUnsafe(&gr, unativeint (ok + vw)) + j1, &gr, unativeint (ok + vw))
        let mutable j = k - 1

        while j >= 3 do
            let o0 = j * n
            let o1 = o0 - n
            let o2 = o1 - n
            let o3 = o2 - n
            let mutable a00 = Vector<float>.Zero
            let mutable a01 = Vector<float>.Zero
            let mutable a10 = Vector<float>.Zero
            let mutable a11 = Vector<float>.Zero
            let mutable a20 = Vector<float>.Zero
            let mutable a21 = Vector<float>.Zero
            let mutable a30 = Vector<float>.Zero
            let mutable a31 = Vector<float>.Zero
            let mutable i = j + 1

            while i <= k do
                let xa = Vector.LoadUnsafe(&xr, unativeint (i * lanes))
                let xb = Vector.LoadUnsafe(&xr, unativeint (i * lanes + vw))
                let c0 = Vector<float>(Unsafe.Add(&rr, o0 + i))
                a00 <- Vector.FusedMultiplyAdd(c0, xa, a00)
                a01 <- Vector.FusedMultiplyAdd(c0, xb, a01)
                let c1 = Vector<float>(Unsafe.Add(&rr, o1 + i))
                a10 <- Vector.FusedMultiplyAdd(c1, xa, a10)
                a11 <- Vector.FusedMultiplyAdd(c1, xb, a11)
                let c2 = Vector<float>(Unsafe.Add(&rr, o2 + i))
                a20 <- Vector.FusedMultiplyAdd(c2, xa, a20)
                a21 <- Vector.FusedMultiplyAdd(c2, xb, a21)
                let c3 = Vector<float>(Unsafe.Add(&rr, o3 + i))
                a30 <- Vector.FusedMultiplyAdd(c3, xa, a30)
                a31 <- Vector.FusedMultiplyAdd(c3, xb, a31)
                i <- i + 1
            // x_j, then its terms in the sums of j-1, j-2, j-3; and so on down the triangle.
            let hj = j * stride + b0
            let x0a = a00 * Vector.LoadUnsafe(&hr, unativeint hj)
            let x0b = a01 * Vector.LoadUnsafe(&hr, unativeint (hj + vw))
            let c = Vector<float>(Unsafe.Add(&rr, o1 + j))
            let a10 = Vector.FusedMultiplyAdd(c, x0a, a10)
            let a11 = Vector.FusedMultiplyAdd(c, x0b, a11)
            let c = Vector<float>(Unsafe.Add(&rr, o2 + j))
            let a20 = Vector.FusedMultiplyAdd(c, x0a, a20)
            let a21 = Vector.FusedMultiplyAdd(c, x0b, a21)
            let c = Vector<float>(Unsafe.Add(&rr, o3 + j))
            let a30 = Vector.FusedMultiplyAdd(c, x0a, a30)
            let a31 = Vector.FusedMultiplyAdd(c, x0b, a31)
            let hj = hj - stride
            let x1a = a10 * Vector.LoadUnsafe(&hr, unativeint hj)
            let x1b = a11 * Vector.LoadUnsafe(&hr, unativeint (hj + vw))
            let c = Vector<float>(Unsafe.Add(&rr, o2 + j - 1))
            let a20 = Vector.FusedMultiplyAdd(c, x1a, a20)
            let a21 = Vector.FusedMultiplyAdd(c, x1b, a21)
            let c = Vector<float>(Unsafe.Add(&rr, o3 + j - 1))
            let a30 = Vector.FusedMultiplyAdd(c, x1a, a30)
            let a31 = Vector.FusedMultiplyAdd(c, x1b, a31)
            let hj = hj - stride
            let x2a = a20 * Vector.LoadUnsafe(&hr, unativeint hj)
            let x2b = a21 * Vector.LoadUnsafe(&hr, unativeint (hj + vw))
            let c = Vector<float>(Unsafe.Add(&rr, o3 + j - 2))
            let a30 = Vector.FusedMultiplyAdd(c, x2a, a30)
            let a31 = Vector.FusedMultiplyAdd(c, x2b, a31)
            let hj = hj - stride
            let x3a = a30 * Vector.LoadUnsafe(&hr, unativeint hj)
            let x3b = a31 * Vector.LoadUnsafe(&hr, unativeint (hj + vw))
            // Store x_j .. x_{j-3} and add J_k x to the R_g sums.
            let o = j * lanes
            Vector.StoreUnsafe(x0a, &xr, unativeint o)
            Vector.StoreUnsafe(x0b, &xr, unativeint (o + vw))
            Vector.StoreUnsafe(Vector.FusedMultiplyAdd(j0, x0a, Vector.LoadUnsafe(&gr, unativeint o)), &gr, unativeint o)
            Vector.StoreUnsafe(Vector.FusedMultiplyAdd(j1, x0b, Vector.LoadUnsafe(&gr, unativeint (o + vw))), &gr, unativeint (o + vw))
            let o = o - lanes
            Vector.StoreUnsafe(x1a, &xr, unativeint o)
            Vector.StoreUnsafe(x1b, &xr, unativeint (o + vw))
            Vector.StoreUnsafe(Vector.FusedMultiplyAdd(j0, x1a, Vector.LoadUnsafe(&gr, unativeint o)), &gr, unativeint o)
            Vector.StoreUnsafe(Vector.FusedMultiplyAdd(j1, x1b, Vector.LoadUnsafe(&gr, unativeint (o + vw))), &gr, unativeint (o + vw))
            let o = o - lanes
            Vector.StoreUnsafe(x2a, &xr, unativeint o)
            Vector.StoreUnsafe(x2b, &xr, unativeint (o + vw))
            Vector.StoreUnsafe(Vector.FusedMultiplyAdd(j0, x2a, Vector.LoadUnsafe(&gr, unativeint o)), &gr, unativeint o)
            Vector.StoreUnsafe(Vector.FusedMultiplyAdd(j1, x2b, Vector.LoadUnsafe(&gr, unativeint (o + vw))), &gr, unativeint (o + vw))
            let o = o - lanes
            Vector.StoreUnsafe(x3a, &xr, unativeint o)
            Vector.StoreUnsafe(x3b, &xr, unativeint (o + vw))
            Vector.StoreUnsafe(Vector.FusedMultiplyAdd(j0, x3a, Vector.LoadUnsafe(&gr, unativeint o)), &gr, unativeint o)
            Vector.StoreUnsafe(Vector.FusedMultiplyAdd(j1, x3b, Vector.LoadUnsafe(&gr, unativeint (o + vw))), &gr, unativeint (o + vw))
            j <- j - 4

        while j >= 0 do
            let o0 = j * n
            let mutable a0 = Vector<float>.Zero
            let mutable a1 = Vector<float>.Zero
            let mutable i = j + 1

            while i <= k do
                let c0 = Vector<float>(Unsafe.Add(&rr, o0 + i))
                a0 <- Vector.FusedMultiplyAdd(c0, Vector.LoadUnsafe(&xr, unativeint (i * lanes)), a0)
                a1 <- Vector.FusedMultiplyAdd(c0, Vector.LoadUnsafe(&xr, unativeint (i * lanes + vw)), a1)
                i <- i + 1

            let hj = j * stride + b0
            let xa = a0 * Vector.LoadUnsafe(&hr, unativeint hj)
            let xb = a1 * Vector.LoadUnsafe(&hr, unativeint (hj + vw))
            let o = j * lanes
            Vector.StoreUnsafe(xa, &xr, unativeint o)
            Vector.StoreUnsafe(xb, &xr, unativeint (o + vw))
            Vector.StoreUnsafe(Vector.FusedMultiplyAdd(j0, xa, Vector.LoadUnsafe(&gr, unativeint o)), &gr, unativeint o)
            Vector.StoreUnsafe(Vector.FusedMultiplyAdd(j1, xb, Vector.LoadUnsafe(&gr, unativeint (o + vw))), &gr, unativeint (o + vw))
            j <- j - 1

    /// `responses` in Vector512 (where the hardware runs it and Vector<float> is narrower): blocks of 16 samples.
    /// The lanes run the same operations in the same order, and the R_g sums use the same 8 slots as `responses` at
    /// Vector256 width (slot t sums the samples s = t mod 8 in increasing order: rg[l 8 + t]), so the two give the
    /// same numbers bit for bit.
    let responses512 (k: int) (n: int) (rt: float[]) (h: float[]) (stride: int) (b0: int) (jk: float[]) (x: float[]) (rg: float[]) =
        let vw = Vector512<float>.Count
        let lanes = 2 * vw

        if
            k < 0
            || k >= n
            || rt.Length < k * n + k + 1
            || b0 < 0
            || b0 + lanes > stride
            || h.Length < k * stride + stride
            || jk.Length < stride
            || x.Length < (k + 1) * lanes
            || rg.Length < (k + 1) * vw
        then
            outside ()

        let rr = &MemoryMarshal.GetArrayDataReference rt
        let hr = &MemoryMarshal.GetArrayDataReference h
        let xr = &MemoryMarshal.GetArrayDataReference x
        let gr = &MemoryMarshal.GetArrayDataReference rg
        let jr = &MemoryMarshal.GetArrayDataReference jk
        let j0 = Vector512.LoadUnsafe(&jr, unativeint b0)
        let j1 = Vector512.LoadUnsafe(&jr, unativeint (b0 + vw))
        // x_k = 1: J_k enters R_g(k, k) as it is.
        let ok = k * lanes
        Vector512.StoreUnsafe(Vector512<float>.One, &xr, unativeint ok)
        Vector512.StoreUnsafe(Vector512<float>.One, &xr, unativeint (ok + vw))
        Vector512.StoreUnsafe((Vector512.LoadUnsafe(&gr, unativeint (k * vw)) + j0) + j1, &gr, unativeint (k * vw))
        let mutable j = k - 1

        while j >= 3 do
            let o0 = j * n
            let o1 = o0 - n
            let o2 = o1 - n
            let o3 = o2 - n
            let mutable a00 = Vector512<float>.Zero
            let mutable a01 = Vector512<float>.Zero
            let mutable a10 = Vector512<float>.Zero
            let mutable a11 = Vector512<float>.Zero
            let mutable a20 = Vector512<float>.Zero
            let mutable a21 = Vector512<float>.Zero
            let mutable a30 = Vector512<float>.Zero
            let mutable a31 = Vector512<float>.Zero
            let mutable i = j + 1

            while i <= k do
                let xa = Vector512.LoadUnsafe(&xr, unativeint (i * lanes))
                let xb = Vector512.LoadUnsafe(&xr, unativeint (i * lanes + vw))
                let c0 = Vector512.Create(Unsafe.Add(&rr, o0 + i))
                a00 <- Vector512.FusedMultiplyAdd(c0, xa, a00)
                a01 <- Vector512.FusedMultiplyAdd(c0, xb, a01)
                let c1 = Vector512.Create(Unsafe.Add(&rr, o1 + i))
                a10 <- Vector512.FusedMultiplyAdd(c1, xa, a10)
                a11 <- Vector512.FusedMultiplyAdd(c1, xb, a11)
                let c2 = Vector512.Create(Unsafe.Add(&rr, o2 + i))
                a20 <- Vector512.FusedMultiplyAdd(c2, xa, a20)
                a21 <- Vector512.FusedMultiplyAdd(c2, xb, a21)
                let c3 = Vector512.Create(Unsafe.Add(&rr, o3 + i))
                a30 <- Vector512.FusedMultiplyAdd(c3, xa, a30)
                a31 <- Vector512.FusedMultiplyAdd(c3, xb, a31)
                i <- i + 1
            // x_j, then its terms in the sums of j-1, j-2, j-3; and so on down the triangle.
            let hj = j * stride + b0
            let x0a = a00 * Vector512.LoadUnsafe(&hr, unativeint hj)
            let x0b = a01 * Vector512.LoadUnsafe(&hr, unativeint (hj + vw))
            let c = Vector512.Create(Unsafe.Add(&rr, o1 + j))
            let a10 = Vector512.FusedMultiplyAdd(c, x0a, a10)
            let a11 = Vector512.FusedMultiplyAdd(c, x0b, a11)
            let c = Vector512.Create(Unsafe.Add(&rr, o2 + j))
            let a20 = Vector512.FusedMultiplyAdd(c, x0a, a20)
            let a21 = Vector512.FusedMultiplyAdd(c, x0b, a21)
            let c = Vector512.Create(Unsafe.Add(&rr, o3 + j))
            let a30 = Vector512.FusedMultiplyAdd(c, x0a, a30)
            let a31 = Vector512.FusedMultiplyAdd(c, x0b, a31)
            let hj = hj - stride
            let x1a = a10 * Vector512.LoadUnsafe(&hr, unativeint hj)
            let x1b = a11 * Vector512.LoadUnsafe(&hr, unativeint (hj + vw))
            let c = Vector512.Create(Unsafe.Add(&rr, o2 + j - 1))
            let a20 = Vector512.FusedMultiplyAdd(c, x1a, a20)
            let a21 = Vector512.FusedMultiplyAdd(c, x1b, a21)
            let c = Vector512.Create(Unsafe.Add(&rr, o3 + j - 1))
            let a30 = Vector512.FusedMultiplyAdd(c, x1a, a30)
            let a31 = Vector512.FusedMultiplyAdd(c, x1b, a31)
            let hj = hj - stride
            let x2a = a20 * Vector512.LoadUnsafe(&hr, unativeint hj)
            let x2b = a21 * Vector512.LoadUnsafe(&hr, unativeint (hj + vw))
            let c = Vector512.Create(Unsafe.Add(&rr, o3 + j - 2))
            let a30 = Vector512.FusedMultiplyAdd(c, x2a, a30)
            let a31 = Vector512.FusedMultiplyAdd(c, x2b, a31)
            let hj = hj - stride
            let x3a = a30 * Vector512.LoadUnsafe(&hr, unativeint hj)
            let x3b = a31 * Vector512.LoadUnsafe(&hr, unativeint (hj + vw))
            // Store x_j .. x_{j-3} and add J_k x to the R_g sums.
            let o = j * lanes
            Vector512.StoreUnsafe(x0a, &xr, unativeint o)
            Vector512.StoreUnsafe(x0b, &xr, unativeint (o + vw))
            let q = o / 2
            Vector512.StoreUnsafe(Vector512.FusedMultiplyAdd(j1, x0b, Vector512.FusedMultiplyAdd(j0, x0a, Vector512.LoadUnsafe(&gr, unativeint q))), &gr, unativeint q)
            let o = o - lanes
            Vector512.StoreUnsafe(x1a, &xr, unativeint o)
            Vector512.StoreUnsafe(x1b, &xr, unativeint (o + vw))
            let q = o / 2
            Vector512.StoreUnsafe(Vector512.FusedMultiplyAdd(j1, x1b, Vector512.FusedMultiplyAdd(j0, x1a, Vector512.LoadUnsafe(&gr, unativeint q))), &gr, unativeint q)
            let o = o - lanes
            Vector512.StoreUnsafe(x2a, &xr, unativeint o)
            Vector512.StoreUnsafe(x2b, &xr, unativeint (o + vw))
            let q = o / 2
            Vector512.StoreUnsafe(Vector512.FusedMultiplyAdd(j1, x2b, Vector512.FusedMultiplyAdd(j0, x2a, Vector512.LoadUnsafe(&gr, unativeint q))), &gr, unativeint q)
            let o = o - lanes
            Vector512.StoreUnsafe(x3a, &xr, unativeint o)
            Vector512.StoreUnsafe(x3b, &xr, unativeint (o + vw))
            let q = o / 2
            Vector512.StoreUnsafe(Vector512.FusedMultiplyAdd(j1, x3b, Vector512.FusedMultiplyAdd(j0, x3a, Vector512.LoadUnsafe(&gr, unativeint q))), &gr, unativeint q)
            j <- j - 4

        while j >= 0 do
            let o0 = j * n
            let mutable a0 = Vector512<float>.Zero
            let mutable a1 = Vector512<float>.Zero
            let mutable i = j + 1

            while i <= k do
                let c0 = Vector512.Create(Unsafe.Add(&rr, o0 + i))
                a0 <- Vector512.FusedMultiplyAdd(c0, Vector512.LoadUnsafe(&xr, unativeint (i * lanes)), a0)
                a1 <- Vector512.FusedMultiplyAdd(c0, Vector512.LoadUnsafe(&xr, unativeint (i * lanes + vw)), a1)
                i <- i + 1

            let hj = j * stride + b0
            let xa = a0 * Vector512.LoadUnsafe(&hr, unativeint hj)
            let xb = a1 * Vector512.LoadUnsafe(&hr, unativeint (hj + vw))
            let o = j * lanes
            Vector512.StoreUnsafe(xa, &xr, unativeint o)
            Vector512.StoreUnsafe(xb, &xr, unativeint (o + vw))
            let q = o / 2
            Vector512.StoreUnsafe(Vector512.FusedMultiplyAdd(j1, xb, Vector512.FusedMultiplyAdd(j0, xa, Vector512.LoadUnsafe(&gr, unativeint q))), &gr, unativeint q)
            j <- j - 1


/// The m = 1 chunk (every GLM, the hot path): the same random draws, in the same order, and the same estimator as
/// SampleChunk's back substitution, stored sample-minor ([row * stride + sample], stride padded to four vectors) so
/// that every loop runs along samples in SIMD vectors (ScalarKernels) and nothing is allocated per sample or step:
/// - the field w_k = L_k . z and the Onsager memory sum_j R(k, j) g_j: linear combinations of rows, O(k);
/// - l, l' and the loss per sample (scalar: the model is a closure);
/// - row k of the responses, x_j = -delta^{-1} g'_j sum_{i=j+1}^{k} R(i, j) x_i from x_k = 1 (the O(k^2) part), for
///   a block of two vectors of samples at a time (ScalarKernels.responses), with R_g += J_k x folded in. Per step this
///   is (k^2 / 2) N multiply-adds: the O(N K^3) cost of the sweep.
/// Padding lanes stay zero (g = g' = J = 0), so they add nothing to the sums. Sums over samples are taken per lane
/// and then across lanes: the numbers differ from SampleChunk's by reassociation only.
type internal ScalarChunk(size: int, points: int, ms: int, dim: int, rng: Rng, wide: bool) =
    let vw = Vector<float>.Count
    // Samples per block of the back substitution, and the slots of its per-lane R_g sums.
    let lanes = if wide then 2 * Vector512<float>.Count else 2 * vw
    let slots = if wide then 8 else lanes
    let pad = max (4 * vw) lanes
    let stride = (size + pad - 1) / pad * pad
    let z = Array.zeroCreate<float>(dim * stride)
    let ws = Array.zeroCreate<float>(ms * stride)
    // Labels, SGD noises and losses, zero in the padding lanes (y = 0 gives l = l' = 0 there).
    let y = Array.zeroCreate<float> stride
    let xi = Array.zeroCreate<float> stride
    let losses = Array.zeroCreate<float> stride
    let g = Array.zeroCreate<float>(points * stride)
    // h_j = -g'_j / delta, the factor of x_j in the back substitution.
    let h = Array.zeroCreate<float>(points * stride)
    let r = Array.zeroCreate<float> stride
    let memory = Array.zeroCreate<float> stride
    let jk = Array.zeroCreate<float> stride
    // Row k of D for one block of samples, [i * lanes + lane], and the per-lane sums J_k x.
    let x = Array.zeroCreate<float>(points * lanes)
    let rgv = Array.zeroCreate<float>(points * slots)
    let sums = RowSums(points, 1, ms)
    let wsBuf = Array.zeroCreate<float> ms
    let rBuf = Array.zeroCreate<float> 1
    let lBuf = Array.zeroCreate<float> 1
    let jBuf = Array.zeroCreate<float> 1
    // l per sample (zero in the padding lanes).
    let ls = Array.zeroCreate<float> stride

    /// Doubles a chunk of `size` samples allocates (the arrays above; Dmft.sweepMemory adds them up).
    static member Doubles(size: int, points: int, ms: int, dim: int, wide: bool) =
        let vw = Vector<float>.Count
        let lanes = if wide then 2 * Vector512<float>.Count else 2 * vw
        let slots = if wide then 8 else lanes
        let pad = max (4 * vw) lanes
        let stride = (size + pad - 1) / pad * pad
        // z, w*, y, xi, losses, g, h, r, memory, J, l per padded sample; x, the R_g slots and the sums per chunk.
        float stride * float (dim + ms + 7 + 2 * points)
        + float points * float (lanes + slots + 2)
        + float (2 * ms + 3)

    member _.Sums = sums

    /// The step's normals in SampleChunk's order: per sample (at k = 0 the teacher inputs, then the label noise), the
    /// input of w_k, then the SGD noise xi.
    member private _.Draw(k: int, lf: float[], model: RowModel, sigma: float) =
        let zk = (ms + k) * stride

        for s in 0 .. size - 1 do
            if k = 0 then
                for b in 0 .. ms - 1 do
                    z[b * stride + s] <- rng.NextNormal()

                for b in 0 .. ms - 1 do
                    let mutable v = 0.0

                    for q in 0..b do
                        v <- v + lf[b * dim + q] * z[q * stride + s]

                    ws[b * stride + s] <- v
                    wsBuf[b] <- v

                y[s] <- model.Label wsBuf (sigma * rng.NextNormal())

            z[zk + s] <- rng.NextNormal()
            xi[s] <- rng.NextNormal()

    /// r_k = w_k - delta^{-1} sum_{j<k} R(k, j) g_j with w_k = sum_{q <= m*+k} L(m*+k, q) z_q (causal Cholesky row).
    member private _.Fields(k: int, lf: float[], rRow: float[], rOff: int, delta: float) =
        let row = ms + k
        ScalarKernels.combineRows lf (row * dim) (row + 1) z stride stride r
        ScalarKernels.combineRows rRow rOff k g stride stride memory
        let vdelta = Vector<float>(delta)
        let mutable v = 0

        while v < stride do
            (Vector<float>(r, v) - Vector<float>(memory, v) / vdelta).CopyTo(r, v)
            v <- v + vw

    /// g_k = l (dt - sqrt(tau delta dt) xi), h_k = -l' (same factor) / delta and J_k = l' from the per-sample l, l'
    /// (lv, jk) on every lane; then the sums of l w* and of the loss in sample order.
    member private _.Signals(k: int, p: DmftProblem, lv: float[]) =
        let noise = Vector<float>(sqrt (p.Tau * p.Alpha * p.Dt))
        let dt = Vector<float>(p.Dt)
        let delta = Vector<float>(p.Alpha)
        let gk = k * stride
        // The padding lanes must add nothing: l = l' = 0 there (the square loss's l' = 1 included).
        Array.Clear(lv, size, stride - size)
        Array.Clear(jk, size, stride - size)
        let mutable v = 0

        while v < stride do
            let fac = dt - noise * Vector<float>(xi, v)
            (Vector<float>(lv, v) * fac).CopyTo(g, gk + v)
            (-(Vector<float>(jk, v) * fac) / delta).CopyTo(h, gk + v)
            v <- v + vw

        let mutable loss = 0.0

        for s in 0 .. size - 1 do
            loss <- loss + losses[s]

            for b in 0 .. ms - 1 do
                sums.LwStar[b] <- sums.LwStar[b] + lv[s] * ws[b * stride + s]

        sums.Loss <- loss
        sums.Count <- size

    /// l, l' and the loss per sample, then the signals. The GLM logistic and square losses are evaluated in vectors
    /// along samples (the logistic's exp and log by Vector.Exp/Log, within an ulp or so of Math.Exp/Log: the numbers
    /// move at the roundoff level only); any other model through its closure, sample by sample.
    member private this.Derivatives(k: int, p: DmftProblem, model: RowModel) =
        match p.Model with
        | Glm(GlmLoss.Logistic, _) ->
            let one = Vector<float>.One
            let zero = Vector<float>.Zero
            let mutable v = 0

            while v < stride do
                let yv = Vector<float>(y, v)
                let z = yv * Vector<float>(r, v)
                // sigma(-z) = 1/(1 + e^z) and the loss from e = e^{-|z|}, finite for any z (as RowModel's logistic).
                let e = Vector.Exp(-Vector.Abs z)
                let t = one + e
                let positive = Vector.GreaterThan(z, zero)
                let sMinus = Vector.ConditionalSelect(positive, e / t, one / t)
                let logT = Vector.Log t
                (-yv * sMinus).CopyTo(ls, v)
                (yv * yv * sMinus * (one - sMinus)).CopyTo(jk, v)
                Vector.ConditionalSelect(positive, logT, -z + logT).CopyTo(losses, v)
                v <- v + vw

            this.Signals(k, p, ls)
        | Glm(GlmLoss.Square, _) ->
            let mutable v = 0

            while v < stride do
                let d = Vector<float>(r, v) - Vector<float>(y, v)
                d.CopyTo(ls, v)
                Vector<float>.One.CopyTo(jk, v)
                (d * d).CopyTo(losses, v)
                v <- v + vw

            this.Signals(k, p, ls)
        | _ ->
            for s in 0 .. size - 1 do
                rBuf[0] <- r[s]
                losses[s] <- model.Eval rBuf y[s] lBuf jBuf
                ls[s] <- lBuf[0]
                jk[s] <- jBuf[0]

            this.Signals(k, p, ls)

    /// Advance every sample of the chunk to step k (rt = R^T up to row k).
    member this.Step(k: int, p: DmftProblem, model: RowModel, columns: Columns, path: GaussianPath, rt: float[]) =
        sums.Clear()
        let lf = path.Factor
        this.Draw(k, lf, model, sqrt p.NoiseVar)
        this.Fields(k, lf, columns.R, columns.Index k 0, p.Alpha)
        this.Derivatives(k, p, model)
        // sum_s g_k g_l for l <= k.
        for l in 0..k do
            sums.Su[l] <- ScalarKernels.dot g (k * stride) g (l * stride) stride
        // Row k of the responses, block by block; R_g(k, l) = sum_s J_k x_l summed per lane, then across lanes.
        Array.Clear(rgv, 0, (k + 1) * slots)
        let mutable b0 = 0

        while b0 < stride do
            if wide then
                ScalarKernels.responses512 k points rt h stride b0 jk x rgv
            else
                ScalarKernels.responses k points rt h stride b0 jk x rgv

            b0 <- b0 + lanes

        for l in 0..k do
            let mutable s = 0.0

            for t in 0 .. slots - 1 do
                s <- s + rgv[l * slots + t]

            sums.Rg[l] <- s

    interface IRowChunk with
        member _.Sums = sums

        member this.Step(k, p, model, columns, path, rt) =
            this.Step(k, p, model, columns, path, rt)

/// Vector kernels of BlockChunk (m > 1), along samples, for one block of `lanes` = 2 vw samples. The block's row k of
/// the responses is kept as Y_l = J_k D(k, l) (m x m per sample, [(l m^2 + a m + c) lanes + lane]):
/// Y_k = J_k, Y_j = (sum_{i=j+1}^{k} Y_i R(i, j)) H_j with H_j = -g'_j / delta, the back substitution of SampleChunk
/// multiplied by J_k from the left, so that R_g(k, l) = Delta E[Y_l] needs no further product. The recursion
/// multiplies from the right only, so row a of Y_j depends on row a of the Y_i alone: the pull sums run row by row,
/// over groups of up to four columns, with the accumulators (two vectors per column) in registers.
module internal BlockKernels =
    let private outside () =
        invalidOp "BlockKernels: an index range lies outside its array (a sampler bug)."

    /// Checks of the pull kernels' index ranges (once per call).
    let private check j k n m a b0 width (rt: float[]) (y: float[]) (acc: float[]) lanes =
        let mm = m * m

        if
            j < 0
            || k <= j
            || k >= n
            || a < 0
            || a >= m
            || b0 < 0
            || b0 + width > m
            || rt.Length < (j * n + k) * mm + mm
            || y.Length < (k * mm + mm) * lanes
            || acc.Length < mm * lanes
        then
            outside ()

    /// acc[(a m + b0 + t) lanes + lane] = sum_{i=j+1}^{k} sum_{c<m} y[(i mm + a m + c) lanes + lane] rt[(j n + i) mm
    /// + c m + b0 + t] for t < 4 (rt = R^T in blocks: rt[(j n + i) mm + c m + b] = R(i, j)_cb). Each lane sums in
    /// (i, c) order.
    let pull4 (j: int) (k: int) (n: int) (m: int) (a: int) (b0: int) (rt: float[]) (y: float[]) (acc: float[]) =
        let vw = Vector<float>.Count
        let lanes = 2 * vw
        check j k n m a b0 4 rt y acc lanes
        let mm = m * m
        let rr = &MemoryMarshal.GetArrayDataReference rt
        let yr = &MemoryMarshal.GetArrayDataReference y
        let mutable a00 = Vector<float>.Zero
        let mutable a01 = Vector<float>.Zero
        let mutable a10 = Vector<float>.Zero
        let mutable a11 = Vector<float>.Zero
        let mutable a20 = Vector<float>.Zero
        let mutable a21 = Vector<float>.Zero
        let mutable a30 = Vector<float>.Zero
        let mutable a31 = Vector<float>.Zero
        let mutable i = j + 1

        while i <= k do
            let mutable yo = (i * mm + a * m) * lanes
            let mutable ro = (j * n + i) * mm + b0
            let ye = yo + m * lanes

            while yo < ye do
                let ya = Vector.LoadUnsafe(&yr, unativeint yo)
                let yb = Vector.LoadUnsafe(&yr, unativeint (yo + vw))
                let c0 = Vector<float>(Unsafe.Add(&rr, ro))
                a00 <- Vector.FusedMultiplyAdd(c0, ya, a00)
                a01 <- Vector.FusedMultiplyAdd(c0, yb, a01)
                let c1 = Vector<float>(Unsafe.Add(&rr, ro + 1))
                a10 <- Vector.FusedMultiplyAdd(c1, ya, a10)
                a11 <- Vector.FusedMultiplyAdd(c1, yb, a11)
                let c2 = Vector<float>(Unsafe.Add(&rr, ro + 2))
                a20 <- Vector.FusedMultiplyAdd(c2, ya, a20)
                a21 <- Vector.FusedMultiplyAdd(c2, yb, a21)
                let c3 = Vector<float>(Unsafe.Add(&rr, ro + 3))
                a30 <- Vector.FusedMultiplyAdd(c3, ya, a30)
                a31 <- Vector.FusedMultiplyAdd(c3, yb, a31)
                yo <- yo + lanes
                ro <- ro + m

            i <- i + 1

        let ar = &MemoryMarshal.GetArrayDataReference acc
        let o = (a * m + b0) * lanes
        Vector.StoreUnsafe(a00, &ar, unativeint o)
        Vector.StoreUnsafe(a01, &ar, unativeint (o + vw))
        Vector.StoreUnsafe(a10, &ar, unativeint (o + lanes))
        Vector.StoreUnsafe(a11, &ar, unativeint (o + lanes + vw))
        Vector.StoreUnsafe(a20, &ar, unativeint (o + 2 * lanes))
        Vector.StoreUnsafe(a21, &ar, unativeint (o + 2 * lanes + vw))
        Vector.StoreUnsafe(a30, &ar, unativeint (o + 3 * lanes))
        Vector.StoreUnsafe(a31, &ar, unativeint (o + 3 * lanes + vw))

    /// pull4 for two columns.
    let pull2 (j: int) (k: int) (n: int) (m: int) (a: int) (b0: int) (rt: float[]) (y: float[]) (acc: float[]) =
        let vw = Vector<float>.Count
        let lanes = 2 * vw
        check j k n m a b0 2 rt y acc lanes
        let mm = m * m
        let rr = &MemoryMarshal.GetArrayDataReference rt
        let yr = &MemoryMarshal.GetArrayDataReference y
        let mutable a00 = Vector<float>.Zero
        let mutable a01 = Vector<float>.Zero
        let mutable a10 = Vector<float>.Zero
        let mutable a11 = Vector<float>.Zero
        let mutable i = j + 1

        while i <= k do
            let mutable yo = (i * mm + a * m) * lanes
            let mutable ro = (j * n + i) * mm + b0
            let ye = yo + m * lanes

            while yo < ye do
                let ya = Vector.LoadUnsafe(&yr, unativeint yo)
                let yb = Vector.LoadUnsafe(&yr, unativeint (yo + vw))
                let c0 = Vector<float>(Unsafe.Add(&rr, ro))
                a00 <- Vector.FusedMultiplyAdd(c0, ya, a00)
                a01 <- Vector.FusedMultiplyAdd(c0, yb, a01)
                let c1 = Vector<float>(Unsafe.Add(&rr, ro + 1))
                a10 <- Vector.FusedMultiplyAdd(c1, ya, a10)
                a11 <- Vector.FusedMultiplyAdd(c1, yb, a11)
                yo <- yo + lanes
                ro <- ro + m

            i <- i + 1

        let ar = &MemoryMarshal.GetArrayDataReference acc
        let o = (a * m + b0) * lanes
        Vector.StoreUnsafe(a00, &ar, unativeint o)
        Vector.StoreUnsafe(a01, &ar, unativeint (o + vw))
        Vector.StoreUnsafe(a10, &ar, unativeint (o + lanes))
        Vector.StoreUnsafe(a11, &ar, unativeint (o + lanes + vw))

    /// pull4 for one column.
    let pull1 (j: int) (k: int) (n: int) (m: int) (a: int) (b0: int) (rt: float[]) (y: float[]) (acc: float[]) =
        let vw = Vector<float>.Count
        let lanes = 2 * vw
        check j k n m a b0 1 rt y acc lanes
        let mm = m * m
        let rr = &MemoryMarshal.GetArrayDataReference rt
        let yr = &MemoryMarshal.GetArrayDataReference y
        let mutable a00 = Vector<float>.Zero
        let mutable a01 = Vector<float>.Zero
        let mutable i = j + 1

        while i <= k do
            let mutable yo = (i * mm + a * m) * lanes
            let mutable ro = (j * n + i) * mm + b0
            let ye = yo + m * lanes

            while yo < ye do
                let c0 = Vector<float>(Unsafe.Add(&rr, ro))
                a00 <- Vector.FusedMultiplyAdd(c0, Vector.LoadUnsafe(&yr, unativeint yo), a00)
                a01 <- Vector.FusedMultiplyAdd(c0, Vector.LoadUnsafe(&yr, unativeint (yo + vw)), a01)
                yo <- yo + lanes
                ro <- ro + m

            i <- i + 1

        let ar = &MemoryMarshal.GetArrayDataReference acc
        let o = (a * m + b0) * lanes
        Vector.StoreUnsafe(a00, &ar, unativeint o)
        Vector.StoreUnsafe(a01, &ar, unativeint (o + vw))

    /// Y_j[a][b] = sum_{c<m} acc[(a m + c) lanes + lane] h[hb + (j mm + c m + b) lanes + lane] (c in order, from
    /// zero), stored at y[(j mm + a m + b) lanes + lane] and added to the per-lane sums rgv at the same place.
    let finish (j: int) (m: int) (acc: float[]) (h: float[]) (hb: int) (y: float[]) (rgv: float[]) =
        let vw = Vector<float>.Count
        let lanes = 2 * vw
        let mm = m * m

        if
            j < 0
            || hb < 0
            || acc.Length < mm * lanes
            || h.Length < hb + (j * mm + mm) * lanes
            || y.Length < (j * mm + mm) * lanes
            || rgv.Length < (j * mm + mm) * lanes
        then
            outside ()

        let ar = &MemoryMarshal.GetArrayDataReference acc
        let hr = &MemoryMarshal.GetArrayDataReference h
        let yr = &MemoryMarshal.GetArrayDataReference y
        let gr = &MemoryMarshal.GetArrayDataReference rgv
        let hj = hb + j * mm * lanes
        let mutable a = 0

        while a < m do
            let mutable b = 0
            // Columns in pairs (four independent accumulators, each A_ac loaded once per pair), then the last one.
            while b < m do
                let two = b + 1 < m
                let mutable v0 = Vector<float>.Zero
                let mutable v1 = Vector<float>.Zero
                let mutable w0 = Vector<float>.Zero
                let mutable w1 = Vector<float>.Zero
                let mutable c = 0

                while c < m do
                    let ao = (a * m + c) * lanes
                    let x0 = Vector.LoadUnsafe(&ar, unativeint ao)
                    let x1 = Vector.LoadUnsafe(&ar, unativeint (ao + vw))
                    let ho = hj + (c * m + b) * lanes
                    v0 <- Vector.FusedMultiplyAdd(x0, Vector.LoadUnsafe(&hr, unativeint ho), v0)
                    v1 <- Vector.FusedMultiplyAdd(x1, Vector.LoadUnsafe(&hr, unativeint (ho + vw)), v1)

                    if two then
                        w0 <- Vector.FusedMultiplyAdd(x0, Vector.LoadUnsafe(&hr, unativeint (ho + lanes)), w0)
                        w1 <- Vector.FusedMultiplyAdd(x1, Vector.LoadUnsafe(&hr, unativeint (ho + lanes + vw)), w1)

                    c <- c + 1

                let o = (j * mm + a * m + b) * lanes
                Vector.StoreUnsafe(v0, &yr, unativeint o)
                Vector.StoreUnsafe(v1, &yr, unativeint (o + vw))
                Vector.StoreUnsafe(Vector.LoadUnsafe(&gr, unativeint o) + v0, &gr, unativeint o)
                Vector.StoreUnsafe(Vector.LoadUnsafe(&gr, unativeint (o + vw)) + v1, &gr, unativeint (o + vw))

                if two then
                    let o = o + lanes
                    Vector.StoreUnsafe(w0, &yr, unativeint o)
                    Vector.StoreUnsafe(w1, &yr, unativeint (o + vw))
                    Vector.StoreUnsafe(Vector.LoadUnsafe(&gr, unativeint o) + w0, &gr, unativeint o)
                    Vector.StoreUnsafe(Vector.LoadUnsafe(&gr, unativeint (o + vw)) + w1, &gr, unativeint (o + vw))

                b <- b + 2

            a <- a + 1

    // The same kernels in Vector512 (blocks of 16 samples, per lane the same operations in the same order; the R_g
    // slots stay those of Vector<float>'s blocks of eight, so the numbers are the same bit for bit).

    /// acc[(a m + b0 + t) lanes + lane] = sum_{i=j+1}^{k} sum_{c<m} y[(i mm + a m + c) lanes + lane] rt[(j n + i) mm
    /// + c m + b0 + t] for t < 4 (rt = R^T in blocks: rt[(j n + i) mm + c m + b] = R(i, j)_cb). Each lane sums in
    /// (i, c) order.
    let pull4w (j: int) (k: int) (n: int) (m: int) (a: int) (b0: int) (rt: float[]) (y: float[]) (acc: float[]) =
        let vw = Vector512<float>.Count
        let lanes = 2 * vw
        check j k n m a b0 4 rt y acc lanes
        let mm = m * m
        let rr = &MemoryMarshal.GetArrayDataReference rt
        let yr = &MemoryMarshal.GetArrayDataReference y
        let mutable a00 = Vector512<float>.Zero
        let mutable a01 = Vector512<float>.Zero
        let mutable a10 = Vector512<float>.Zero
        let mutable a11 = Vector512<float>.Zero
        let mutable a20 = Vector512<float>.Zero
        let mutable a21 = Vector512<float>.Zero
        let mutable a30 = Vector512<float>.Zero
        let mutable a31 = Vector512<float>.Zero
        let mutable i = j + 1

        while i <= k do
            let mutable yo = (i * mm + a * m) * lanes
            let mutable ro = (j * n + i) * mm + b0
            let ye = yo + m * lanes

            while yo < ye do
                let ya = Vector512.LoadUnsafe(&yr, unativeint yo)
                let yb = Vector512.LoadUnsafe(&yr, unativeint (yo + vw))
                let c0 = Vector512.Create(Unsafe.Add(&rr, ro))
                a00 <- Vector512.FusedMultiplyAdd(c0, ya, a00)
                a01 <- Vector512.FusedMultiplyAdd(c0, yb, a01)
                let c1 = Vector512.Create(Unsafe.Add(&rr, ro + 1))
                a10 <- Vector512.FusedMultiplyAdd(c1, ya, a10)
                a11 <- Vector512.FusedMultiplyAdd(c1, yb, a11)
                let c2 = Vector512.Create(Unsafe.Add(&rr, ro + 2))
                a20 <- Vector512.FusedMultiplyAdd(c2, ya, a20)
                a21 <- Vector512.FusedMultiplyAdd(c2, yb, a21)
                let c3 = Vector512.Create(Unsafe.Add(&rr, ro + 3))
                a30 <- Vector512.FusedMultiplyAdd(c3, ya, a30)
                a31 <- Vector512.FusedMultiplyAdd(c3, yb, a31)
                yo <- yo + lanes
                ro <- ro + m

            i <- i + 1

        let ar = &MemoryMarshal.GetArrayDataReference acc
        let o = (a * m + b0) * lanes
        Vector512.StoreUnsafe(a00, &ar, unativeint o)
        Vector512.StoreUnsafe(a01, &ar, unativeint (o + vw))
        Vector512.StoreUnsafe(a10, &ar, unativeint (o + lanes))
        Vector512.StoreUnsafe(a11, &ar, unativeint (o + lanes + vw))
        Vector512.StoreUnsafe(a20, &ar, unativeint (o + 2 * lanes))
        Vector512.StoreUnsafe(a21, &ar, unativeint (o + 2 * lanes + vw))
        Vector512.StoreUnsafe(a30, &ar, unativeint (o + 3 * lanes))
        Vector512.StoreUnsafe(a31, &ar, unativeint (o + 3 * lanes + vw))

    /// pull4 for two columns.
    let pull2w (j: int) (k: int) (n: int) (m: int) (a: int) (b0: int) (rt: float[]) (y: float[]) (acc: float[]) =
        let vw = Vector512<float>.Count
        let lanes = 2 * vw
        check j k n m a b0 2 rt y acc lanes
        let mm = m * m
        let rr = &MemoryMarshal.GetArrayDataReference rt
        let yr = &MemoryMarshal.GetArrayDataReference y
        let mutable a00 = Vector512<float>.Zero
        let mutable a01 = Vector512<float>.Zero
        let mutable a10 = Vector512<float>.Zero
        let mutable a11 = Vector512<float>.Zero
        let mutable i = j + 1

        while i <= k do
            let mutable yo = (i * mm + a * m) * lanes
            let mutable ro = (j * n + i) * mm + b0
            let ye = yo + m * lanes

            while yo < ye do
                let ya = Vector512.LoadUnsafe(&yr, unativeint yo)
                let yb = Vector512.LoadUnsafe(&yr, unativeint (yo + vw))
                let c0 = Vector512.Create(Unsafe.Add(&rr, ro))
                a00 <- Vector512.FusedMultiplyAdd(c0, ya, a00)
                a01 <- Vector512.FusedMultiplyAdd(c0, yb, a01)
                let c1 = Vector512.Create(Unsafe.Add(&rr, ro + 1))
                a10 <- Vector512.FusedMultiplyAdd(c1, ya, a10)
                a11 <- Vector512.FusedMultiplyAdd(c1, yb, a11)
                yo <- yo + lanes
                ro <- ro + m

            i <- i + 1

        let ar = &MemoryMarshal.GetArrayDataReference acc
        let o = (a * m + b0) * lanes
        Vector512.StoreUnsafe(a00, &ar, unativeint o)
        Vector512.StoreUnsafe(a01, &ar, unativeint (o + vw))
        Vector512.StoreUnsafe(a10, &ar, unativeint (o + lanes))
        Vector512.StoreUnsafe(a11, &ar, unativeint (o + lanes + vw))

    /// pull4 for one column.
    let pull1w (j: int) (k: int) (n: int) (m: int) (a: int) (b0: int) (rt: float[]) (y: float[]) (acc: float[]) =
        let vw = Vector512<float>.Count
        let lanes = 2 * vw
        check j k n m a b0 1 rt y acc lanes
        let mm = m * m
        let rr = &MemoryMarshal.GetArrayDataReference rt
        let yr = &MemoryMarshal.GetArrayDataReference y
        let mutable a00 = Vector512<float>.Zero
        let mutable a01 = Vector512<float>.Zero
        let mutable i = j + 1

        while i <= k do
            let mutable yo = (i * mm + a * m) * lanes
            let mutable ro = (j * n + i) * mm + b0
            let ye = yo + m * lanes

            while yo < ye do
                let c0 = Vector512.Create(Unsafe.Add(&rr, ro))
                a00 <- Vector512.FusedMultiplyAdd(c0, Vector512.LoadUnsafe(&yr, unativeint yo), a00)
                a01 <- Vector512.FusedMultiplyAdd(c0, Vector512.LoadUnsafe(&yr, unativeint (yo + vw)), a01)
                yo <- yo + lanes
                ro <- ro + m

            i <- i + 1

        let ar = &MemoryMarshal.GetArrayDataReference acc
        let o = (a * m + b0) * lanes
        Vector512.StoreUnsafe(a00, &ar, unativeint o)
        Vector512.StoreUnsafe(a01, &ar, unativeint (o + vw))

    /// Y_j[a][b] = sum_{c<m} acc[(a m + c) lanes + lane] h[hb + (j mm + c m + b) lanes + lane] (c in order, from
    /// zero), stored at y[(j mm + a m + b) lanes + lane] and added to the per-lane sums rgv at the same place.
    let finishw (j: int) (m: int) (acc: float[]) (h: float[]) (hb: int) (y: float[]) (rgv: float[]) =
        let vw = Vector512<float>.Count
        let lanes = 2 * vw
        let mm = m * m

        if
            j < 0
            || hb < 0
            || acc.Length < mm * lanes
            || h.Length < hb + (j * mm + mm) * lanes
            || y.Length < (j * mm + mm) * lanes
            || rgv.Length < (j * mm + mm) * vw
        then
            outside ()

        let ar = &MemoryMarshal.GetArrayDataReference acc
        let hr = &MemoryMarshal.GetArrayDataReference h
        let yr = &MemoryMarshal.GetArrayDataReference y
        let gr = &MemoryMarshal.GetArrayDataReference rgv
        let hj = hb + j * mm * lanes
        let mutable a = 0

        while a < m do
            let mutable b = 0
            // Columns in pairs (four independent accumulators, each A_ac loaded once per pair), then the last one.
            while b < m do
                let two = b + 1 < m
                let mutable v0 = Vector512<float>.Zero
                let mutable v1 = Vector512<float>.Zero
                let mutable w0 = Vector512<float>.Zero
                let mutable w1 = Vector512<float>.Zero
                let mutable c = 0

                while c < m do
                    let ao = (a * m + c) * lanes
                    let x0 = Vector512.LoadUnsafe(&ar, unativeint ao)
                    let x1 = Vector512.LoadUnsafe(&ar, unativeint (ao + vw))
                    let ho = hj + (c * m + b) * lanes
                    v0 <- Vector512.FusedMultiplyAdd(x0, Vector512.LoadUnsafe(&hr, unativeint ho), v0)
                    v1 <- Vector512.FusedMultiplyAdd(x1, Vector512.LoadUnsafe(&hr, unativeint (ho + vw)), v1)

                    if two then
                        w0 <- Vector512.FusedMultiplyAdd(x0, Vector512.LoadUnsafe(&hr, unativeint (ho + lanes)), w0)
                        w1 <- Vector512.FusedMultiplyAdd(x1, Vector512.LoadUnsafe(&hr, unativeint (ho + lanes + vw)), w1)

                    c <- c + 1

                let o = (j * mm + a * m + b) * lanes
                // R_g slots as Vector<float>'s blocks of eight: the low half of the block first.
                let so = (j * mm + a * m + b) * vw
                Vector512.StoreUnsafe(v0, &yr, unativeint o)
                Vector512.StoreUnsafe(v1, &yr, unativeint (o + vw))
                Vector512.StoreUnsafe(Vector512.LoadUnsafe(&gr, unativeint so) + v0 + v1, &gr, unativeint so)

                if two then
                    let o = o + lanes
                    let so = so + vw
                    Vector512.StoreUnsafe(w0, &yr, unativeint o)
                    Vector512.StoreUnsafe(w1, &yr, unativeint (o + vw))
                    Vector512.StoreUnsafe(Vector512.LoadUnsafe(&gr, unativeint so) + w0 + w1, &gr, unativeint so)

                b <- b + 2

            a <- a + 1

    /// m = 2: the whole back substitution of row k for one block, in one method so that the eight accumulators stay
    /// in registers: Y_k = J_k (jk[e stride + b0 + lane]); per j, A = sum_{i=j+1}^{k} Y_i R(i, j) in (i, c) order, then
    /// Y_j = A H_j as `finish` does it.
    let responses2 (k: int) (n: int) (rt: float[]) (h: float[]) (hb: int) (jk: float[]) (stride: int) (b0: int) (y: float[]) (rgv: float[]) =
        let vw = Vector<float>.Count
        let lanes = 2 * vw

        if
            k < 0
            || k >= n
            || rt.Length < (k * n + k + 1) * 4
            || b0 < 0
            || b0 + lanes > stride
            || hb < 0
            || h.Length < hb + (k * 4 + 4) * lanes
            || jk.Length < 4 * stride
            || y.Length < (k * 4 + 4) * lanes
            || rgv.Length < (k * 4 + 4) * lanes
        then
            outside ()

        let rr = &MemoryMarshal.GetArrayDataReference rt
        let hr = &MemoryMarshal.GetArrayDataReference h
        let yr = &MemoryMarshal.GetArrayDataReference y
        let gr = &MemoryMarshal.GetArrayDataReference rgv
        let jr = &MemoryMarshal.GetArrayDataReference jk

        for e in 0..3 do
            let o = (k * 4 + e) * lanes
            let v0 = Vector.LoadUnsafe(&jr, unativeint (e * stride + b0))
            let v1 = Vector.LoadUnsafe(&jr, unativeint (e * stride + b0 + vw))
            Vector.StoreUnsafe(v0, &yr, unativeint o)
            Vector.StoreUnsafe(v1, &yr, unativeint (o + vw))
            Vector.StoreUnsafe(Vector.LoadUnsafe(&gr, unativeint o) + v0, &gr, unativeint o)
            Vector.StoreUnsafe(Vector.LoadUnsafe(&gr, unativeint (o + vw)) + v1, &gr, unativeint (o + vw))

        let mutable j = k - 1

        while j >= 0 do
            let mutable p00 = Vector<float>.Zero
            let mutable q00 = Vector<float>.Zero
            let mutable p01 = Vector<float>.Zero
            let mutable q01 = Vector<float>.Zero
            let mutable p10 = Vector<float>.Zero
            let mutable q10 = Vector<float>.Zero
            let mutable p11 = Vector<float>.Zero
            let mutable q11 = Vector<float>.Zero
            let mutable i = j + 1
            let mutable ro = (j * n + i) * 4

            while i <= k do
                let yo = i * 4 * lanes
                let y00 = Vector.LoadUnsafe(&yr, unativeint yo)
                let z00 = Vector.LoadUnsafe(&yr, unativeint (yo + vw))
                let y01 = Vector.LoadUnsafe(&yr, unativeint (yo + lanes))
                let z01 = Vector.LoadUnsafe(&yr, unativeint (yo + lanes + vw))
                let y10 = Vector.LoadUnsafe(&yr, unativeint (yo + 2 * lanes))
                let z10 = Vector.LoadUnsafe(&yr, unativeint (yo + 2 * lanes + vw))
                let y11 = Vector.LoadUnsafe(&yr, unativeint (yo + 3 * lanes))
                let z11 = Vector.LoadUnsafe(&yr, unativeint (yo + 3 * lanes + vw))
                // c = 0: R(i, j)_0b; c = 1: R(i, j)_1b.
                let r00 = Vector<float>(Unsafe.Add(&rr, ro))
                let r01 = Vector<float>(Unsafe.Add(&rr, ro + 1))
                let r10 = Vector<float>(Unsafe.Add(&rr, ro + 2))
                let r11 = Vector<float>(Unsafe.Add(&rr, ro + 3))
                p00 <- Vector.FusedMultiplyAdd(r00, y00, p00)
                q00 <- Vector.FusedMultiplyAdd(r00, z00, q00)
                p01 <- Vector.FusedMultiplyAdd(r01, y00, p01)
                q01 <- Vector.FusedMultiplyAdd(r01, z00, q01)
                p10 <- Vector.FusedMultiplyAdd(r00, y10, p10)
                q10 <- Vector.FusedMultiplyAdd(r00, z10, q10)
                p11 <- Vector.FusedMultiplyAdd(r01, y10, p11)
                q11 <- Vector.FusedMultiplyAdd(r01, z10, q11)
                p00 <- Vector.FusedMultiplyAdd(r10, y01, p00)
                q00 <- Vector.FusedMultiplyAdd(r10, z01, q00)
                p01 <- Vector.FusedMultiplyAdd(r11, y01, p01)
                q01 <- Vector.FusedMultiplyAdd(r11, z01, q01)
                p10 <- Vector.FusedMultiplyAdd(r10, y11, p10)
                q10 <- Vector.FusedMultiplyAdd(r10, z11, q10)
                p11 <- Vector.FusedMultiplyAdd(r11, y11, p11)
                q11 <- Vector.FusedMultiplyAdd(r11, z11, q11)
                i <- i + 1
                ro <- ro + 4
            // Y_j = A H_j with H_j,cb at h[hb + (4 j + 2 c + b) lanes].
            let ho = hb + j * 4 * lanes
            let h00 = Vector.LoadUnsafe(&hr, unativeint ho)
            let g00 = Vector.LoadUnsafe(&hr, unativeint (ho + vw))
            let h01 = Vector.LoadUnsafe(&hr, unativeint (ho + lanes))
            let g01 = Vector.LoadUnsafe(&hr, unativeint (ho + lanes + vw))
            let h10 = Vector.LoadUnsafe(&hr, unativeint (ho + 2 * lanes))
            let g10 = Vector.LoadUnsafe(&hr, unativeint (ho + 2 * lanes + vw))
            let h11 = Vector.LoadUnsafe(&hr, unativeint (ho + 3 * lanes))
            let g11 = Vector.LoadUnsafe(&hr, unativeint (ho + 3 * lanes + vw))
            let zero = Vector<float>.Zero
            let y00 = Vector.FusedMultiplyAdd(p01, h10, Vector.FusedMultiplyAdd(p00, h00, zero))
            let z00 = Vector.FusedMultiplyAdd(q01, g10, Vector.FusedMultiplyAdd(q00, g00, zero))
            let y01 = Vector.FusedMultiplyAdd(p01, h11, Vector.FusedMultiplyAdd(p00, h01, zero))
            let z01 = Vector.FusedMultiplyAdd(q01, g11, Vector.FusedMultiplyAdd(q00, g01, zero))
            let y10 = Vector.FusedMultiplyAdd(p11, h10, Vector.FusedMultiplyAdd(p10, h00, zero))
            let z10 = Vector.FusedMultiplyAdd(q11, g10, Vector.FusedMultiplyAdd(q10, g00, zero))
            let y11 = Vector.FusedMultiplyAdd(p11, h11, Vector.FusedMultiplyAdd(p10, h01, zero))
            let z11 = Vector.FusedMultiplyAdd(q11, g11, Vector.FusedMultiplyAdd(q10, g01, zero))
            let o = j * 4 * lanes
            Vector.StoreUnsafe(y00, &yr, unativeint o)
            Vector.StoreUnsafe(z00, &yr, unativeint (o + vw))
            Vector.StoreUnsafe(y01, &yr, unativeint (o + lanes))
            Vector.StoreUnsafe(z01, &yr, unativeint (o + lanes + vw))
            Vector.StoreUnsafe(y10, &yr, unativeint (o + 2 * lanes))
            Vector.StoreUnsafe(z10, &yr, unativeint (o + 2 * lanes + vw))
            Vector.StoreUnsafe(y11, &yr, unativeint (o + 3 * lanes))
            Vector.StoreUnsafe(z11, &yr, unativeint (o + 3 * lanes + vw))
            Vector.StoreUnsafe(Vector.LoadUnsafe(&gr, unativeint o) + y00, &gr, unativeint o)
            Vector.StoreUnsafe(Vector.LoadUnsafe(&gr, unativeint (o + vw)) + z00, &gr, unativeint (o + vw))
            Vector.StoreUnsafe(Vector.LoadUnsafe(&gr, unativeint (o + lanes)) + y01, &gr, unativeint (o + lanes))
            Vector.StoreUnsafe(Vector.LoadUnsafe(&gr, unativeint (o + lanes + vw)) + z01, &gr, unativeint (o + lanes + vw))
            Vector.StoreUnsafe(Vector.LoadUnsafe(&gr, unativeint (o + 2 * lanes)) + y10, &gr, unativeint (o + 2 * lanes))
            Vector.StoreUnsafe(Vector.LoadUnsafe(&gr, unativeint (o + 2 * lanes + vw)) + z10, &gr, unativeint (o + 2 * lanes + vw))
            Vector.StoreUnsafe(Vector.LoadUnsafe(&gr, unativeint (o + 3 * lanes)) + y11, &gr, unativeint (o + 3 * lanes))
            Vector.StoreUnsafe(Vector.LoadUnsafe(&gr, unativeint (o + 3 * lanes + vw)) + z11, &gr, unativeint (o + 3 * lanes + vw))
            j <- j - 1

    /// responses2 in Vector512 (blocks of 16 samples): per lane the same operations in the same order; the per-lane
    /// R_g sums keep the eight slots of Vector<float>'s blocks (rgv[(l 4 + e) 8 + slot], the low half of a block added
    /// before the high half), so that the numbers are those of responses2 bit for bit.
    let responses2w (k: int) (n: int) (rt: float[]) (h: float[]) (hb: int) (jk: float[]) (stride: int) (b0: int) (y: float[]) (rgv: float[]) =
        let vw = Vector512<float>.Count
        let lanes = 2 * vw

        if
            k < 0
            || k >= n
            || rt.Length < (k * n + k + 1) * 4
            || b0 < 0
            || b0 + lanes > stride
            || hb < 0
            || h.Length < hb + (k * 4 + 4) * lanes
            || jk.Length < 4 * stride
            || y.Length < (k * 4 + 4) * lanes
            || rgv.Length < (k * 4 + 4) * vw
        then
            outside ()

        let rr = &MemoryMarshal.GetArrayDataReference rt
        let hr = &MemoryMarshal.GetArrayDataReference h
        let yr = &MemoryMarshal.GetArrayDataReference y
        let gr = &MemoryMarshal.GetArrayDataReference rgv
        let jr = &MemoryMarshal.GetArrayDataReference jk

        for e in 0..3 do
            let o = (k * 4 + e) * lanes
            let v0 = Vector512.LoadUnsafe(&jr, unativeint (e * stride + b0))
            let v1 = Vector512.LoadUnsafe(&jr, unativeint (e * stride + b0 + vw))
            Vector512.StoreUnsafe(v0, &yr, unativeint o)
            Vector512.StoreUnsafe(v1, &yr, unativeint (o + vw))
            let so = (k * 4 + e) * vw
            Vector512.StoreUnsafe(Vector512.LoadUnsafe(&gr, unativeint so) + v0 + v1, &gr, unativeint so)

        let mutable j = k - 1

        while j >= 0 do
            let mutable p00 = Vector512<float>.Zero
            let mutable q00 = Vector512<float>.Zero
            let mutable p01 = Vector512<float>.Zero
            let mutable q01 = Vector512<float>.Zero
            let mutable p10 = Vector512<float>.Zero
            let mutable q10 = Vector512<float>.Zero
            let mutable p11 = Vector512<float>.Zero
            let mutable q11 = Vector512<float>.Zero
            let mutable i = j + 1
            let mutable ro = (j * n + i) * 4

            while i <= k do
                let yo = i * 4 * lanes
                let y00 = Vector512.LoadUnsafe(&yr, unativeint yo)
                let z00 = Vector512.LoadUnsafe(&yr, unativeint (yo + vw))
                let y01 = Vector512.LoadUnsafe(&yr, unativeint (yo + lanes))
                let z01 = Vector512.LoadUnsafe(&yr, unativeint (yo + lanes + vw))
                let y10 = Vector512.LoadUnsafe(&yr, unativeint (yo + 2 * lanes))
                let z10 = Vector512.LoadUnsafe(&yr, unativeint (yo + 2 * lanes + vw))
                let y11 = Vector512.LoadUnsafe(&yr, unativeint (yo + 3 * lanes))
                let z11 = Vector512.LoadUnsafe(&yr, unativeint (yo + 3 * lanes + vw))
                // c = 0: R(i, j)_0b; c = 1: R(i, j)_1b.
                let r00 = Vector512.Create(Unsafe.Add(&rr, ro))
                let r01 = Vector512.Create(Unsafe.Add(&rr, ro + 1))
                let r10 = Vector512.Create(Unsafe.Add(&rr, ro + 2))
                let r11 = Vector512.Create(Unsafe.Add(&rr, ro + 3))
                p00 <- Vector512.FusedMultiplyAdd(r00, y00, p00)
                q00 <- Vector512.FusedMultiplyAdd(r00, z00, q00)
                p01 <- Vector512.FusedMultiplyAdd(r01, y00, p01)
                q01 <- Vector512.FusedMultiplyAdd(r01, z00, q01)
                p10 <- Vector512.FusedMultiplyAdd(r00, y10, p10)
                q10 <- Vector512.FusedMultiplyAdd(r00, z10, q10)
                p11 <- Vector512.FusedMultiplyAdd(r01, y10, p11)
                q11 <- Vector512.FusedMultiplyAdd(r01, z10, q11)
                p00 <- Vector512.FusedMultiplyAdd(r10, y01, p00)
                q00 <- Vector512.FusedMultiplyAdd(r10, z01, q00)
                p01 <- Vector512.FusedMultiplyAdd(r11, y01, p01)
                q01 <- Vector512.FusedMultiplyAdd(r11, z01, q01)
                p10 <- Vector512.FusedMultiplyAdd(r10, y11, p10)
                q10 <- Vector512.FusedMultiplyAdd(r10, z11, q10)
                p11 <- Vector512.FusedMultiplyAdd(r11, y11, p11)
                q11 <- Vector512.FusedMultiplyAdd(r11, z11, q11)
                i <- i + 1
                ro <- ro + 4
            // Y_j = A H_j with H_j,cb at h[hb + (4 j + 2 c + b) lanes].
            let ho = hb + j * 4 * lanes
            let h00 = Vector512.LoadUnsafe(&hr, unativeint ho)
            let g00 = Vector512.LoadUnsafe(&hr, unativeint (ho + vw))
            let h01 = Vector512.LoadUnsafe(&hr, unativeint (ho + lanes))
            let g01 = Vector512.LoadUnsafe(&hr, unativeint (ho + lanes + vw))
            let h10 = Vector512.LoadUnsafe(&hr, unativeint (ho + 2 * lanes))
            let g10 = Vector512.LoadUnsafe(&hr, unativeint (ho + 2 * lanes + vw))
            let h11 = Vector512.LoadUnsafe(&hr, unativeint (ho + 3 * lanes))
            let g11 = Vector512.LoadUnsafe(&hr, unativeint (ho + 3 * lanes + vw))
            let zero = Vector512<float>.Zero
            let y00 = Vector512.FusedMultiplyAdd(p01, h10, Vector512.FusedMultiplyAdd(p00, h00, zero))
            let z00 = Vector512.FusedMultiplyAdd(q01, g10, Vector512.FusedMultiplyAdd(q00, g00, zero))
            let y01 = Vector512.FusedMultiplyAdd(p01, h11, Vector512.FusedMultiplyAdd(p00, h01, zero))
            let z01 = Vector512.FusedMultiplyAdd(q01, g11, Vector512.FusedMultiplyAdd(q00, g01, zero))
            let y10 = Vector512.FusedMultiplyAdd(p11, h10, Vector512.FusedMultiplyAdd(p10, h00, zero))
            let z10 = Vector512.FusedMultiplyAdd(q11, g10, Vector512.FusedMultiplyAdd(q10, g00, zero))
            let y11 = Vector512.FusedMultiplyAdd(p11, h11, Vector512.FusedMultiplyAdd(p10, h01, zero))
            let z11 = Vector512.FusedMultiplyAdd(q11, g11, Vector512.FusedMultiplyAdd(q10, g01, zero))
            let o = j * 4 * lanes
            Vector512.StoreUnsafe(y00, &yr, unativeint o)
            Vector512.StoreUnsafe(z00, &yr, unativeint (o + vw))
            Vector512.StoreUnsafe(y01, &yr, unativeint (o + lanes))
            Vector512.StoreUnsafe(z01, &yr, unativeint (o + lanes + vw))
            Vector512.StoreUnsafe(y10, &yr, unativeint (o + 2 * lanes))
            Vector512.StoreUnsafe(z10, &yr, unativeint (o + 2 * lanes + vw))
            Vector512.StoreUnsafe(y11, &yr, unativeint (o + 3 * lanes))
            Vector512.StoreUnsafe(z11, &yr, unativeint (o + 3 * lanes + vw))
            // Low half (samples b0 .. b0 + 7) first, as Vector<float>'s first block of the pair.
            let so = j * 4 * vw
            Vector512.StoreUnsafe(Vector512.LoadUnsafe(&gr, unativeint so) + y00 + z00, &gr, unativeint so)
            Vector512.StoreUnsafe(Vector512.LoadUnsafe(&gr, unativeint (so + vw)) + y01 + z01, &gr, unativeint (so + vw))
            Vector512.StoreUnsafe(Vector512.LoadUnsafe(&gr, unativeint (so + 2 * vw)) + y10 + z10, &gr, unativeint (so + 2 * vw))
            Vector512.StoreUnsafe(Vector512.LoadUnsafe(&gr, unativeint (so + 3 * vw)) + y11 + z11, &gr, unativeint (so + 3 * vw))
            j <- j - 1


/// The m > 1 chunk (two-layer networks): SampleChunk's random draws, in the same order, and its estimator, stored
/// sample-minor ([row * stride + sample], stride padded to four vectors) like ScalarChunk, so that every loop over
/// samples runs in SIMD vectors and nothing is allocated per sample or step:
/// - the fields w_k,a = L_{m*+km+a} . z and the Onsager memory sum_j R(k, j) g_j: linear combinations of rows;
/// - l, its Jacobian and the loss per sample through the model's closure (scalar, with m-vector buffers);
/// - row k of the responses for a block of 2 vw samples at a time (BlockKernels; for m = 2 one kernel per block, in
///   Vector512 blocks of 16 where the hardware runs it, the same numbers bit for bit), (k^2 / 2) m^3 multiply-adds
///   per sample and step, with R_g += J_k D(k, l) folded in. h is stored by blocks, so that one block's h_0 .. h_k
///   are read in one contiguous run.
/// Padding lanes stay zero (l = J = 0 there), so they add nothing to the sums. Sums over samples are taken per lane
/// and then across lanes: the numbers differ from SampleChunk's by reassociation only (the `PerSample` variant is
/// the test oracle).
type internal BlockChunk(size: int, points: int, m: int, ms: int, dim: int, rng: Rng, wide: bool) =
    let vw = Vector<float>.Count
    // Samples per block of the generic kernels, and the slots of the per-lane R_g sums (all kernels).
    let lanes = 2 * vw
    let mm = m * m
    // m = 2 has its own kernel (responses2); all kernels run in Vector512 where the hardware runs it (blocks of 16).
    let special = (m = 2)
    let blockLanes = if wide then 2 * Vector512<float>.Count else lanes
    let pad = max (4 * vw) blockLanes
    let stride = (size + pad - 1) / pad * pad
    let z = Array.zeroCreate<float>(dim * stride)
    let ws = Array.zeroCreate<float>(ms * stride)
    // Labels, SGD noises and losses, zero in the padding lanes.
    let y = Array.zeroCreate<float> stride
    let xi = Array.zeroCreate<float> stride
    let losses = Array.zeroCreate<float> stride
    // g_j,a at [(j m + a) stride + s]; h_j = -g'_j / delta by blocks of the back substitution, at
    // [((s / blockLanes) points + j) mm + c m + b) blockLanes + s % blockLanes]: one block's h_0 .. h_k are contiguous.
    let g = Array.zeroCreate<float>(points * m * stride)
    let h = Array.zeroCreate<float>(points * mm * stride)
    let r = Array.zeroCreate<float>(m * stride)
    let memory = Array.zeroCreate<float> stride
    // l and J_k per sample (zero in the padding lanes: never written there).
    let ls = Array.zeroCreate<float>(m * stride)
    let jk = Array.zeroCreate<float>(mm * stride)
    // The Onsager coefficients of row k: rk[a (points m) + j m + b] = R(k, j)_ab.
    let rk = Array.zeroCreate<float>(m * points * m)
    // Row k of the responses for one block ([(l mm + e) lanes + lane]), the pull sums of one j, the per-lane R_g sums.
    let yb = Array.zeroCreate<float>(points * mm * blockLanes)
    let acc = Array.zeroCreate<float>(mm * blockLanes)
    let rgv = Array.zeroCreate<float>(points * mm * lanes)
    let sums = RowSums(points, m, ms)
    let wsBuf = Array.zeroCreate<float> ms
    let rBuf = Array.zeroCreate<float> m
    let lBuf = Array.zeroCreate<float> m
    let jBuf = Array.zeroCreate<float> mm

    /// Doubles a chunk of `size` samples allocates (the arrays above; Dmft.sweepMemory adds them up).
    static member Doubles(size: int, points: int, m: int, ms: int, dim: int, wide: bool) =
        let vw = Vector<float>.Count
        let lanes = 2 * vw
        let mm = m * m
        let blockLanes = if wide then 2 * Vector512<float>.Count else lanes
        let pad = max (4 * vw) blockLanes
        let stride = (size + pad - 1) / pad * pad
        // Per padded sample: z, w*, y, xi, losses, memory, g, h, r, l, J. Per chunk: the Onsager coefficients, the
        // block's Y, the R_g slots, the sums (R_g, Sigma_u), the pull sums and the buffers.
        float stride * float (dim + ms + 4 + points * m + points * mm + 2 * m + mm)
        + float (points * mm) * float (1 + blockLanes + lanes + 2)
        + float (mm * blockLanes + m * ms + ms + 2 * m + mm)

    member _.Sums = sums

    /// The step's normals in SampleChunk's order: per sample (at k = 0 the teacher inputs, then the label noise), the
    /// m inputs of w_k, then the SGD noise xi.
    member private _.Draw(k: int, lf: float[], model: RowModel, sigma: float) =
        let zk = ms + k * m

        for s in 0 .. size - 1 do
            if k = 0 then
                for b in 0 .. ms - 1 do
                    z[b * stride + s] <- rng.NextNormal()

                for b in 0 .. ms - 1 do
                    let mutable v = 0.0

                    for q in 0..b do
                        v <- v + lf[b * dim + q] * z[q * stride + s]

                    ws[b * stride + s] <- v
                    wsBuf[b] <- v

                y[s] <- model.Label wsBuf (sigma * rng.NextNormal())

            for a in 0 .. m - 1 do
                z[(zk + a) * stride + s] <- rng.NextNormal()

            xi[s] <- rng.NextNormal()

    /// r_k,a = w_k,a - delta^{-1} sum_{j<k} (R(k, j) g_j)_a, w_k,a = sum_{q <= row} L(row, q) z_q (row = m* + k m + a).
    member private _.Fields(k: int, lf: float[], columns: Columns, delta: float) =
        let km = k * m

        for a in 0 .. m - 1 do
            for j in 0 .. k - 1 do
                let o = columns.Index k j + a * m

                for b in 0 .. m - 1 do
                    rk[a * points * m + j * m + b] <- columns.R[o + b]

        let vdelta = Vector<float>(delta)

        for a in 0 .. m - 1 do
            let row = ms + km + a
            ScalarKernels.combineRowsAt lf (row * dim) (row + 1) z stride stride r (a * stride)
            ScalarKernels.combineRows rk (a * points * m) km g stride stride memory
            let mutable v = 0

            while v < stride do
                let o = a * stride + v
                (Vector<float>(r, o) - Vector<float>(memory, v) / vdelta).CopyTo(r, o)
                v <- v + vw

    /// l, J and the loss per sample through the model; then g_k = l fac, h_k = -J fac / delta with
    /// fac = dt - sqrt(tau delta dt) xi, and the sums of l w*^T and of the loss in sample order.
    member private _.Signals(k: int, p: DmftProblem, model: RowModel) =
        for s in 0 .. size - 1 do
            for a in 0 .. m - 1 do
                rBuf[a] <- r[a * stride + s]

            losses[s] <- model.Eval rBuf y[s] lBuf jBuf

            for a in 0 .. m - 1 do
                ls[a * stride + s] <- lBuf[a]

            for e in 0 .. mm - 1 do
                jk[e * stride + s] <- jBuf[e]

        let noise = Vector<float>(sqrt (p.Tau * p.Alpha * p.Dt))
        let dt = Vector<float>(p.Dt)
        let delta = Vector<float>(p.Alpha)
        let mutable v = 0

        while v < stride do
            let fac = dt - noise * Vector<float>(xi, v)

            for a in 0 .. m - 1 do
                (Vector<float>(ls, a * stride + v) * fac).CopyTo(g, (k * m + a) * stride + v)

            let blk = v / blockLanes
            let hv = ((blk * points + k) * mm) * blockLanes + v % blockLanes

            for e in 0 .. mm - 1 do
                (-(Vector<float>(jk, e * stride + v) * fac) / delta).CopyTo(h, hv + e * blockLanes)

            v <- v + vw

        let mutable loss = 0.0

        for s in 0 .. size - 1 do
            loss <- loss + losses[s]

            for a in 0 .. m - 1 do
                let la = ls[a * stride + s]

                for b in 0 .. ms - 1 do
                    sums.LwStar[a * ms + b] <- sums.LwStar[a * ms + b] + la * ws[b * stride + s]

        sums.Loss <- loss
        sums.Count <- size

    /// Row k of the responses for the block of samples b0 .. b0 + lanes - 1, into the per-lane sums rgv.
    member private _.Responses(k: int, b0: int, rt: float[]) =
        if special && wide then
            BlockKernels.responses2w k points rt h (b0 * points * mm) jk stride b0 yb rgv
        elif special then
            BlockKernels.responses2 k points rt h (b0 * points * mm) jk stride b0 yb rgv
        elif wide then
            // Y_k = J_k; the R_g slots take the block's low half, then its high half.
            for e in 0 .. mm - 1 do
                let o = (k * mm + e) * blockLanes
                let so = (k * mm + e) * lanes
                let v0 = Vector512.Create<float>(ReadOnlySpan<float>(jk, e * stride + b0, lanes))
                let v1 = Vector512.Create<float>(ReadOnlySpan<float>(jk, e * stride + b0 + lanes, lanes))
                v0.CopyTo(Span<float>(yb, o, lanes))
                v1.CopyTo(Span<float>(yb, o + lanes, lanes))
                (Vector512.Create<float>(ReadOnlySpan<float>(rgv, so, lanes)) + v0 + v1).CopyTo(Span<float>(rgv, so, lanes))

            for j = k - 1 downto 0 do
                for a in 0 .. m - 1 do
                    let mutable b = 0

                    while b < m do
                        if m - b >= 4 then
                            BlockKernels.pull4w j k points m a b rt yb acc
                            b <- b + 4
                        elif m - b >= 2 then
                            BlockKernels.pull2w j k points m a b rt yb acc
                            b <- b + 2
                        else
                            BlockKernels.pull1w j k points m a b rt yb acc
                            b <- b + 1

                BlockKernels.finishw j m acc h (b0 * points * mm) yb rgv
        else
            // Y_k = J_k.
            for e in 0 .. mm - 1 do
                let o = (k * mm + e) * lanes
                let v0 = Vector<float>(jk, e * stride + b0)
                let v1 = Vector<float>(jk, e * stride + b0 + vw)
                v0.CopyTo(yb, o)
                v1.CopyTo(yb, o + vw)
                (Vector<float>(rgv, o) + v0).CopyTo(rgv, o)
                (Vector<float>(rgv, o + vw) + v1).CopyTo(rgv, o + vw)

            for j = k - 1 downto 0 do
                for a in 0 .. m - 1 do
                    let mutable b = 0

                    while b < m do
                        if m - b >= 4 then
                            BlockKernels.pull4 j k points m a b rt yb acc
                            b <- b + 4
                        elif m - b >= 2 then
                            BlockKernels.pull2 j k points m a b rt yb acc
                            b <- b + 2
                        else
                            BlockKernels.pull1 j k points m a b rt yb acc
                            b <- b + 1

                BlockKernels.finish j m acc h (b0 * points * mm) yb rgv

    /// Advance every sample of the chunk to step k (rt = R^T in blocks up to row k).
    member this.Step(k: int, p: DmftProblem, model: RowModel, columns: Columns, path: GaussianPath, rt: float[]) =
        sums.Clear()
        let lf = path.Factor
        this.Draw(k, lf, model, sqrt p.NoiseVar)
        this.Fields(k, lf, columns, p.Alpha)
        this.Signals(k, p, model)
        // sum_s g_k,a g_l,b for l <= k.
        for l in 0..k do
            for a in 0 .. m - 1 do
                for b in 0 .. m - 1 do
                    sums.Su[l * mm + a * m + b] <-
                        ScalarKernels.dot g ((k * m + a) * stride) g ((l * m + b) * stride) stride

        Array.Clear(rgv, 0, (k + 1) * mm * lanes)
        let mutable b0 = 0

        while b0 < size do
            this.Responses(k, b0, rt)
            b0 <- b0 + blockLanes

        for l in 0..k do
            for e in 0 .. mm - 1 do
                let mutable s = 0.0

                for t in 0 .. lanes - 1 do
                    s <- s + rgv[(l * mm + e) * lanes + t]

                sums.Rg[l * mm + e] <- s

    interface IRowChunk with
        member _.Sums = sums

        member this.Step(k, p, model, columns, path, rt) =
            this.Step(k, p, model, columns, path, rt)

/// Which sampler a sweep runs: the default (for m = 1 ScalarChunk, in Vector512 where the hardware runs it; for
/// m > 1 BlockChunk); the same held to Vector<float> width (the test of the Vector512 kernel: the numbers are the same
/// bit for bit); SampleChunk's per-sample back substitution (the reference of both vectorised chunks: the same draws,
/// sample by sample in small matrices); the stored-responses SampleChunk (the test oracle of the back substitution).
type internal SamplerVariant =
    | DefaultSampler
    | NarrowVectors
    | PerSample
    | StoredResponses

/// A population of row samples in fixed-size chunks, each with its own stream, run in parallel and summed in chunk
/// order: the same seed gives the same numbers at any thread count.
type internal RowSampler
    (
        p: DmftProblem,
        model: RowModel,
        columns: Columns,
        path: GaussianPath,
        samples: int,
        rngFor: int -> Rng,
        parallelism: int,
        variant: SamplerVariant,
        ct: Threading.CancellationToken
    ) =
    let storeResponses = (variant = StoredResponses)
    let vectorised = not storeResponses && variant <> PerSample

    static member ChunkSize = 256
    member val Total = RowSums(columns.Points, columns.Width, columns.TeacherWidth)

    /// R^T in m x m blocks for the vectorised back substitutions, rt[(j n + i) m^2 + c m + b] = R(i, j)_cb, filled
    /// one row of R per step (R(k, .) is final when row k is sampled).
    member val RT =
        if vectorised then
            Array.zeroCreate<float>(columns.Points * columns.Points * columns.Width * columns.Width)
        else
            [||]

    member val Chunks =
        let cs = RowSampler.ChunkSize
        let count = (samples + cs - 1) / cs

        Array.init count (fun c ->
            // Allocating a million samples' paths takes seconds: the token is seen per chunk here too.
            ct.ThrowIfCancellationRequested()
            let size = min cs (samples - c * cs)

            if columns.Width = 1 && vectorised then
                let wide = ScalarKernels.wide && variant <> NarrowVectors
                ScalarChunk(size, columns.Points, columns.TeacherWidth, path.Dimension, rngFor c, wide) :> IRowChunk
            elif vectorised then
                let wide = ScalarKernels.wide && variant <> NarrowVectors

                BlockChunk(size, columns.Points, columns.Width, columns.TeacherWidth, path.Dimension, rngFor c, wide)
                :> IRowChunk
            else
                SampleChunk(
                    size,
                    columns.Points,
                    columns.Width,
                    columns.TeacherWidth,
                    path.Dimension,
                    rngFor c,
                    storeResponses
                )
                :> IRowChunk)

    /// Run step k on every sample; Total then holds the sums of row k.
    member this.Step(k: int) =
        let rt = this.RT

        if rt.Length > 0 then
            let n = columns.Points
            let mm = columns.Width * columns.Width

            for j in 0 .. k - 1 do
                Array.blit columns.R (columns.Index k j) rt ((j * n + k) * mm) mm

        // A step over all samples can take a second: the token is seen before each chunk of 256 samples.
        let chunks = this.Chunks
        Chunked.forEach parallelism ct chunks.Length (fun c -> chunks[c].Step(k, p, model, columns, path, this.RT))

        this.Total.Clear()

        for c in this.Chunks do
            c.Sums.AddTo this.Total
