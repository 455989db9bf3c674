namespace StatPhysFs.Models

open System
open StatPhysFs
open StatPhysFs.Gaussian

/// How the committee's Gaussian expectations are evaluated where no closed form applies (part of the settings:
/// these were mutable globals before).
type CommitteeQuadrature =
    {
        /// Quasi-Monte Carlo points of the sampled path (biases, custom or mixed activations).
        SampledPoints: int
        /// Gauss-Hermite order per dimension of the generic (custom activation) closed-form path.
        IntegralOrder: int
        /// Below this many I4 terms per right-hand side (lanes, padding included, times n (n + 1) / 2) the erf pair
        /// loop stays on one thread: at ~0.7 ns per term, 60000 terms are ~40 us of work, a few times a fork/join's
        /// wake-up (K = M = 16 and up fork, 15 does not; on 4-lane hardware the padding differs slightly). Does not change the numbers.
        ParallelThreshold: int
    }

[<RequireQualifiedAccess>]
module CommitteeQuadrature =
    /// 2^15 QMC points, Gauss-Hermite order 24, parallel above 60000 I4 terms.
    [<CompiledName("Defaults")>]
    let defaults =
        {
            SampledPoints = 1 <<< 15
            IntegralOrder = CommitteeIntegrals.DefaultOrder
            ParallelThreshold = 60000
        }

    let validate (q: CommitteeQuadrature) =
        Check.intInRange "SampledPoints" 1 100_000_000 q.SampledPoints
        Check.intInRange "IntegralOrder" 1 200 q.IntegralOrder
        Check.nonNegative "ParallelThreshold" (float q.ParallelThreshold)

/// The Gaussian moments of the fields the committee ODE needs: closed forms (erf, ReLU, linear, generic
/// Gauss-Hermite) or common-random-number QMC.
[<RequireQualifiedAccess>]
module CommitteeMoments =
    /// Halton points in dimension n mapped to N(0, I) (scrambling-free, fixed: common random numbers).
    let private haltonNormal (n: int) (count: int) =
        Check.intInRange "K + M (sampled integrals)" 1 Halton.primes.Length n

        Array.init count (fun i ->
            Halton.point n (i + 1)
            |> Array.map (fun u -> MathNet.Numerics.Distributions.Normal.InvCDF(0.0, 1.0, u)))

    let private pointCache =
        System.Collections.Concurrent.ConcurrentDictionary<struct (int * int), float[][]>()

    /// The fixed QMC point set of `count` points in dimension n (cached: common random numbers).
    let points (count: int) (n: int) =
        pointCache.GetOrAdd(struct (n, count), fun (struct (n, c)) -> haltonNormal n c)

    let i2 (order: int) (g: Activation) (c: float[,]) a b =
        match g with
        | Erf -> CommitteeIntegrals.erfI2 c[a, a] c[a, b] c[b, b]
        | Linear -> c[a, b]
        | Relu -> CommitteeIntegrals.reluI2 c[a, a] c[a, b] c[b, b]
        | Custom _ -> CommitteeIntegrals.i2With order g (array2D [ [ c[a, a]; c[a, b] ]; [ c[a, b]; c[b, b] ] ])

    /// The generalisation error eg = (1/2) a^T I2 a with a = (v, -vT), label noise excluded.
    let generalisationError (q: CommitteeQuadrature) (p: CommitteeParams) (s: CommitteeState) =
        let c = CommitteeLayout.fieldCovariance p s
        let n = p.K + p.M
        let a = Array.init n (fun i -> if i < p.K then s.V[i] else -p.VTeacher[i - p.K])

        if CommitteeLayout.needsSampling p then
            // (1/2) E[Delta^2] over the shifted fields, by the same fixed QMC points as the right-hand side.
            let l = Linalg.psdFactorClipped c
            let mu = CommitteeLayout.fieldMean p
            let mutable acc = 0.0

            for z in points q.SampledPoints n do
                let mutable delta = 0.0

                for i in 0 .. n - 1 do
                    let mutable f = mu[i]

                    for j in 0 .. n - 1 do
                        f <- f + l[i, j] * z[j]

                    delta <- delta + a[i] * Activation.value (CommitteeLayout.fieldActivation p i) f

                acc <- acc + delta * delta

            0.5 * acc / float (points q.SampledPoints n).Length
        else
            let mutable e = 0.0

            for i in 0 .. n - 1 do
                for j in 0 .. n - 1 do
                    e <- e + a[i] * a[j] * i2 q.IntegralOrder p.Activation c i j

            0.5 * e

    /// Expectations the right-hand side needs, for the current covariance c and output weights a = (v, -vT):
    /// a3[k, q] = E[g'(lambda_k) phi_q Delta], b4[i, k] = E[g'_i g'_k Delta^2], j2[i, k], i2[i, p],
    /// with Delta = sum_p a_p g(phi_p) the clean error.
    type Moments =
        {
            A3: float[,]
            B4: float[,]
            J2: float[,]
            I2: float[,]
        }

    let closedMoments (order: int) (p: CommitteeParams) (c: float[,]) (a: float[]) =
        let n = p.K + p.M
        let k = p.K
        let a3 = Array2D.zeroCreate k n
        let b4 = Array2D.zeroCreate k k
        let j2 = Array2D.zeroCreate k k
        let i2m = Array2D.zeroCreate k n
        let g = p.Activation

        for i in 0 .. k - 1 do
            for q in 0 .. n - 1 do
                let mutable s = 0.0

                for r in 0 .. n - 1 do
                    let v =
                        match g with
                        | Erf -> CommitteeIntegrals.erfI3 c[i, i] c[i, q] c[i, r] c[q, q] c[q, r] c[r, r]
                        | Linear -> c[q, r]
                        | _ -> CommitteeIntegrals.reluI3 c[i, i] c[i, q] c[i, r] c[q, q] c[q, r] c[r, r]

                    s <- s + a[r] * v

                a3[i, q] <- s
                i2m[i, q] <- i2 order g c i q

        for i in 0 .. k - 1 do
            for l in i .. k - 1 do
                let mutable s = 0.0

                for r in 0 .. n - 1 do
                    for u in 0 .. n - 1 do
                        let v =
                            match g with
                            | Erf ->
                                CommitteeIntegrals.erfI4
                                    c[i, i]
                                    c[i, l]
                                    c[i, r]
                                    c[i, u]
                                    c[l, l]
                                    c[l, r]
                                    c[l, u]
                                    c[r, r]
                                    c[r, u]
                                    c[u, u]
                            | Relu ->
                                let idx = [| i; l; r; u |]
                                ReluI4.evaluate (Array2D.init 4 4 (fun x y -> c[idx[x], idx[y]]))
                            | _ -> c[r, u]

                        s <- s + a[r] * a[u] * v

                b4[i, l] <- s
                b4[l, i] <- s

                let jj =
                    match g with
                    | Erf -> CommitteeIntegrals.erfJ2 c[i, i] c[i, l] c[l, l]
                    | Linear -> 1.0
                    | _ -> CommitteeIntegrals.reluJ2 c[i, i] c[i, l] c[l, l]

                j2[i, l] <- jj
                j2[l, i] <- jj

        { A3 = a3; B4 = b4; J2 = j2; I2 = i2m }

    /// Common-random-number quasi-Monte Carlo over the whole field vector: a fixed Halton point set mapped by the
    /// PSD factor of the current covariance, so the right-hand side is a deterministic, continuous function of the
    /// state (no noise injected into the ODE). Used for activations without closed forms, and with biases.
    let sampledMoments (points: float[][]) (p: CommitteeParams) (c: float[,]) (a: float[]) =
        let mu = CommitteeLayout.fieldMean p
        let n = p.K + p.M
        let k = p.K
        let l = Linalg.psdFactorClipped c
        let a3 = Array2D.zeroCreate k n
        let b4 = Array2D.zeroCreate k k
        let j2 = Array2D.zeroCreate k k
        let i2m = Array2D.zeroCreate k n
        let phi = Array.zeroCreate n
        let gv = Array.zeroCreate n
        let dg = Array.zeroCreate k
        let g = p.Activation

        for z in points do
            for i in 0 .. n - 1 do
                let mutable s = 0.0

                for j in 0 .. n - 1 do
                    s <- s + l[i, j] * z[j]
                // phi holds the centred field (the linear slot of I3); g sees the shifted one.
                phi[i] <- s
                gv[i] <- Activation.value (CommitteeLayout.fieldActivation p i) (s + mu[i])

            let mutable delta = 0.0

            for i in 0 .. n - 1 do
                delta <- delta + a[i] * gv[i]

            for i in 0 .. k - 1 do
                dg[i] <- Activation.derivative g (phi[i] + mu[i])

            for i in 0 .. k - 1 do
                let w = dg[i] * delta

                for q in 0 .. n - 1 do
                    a3[i, q] <- a3[i, q] + w * phi[q]
                    i2m[i, q] <- i2m[i, q] + gv[i] * gv[q]

                for j in 0 .. k - 1 do
                    b4[i, j] <- b4[i, j] + dg[i] * dg[j] * delta * delta
                    j2[i, j] <- j2[i, j] + dg[i] * dg[j]

        let inv = 1.0 / float points.Length

        let sc (m: float[,]) =
            Array2D.iteri (fun i j x -> m[i, j] <- x * inv) m

        sc a3
        sc b4
        sc j2
        sc i2m
        { A3 = a3; B4 = b4; J2 = j2; I2 = i2m }


