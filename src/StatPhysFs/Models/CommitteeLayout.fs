namespace StatPhysFs.Models

open System
open StatPhysFs
open StatPhysFs.Gaussian

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

/// Where each order parameter sits in the ODE vector, and the field statistics a state implies.
[<RequireQualifiedAccess>]
module CommitteeLayout =
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

    /// The component names in packing order: Q[i,j] (i <= j), R[i,n], then v[i] when the second layer is trained.
    [<CompiledName("Names")>]
    let names (p: CommitteeParams) =
        [|
            for i in 1 .. p.K do
                for j in i .. p.K -> $"Q[%d{i},%d{j}]"
            for i in 1 .. p.K do
                for n in 1 .. p.M -> $"R[%d{i},%d{n}]"
            if p.LrSecond.IsSome then
                for i in 1 .. p.K -> $"v[%d{i}]"
        |]

/// The initial-state presets (the CLI's --init): each returns the overlaps Q (K x K), R (K x M) and v = 1 (K).
[<RequireQualifiedAccess>]
module CommitteeInitialState =
    /// The initial state of spec section 6.7: Q = diag(linspace(0.2, 0.3, K)) + 1e-4 off the diagonal,
    /// R = 1e-4 (1 + index mod 3), v = 1. A small asymmetry, so the plateau is visited and left.
    [<CompiledName("Spec")>]
    let spec (k: int) (m: int) =
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

    /// A student near the origin: Q = 1e-3 I, R = 1e-5.
    [<CompiledName("Small")>]
    let small (k: int) (m: int) =
        {
            Q = Array2D.init k k (fun i j -> if i = j then 1e-3 else 0.0)
            R = Array2D.create k m 1e-5
            V = Array.create k 1.0
        }

    /// Each student unit at overlap 0.9 with teacher unit k mod M (units sharing a teacher at 0.81, unit norms).
    [<CompiledName("Informed")>]
    let informed (k: int) (m: int) =
        {
            Q =
                Array2D.init k k (fun i j ->
                    if i = j then 1.0
                    elif i % m = j % m then 0.81
                    else 0.0)
            R = Array2D.init k m (fun i n -> if i % m = n then 0.9 else 0.0)
            V = Array.create k 1.0
        }

    /// The exact overlaps of Gaussian student vectors in dimension `dim` (variance 1/4 per coordinate, drawn from
    /// the stream (seed, 99)) with an orthonormal teacher: what a simulation started at random would see.
    [<CompiledName("Random")>]
    let random (k: int) (m: int) (dim: int) (seed: int) =
        Check.intInRange "dim" 1 100_000_000 dim
        let d = dim
        let rng = Rng(seed, 99)
        let w = Array.init k (fun _ -> Array.init d (fun _ -> 0.5 * rng.NextNormal()))

        let tv =
            Array.init m (fun n -> Array.init d (fun x -> if x = n then sqrt (float d) else 0.0))

        {
            Q = Array2D.init k k (fun i j -> Blas.dotArr w[i] w[j] / float d)
            R = Array2D.init k m (fun i n -> Blas.dotArr w[i] tv[n] / float d)
            V = Array.create k 1.0
        }

/// A named initial-state preset, for callers that choose one by value (the CLI's --init, the C# facade).
[<RequireQualifiedAccess>]
type CommitteeInitPreset =
    /// Spec section 6.7 (`CommitteeInitialState.spec`).
    | Spec
    | Small
    | Informed
    /// Exact overlaps of random Gaussian vectors in dimension Dim, drawn with Seed.
    | Random of dim: int * seed: int

[<RequireQualifiedAccess>]
module CommitteeInitPreset =
    /// The state of a preset for K students and M teachers.
    [<CompiledName("State")>]
    let state (k: int) (m: int) (preset: CommitteeInitPreset) =
        Check.intInRange "K" 1 1000 k
        Check.intInRange "M" 1 1000 m

        match preset with
        | CommitteeInitPreset.Spec -> CommitteeInitialState.spec k m
        | CommitteeInitPreset.Small -> CommitteeInitialState.small k m
        | CommitteeInitPreset.Informed -> CommitteeInitialState.informed k m
        | CommitteeInitPreset.Random(dim, seed) -> CommitteeInitialState.random k m dim seed
