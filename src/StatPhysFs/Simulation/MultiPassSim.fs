namespace StatPhysFs.Simulation

open System
open System.Threading
open StatPhysFs
open StatPhysFs.Dmft

/// Which finite-d process a multi-pass simulation runs.
type MultiPassProcess =
    /// The SGF of dmft-sgf.md section 3.1 (Euler-Maruyama, one Brownian motion per sample, step Dt).
    | Sgf
    /// Real mini-batch SGD with batch B and learning rate eta = tau B, observed at SGF times t = k eta / d.
    | Sgd of batch: int * sampling: BatchSampling

/// What a multi-pass simulation runs, and how.
type MultiPassSimSettings =
    {
        Process: MultiPassProcess
        /// Dimension d, seeds, base seed, divergence bound, parallelism.
        Options: SimulationOptions
        /// Cancellation (solve throws OperationCanceledException) and progress (the fraction of all steps done).
        Control: RunControl
    }

[<RequireQualifiedAccess>]
module MultiPassSimSettings =
    /// The SGF at the simulators' defaults (d = 1000, 5 seeds, seed 1).
    [<CompiledName("Defaults")>]
    let defaults =
        {
            Process = Sgf
            Options = SimulationOptions.defaults
            Control = RunControl.defaults
        }

/// Averages over seeds on the DMFT grid t_k = k Dt (standard errors across seeds): the same observables as the
/// DmftSolution, each with its standard error.
type MultiPassSimSolution =
    {
        Problem: DmftProblem
        Settings: MultiPassSimSettings
        T: float[]
        Q: SeriesEstimate[,]
        M: SeriesEstimate[,]
        TrainLoss: SeriesEstimate
        TestLoss: SeriesEstimate
        TestError: SeriesEstimate option
        /// (seed, time) of every run that left the divergence bound; the series are NaN from there on.
        Divergences: (int * float)[]
        /// Completed, or Diverged at the earliest divergence of any seed.
        Status: RunStatus
        WallSeconds: float
    }

    interface ISolution with
        member s.Times = s.T
        member s.Status = s.Status

        member s.Observables =
            MultiPassObservables.ofSeries s.Problem s.Q s.M s.TrainLoss s.TestLoss s.TestError true

/// Finite-n, finite-d multi-pass training on one fixed data set (n = alpha d samples, X_ij ~ N(0, 1/d)), the ground
/// truth the DMFT describes. Observables use the exact Gaussian test integrals of the current overlaps.
[<RequireQualifiedAccess>]
module MultiPassSim =
    type private Data =
        {
            X: float[][]
            Y: float[]
            Theta: float[][]
            Star: float[][]
        }

    /// A data set, a teacher with Gram exactly rho (Gram-Schmidt, then the Cholesky factor of rho) and theta_0 with
    /// rows N(0, Q0).
    /// `check` runs every few rows: drawing n x d inputs is the longest part of a short run, and a cancellation must
    /// not wait for it.
    let private draw (p: DmftProblem) (model: RowModel) (d: int) (rng: Rng) (check: unit -> unit) =
        let m, ms = DmftProblem.widths p
        let n = max 1 (int (Math.Round(p.Alpha * float d)))
        let g = Array.init ms (fun _ -> Array.init d (fun _ -> rng.NextNormal()))

        for b in 0 .. ms - 1 do
            for c in 0 .. b - 1 do
                let proj = Blas.dotArr g[b] g[c] / Blas.dotArr g[c] g[c]

                for j in 0 .. d - 1 do
                    g[b][j] <- g[b][j] - proj * g[c][j]

            let s = sqrt (float d / Blas.dotArr g[b] g[b])

            for j in 0 .. d - 1 do
                g[b][j] <- g[b][j] * s

        let lr = Linalg.psdFactor "rho" p.Rho

        let star =
            Array.init ms (fun b ->
                Array.init d (fun j -> Seq.sum (seq { for c in 0 .. ms - 1 -> lr[b, c] * g[c][j] })))

        let lq = Linalg.psdFactor "q0" p.Q0
        let z = Array.init m (fun _ -> Array.init d (fun _ -> rng.NextNormal()))

        let theta =
            Array.init m (fun a -> Array.init d (fun j -> Seq.sum (seq { for c in 0 .. m - 1 -> lq[a, c] * z[c][j] })))

        let scale = 1.0 / sqrt (float d)
        let x =
            Array.init n (fun i ->
                if i &&& 31 = 0 then
                    check ()

                Array.init d (fun _ -> scale * rng.NextNormal()))
        let sigma = sqrt p.NoiseVar
        let ws = Array.zeroCreate ms

        let y =
            Array.init n (fun i ->
                for b in 0 .. ms - 1 do
                    ws[b] <- Blas.dotArr x[i] star[b]

                model.Label ws (sigma * rng.NextNormal()))

        {
            X = x
            Y = y
            Theta = theta
            Star = star
        }

    let private overlaps (data: Data) (d: int) =
        let m = data.Theta.Length
        let ms = data.Star.Length

        let q =
            Array2D.init m m (fun a b -> Blas.dotArr data.Theta[a] data.Theta[b] / float d)

        let mm =
            Array2D.init m ms (fun a b -> Blas.dotArr data.Theta[a] data.Star[b] / float d)

        q, mm

    /// Mean training loss over the n samples, and the fields r_i = x_i . theta into `r` (n x m).
    let private fields (model: RowModel) (data: Data) (r: float[][]) =
        let m = data.Theta.Length
        let mutable loss = 0.0

        for i in 0 .. data.X.Length - 1 do
            for a in 0 .. m - 1 do
                r[i][a] <- Blas.dotArr data.X[i] data.Theta[a]

            loss <- loss + model.Loss r[i] data.Y[i]

        loss / float data.X.Length

    type private RunOut =
        {
            Q: float[,][]
            M: float[,][]
            Train: float[]
            Diverged: float option
        }

    let private runOne
        (o: SimulationOptions)
        (ct: CancellationToken)
        (p: DmftProblem)
        (proc: MultiPassProcess)
        (run: int)
        tick
        =
        let model = RowModel.create p.Model
        let d = o.Dim
        let rng = Rng(o.Seed, run)
        let data = draw p model d rng (fun () -> tick 0L)
        let m, _ = DmftProblem.widths p
        let n = data.X.Length
        let points = p.Steps + 1
        let qs = Array.zeroCreate points
        let ms = Array.zeroCreate points
        let train = Array.create points nan
        let r = Array.init n (fun _ -> Array.zeroCreate m)
        let l = Array.zeroCreate m
        let jac = Array.zeroCreate (m * m)
        let mutable diverged = None

        let record k loss =
            let q, mm = overlaps data d
            qs[k] <- q
            ms[k] <- mm
            train[k] <- loss

            let size = seq { for a in 0 .. m - 1 -> q[a, a] } |> Seq.max

            if not (Double.IsFinite size) || size > o.DivergenceBound then
                diverged <- Some(float k * p.Dt)

        match proc with
        | Sgf ->
            let noise = sqrt (p.Tau * p.Alpha * p.Dt)
            let g = Array.init n (fun _ -> Array.zeroCreate m)
            let shrink = 1.0 - p.Dt * p.Ridge
            let mutable k = 0

            while k < points && diverged.IsNone do
                // One pass gives the fields, the train loss and l(r_i); the step then only scales l by its noise.
                let mutable loss = 0.0

                for i in 0 .. n - 1 do
                    // A pass over the data is O(n d m): the token is seen every 64 samples, not once per step.
                    if i &&& 63 = 0 then
                        ct.ThrowIfCancellationRequested()

                    for a in 0 .. m - 1 do
                        r[i][a] <- Blas.dotArr data.X[i] data.Theta[a]

                    loss <- loss + model.Eval r[i] data.Y[i] g[i] jac

                record k (loss / float n)

                if k < points - 1 && diverged.IsNone then
                    for i in 0 .. n - 1 do
                        let fac = p.Dt - noise * rng.NextNormal()

                        for a in 0 .. m - 1 do
                            g[i][a] <- g[i][a] * fac
                    // theta <- (1 - Dt lambda) theta - X^T g / alpha
                    for a in 0 .. m - 1 do
                        let th = data.Theta[a]

                        for j in 0 .. d - 1 do
                            th[j] <- shrink * th[j]

                        for i in 0 .. n - 1 do
                            if i &&& 63 = 0 then
                                ct.ThrowIfCancellationRequested()

                            Blas.axpby (-g[i][a] / p.Alpha) (ReadOnlySpan data.X[i]) 1.0 (Span th)

                    tick (int64 (Math.Round(p.Dt * float d)))

                k <- k + 1
        | Sgd(batch, sampling) ->
            Check.that "tau" (p.Tau > 0.0) "real SGD needs tau = eta/B > 0 (tau = 0 is gradient flow: use the SGF)."
            let eta = p.Tau * float batch
            let shrink = 1.0 - eta * p.Ridge / float d
            let sampler = BatchSampler(sampling, n, rng)
            let ri = Array.zeroCreate m
            let mutable steps = 0L
            let mutable k = 0
            let nextIndex () = sampler.Next()

            let grads = Array.init batch (fun _ -> Array.zeroCreate m)
            let idx = Array.zeroCreate batch

            while k < points && diverged.IsNone do
                let loss = fields model data r
                ct.ThrowIfCancellationRequested()
                record k loss

                if k < points - 1 && diverged.IsNone then
                    // SGD steps until SGF time t_{k+1} = (k+1) Dt, i.e. step count round(t d / eta).
                    let target = int64 (Math.Round(float (k + 1) * p.Dt * float d / eta))

                    while steps < target do
                        // One SGD step is O(B d m): the token is seen every step.
                        ct.ThrowIfCancellationRequested()

                        for b in 0 .. batch - 1 do
                            let i = nextIndex ()
                            idx[b] <- i

                            for a in 0 .. m - 1 do
                                ri[a] <- Blas.dotArr data.X[i] data.Theta[a]

                            model.Eval ri data.Y[i] l jac |> ignore
                            Array.blit l 0 grads[b] 0 m

                        for a in 0 .. m - 1 do
                            let th = data.Theta[a]

                            if shrink <> 1.0 then
                                for j in 0 .. d - 1 do
                                    th[j] <- shrink * th[j]

                            for b in 0 .. batch - 1 do
                                Blas.axpby
                                    (-eta / float batch * grads[b][a])
                                    (ReadOnlySpan data.X[idx[b]])
                                    1.0
                                    (Span th)

                        steps <- steps + 1L

                    tick (int64 (Math.Round(p.Dt * float d)))

                k <- k + 1

        {
            Q = qs
            M = ms
            Train = train
            Diverged = diverged
        }

    /// Simulate settings.Process on the problem's grid for settings.Options.Seeds independent data sets (in
    /// parallel; run r uses the stream (Seed, r), so the numbers do not depend on the thread count). Throws
    /// OperationCanceledException when settings.Control's token is cancelled.
    [<CompiledName("Solve")>]
    let solve (settings: MultiPassSimSettings) (p: DmftProblem) : MultiPassSimSolution =
        let clock = Diagnostics.Stopwatch.StartNew()
        let o = settings.Options
        let proc = settings.Process
        let ct = settings.Control.CancellationToken
        DmftProblem.validate p

        match proc with
        | Sgd(b, _) -> Check.intInRange "batch" 1 1_000_000_000 b
        | Sgf -> ()

        ct.ThrowIfCancellationRequested()
        let times = Array.init (p.Steps + 1) (fun k -> float k * p.Dt)

        let outs =
            let work =
                SimulationOptions.work o (if times.Length > 1 then times else [| 0.0; 1.0 |])

            Ensemble.run o.MaxParallelism ct (RunControl.report settings.Control) work o.Seeds (fun r tick ->
                runOne o ct p proc r tick)

        let m, ms = DmftProblem.widths p
        let points = times.Length

        // A diverged run is NaN from its divergence on, so the averages are NaN there (SeriesEstimate.ofRuns).
        let value (out: RunOut) k f =
            match out.Diverged with
            | Some t when float k * p.Dt >= t -> nan
            | _ -> f k

        let series f =
            SeriesEstimate.ofRuns (outs |> Array.map (fun out -> Array.init points (fun k -> value out k (f out))))

        let testError =
            match Observables.testError p (Array2D.zeroCreate m m) (Array2D.zeroCreate m ms) with
            | Some _ -> Some(series (fun out k -> (Observables.testError p out.Q[k] out.M[k]).Value))
            | None -> None

        let divergences =
            outs
            |> Array.mapi (fun r out -> out.Diverged |> Option.map (fun t -> r, t))
            |> Array.choose id

        {
            Problem = p
            Settings = settings
            T = times
            Q = Array2D.init m m (fun a b -> series (fun out k -> out.Q[k][a, b]))
            M = Array2D.init m ms (fun a b -> series (fun out k -> out.M[k][a, b]))
            TrainLoss = series (fun out k -> out.Train[k])
            TestLoss = series (fun out k -> Observables.testLoss p out.Q[k] out.M[k])
            TestError = testError
            Divergences = divergences
            Status =
                if divergences.Length = 0 then
                    Completed
                else
                    Diverged(
                        divergences |> Array.map snd |> Array.min,
                        $"q exceeded the divergence bound %g{o.DivergenceBound} in %d{divergences.Length} of %d{o.Seeds} seeds"
                    )
            WallSeconds = clock.Elapsed.TotalSeconds
        }
