namespace StatPhysFs.Simulation

open System
open System.Threading
open System.Threading.Tasks
open StatPhysFs
open StatPhysFs.Models

type LinearSimResult =
    {
        T: float[]
        M: SeriesEstimate
        Q: SeriesEstimate
        Eg: SeriesEstimate
        /// eg of each run along T (rows: runs).
        EgPerRun: float[][]
        /// (run, time) for every run that diverged.
        Divergences: (int * float) list
        Options: SimulationOptions
    }

/// Online SGD on linear regression at finite d, with the conventions of `OnlineLinear`: the step is
///   w <- (1 - eta lambda / d) w - (eta / (B sqrt d)) sum_b Delta_b x_b,  Delta = w.x/sqrt d - y,
/// and t = steps/d. The teacher has |w*|^2/d = rho exactly and the student starts at exactly (m0, q0).
[<RequireQualifiedAccess>]
module OnlineLinearSim =
    /// Builds a teacher with |w*|^2/d = rho and a student with the exact overlaps (m0, q0).
    let initialWeights (p: OnlineLinearParams) (d: int) (rng: Rng) =
        let wStar = Array.init d (fun _ -> rng.NextNormal())
        let scale = sqrt (p.Rho * float d / Blas.dotArr wStar wStar)

        for i in 0 .. d - 1 do
            wStar[i] <- wStar[i] * scale
        // u: Gaussian, orthogonal to w*, |u|^2/d = 1.
        let u = Array.init d (fun _ -> rng.NextNormal())
        let proj = Blas.dotArr u wStar / Blas.dotArr wStar wStar

        for i in 0 .. d - 1 do
            u[i] <- u[i] - proj * wStar[i]

        let un = sqrt (float d / Blas.dotArr u u)
        let perp = sqrt (max 0.0 (p.Q0 - p.M0 * p.M0 / p.Rho))
        let w = Array.init d (fun i -> p.M0 / p.Rho * wStar[i] + perp * un * u[i])
        wStar, w

    /// One run: m, q along the requested times (NaN after divergence) and the divergence time if any.
    let runOne
        (p: OnlineLinearParams)
        (o: SimulationOptions)
        (times: float[])
        (run: int)
        (ct: CancellationToken)
        (tick: int64 -> unit)
        =
        let d = o.Dim
        let rng = Rng(o.Seed, run)
        let wStar, w = initialWeights p d rng
        let x = Array.zeroCreate d
        let g = Array.zeroCreate d
        let sd = sqrt (float d)
        // Inputs from the SIMD Box-Muller block (5x faster than rng.FillNormal: the step is mostly drawing x); its
        // lanes are cut from rng by jumps, and rng keeps drawing the label noise.
        let normals = NormalBlock(rng)
        let sigma = sqrt p.NoiseVar
        let decay = 1.0 - p.Lr * p.Ridge / float d
        let stepScale = p.Lr / (float p.Batch * sd)
        let nt = times.Length
        let m = Array.create nt nan
        let q = Array.create nt nan
        let mutable diverged = None
        let mutable step = 0L
        let mutable k = 0

        let record j =
            m[j] <- Blas.dotArr w wStar / float d
            q[j] <- Blas.dotArr w w / float d

        while k < nt && diverged.IsNone do
            let target = int64 (Math.Round(times[k] * float d))
            let chunk = target - step

            while step < target && diverged.IsNone do
                if p.Batch = 1 then
                    normals.Fill(Span x)
                    let lam = Blas.dotArr w x / sd
                    let nu = Blas.dotArr wStar x / sd
                    let delta = lam - nu - sigma * rng.NextNormal()
                    Blas.axpby (-stepScale * delta) (ReadOnlySpan x) decay (Span w)
                else
                    Array.Clear g

                    for _ in 1 .. p.Batch do
                        normals.Fill(Span x)
                        let delta = (Blas.dotArr w x - Blas.dotArr wStar x) / sd - sigma * rng.NextNormal()
                        Blas.axpby delta (ReadOnlySpan x) 1.0 (Span g)

                    Blas.axpby (-stepScale) (ReadOnlySpan g) decay (Span w)

                step <- step + 1L

                // Cancellation is cheap to check: every 256 steps, so that a large d still stops within milliseconds.
                if step &&& 255L = 0L then
                    ct.ThrowIfCancellationRequested()

                // Checking q costs a pass over w: do it every d steps (one unit of time) and at record times.
                if step % int64 d = 0L then
                    let qq = Blas.dotArr w w / float d

                    if not (qq <= o.DivergenceBound) then
                        diverged <- Some(float step / float d)

                    ct.ThrowIfCancellationRequested()

            tick chunk

            if diverged.IsNone then
                record k

                if not (q[k] <= o.DivergenceBound) then
                    diverged <- Some(times[k])

            k <- k + 1

        m, q, diverged

    /// Runs `Seeds` independent simulations in parallel and averages m, q and eg at the given times.
    /// `progress` receives the fraction of all SGD steps done.
    [<CompiledName("Run")>]
    let run
        (o: SimulationOptions)
        (progress: float -> unit)
        (ct: CancellationToken)
        (p: OnlineLinearParams)
        (times: float[])
        =
        OnlineLinear.validate p

        let results =
            Ensemble.run o.MaxParallelism ct progress (SimulationOptions.work o times) o.Seeds (fun r tick ->
                runOne p o times r ct tick)

        let ms = results |> Array.map (fun (m, _, _) -> m)
        let qs = results |> Array.map (fun (_, q, _) -> q)

        let egs =
            Array.map2 (Array.map2 (fun m q -> OnlineLinear.generalisationError p m q)) ms qs

        {
            T = Array.copy times
            M = SeriesEstimate.ofRuns ms
            Q = SeriesEstimate.ofRuns qs
            Eg = SeriesEstimate.ofRuns egs
            EgPerRun = egs
            Divergences = SimulationOutcome.divergences (results |> Array.map (fun (_, _, dv) -> dv))
            Options = o
        }

    /// Simulates the problem at finite d (`sim`: dimension, seeds, seed, divergence bound) on the settings' output
    /// times, with their run control, and returns the ODE's solution shape: m, q, eg are means over runs, `Errors`
    /// their standard errors; the status is Diverged at the earliest divergence when a run diverged.
    /// Cancellation throws OperationCanceledException.
    [<CompiledName("Simulate")>]
    let simulate (sim: SimulationOptions) (settings: OnlineLinearSettings) (problem: OnlineLinearProblem) : OnlineLinearSolution =
        let times = OnlineLinear.outputTimes settings problem

        let r =
            run sim (RunControl.report settings.Control) settings.Control.CancellationToken problem.Model times

        {
            Problem = problem
            T = r.T
            M = r.M.Mean
            Q = r.Q.Mean
            Eg = r.Eg.Mean
            Errors =
                Some
                    {
                        M = r.M.StdErr
                        Q = r.Q.StdErr
                        Eg = r.Eg.StdErr
                        Divergences = r.Divergences
                    }
            Status = SimulationOutcome.status sim r.Divergences
            EarlyStopping = None
            Stats = SimulationOutcome.noOdeStats
        }
