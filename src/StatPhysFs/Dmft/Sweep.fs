namespace StatPhysFs.Dmft

open System
open StatPhysFs

/// One replica's solution, before averaging.
type internal ReplicaRun =
    {
        Reached: int
        Train: float[]
        Columns: Columns
        Status: RunStatus
        Detail: string
        /// Last change of q between fixed-point iterations (NaN for the other strategies).
        Residual: float
    }

/// The causal forward sweep of the discrete DMFT (spec 5.2 A) and the pieces the fixed point shares with it: the
/// kernels of a row from sample sums, the divergence check and the random streams.
[<RequireQualifiedAccess>]
module internal DmftSweep =
    let divergenceBound = 1e8

    /// Kernels of row k from the sample sums (spec section 3.2): R_g = Delta E[J D], Sigma_u = E[g g^T]/delta, mu by
    /// Stein on the teacher field.
    let setRow (p: DmftProblem) (columns: Columns) (k: int) (rgSum: float[]) (suSum: float[]) (lw: float[]) =
        let mm = columns.Width * columns.Width

        for l in 0..k do
            let o = columns.Index k l

            for e in 0 .. mm - 1 do
                columns.Rg[o + e] <- p.Dt * rgSum[l * mm + e]
                columns.Su[o + e] <- suSum[l * mm + e] / p.Alpha

        columns.SetMu(k, lw)

    let scaled (a: float[]) (c: float) = a |> Array.map (fun x -> x * c)

    let diverged (p: DmftProblem) (columns: Columns) (k: int) =
        let s = columns.DiagonalSize k

        if s > divergenceBound then
            Some(Diverged(float k * p.Dt, $"q exceeded the divergence bound %g{divergenceBound}"))
        else
            None

    /// The causal sweep: row step k (by `rowStep`, which sets the kernels of row k and returns the train loss),
    /// then the columns to k + 1.
    let sweep (p: DmftProblem) (columns: Columns) (ct: Threading.CancellationToken) tick rowStep =
        let n = p.Steps + 1
        let train = Array.create n nan
        let mutable status = Completed
        let mutable k = 0

        while k < n && status = Completed do
            ct.ThrowIfCancellationRequested()
            train[k] <- rowStep k

            if k < n - 1 then
                columns.Advance k

                match diverged p columns (k + 1) with
                | Some s -> status <- s
                | None -> ()

            tick ()
            k <- k + 1

        // On divergence the row at the last reached step was never sampled: report up to the step before.
        let reached = if status = Completed then n else k
        train, reached, status

    let rngFor (seed: int) (replica: int) (iteration: int) (batch: int) (chunk: int) =
        Rng(
            uint64 (int64 seed),
            (uint64 replica <<< 44)
            ^^^ (uint64 iteration <<< 32)
            ^^^ (uint64 batch <<< 20)
            ^^^ uint64 chunk
        )

    /// The forward sweep of one replica with the given sampler (`SamplerVariant`: the default, or a test variant:
    /// the O(N K^2) stored-responses oracle of the back substitution, or the m = 1 sampler held to Vector<float>).
    let forwardSweepWith variant (s: DmftSettings) (p: DmftProblem) (model: RowModel) replica samples stream tick =
        let columns = Columns(p, s.Control.CancellationToken)
        let path = GaussianPath(columns, s.Control.CancellationToken)
        path.AddTeacher()

        let sampler =
            RowSampler(
                p,
                model,
                columns,
                path,
                samples,
                rngFor s.Seed replica stream 0,
                s.MaxParallelism,
                variant,
                s.Control.CancellationToken
            )

        let rowStep k =
            path.AddStep k
            sampler.Step k
            let t = sampler.Total
            let inv = 1.0 / float t.Count
            setRow p columns k (scaled t.Rg inv) (scaled t.Su inv) (scaled t.LwStar inv)
            t.Loss * inv

        let train, reached, status =
            sweep p columns s.Control.CancellationToken tick rowStep

        columns, train, reached, status

    let forwardSweep s p model replica samples stream tick =
        forwardSweepWith DefaultSampler s p model replica samples stream tick
