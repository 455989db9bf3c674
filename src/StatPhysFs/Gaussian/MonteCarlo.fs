namespace StatPhysFs.Gaussian

open System
open System.Threading
open StatPhysFs

/// Monte Carlo and randomised quasi-Monte Carlo estimators of E[f(X)], X ~ N(mean, cov).
[<RequireQualifiedAccess>]
module GaussianMonteCarlo =
    let private transform (l: float[,]) (mean: float[]) (z: float[]) (x: float[]) =
        let d = mean.Length

        for i in 0 .. d - 1 do
            let mutable v = mean[i]

            for j in 0..i do
                v <- v + l[i, j] * z[j]

            for j in i + 1 .. d - 1 do
                v <- v + l[i, j] * z[j]

            x[i] <- v

    /// `estimate` that throws OperationCanceledException when `ct` is cancelled (seen every 4096 draws).
    [<CompiledName("EstimateCancellable")>]
    let estimateCancellable
        (ct: CancellationToken)
        (seed: int)
        (samples: int)
        (mean: float[])
        (cov: float[,])
        (f: float[] -> float)
        : Estimate =
        Check.intInRange "samples" 2 Int32.MaxValue samples
        Check.that "mean" (mean.Length = Array2D.length1 cov) "mean and cov must have matching sizes."
        let d = mean.Length
        let l = Linalg.psdFactor "cov" cov
        let chunks = min 64 samples
        let sums = Array.zeroCreate chunks
        let sqs = Array.zeroCreate chunks

        Ensemble.sample Environment.ProcessorCount ct seed 0 chunks (fun c rng ->
            let z = Array.zeroCreate d
            let x = Array.zeroCreate d
            let lo = int (int64 samples * int64 c / int64 chunks)
            let hi = int (int64 samples * int64 (c + 1) / int64 chunks)
            let mutable s = 0.0
            let mutable s2 = 0.0

            for k in lo .. hi - 1 do
                if (k - lo) &&& 4095 = 0 then
                    ct.ThrowIfCancellationRequested()

                rng.FillNormal(Span z)
                transform l mean z x
                let v = f x
                s <- s + v
                s2 <- s2 + v * v

            sums[c] <- s
            sqs[c] <- s2)
        |> ignore

        let n = float samples
        let m = Array.sum sums / n
        let var = max 0.0 (Array.sum sqs / n - m * m) * n / (n - 1.0)

        {
            Mean = m
            StdErr = sqrt (var / n)
            Count = samples
        }

    /// Plain Monte Carlo with `samples` draws. The draws are split into a fixed number of chunks, each with its own
    /// stream (seed, chunk), and the chunk sums are added in order, so the result does not depend on the number of
    /// threads. Returns the mean and its standard error.
    [<CompiledName("Estimate")>]
    let estimate (seed: int) (samples: int) (mean: float[]) (cov: float[,]) (f: float[] -> float) : Estimate =
        estimateCancellable CancellationToken.None seed samples mean cov f

    /// `estimateQuasi` that throws OperationCanceledException when `ct` is cancelled (seen every 4096 points).
    [<CompiledName("EstimateQuasiCancellable")>]
    let estimateQuasiCancellable
        (ct: CancellationToken)
        (seed: int)
        (points: int)
        (shifts: int)
        (mean: float[])
        (cov: float[,])
        (f: float[] -> float)
        : Estimate =
        Check.intInRange "points" 1 Int32.MaxValue points
        Check.intInRange "shifts" 2 10_000 shifts
        let d = mean.Length
        Check.intInRange "dimension" 1 Halton.primes.Length d
        Check.that "mean" (d = Array2D.length1 cov) "mean and cov must have matching sizes."
        let l = Linalg.psdFactor "cov" cov
        let rng = Rng(seed, 7919)

        let shiftVecs =
            Array.init shifts (fun _ -> Array.init d (fun _ -> rng.NextDouble()))

        let est = Array.zeroCreate shifts

        Chunked.forEach Environment.ProcessorCount ct shifts (fun r ->
                let z = Array.zeroCreate d
                let x = Array.zeroCreate d
                let mutable s = 0.0

                for i in 1..points do
                    if i &&& 4095 = 0 then
                        ct.ThrowIfCancellationRequested()

                    for j in 0 .. d - 1 do
                        let u = Halton.radicalInverse Halton.primes[j] i + shiftVecs[r][j]
                        let u = (if u >= 1.0 then u - 1.0 else u) |> max 1e-16 |> min (1.0 - 1e-16)
                        z[j] <- MathNet.Numerics.Distributions.Normal.InvCDF(0.0, 1.0, u)

                    transform l mean z x
                    s <- s + f x

                est[r] <- s / float points)

        let e = Stats.estimate est
        { e with Count = points * shifts }

    /// Randomised quasi-Monte Carlo: a Halton point set of size `points`, repeated with `shifts` independent
    /// Cranley-Patterson random shifts, mapped to the Gaussian by the inverse normal CDF. The standard error is the
    /// spread of the shifted estimates, so it is an honest error bar, not a heuristic.
    [<CompiledName("EstimateQuasi")>]
    let estimateQuasi (seed: int) (points: int) (shifts: int) (mean: float[]) (cov: float[,]) (f: float[] -> float) =
        estimateQuasiCancellable CancellationToken.None seed points shifts mean cov f
