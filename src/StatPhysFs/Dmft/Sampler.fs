namespace StatPhysFs.Dmft

open System
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

/// A block of row-process samples with its own random stream: the Gaussian inputs Z, the label noise, the
/// gradient signals g_j, the noisy Jacobians g'_j and the pathwise responses D(k,l) = dr_k/dw_l (spec section 3.2).
///
/// D = L^{-1} with L(k,j) = delta_kj I + delta^{-1} R(k,j) g'_j (block lower triangular), and row k of the sums only
/// needs row k of D. With `storeResponses` every sample keeps all rows of D (N K^2 m^2 / 2 doubles: 2.6 GB at
/// 400 steps x 4000 samples) and row k is built from rows j < k. Without it (the default) row k is recomputed by
/// back substitution X_j = -delta^{-1} (sum_{i=j+1}^{k} X_i R(i,j)) g'_j from X_k = I: the same O(k^2 m^3) work per
/// sample and step, but only O(K m^2) memory per sample, and every inner loop is an axpy along a contiguous row of R.
/// The two differ by roundoff only (same random streams); the stored path is kept as the test oracle.
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
    // Row k of D for the current sample (back-substitution mode; m = 1: four samples, [b * points + i]).
    let x =
        if storeResponses then [||]
        elif m = 1 then Array.zeroCreate<float>(4 * points)
        else Array.zeroCreate<float>(points * mm)

    let jacK = Array.zeroCreate<float> size

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

    /// m = 1 back substitution x_j = -delta^{-1} g'_j sum_{i=j+1}^{k} x_i R(i, j) as dot products along rows of
    /// rt = R^T (rt[j n + i] = R(i, j), contiguous in i), four samples per pass so that each row of R^T is read once
    /// per four samples (the O(K^3) part of the sweep; memory-bound on R otherwise). Then R_g += J_k x in sample order.
    member private _.ScalarResponses(k: int, delta: float, rt: float[]) =
        let n = points
        let vw = Numerics.Vector<float>.Count
        let mutable s0 = 0

        while s0 < size do
            let cnt = min 4 (size - s0)

            for b in 0 .. cnt - 1 do
                x[b * n + k] <- 1.0

            for j = k - 1 downto 0 do
                let len = k - j
                let ro = j * n + j + 1

                if cnt = 4 then
                    let o0, o1, o2, o3 = j + 1, n + j + 1, 2 * n + j + 1, 3 * n + j + 1
                    let mutable a0 = Numerics.Vector<float>.Zero
                    let mutable a1 = Numerics.Vector<float>.Zero
                    let mutable a2 = Numerics.Vector<float>.Zero
                    let mutable a3 = Numerics.Vector<float>.Zero
                    let mutable t = 0

                    while t <= len - vw do
                        let rv = Numerics.Vector<float>(rt, ro + t)
                        a0 <- a0 + rv * Numerics.Vector<float>(x, o0 + t)
                        a1 <- a1 + rv * Numerics.Vector<float>(x, o1 + t)
                        a2 <- a2 + rv * Numerics.Vector<float>(x, o2 + t)
                        a3 <- a3 + rv * Numerics.Vector<float>(x, o3 + t)
                        t <- t + vw

                    let mutable d0 = Numerics.Vector.Dot(a0, Numerics.Vector<float>.One)
                    let mutable d1 = Numerics.Vector.Dot(a1, Numerics.Vector<float>.One)
                    let mutable d2 = Numerics.Vector.Dot(a2, Numerics.Vector<float>.One)
                    let mutable d3 = Numerics.Vector.Dot(a3, Numerics.Vector<float>.One)

                    while t < len do
                        let rv = rt[ro + t]
                        d0 <- d0 + rv * x[o0 + t]
                        d1 <- d1 + rv * x[o1 + t]
                        d2 <- d2 + rv * x[o2 + t]
                        d3 <- d3 + rv * x[o3 + t]
                        t <- t + 1

                    x[j] <- -(d0 * gp[s0][j]) / delta
                    x[n + j] <- -(d1 * gp[s0 + 1][j]) / delta
                    x[2 * n + j] <- -(d2 * gp[s0 + 2][j]) / delta
                    x[3 * n + j] <- -(d3 * gp[s0 + 3][j]) / delta
                else
                    for b in 0 .. cnt - 1 do
                        let d = Blas.dot (ReadOnlySpan(rt, ro, len)) (ReadOnlySpan(x, b * n + j + 1, len))
                        x[b * n + j] <- -(d * gp[s0 + b][j]) / delta

            for b in 0 .. cnt - 1 do
                Blas.axpby jacK[s0 + b] (ReadOnlySpan(x, b * n, k + 1)) 1.0 (Span(sums.Rg, 0, k + 1))

            s0 <- s0 + cnt

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
            elif m = 1 then
                // The responses come after the loop, four samples at a time (ScalarResponses).
                jacK[s] <- jac[0]
                Blas.axpby gs[k] (ReadOnlySpan(gs, 0, k + 1)) 1.0 (Span(sums.Su, 0, k + 1))
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

        if m = 1 && not storeResponses then
            this.ScalarResponses(k, delta, rt)

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
        storeResponses: bool,
        ct: Threading.CancellationToken
    ) =
    static member ChunkSize = 256
    member val Total = RowSums(columns.Points, columns.Width, columns.TeacherWidth)

    /// R^T for the m = 1 back substitution, filled one row of R per step (R(k, .) is final when row k is sampled).
    member val RT =
        if columns.Width = 1 && not storeResponses then
            Array.zeroCreate<float>(columns.Points * columns.Points)
        else
            [||]

    member val Chunks =
        let cs = RowSampler.ChunkSize
        let count = (samples + cs - 1) / cs

        Array.init count (fun c ->
            // Allocating a million samples' paths takes seconds: the token is seen per chunk here too.
            ct.ThrowIfCancellationRequested()
            let size = min cs (samples - c * cs)

            SampleChunk(
                size,
                columns.Points,
                columns.Width,
                columns.TeacherWidth,
                path.Dimension,
                rngFor c,
                storeResponses
            ))

    /// Run step k on every sample; Total then holds the sums of row k.
    member this.Step(k: int) =
        let rt = this.RT

        if rt.Length > 0 then
            let n = columns.Points

            for j in 0 .. k - 1 do
                rt[j * n + k] <- columns.R[k * n + j]

        // A step over all samples can take a second: the token is seen before each chunk of 256 samples.
        let chunks = this.Chunks
        Chunked.forEach parallelism ct chunks.Length (fun c -> chunks[c].Step(k, p, model, columns, path, this.RT))

        this.Total.Clear()

        for c in this.Chunks do
            c.Sums.AddTo this.Total
