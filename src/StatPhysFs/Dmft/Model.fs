namespace StatPhysFs.Dmft

open System
open StatPhysFs
open StatPhysFs.Gaussian

/// A per-sample GLM loss L(r; y) with l = dL/dr and l' = d^2L/dr^2 (dmft-sgf.md section 1.1).
[<RequireQualifiedAccess; CustomEquality; NoComparison>]
type GlmLoss =
    /// L = (r - y)^2 / 2, l = r - y. Reported losses are mean squared residuals (r - y)^2, as in spec section 4.1.
    | Square
    /// L = log(1 + e^{-y r}) for labels y = +-1.
    | Logistic
    /// L = max(0, 1 - y r); l' = 0 almost everywhere.
    | Hinge
    /// Any loss: value, derivative and second derivative in r, each a function of (r, y).
    | Custom of
        name: string *
        value: (float -> float -> float) *
        derivative: (float -> float -> float) *
        curvature: (float -> float -> float)

    member l.Name =
        match l with
        | Square -> "square"
        | Logistic -> "logistic"
        | Hinge -> "hinge"
        | Custom(n, _, _, _) -> n

    override l.Equals o =
        match o with
        | :? GlmLoss as b -> l.Name = b.Name
        | _ -> false

    override l.GetHashCode() = l.Name.GetHashCode()

/// The teacher's label y = phi(r*, eps), r* = x.theta*, eps ~ N(0, sigma^2) the label noise.
[<RequireQualifiedAccess; CustomEquality; NoComparison>]
type GlmTeacher =
    /// y = r* + eps.
    | Linear
    /// y = sign(r* + eps) (probit label noise; sigma = 0 is the noiseless sign teacher).
    | Sign
    /// y = phi(r*, eps).
    | Custom of name: string * phi: (float -> float -> float)

    member t.Name =
        match t with
        | Linear -> "linear"
        | Sign -> "sign"
        | Custom(n, _) -> n

    override t.Equals o =
        match o with
        | :? GlmTeacher as b -> t.Name = b.Name
        | _ -> false

    override t.GetHashCode() = t.Name.GetHashCode()

/// Two-layer network f(x) = sum_a v_a psi(w_a.x) with fixed readout v and trained first layer, square loss
/// (f - y)^2/2 against a teacher y = sum_b v*_b psi*(w*_b.x) + eps (spec section 1.3 and 2.8).
type TwoLayerNet =
    {
        Student: Activation
        /// Fixed student readout v (length k = the width m of the DMFT).
        V: float[]
        Teacher: Activation
        /// Teacher readout v* (length m*).
        VTeacher: float[]
    }

/// What is trained on what.
type DmftModel =
    | Glm of loss: GlmLoss * teacher: GlmTeacher
    | TwoLayer of TwoLayerNet

/// A multi-pass SGF problem: the model, the sample ratio, the noise and the Euler-Maruyama grid t_k = k Dt,
/// k = 0..Steps (dmft-sgf.md section 3.1).
type DmftProblem =
    {
        Model: DmftModel
        /// Sample ratio alpha = n/d (delta in the spec).
        Alpha: float
        /// Noise intensity tau = eta/B.
        Tau: float
        /// Ridge lambda (objective term lambda |theta|^2 / 2d).
        Ridge: float
        /// Label-noise variance sigma^2.
        NoiseVar: float
        /// Teacher Gram matrix rho = theta*^T theta*/d (1 x 1 for a GLM, m* x m* for a two-layer teacher).
        Rho: float[,]
        /// Covariance Q0 of the rows of theta_0 (m x m; zero = theta_0 = 0), independent of the teacher.
        Q0: float[,]
        /// Euler-Maruyama step Delta.
        Dt: float
        /// Number of steps K.
        Steps: int
    }

[<RequireQualifiedAccess>]
module DmftProblem =
    let private scalar (x: float) = Array2D.create 1 1 x

    /// A GLM problem with the spec's defaults (alpha = 2, tau = 1, no ridge, rho = 1, sigma^2 = 0.25,
    /// theta_0 = 0, Dt = 0.1, 60 steps); change fields with `with`.
    [<CompiledName("Glm")>]
    let glm (loss: GlmLoss) (teacher: GlmTeacher) =
        {
            Model = Glm(loss, teacher)
            Alpha = 2.0
            Tau = 1.0
            Ridge = 0.0
            NoiseVar = 0.25
            Rho = scalar 1.0
            Q0 = scalar 0.0
            Dt = 0.1
            Steps = 60
        }

    /// A two-layer problem: identity teacher Gram, Q0 = q0 I, the spec's section 3.4 settings otherwise.
    [<CompiledName("TwoLayer")>]
    let twoLayer (net: TwoLayerNet) (q0: float) =
        let m = net.V.Length
        let ms = net.VTeacher.Length

        {
            Model = TwoLayer net
            Alpha = 2.0
            Tau = 1.0
            Ridge = 0.01
            NoiseVar = 0.01
            Rho = Array2D.init ms ms (fun i j -> if i = j then 1.0 else 0.0)
            Q0 = Array2D.init m m (fun i j -> if i = j then q0 else 0.0)
            Dt = 0.2
            Steps = 30
        }

    /// Set a GLM's teacher norm rho.
    [<CompiledName("WithRho")>]
    let withRho (rho: float) (p: DmftProblem) = { p with Rho = scalar rho }

    /// Set a GLM's initial variance q0.
    [<CompiledName("WithQ0")>]
    let withQ0 (q0: float) (p: DmftProblem) = { p with Q0 = scalar q0 }

    /// Width m of the trained parameters and m* of the teacher.
    let widths (p: DmftProblem) =
        match p.Model with
        | Glm _ -> 1, 1
        | TwoLayer n -> n.V.Length, n.VTeacher.Length

    [<CompiledName("Validate")>]
    let validate (p: DmftProblem) =
        Check.positive "alpha" p.Alpha
        Check.nonNegative "tau" p.Tau
        Check.nonNegative "ridge" p.Ridge
        Check.nonNegative "noise variance" p.NoiseVar
        Check.positive "dt" p.Dt
        Check.intInRange "steps" 1 100_000 p.Steps
        let m, ms = widths p

        match p.Model with
        | TwoLayer n ->
            Check.intInRange "student width" 1 16 m
            Check.intInRange "teacher width" 1 16 ms
            Check.that "readout" (Array.forall Double.IsFinite n.V) "the student readout v must be finite."
            Check.that "teacher readout" (Array.forall Double.IsFinite n.VTeacher) "the teacher readout must be finite."
        | Glm _ -> ()

        Check.that
            "rho"
            (Array2D.length1 p.Rho = ms && Array2D.length2 p.Rho = ms)
            ($"rho must be %d{ms}x%d{ms} (the teacher width).")

        Check.that
            "q0"
            (Array2D.length1 p.Q0 = m && Array2D.length2 p.Q0 = m)
            ($"q0 must be %d{m}x%d{m} (the student width).")

        Linalg.checkSymmetric "rho" p.Rho
        Linalg.checkSymmetric "q0" p.Q0
        // rho must be invertible: mu = (...) rho^{-1} (Stein on the teacher field).
        Check.that
            "rho"
            (Linalg.maxRealEigenvalue (Array2D.map (fun x -> -x) p.Rho) < 0.0)
            "rho must be positive definite (the teacher coupling mu uses rho^{-1})."

        Linalg.psdFactor "q0" p.Q0 |> ignore

        // Keep the deterministic part stable: Dt (lambda + s_max) < 2 with s_max = (1 + 1/sqrt alpha)^2 (spec 5.1).
        let smax = (1.0 + 1.0 / sqrt p.Alpha) ** 2.0

        Check.that
            "dt"
            (p.Dt * (p.Ridge + smax) < 2.0)
            ($"dt = %g{p.Dt} is too large: Euler-Maruyama needs dt (ridge + (1 + 1/sqrt alpha)^2) < 2, i.e. dt < %g{(2.0 / (p.Ridge + smax))}.")

/// How to solve the discrete DMFT.
type DmftStrategy =
    /// Forward sweep when its memory (about N K (2m + m^2) doubles: see Dmft.sweepMemory) fits in about 1.5 GB,
    /// fixed-point iteration otherwise.
    | Auto
    /// Causal forward sweep (spec 5.2 A): one pass, all samples in memory (their inputs and signals, O(N K m^2);
    /// the pathwise responses are recomputed per step, not stored).
    | ForwardSweep
    /// Damped fixed-point iteration over whole trajectories in batches (spec 5.2 B).
    | FixedPoint of batch: int * damping: float * iterations: int
    /// The Monte-Carlo-free moment closure (square loss with a linear teacher only).
    | ExactClosure

type DmftSettings =
    {
        /// Monte Carlo samples N of the row process per replica.
        Samples: int
        /// Independent replicas (seeds); standard errors are across replicas.
        Replicas: int
        Seed: int
        Strategy: DmftStrategy
        /// Richardson extrapolation in the step (spec section 5.1): also solve at Dt/2 and return 2 v(Dt/2) - v(Dt),
        /// removing the O(Dt) weak error of Euler-Maruyama against the continuous SGF.
        ExtrapolateInStep: bool
        /// Worker threads (does not change the numbers).
        MaxParallelism: int
        /// Cancellation (solve throws OperationCanceledException) and progress (the fraction done).
        Control: RunControl
    }

[<RequireQualifiedAccess>]
module DmftSettings =
    [<CompiledName("Defaults")>]
    let defaults =
        {
            Samples = 20000
            Replicas = 4
            Seed = 1
            Strategy = Auto
            ExtrapolateInStep = false
            MaxParallelism = Environment.ProcessorCount
            Control = RunControl.defaults
        }

    let validate (s: DmftSettings) =
        Check.intInRange "samples" 2 100_000_000 s.Samples
        Check.intInRange "replicas" 1 10_000 s.Replicas
        Check.positiveInt "max parallelism" s.MaxParallelism

        match s.Strategy with
        | FixedPoint(b, beta, it) ->
            Check.intInRange "batch" 1 100_000_000 b
            Check.inRange "damping" 1e-6 1.0 beta
            Check.intInRange "iterations" 1 100_000 it
        | _ -> ()

/// A two-time kernel on the grid: value (k, l, a, b) for k, l = 0..Steps, a, b < Width (row-major, dense).
type Kernel =
    {
        Points: int
        Width: int
        Data: float[]
    }

    member k.Item(i: int, j: int, a: int, b: int) =
        k.Data[((i * k.Points + j) * k.Width + a) * k.Width + b]

    /// The scalar kernel (Width = 1) as a matrix.
    member k.ToArray2D() =
        Array2D.init k.Points k.Points (fun i j -> k[i, j, 0, 0])

/// The order-parameter and loss series of a multi-pass solution under the CLI's column names: m, q (GLM) or Q<ab>
/// (a <= b), M<ab> (1-based, committee), then train_loss, test_loss and test_error (sign teacher). Shared by the DMFT
/// and the finite-d simulator so that both write the same columns.
[<RequireQualifiedAccess>]
module MultiPassObservables =
    let ofSeries
        (p: DmftProblem)
        (q: SeriesEstimate[,])
        (m: SeriesEstimate[,])
        (train: SeriesEstimate)
        (test: SeriesEstimate)
        (testError: SeriesEstimate option)
        (withStdErr: bool)
        =
        let one name (s: SeriesEstimate) =
            {
                Name = name
                Values = s.Mean
                StdErr = if withStdErr then Some s.StdErr else None
            }

        let overlaps =
            match p.Model with
            | Glm _ -> [ one "m" m[0, 0]; one "q" q[0, 0] ]
            | TwoLayer _ ->
                [
                    for a in 0 .. Array2D.length1 q - 1 do
                        for b in a .. Array2D.length2 q - 1 do
                            yield one ($"Q%d{(a + 1)}%d{(b + 1)}") q[a, b]
                    for a in 0 .. Array2D.length1 m - 1 do
                        for b in 0 .. Array2D.length2 m - 1 do
                            yield one ($"M%d{(a + 1)}%d{(b + 1)}") m[a, b]
                ]

        overlaps
        @ [ one "train_loss" train; one "test_loss" test ]
        @ (testError |> Option.map (one "test_error") |> Option.toList)

/// How a DMFT solve went: the strategy Auto resolved to and its sizes.
type DmftStatistics =
    {
        /// The strategy actually used (Auto resolved).
        Strategy: DmftStrategy
        /// Monte Carlo samples per replica (0 for the exact closure).
        Samples: int
        /// Replicas averaged (1 for the exact closure).
        Replicas: int
        /// Last change of max_k q(t_k) between fixed-point iterations (NaN for the other strategies).
        FixedPointResidual: float
        WallSeconds: float
    }

/// A DMFT solution on t_k = k Dt. Series carry Monte Carlo standard errors across replicas (zero for the exact
/// closure). For a GLM, Q[0,0] is q(t) and M[0,0] is m(t).
type DmftSolution =
    {
        Problem: DmftProblem
        T: float[]
        /// C(t,t)_{ab}, a, b < m.
        Q: SeriesEstimate[,]
        /// M(t)_{ab}, a < m, b < m*.
        M: SeriesEstimate[,]
        /// Train loss on the row process (mean squared residual for the square loss, L otherwise).
        TrainLoss: SeriesEstimate
        /// Test loss from (q, m, rho) by quadrature (test MSE for the square loss).
        TestLoss: SeriesEstimate
        /// Test classification error for a sign teacher, arccos(m / sqrt(q (rho + sigma^2))) / pi.
        TestError: SeriesEstimate option
        /// Correlation C(t,s), mean over replicas.
        Correlation: Kernel
        /// Response R(t,s) (causal: zero for t <= s, identity at t = s + Dt), mean over replicas.
        Response: Kernel
        /// Noise covariance Sigma_u(t,s) of the column process (symmetric), mean over replicas; its sum over the
        /// grid is the Sigma_U of the continuous theory (spec section 3.3).
        NoiseCovariance: Kernel
        Status: RunStatus
        /// How it was solved (strategy, samples, iterations), in words.
        Method: string
        Statistics: DmftStatistics
    }

    /// True when the series are Monte Carlo estimates (their standard errors are reported).
    member s.IsMonteCarlo = s.Statistics.Strategy <> ExactClosure

    interface ISolution with
        member s.Times = s.T
        member s.Status = s.Status

        member s.Observables =
            MultiPassObservables.ofSeries s.Problem s.Q s.M s.TrainLoss s.TestLoss s.TestError s.IsMonteCarlo
