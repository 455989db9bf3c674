namespace StatPhysFs.Dmft

open StatPhysFs

/// Strategy B of the discrete DMFT (spec 5.2 B): damped fixed-point iteration over whole trajectories, the samples
/// processed in batches, so that memory does not grow with the sample count.
[<RequireQualifiedAccess>]
module internal DmftFixedPoint =
    /// Strategy B: damped fixed-point iteration over whole trajectories, samples processed in batches of `batch`.
    let run (s: DmftSettings) (p: DmftProblem) model replica batch beta iterations tick =
        // Start from a forward sweep on one batch: already exact up to its Monte Carlo noise.
        let columns, train0, reached, status =
            DmftSweep.forwardSweep s p model replica (min batch s.Samples) 1 ignore

        if status <> Completed then
            columns, train0, reached, status, nan
        else
            let n = p.Steps + 1
            let m, ms = columns.Width, columns.TeacherWidth
            let mm = m * m
            let ct = s.Control.CancellationToken
            let path = GaussianPath(columns, ct)
            // Damped raw estimates E[J D], E[g g^T], E[l w*^T], E[L] per row.
            let estRg = Cancellable.zeroed ct (n * n * mm)
            let estSu = Cancellable.zeroed ct (n * n * mm)
            let estLw = Array.zeroCreate (n * m * ms)
            let estLoss = Array.copy train0

            for k in 0 .. n - 1 do
                for l in 0..k do
                    for e in 0 .. mm - 1 do
                        estRg[(k * n + l) * mm + e] <- columns.Rg[columns.Index k l + e] / p.Dt
                        estSu[(k * n + l) * mm + e] <- columns.Su[columns.Index k l + e] * p.Alpha
                // Recover E[l w*^T] = (mu rho + sum R_g M)/Delta from the sweep's mu.
                let tmp = Array.zeroCreate (m * ms)
                Small.mulAdd 1.0 columns.Mu (k * m * ms) columns.Rho 0 false tmp 0 m ms ms

                for l in 0..k do
                    Small.mulAdd 1.0 columns.Rg (columns.Index k l) columns.M (l * m * ms) false tmp 0 m m ms

                for e in 0 .. m * ms - 1 do
                    estLw[k * m * ms + e] <- tmp[e] / p.Dt

            let batches = (s.Samples + batch - 1) / batch
            let mutable status = Completed
            let mutable reached = n
            let mutable residual = nan
            let mutable it = 0
            let avgRg = Array.zeroCreate (n * n * mm)
            let avgSu = Array.zeroCreate (n * n * mm)
            let avgLw = Array.zeroCreate (n * m * ms)
            let avgLoss = Array.zeroCreate n
            let mutable averaged = 0

            // The columns from scratch with given kernels (mu needs M up to its own row: causal).
            let recompute (rg: float[]) (su: float[]) (lw: float[]) =
                columns.Reset()
                let mutable k = 0

                while k < n && status = Completed do
                    s.Control.CancellationToken.ThrowIfCancellationRequested()

                    DmftSweep.setRow
                        p
                        columns
                        k
                        rg[k * n * mm .. (k * n + k + 1) * mm - 1]
                        su[k * n * mm .. (k * n + k + 1) * mm - 1]
                        lw[k * m * ms .. (k + 1) * m * ms - 1]

                    if k < n - 1 then
                        columns.Advance k

                        match DmftSweep.diverged p columns (k + 1) with
                        | Some d ->
                            status <- d
                            reached <- k + 1
                        | None -> ()

                    k <- k + 1

            while it < iterations && status = Completed do
                s.Control.CancellationToken.ThrowIfCancellationRequested()
                path.Rebuild()
                let sumRg = Array.zeroCreate (n * n * mm)
                let sumSu = Array.zeroCreate (n * n * mm)
                let sumLw = Array.zeroCreate (n * m * ms)
                let sumLoss = Array.zeroCreate n
                let mutable count = 0

                for b in 0 .. batches - 1 do
                    let size = min batch (s.Samples - b * batch)

                    let sampler =
                        RowSampler(
                            p,
                            model,
                            columns,
                            path,
                            size,
                            DmftSweep.rngFor s.Seed replica (it + 2) b,
                            s.MaxParallelism,
                            DefaultSampler,
                            s.Control.CancellationToken
                        )

                    for k in 0 .. n - 1 do
                        // A whole iteration can take minutes: cancellation is checked per batch step.
                        s.Control.CancellationToken.ThrowIfCancellationRequested()
                        sampler.Step k
                        let t = sampler.Total

                        for e in 0 .. (k + 1) * mm - 1 do
                            sumRg[k * n * mm + e] <- sumRg[k * n * mm + e] + t.Rg[e]
                            sumSu[k * n * mm + e] <- sumSu[k * n * mm + e] + t.Su[e]

                        for e in 0 .. m * ms - 1 do
                            sumLw[k * m * ms + e] <- sumLw[k * m * ms + e] + t.LwStar[e]

                        sumLoss[k] <- sumLoss[k] + t.Loss

                    count <- count + size

                let inv = 1.0 / float count

                let mix (a: float[]) (b: float[]) =
                    for i in 0 .. a.Length - 1 do
                        a[i] <- (1.0 - beta) * a[i] + beta * b[i] * inv

                mix estRg sumRg
                mix estSu sumSu
                mix estLw sumLw
                mix estLoss sumLoss
                let before = Array.init n (fun k -> columns.DiagonalSize k)
                recompute estRg estSu estLw
                residual <- Array.init n (fun k -> abs (columns.DiagonalSize k - before[k])) |> Array.max
                // Polyak averaging over the second half: fresh samples every iteration make the iterates noisy
                // (the map amplifies kernel noise at late times); their average is not.
                if 2 * (it + 1) > iterations then
                    for (a, b) in [ avgRg, estRg; avgSu, estSu; avgLw, estLw; avgLoss, estLoss ] do
                        for i in 0 .. a.Length - 1 do
                            a[i] <- a[i] + b[i]

                    averaged <- averaged + 1

                tick ()
                it <- it + 1

            if status = Completed && averaged > 1 then
                for a in [ avgRg; avgSu; avgLw; avgLoss ] do
                    for i in 0 .. a.Length - 1 do
                        a[i] <- a[i] / float averaged

                recompute avgRg avgSu avgLw
                Array.blit avgLoss 0 estLoss 0 n

            columns, estLoss, reached, status, residual
