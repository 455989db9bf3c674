namespace StatPhysFs.Models

open System
open StatPhysFs
open StatPhysFs.Gaussian
open StatPhysFs.Ode

/// Teacher-student two-layer network in online SGD (online-sgd.md sections 1.1 and 3.1, the Goldt et al. / nn2pp
/// convention): y = sum_n vT_n g(nu_n) + sigma zeta, yhat = sum_k v_k g(lambda_k), lambda = w.x/sqrt d,
/// first-layer step eta/sqrt d, second-layer step etaV/d, per-step weight decay kappa/d (not multiplied by eta),
/// time t = steps/d. The same activation g serves student and teacher.
type CommitteeParams =
    {
        K: int
        M: int
        Activation: Activation
        /// First-layer learning rate eta (> 0).
        Lr: float
        /// Second-layer learning rate; None keeps the second layer fixed at V0.
        LrSecond: float option
        NoiseVar: float
        /// Per-step weight decay kappa (nn2pp convention; kappa = eta * lambda for a loss-term ridge lambda).
        WeightDecay: float
        Batch: int
        /// Heavy-ball momentum beta in [0, 1): in the d -> infinity ODE it is SGD with eta/(1-beta), etaV/(1-beta) and
        /// kappa/(1-beta) (spec section 4.4; the velocity memory 1/(1-beta) steps is much shorter than d), so no extra
        /// order parameters are needed in this limit. The simulator runs the real heavy-ball update.
        Momentum: float
        /// Teacher overlaps T (M x M) and second layer vT (M).
        T: float[,]
        VTeacher: float[]
        /// Fixed pre-activation biases: lambda_k = w_k.x/sqrt d + b_k, nu_n = w*_n.x/sqrt d + bT_n, so the fields are
        /// Gaussian with mean (b, bT). Empty arrays mean no biases. With biases every integral is sampled.
        Bias: float[]
        BiasTeacher: float[]
        /// The teacher\'s activation when it differs from the student\'s (None: the same). Mixed pairs are sampled.
        TeacherActivation: Activation option
    }

/// The state: Q (K x K, symmetric), R (K x M), v (K).
type CommitteeState =
    { Q: float[,]; R: float[,]; V: float[] }

[<RequireQualifiedAccess>]
module Committee =
    let private identity n =
        Array2D.init n n (fun i j -> if i = j then 1.0 else 0.0)

    /// K = M, erf, eta = 0.5, fixed second layer v = vT = 1, T = I, no noise.
    [<CompiledName("Create")>]
    let create (k: int) (m: int) =
        {
            K = k
            M = m
            Activation = Erf
            Lr = 0.5
            LrSecond = None
            NoiseVar = 0.0
            WeightDecay = 0.0
            Batch = 1
            Momentum = 0.0
            T = identity m
            VTeacher = Array.create m 1.0
            Bias = [||]
            TeacherActivation = None
            BiasTeacher = [||]
        }

    /// The normalised committee convention (pyscm's `normalise`, Arnaboldi et al., Veiga et al.): outputs
    /// (1/K) sum_k g(lambda_k) and (1/M) sum_n g(nu_n), i.e. fixed v = 1/K and vT = 1/M. Errors, plateau heights and
    /// critical rates rescale against the plain-sum convention of `create`: map before comparing numbers.
    [<CompiledName("Normalised")>]
    let normalised (k: int) (m: int) =
        { create k m with
            VTeacher = Array.create m (1.0 / float m)
        }

    /// The initial state of spec section 6.7: Q = diag(linspace(0.2, 0.3, K)) + 1e-4 off the diagonal,
    /// R = 1e-4 (1 + index mod 3), v = 1. A small asymmetry, so the plateau is visited and left.
    [<CompiledName("SpecInitialState")>]
    let specInitialState (k: int) (m: int) =
        {
            Q =
                Array2D.init k k (fun i j ->
                    if i = j then
                        (if k = 1 then 0.2 else 0.2 + 0.1 * float i / float (k - 1))
                    else
                        1e-4)
            R = Array2D.init k m (fun i n -> 1e-4 * (1.0 + float ((i * m + n) % 3)))
            V = Array.create k 1.0
        }

    [<CompiledName("Validate")>]
    let validate (p: CommitteeParams) =
        Check.intInRange "K" 1 1000 p.K
        Check.intInRange "M" 1 1000 p.M
        Check.positive "lr" p.Lr
        p.LrSecond |> Option.iter (Check.positive "lr2")
        Check.nonNegative "noise-var" p.NoiseVar
        Check.nonNegative "weight decay" p.WeightDecay
        Check.positiveInt "batch" p.Batch

        Check.that
            "momentum"
            (p.Momentum >= 0.0 && p.Momentum < 1.0)
            (sprintf "momentum must lie in [0, 1), got %g." p.Momentum)

        Check.that "T" (Array2D.length1 p.T = p.M && Array2D.length2 p.T = p.M) (sprintf "T must be %dx%d." p.M p.M)
        Check.that "vTeacher" (p.VTeacher.Length = p.M) (sprintf "vTeacher must have %d entries." p.M)
        Linalg.psdFactor "T" p.T |> ignore

        Check.that
            "b"
            (p.Bias.Length = 0 || p.Bias.Length = p.K)
            (sprintf "b must be empty or have K = %d entries." p.K)

        Check.that
            "bTeacher"
            (p.BiasTeacher.Length = 0 || p.BiasTeacher.Length = p.M)
            (sprintf "bTeacher must be empty or have M = %d entries." p.M)

        Array.append p.Bias p.BiasTeacher
        |> Array.iteri (fun i x -> Check.finite (sprintf "bias[%d]" i) x)

    /// True when some bias is non-zero (the closed forms assume centred fields).
    let hasBias (p: CommitteeParams) =
        Array.exists ((<>) 0.0) p.Bias || Array.exists ((<>) 0.0) p.BiasTeacher

    /// The teacher's activation.
    let teacherActivation (p: CommitteeParams) =
        defaultArg p.TeacherActivation p.Activation

    /// The activation of field i (students first, then teachers).
    let fieldActivation (p: CommitteeParams) (i: int) =
        if i < p.K then p.Activation else teacherActivation p

    /// True when the closed forms do not apply: biases, or a teacher activation different from the student's.
    let needsSampling (p: CommitteeParams) =
        hasBias p || teacherActivation p <> p.Activation

    /// Field means (b, bT).
    let fieldMean (p: CommitteeParams) =
        Array.init (p.K + p.M) (fun i ->
            if i < p.K then
                (if p.Bias.Length = 0 then 0.0 else p.Bias[i])
            else
                (if p.BiasTeacher.Length = 0 then
                     0.0
                 else
                     p.BiasTeacher[i - p.K]))

    /// Number of state components: K(K+1)/2 for Q, K M for R, and K for v when the second layer is trained.
    let size (p: CommitteeParams) =
        p.K * (p.K + 1) / 2 + p.K * p.M + (if p.LrSecond.IsSome then p.K else 0)

    /// Pack a state into the ODE vector: Q's upper triangle row by row, then R row-major, then v if trained.
    [<CompiledName("Pack")>]
    let pack (p: CommitteeParams) (s: CommitteeState) =
        let y = Array.zeroCreate (size p)
        let mutable o = 0

        for i in 0 .. p.K - 1 do
            for j in i .. p.K - 1 do
                y[o] <- s.Q[i, j]
                o <- o + 1

        for i in 0 .. p.K - 1 do
            for n in 0 .. p.M - 1 do
                y[o] <- s.R[i, n]
                o <- o + 1

        if p.LrSecond.IsSome then
            for i in 0 .. p.K - 1 do
                y[o + i] <- s.V[i]

        y

    /// Unpack; `v0` supplies the fixed second layer when it is not trained.
    [<CompiledName("Unpack")>]
    let unpack (p: CommitteeParams) (v0: float[]) (y: float[]) =
        let q = Array2D.zeroCreate p.K p.K
        let r = Array2D.zeroCreate p.K p.M
        let mutable o = 0

        for i in 0 .. p.K - 1 do
            for j in i .. p.K - 1 do
                q[i, j] <- y[o]
                q[j, i] <- y[o]
                o <- o + 1

        for i in 0 .. p.K - 1 do
            for n in 0 .. p.M - 1 do
                r[i, n] <- y[o]
                o <- o + 1

        let v =
            if p.LrSecond.IsSome then
                Array.sub y o p.K
            else
                Array.copy v0

        { Q = q; R = r; V = v }

    /// The (K+M) x (K+M) covariance of the fields (lambda, nu): [[Q, R], [R^T, T]].
    [<CompiledName("FieldCovariance")>]
    let fieldCovariance (p: CommitteeParams) (s: CommitteeState) =
        let n = p.K + p.M

        Array2D.init n n (fun a b ->
            match a < p.K, b < p.K with
            | true, true -> s.Q[a, b]
            | true, false -> s.R[a, b - p.K]
            | false, true -> s.R[b, a - p.K]
            | false, false -> p.T[a - p.K, b - p.K])

    /// Halton points in dimension n mapped to N(0, I) (scrambling-free, fixed: common random numbers).
    let private haltonNormal (n: int) (count: int) =
        Check.intInRange "K + M (sampled integrals)" 1 Halton.primes.Length n

        Array.init count (fun i ->
            Halton.point n (i + 1)
            |> Array.map (fun u -> MathNet.Numerics.Distributions.Normal.InvCDF(0.0, 1.0, u)))

    /// Number of quasi-Monte Carlo points of the sampled path.
    let mutable sampledPoints = 1 <<< 15

    let private pointCache =
        System.Collections.Concurrent.ConcurrentDictionary<struct (int * int), float[][]>()

    let private points n =
        pointCache.GetOrAdd(struct (n, sampledPoints), fun (struct (n, c)) -> haltonNormal n c)

    let private i2 (g: Activation) (c: float[,]) a b =
        match g with
        | Erf -> CommitteeIntegrals.erfI2 c[a, a] c[a, b] c[b, b]
        | Linear -> c[a, b]
        | Relu -> CommitteeIntegrals.reluI2 c[a, a] c[a, b] c[b, b]
        | Custom _ -> CommitteeIntegrals.i2 g (array2D [ [ c[a, a]; c[a, b] ]; [ c[a, b]; c[b, b] ] ])

    /// The generalisation error eg = (1/2) a^T I2 a with a = (v, -vT), label noise excluded.
    [<CompiledName("GeneralisationError")>]
    let generalisationError (p: CommitteeParams) (s: CommitteeState) =
        let c = fieldCovariance p s
        let n = p.K + p.M
        let a = Array.init n (fun i -> if i < p.K then s.V[i] else -p.VTeacher[i - p.K])

        if needsSampling p then
            // (1/2) E[Delta^2] over the shifted fields, by the same fixed QMC points as the right-hand side.
            let l = Linalg.psdFactorClipped c
            let mu = fieldMean p
            let mutable acc = 0.0

            for z in points n do
                let mutable delta = 0.0

                for i in 0 .. n - 1 do
                    let mutable f = mu[i]

                    for j in 0 .. n - 1 do
                        f <- f + l[i, j] * z[j]

                    delta <- delta + a[i] * Activation.value (fieldActivation p i) f

                acc <- acc + delta * delta

            0.5 * acc / float (points n).Length
        else
            let mutable e = 0.0

            for i in 0 .. n - 1 do
                for j in 0 .. n - 1 do
                    e <- e + a[i] * a[j] * i2 p.Activation c i j

            0.5 * e

    /// The expected training loss per sample, E[(yhat - y)^2]/2 = eg + sigma^2/2 (spec 1.3); the test MSE against noisy
    /// labels is 2 eg + sigma^2.
    [<CompiledName("TrainingLoss")>]
    let trainingLoss (p: CommitteeParams) (s: CommitteeState) =
        generalisationError p s + 0.5 * p.NoiseVar

    /// Expectations the right-hand side needs, for the current covariance c and output weights a = (v, -vT):
    /// a3[k, q] = E[g'(lambda_k) phi_q Delta], b4[i, k] = E[g'_i g'_k Delta^2], j2[i, k], i2[i, p],
    /// with Delta = sum_p a_p g(phi_p) the clean error.
    type private Moments =
        {
            A3: float[,]
            B4: float[,]
            J2: float[,]
            I2: float[,]
        }

    let private closedMoments (p: CommitteeParams) (c: float[,]) (a: float[]) =
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
                i2m[i, q] <- i2 g c i q

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

    /// Below this many I4 terms per right-hand side the pair loop stays on one thread (fork/join costs ~10 us).
    let mutable parallelThreshold = 40000

    /// The step sizes at time t: eta (from the schedule, else Lr), the decay kappa and the noise factor eta^2/B.
    /// Heavy ball: the velocity remembers 1/(1-beta) = O(1) steps, much fewer than d, so every step size (eta, etaV
    /// and the decay kappa, which is part of the step) is divided by 1 - beta (spec 4.4).
    let private stepSizes (p: CommitteeParams) (schedule: (float -> float) option) (t: float) =
        let eta0 =
            match schedule with
            | Some f -> f t
            | None -> p.Lr

        let eta = eta0 / (1.0 - p.Momentum)
        eta, p.WeightDecay / (1.0 - p.Momentum), eta * eta / float p.Batch

    /// The erf right-hand side with per-state quantities hoisted out of the loops and the I4 sum vectorised
    /// (`ErfKernels.pairSum`), straight from the packed state into flat arrays, the (i, l) pairs spread over the
    /// cores. Each pair's sum is computed by one thread in a fixed order, so the result is bitwise the same at any
    /// thread count. Equal to the scalar closed forms to rounding (tested against `rhsReference`).
    let private erfRhs (p: CommitteeParams) (schedule: (float -> float) option) (v0: float[]) : Rhs =
        let k = p.K
        let m = p.M
        let n = k + m
        let np = ErfKernels.padded n
        let pairs = k * (k + 1) / 2
        let pi = Array.zeroCreate pairs
        let pl = Array.zeroCreate pairs
        let mutable o = 0

        for i in 0 .. k - 1 do
            for l in i .. k - 1 do
                pi[o] <- i
                pl[o] <- l
                o <- o + 1

        // The teacher block of the covariance is constant.
        let template = Array.zeroCreate (np * np)

        for x in 0 .. m - 1 do
            for z in 0 .. m - 1 do
                template[(k + x) * np + k + z] <- p.T[x, z]

        let trained = p.LrSecond.IsSome
        let work = pairs * n * (n + 1) / 2

        fun t y dy ->
            let c = Array.copy template
            let mutable o = 0

            for i in 0 .. k - 1 do
                for j in i .. k - 1 do
                    c[i * np + j] <- y[o]
                    c[j * np + i] <- y[o]
                    o <- o + 1

            for i in 0 .. k - 1 do
                for x in 0 .. m - 1 do
                    c[i * np + k + x] <- y[o]
                    c[(k + x) * np + i] <- y[o]
                    o <- o + 1

            let v = if trained then Array.sub y o k else v0
            // Output weights a = (v, -vT), zero in the padding.
            let a = Array.zeroCreate np

            for i in 0 .. k - 1 do
                a[i] <- v[i]

            for x in 0 .. m - 1 do
                a[k + x] <- -p.VTeacher[x]

            let d = Array.zeroCreate n

            for x in 0 .. n - 1 do
                d[x] <- 1.0 + c[x * np + x]

            // I3(i, q, r) = (2/pi) (c_qr - c_iq c_ir / d_i) / sqrt(d_i d_r - c_ir^2): with w_r = a_r / sqrt(.) the sum
            // over r is two dot products. a3[i, q] = sum_r a_r I3(i, q, r).
            let a3 = Array.zeroCreate (k * n)
            let w = Array.zeroCreate n

            for i in 0 .. k - 1 do
                let ri = i * np
                let mutable wi = 0.0

                for r in 0 .. n - 1 do
                    let cir = c[ri + r]
                    w[r] <- a[r] / sqrt (max (d[i] * d[r] - cir * cir) 0.0)
                    wi <- wi + w[r] * cir

                for q in 0 .. n - 1 do
                    let rq = q * np
                    let mutable sq = 0.0

                    for r in 0 .. n - 1 do
                        sq <- sq + w[r] * c[rq + r]

                    a3[i * n + q] <- 2.0 / Math.PI * (sq - c[ri + q] / d[i] * wi)

            let b4 = Array.zeroCreate pairs

            if work < parallelThreshold then
                let scratch = Array.zeroCreate np

                for q in 0 .. pairs - 1 do
                    b4[q] <- ErfKernels.pairSum c np n a scratch pi[q] pl[q]
            else
                System.Threading.Tasks.Parallel.For(
                    0,
                    pairs,
                    (fun () -> Array.zeroCreate<float> np),
                    (fun q _ (scratch: float[]) ->
                        b4[q] <- ErfKernels.pairSum c np n a scratch pi[q] pl[q]
                        scratch),
                    ignore
                )
                |> ignore

            let eta, kap, noise = stepSizes p schedule t

            for q in 0 .. pairs - 1 do
                let i = pi[q]
                let l = pl[q]
                let cil = c[i * np + l]

                let j2 =
                    if p.NoiseVar = 0.0 then
                        0.0
                    else
                        CommitteeIntegrals.erfJ2 c[i * np + i] cil c[l * np + l]

                dy[q] <-
                    -eta * (v[i] * a3[i * n + l] + v[l] * a3[l * n + i])
                    + noise * v[i] * v[l] * (b4[q] + p.NoiseVar * j2)
                    - 2.0 * kap * cil

            let mutable o = pairs

            for i in 0 .. k - 1 do
                for x in 0 .. m - 1 do
                    dy[o] <- -eta * v[i] * a3[i * n + k + x] - kap * c[i * np + k + x]
                    o <- o + 1

            match p.LrSecond with
            | Some etaV ->
                for i in 0 .. k - 1 do
                    let mutable e = 0.0

                    for q in 0 .. n - 1 do
                        e <- e + a[q] * CommitteeIntegrals.erfI2 c[i * np + i] c[i * np + q] c[q * np + q]

                    dy[o + i] <- -etaV / (1.0 - p.Momentum) * e - kap * v[i]
            | None -> ()

    /// Common-random-number quasi-Monte Carlo over the whole field vector: a fixed Halton point set mapped by the
    /// PSD factor of the current covariance, so the right-hand side is a deterministic, continuous function of the
    /// state (no noise injected into the ODE). Used for activations without closed forms, and with biases.
    let private sampledMoments (points: float[][]) (p: CommitteeParams) (c: float[,]) (a: float[]) =
        let mu = fieldMean p
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
                gv[i] <- Activation.value (fieldActivation p i) (s + mu[i])

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


    let private rhsWith (scalarErf: bool) (p: CommitteeParams) (schedule: (float -> float) option) (v0: float[]) : Rhs =
        validate p
        Check.that "v0" (v0.Length = p.K) (sprintf "v0 must have K = %d entries." p.K)
        let n = p.K + p.M

        if p.Activation = Erf && not scalarErf && not (needsSampling p) then
            erfRhs p schedule v0
        else
            fun t y dy ->
                let s = unpack p v0 y
                let c = fieldCovariance p s
                let a = Array.init n (fun i -> if i < p.K then s.V[i] else -p.VTeacher[i - p.K])

                let mo =
                    match p.Activation with
                    | _ when needsSampling p -> sampledMoments (points n) p c a
                    | Erf
                    | Linear
                    | Relu -> closedMoments p c a
                    | Custom _ -> sampledMoments (points n) p c a

                let eta, kap, noise = stepSizes p schedule t
                let mutable o = 0

                for i in 0 .. p.K - 1 do
                    for k in i .. p.K - 1 do
                        dy[o] <-
                            -eta * (s.V[i] * mo.A3[i, k] + s.V[k] * mo.A3[k, i])
                            + noise * s.V[i] * s.V[k] * (mo.B4[i, k] + p.NoiseVar * mo.J2[i, k])
                            - 2.0 * kap * s.Q[i, k]

                        o <- o + 1

                for i in 0 .. p.K - 1 do
                    for m in 0 .. p.M - 1 do
                        dy[o] <- -eta * s.V[i] * mo.A3[i, p.K + m] - kap * s.R[i, m]
                        o <- o + 1

                match p.LrSecond with
                | Some etaV ->
                    for i in 0 .. p.K - 1 do
                        let mutable e = 0.0

                        for q in 0 .. n - 1 do
                            e <- e + a[q] * mo.I2[i, q]

                        dy[o + i] <- -etaV / (1.0 - p.Momentum) * e - kap * s.V[i]
                | None -> ()

    /// The right-hand side of the general K x M ODE (spec section 3.1), with an optional learning-rate schedule
    /// eta(t) (None: constant eta). `v0` is the fixed second layer when it is not trained.
    [<CompiledName("RhsWithSchedule")>]
    let rhsWithSchedule (p: CommitteeParams) (schedule: (float -> float) option) (v0: float[]) : Rhs =
        rhsWith false p schedule v0

    /// The right-hand side with erf's integrals evaluated term by term by the scalar closed forms
    /// (`CommitteeIntegrals.erfI3`, `erfI4`), no hoisting, vectorisation or threads: the oracle the fast path is
    /// tested against. Slower by an order of magnitude; identical to `rhs` for other activations.
    [<CompiledName("RhsReference")>]
    let rhsReference (p: CommitteeParams) (v0: float[]) : Rhs = rhsWith true p None v0

    [<CompiledName("Rhs")>]
    let rhs (p: CommitteeParams) (v0: float[]) = rhsWithSchedule p None v0

    /// The ODE problem from an initial state.
    [<CompiledName("Problem")>]
    let problem (p: CommitteeParams) (s0: CommitteeState) (tEnd: float) =
        validate p

        Linalg.psdFactor "initial covariance [[Q, R], [R^T, T]]" (fieldCovariance p s0)
        |> ignore

        let names =
            [|
                for i in 1 .. p.K do
                    for j in i .. p.K -> sprintf "Q[%d,%d]" i j
                for i in 1 .. p.K do
                    for n in 1 .. p.M -> sprintf "R[%d,%d]" i n
                if p.LrSecond.IsSome then
                    for i in 1 .. p.K -> sprintf "v[%d]" i
            |]

        { Ode.problem (rhs p s0.V) (pack p s0) 0.0 tEnd with
            Names = names
        }
