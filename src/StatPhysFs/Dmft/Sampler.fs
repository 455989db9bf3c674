namespace StatPhysFs.Dmft

open System
open System.Threading.Tasks
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
type internal SampleChunk(size: int, points: int, m: int, ms: int, dim: int, rng: Rng) =
    let mm = m * m
    let z = Array.init size (fun _ -> Array.zeroCreate<float> dim)
    let ws = Array.init size (fun _ -> Array.zeroCreate<float> ms)
    let y = Array.zeroCreate<float> size
    let g = Array.init size (fun _ -> Array.zeroCreate<float>(points * m))
    let gp = Array.init size (fun _ -> Array.zeroCreate<float>(points * mm))

    let d =
        Array.init size (fun _ -> Array.zeroCreate<float>(points * (points + 1) / 2 * mm))

    let sums = RowSums(points, m, ms)
    // Scratch.
    let w = Array.zeroCreate<float> m
    let r = Array.zeroCreate<float> m
    let l = Array.zeroCreate<float> m
    let jac = Array.zeroCreate<float> mm
    let e = Array.zeroCreate<float>(points * mm)
    let acc = Array.zeroCreate<float>(points * mm)

    member _.Sums = sums

    /// Advance every sample of the chunk to step k given the column quantities and the Gaussian factor.
    member _.Step(k: int, p: DmftProblem, model: RowModel, columns: Columns, path: GaussianPath) =
        sums.Clear()
        let lf = path.Factor
        let delta = p.Alpha
        let noise = sqrt (p.Tau * delta * p.Dt)
        let sigma = sqrt p.NoiseVar
        let tri = k * (k + 1) / 2

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

            for a in 0 .. m - 1 do
                for b in 0 .. ms - 1 do
                    sums.LwStar[a * ms + b] <- sums.LwStar[a * ms + b] + l[a] * ws[s][b]

            sums.Loss <- sums.Loss + loss
            sums.Count <- sums.Count + 1

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
        parallelism: int
    ) =
    static member ChunkSize = 256
    member val Total = RowSums(columns.Points, columns.Width, columns.TeacherWidth)

    member val Chunks =
        let cs = RowSampler.ChunkSize
        let count = (samples + cs - 1) / cs

        Array.init count (fun c ->
            let size = min cs (samples - c * cs)
            SampleChunk(size, columns.Points, columns.Width, columns.TeacherWidth, path.Dimension, rngFor c))

    /// Run step k on every sample; Total then holds the sums of row k.
    member this.Step(k: int) =
        let po = ParallelOptions(MaxDegreeOfParallelism = parallelism)

        Parallel.For(0, this.Chunks.Length, po, fun c -> this.Chunks[c].Step(k, p, model, columns, path))
        |> ignore

        this.Total.Clear()

        for c in this.Chunks do
            c.Sums.AddTo this.Total
