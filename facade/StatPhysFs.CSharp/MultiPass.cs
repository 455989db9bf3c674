using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.FSharp.Core;
using StatPhysFs.Dmft;
using StatPhysFs.Simulation;
using FsDmft = StatPhysFs.Dmft.Dmft;
using FsLoss = StatPhysFs.Dmft.GlmLoss;
using FsTeacher = StatPhysFs.Dmft.GlmTeacher;
using FsLs = StatPhysFs.Dmft.LeastSquaresSgf;
using FsMp = StatPhysFs.Dmft.MarchenkoPastur;

namespace StatPhysFs.CSharp;

/// <summary>A per-sample GLM loss L(r; y) with its derivatives in r.</summary>
public sealed class Loss
{
    private Loss(FsLoss value) { Value = value; }
    internal FsLoss Value { get; }

    /// <summary>The loss's name.</summary>
    public string Name => Value.Name;
    /// <summary>(r - y)^2 / 2; reported losses are mean squared residuals (no 1/2).</summary>
    public static Loss Square { get; } = new(FsLoss.Square);
    /// <summary>log(1 + e^{-y r}), labels +-1.</summary>
    public static Loss Logistic { get; } = new(FsLoss.Logistic);
    /// <summary>max(0, 1 - y r).</summary>
    public static Loss Hinge { get; } = new(FsLoss.Hinge);

    /// <summary>Any loss: value, first and second derivative in r, each a function of (r, y).</summary>
    public static Loss Custom(string name, Func<double, double, double> value, Func<double, double, double> derivative,
        Func<double, double, double> curvature)
    {
        ArgumentNullException.ThrowIfNull(value);
        ArgumentNullException.ThrowIfNull(derivative);
        ArgumentNullException.ThrowIfNull(curvature);
        return new(FsLoss.NewCustom(name,
            FuncConvert.FromFunc<double, double, double>(value),
            FuncConvert.FromFunc<double, double, double>(derivative),
            FuncConvert.FromFunc<double, double, double>(curvature)));
    }
}

/// <summary>The teacher's label y = phi(r*, eps) with label noise eps ~ N(0, sigma^2).</summary>
public sealed class Teacher
{
    private Teacher(FsTeacher value) { Value = value; }
    internal FsTeacher Value { get; }

    /// <summary>The teacher's name.</summary>
    public string Name => Value.Name;
    /// <summary>y = r* + eps.</summary>
    public static Teacher Linear { get; } = new(FsTeacher.Linear);
    /// <summary>y = sign(r* + eps).</summary>
    public static Teacher Sign { get; } = new(FsTeacher.Sign);

    /// <summary>y = phi(r*, eps).</summary>
    public static Teacher Custom(string name, Func<double, double, double> phi)
    {
        ArgumentNullException.ThrowIfNull(phi);
        return new(FsTeacher.NewCustom(name, FuncConvert.FromFunc<double, double, double>(phi)));
    }
}

/// <summary>How to solve the DMFT.</summary>
public enum DmftMethod
{
    /// <summary>Forward sweep when it fits in memory, damped fixed point otherwise.</summary>
    Auto,
    /// <summary>Causal forward sweep with all samples in memory.</summary>
    ForwardSweep,
    /// <summary>Damped fixed-point iteration in batches (memory independent of the sample count).</summary>
    FixedPoint,
    /// <summary>The Monte-Carlo-free closure (square loss, linear teacher only).</summary>
    ExactClosure,
}

/// <summary>Which finite-d process to simulate.</summary>
public enum SimulatedProcess
{
    /// <summary>The SGF by Euler-Maruyama with the problem's time step.</summary>
    Sgf,
    /// <summary>Real mini-batch SGD drawing batches with replacement.</summary>
    SgdWithReplacement,
    /// <summary>Real mini-batch SGD in epochs (without replacement).</summary>
    SgdWithoutReplacement,
}

/// <summary>One observable over time: mean and standard error (zero when there is no Monte Carlo).</summary>
public sealed record Series(IReadOnlyList<double> Mean, IReadOnlyList<double> StdErr)
{
    internal static Series Of(SeriesEstimate s) => new(s.Mean, s.StdErr);
}

/// <summary>A two-time kernel K(t_i, t_j)_{ab} on the time grid.</summary>
public sealed class TwoTimeKernel
{
    private readonly Kernel _k;
    internal TwoTimeKernel(Kernel k) { _k = k; }
    /// <summary>Number of grid points.</summary>
    public int Points => _k.Points;
    /// <summary>Width m (1 for a GLM).</summary>
    public int Width => _k.Width;
    /// <summary>K(t_i, t_j)_{ab}.</summary>
    public double this[int i, int j, int a = 0, int b = 0] => _k.Data[((i * _k.Points + j) * _k.Width + a) * _k.Width + b];
    /// <summary>The (a, b) block as a matrix over (t_i, t_j).</summary>
    public double[,] ToArray(int a = 0, int b = 0)
    {
        var r = new double[Points, Points];
        for (var i = 0; i < Points; i++)
            for (var j = 0; j < Points; j++)
                r[i, j] = _k.Data[((i * _k.Points + j) * _k.Width + a) * _k.Width + b];
        return r;
    }
}

/// <summary>A multi-pass learning curve, from the DMFT or from simulation. Q[a,b] are the self overlaps C(t,t), M[a,b]
/// the teacher overlaps (for a GLM, Q[0,0] = q and M[0,0] = m).</summary>
public sealed record MultiPassCurve(IReadOnlyList<double> Times, Series[,] Q, Series[,] M, Series TrainLoss, Series TestLoss,
    Series? TestError, TwoTimeKernel? Correlation, TwoTimeKernel? Response, TwoTimeKernel? NoiseCovariance,
    SolveStatus Status, double? DivergenceTime, string Method);

/// <summary>Multi-pass SGD on n = alpha d samples, learning rate eta and batch B (noise tau = eta/B), through its
/// stochastic gradient flow: the DMFT (d to infinity) and the finite-d processes. Set parameters with an object
/// initialiser; time is t = SGD steps x eta / d.</summary>
public sealed class MultiPassSgd
{
    private readonly DmftModel _model;
    private readonly int _m, _ms;

    /// <summary>A generalised linear model.</summary>
    public MultiPassSgd(Loss loss, Teacher teacher)
    {
        ArgumentNullException.ThrowIfNull(loss);
        ArgumentNullException.ThrowIfNull(teacher);
        _model = DmftModel.NewGlm(loss.Value, teacher.Value);
        _m = _ms = 1;
    }

    /// <summary>A two-layer network with fixed readout v (width k = v.Length), square loss, against a two-layer
    /// teacher with readout vTeacher and identity Gram matrix.</summary>
    public MultiPassSgd(ActivationFunction student, double[] v, ActivationFunction teacher, double[] vTeacher)
    {
        ArgumentNullException.ThrowIfNull(student);
        ArgumentNullException.ThrowIfNull(v);
        ArgumentNullException.ThrowIfNull(teacher);
        ArgumentNullException.ThrowIfNull(vTeacher);
        if (v.Length == 0) throw new ArgumentException("v must have at least one entry.", nameof(v));
        if (vTeacher.Length == 0) throw new ArgumentException("vTeacher must have at least one entry.", nameof(vTeacher));
        Guard.AllFinite(v, nameof(v));
        Guard.AllFinite(vTeacher, nameof(vTeacher));
        _model = DmftModel.NewTwoLayer(new TwoLayerNet(student.Value, v, teacher.Value, vTeacher));
        _m = v.Length;
        _ms = vTeacher.Length;
    }

    /// <summary>Sample ratio alpha = n/d.</summary>
    public double Alpha { get; init; } = 2.0;
    /// <summary>Noise intensity tau = eta/B (0 = gradient flow).</summary>
    public double Tau { get; init; } = 1.0;
    /// <summary>Ridge lambda (objective term lambda |theta|^2 / 2d).</summary>
    public double Ridge { get; init; }
    /// <summary>Label-noise variance sigma^2.</summary>
    public double NoiseVariance { get; init; } = 0.25;
    /// <summary>Teacher norm rho (a GLM; a two-layer teacher has identity Gram times this).</summary>
    public double Rho { get; init; } = 1.0;
    /// <summary>Variance q0 of the initial weights (0: theta_0 = 0).</summary>
    public double InitialVariance { get; init; }
    /// <summary>Euler-Maruyama step Delta.</summary>
    public double TimeStep { get; init; } = 0.1;
    /// <summary>Number of steps K (the grid is t_k = k Delta, k = 0..K).</summary>
    public int Steps { get; init; } = 60;

    internal DmftProblem ToProblem()
    {
        var rho = new double[_ms, _ms];
        for (var i = 0; i < _ms; i++) rho[i, i] = Rho;
        var q0 = new double[_m, _m];
        for (var i = 0; i < _m; i++) q0[i, i] = InitialVariance;
        return new DmftProblem(_model, Alpha, Tau, Ridge, NoiseVariance, rho, q0, TimeStep, Steps);
    }

    /// <summary>The F# run control: the token, and the progress callback when there is one.</summary>
    internal static RunControl Control(IProgress<double>? progress, CancellationToken ct) =>
        new(ct,
            progress is null
                ? FSharpOption<FSharpFunc<double, Unit>>.None
                : FSharpOption<FSharpFunc<double, Unit>>.Some(FuncConvert.FromAction<double>(progress.Report)),
            GC.GetGCMemoryInfo().TotalAvailableMemoryBytes is > 0 and var total ? total / 4 * 3 : long.MaxValue,
            double.PositiveInfinity);

    private static Series[,] Grid(SeriesEstimate[,] s)
    {
        var r = new Series[s.GetLength(0), s.GetLength(1)];
        for (var a = 0; a < s.GetLength(0); a++)
            for (var b = 0; b < s.GetLength(1); b++)
                r[a, b] = Series.Of(s[a, b]);
        return r;
    }

    /// <summary>Solve the discrete DMFT of the SGF. Standard errors are across independent replicas. Throws
    /// OperationCanceledException when cancelled; a run with tau above critical ends with Status = Diverged. With
    /// <paramref name="extrapolateInStep"/>, Richardson in the step (TimeStep and TimeStep/2) removes the O(step)
    /// Euler-Maruyama error against the continuous SGF.</summary>
    public MultiPassCurve SolveDmft(int samples = 20000, int replicas = 4, int seed = 1, DmftMethod method = DmftMethod.Auto,
        IProgress<double>? progress = null, CancellationToken cancellationToken = default, bool extrapolateInStep = false)
    {
        Guard.Defined(method, nameof(method));
        if (samples < 2) throw new ArgumentOutOfRangeException(nameof(samples), samples, "samples must be >= 2.");
        var strategy = method switch
        {
            DmftMethod.ForwardSweep => DmftStrategy.ForwardSweep,
            DmftMethod.FixedPoint => DmftStrategy.NewFixedPoint(Math.Min(2000, samples), 0.5, 10),
            DmftMethod.ExactClosure => DmftStrategy.ExactClosure,
            _ => DmftStrategy.Auto,
        };
        var settings = new DmftSettings(samples, replicas, seed, strategy, extrapolateInStep, Environment.ProcessorCount,
            Control(progress, cancellationToken));
        var problem = ToProblem();
        var s = Guard.Run(() => FsDmft.Solve(settings, problem), cancellationToken);
        var (status, time) = StatusConversion.WithDivergenceTime(s.Status);
        return new MultiPassCurve(s.T, Grid(s.Q), Grid(s.M), Series.Of(s.TrainLoss), Series.Of(s.TestLoss),
            FSharpOption<SeriesEstimate>.get_IsSome(s.TestError) ? Series.Of(s.TestError.Value) : null,
            new TwoTimeKernel(s.Correlation), new TwoTimeKernel(s.Response), new TwoTimeKernel(s.NoiseCovariance),
            status, time, s.Method);
    }

    /// <summary>Simulate the finite-d process on one data set of n = alpha d samples per seed (seeds in parallel;
    /// the same seed gives the same numbers at any thread count).</summary>
    public MultiPassCurve Simulate(SimulatedProcess process = SimulatedProcess.Sgf, int dimension = 2000, int seeds = 4,
        int seed = 1, int batchSize = 1, IProgress<double>? progress = null, CancellationToken cancellationToken = default)
    {
        Guard.Defined(process, nameof(process));
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batchSize must be >= 1.");
        var proc = process switch
        {
            SimulatedProcess.SgdWithReplacement => MultiPassProcess.NewSgd(batchSize, BatchSampling.WithReplacement),
            SimulatedProcess.SgdWithoutReplacement => MultiPassProcess.NewSgd(batchSize, BatchSampling.WithoutReplacement),
            _ => MultiPassProcess.Sgf,
        };
        var settings = new MultiPassSimSettings(proc, new SimulationOptions(dimension, seeds, seed, 1e8, Environment.ProcessorCount),
            Control(progress, cancellationToken));
        var problem = ToProblem();
        var r = Guard.Run(() => MultiPassSim.Solve(settings, problem), cancellationToken);
        var (status, time) = StatusConversion.WithDivergenceTime(r.Status);
        return new MultiPassCurve(r.T, Grid(r.Q), Grid(r.M), Series.Of(r.TrainLoss), Series.Of(r.TestLoss),
            FSharpOption<SeriesEstimate>.get_IsSome(r.TestError) ? Series.Of(r.TestError.Value) : null,
            null, null, null, status, time, $"{process}, d = {dimension}, {seeds} seeds");
    }
}

/// <summary>A least-squares learning curve from the Volterra equation (no Monte Carlo): e(t) = |theta - theta*|^2/d, the
/// train loss (mean squared residual), the test loss e + sigma^2, m and q on t_k = k dt.</summary>
public sealed record LeastSquaresCurve(IReadOnlyList<double> Times, IReadOnlyList<double> E, IReadOnlyList<double> TrainLoss,
    IReadOnlyList<double> TestLoss, IReadOnlyList<double> M, IReadOnlyList<double> Q, SolveStatus Status, double? DivergenceTime);

/// <summary>Least squares under the SGF in closed form over the Marchenko-Pastur law (no Monte Carlo): the exact
/// closure of the multi-pass DMFT for the square loss with a linear teacher.</summary>
public static class LeastSquaresClosure
{
    private static LeastSquaresProblem P(double alpha, double tau, double ridge, double rho, double noiseVariance, double q0,
        double dt = 0.1, int steps = 1) => new(alpha, tau, ridge, rho, noiseVariance, q0, dt, steps);

    /// <summary>tau_c = 2 / int s^2/(s + lambda) d nu: the SGF is stable iff tau &lt; tau_c.</summary>
    public static double CriticalTau(double alpha, double ridge) => FsLs.CriticalTau(FsMp.OfAlpha(alpha), ridge);

    /// <summary>Stationary (e, train loss) for tau &lt; tau_c, null above.</summary>
    public static (double E, double TrainLoss)? Stationary(double alpha, double tau, double ridge = 0, double rho = 1,
        double noiseVariance = 0.25)
    {
        var s = FsLs.Stationary(FsMp.OfAlpha(alpha), P(alpha, tau, ridge, rho, noiseVariance, 0));
        return FSharpOption<Tuple<double, double>>.get_IsSome(s) ? (s.Value.Item1, s.Value.Item2) : null;
    }

    /// <summary>The learning curve on t_k = k dt, k = 0..steps, from the Volterra equation: exact for Euler-Maruyama
    /// with step dt, or (continuous = true) the continuous-time equation by the trapezoid rule. Above tau_c the curve
    /// ends where the train loss left the divergence bound (Status = Diverged). Throws OperationCanceledException when
    /// cancelled.</summary>
    public static LeastSquaresCurve Solve(double alpha, double tau, double dt, int steps, bool continuous = false, double ridge = 0,
        double rho = 1, double noiseVariance = 0.25, double q0 = 0, CancellationToken cancellationToken = default)
    {
        var settings = new LeastSquaresSettings(continuous ? LeastSquaresScheme.Continuous : LeastSquaresScheme.Discrete, 400,
            MultiPassSgd.Control(null, cancellationToken));
        var c = Guard.Run(() => FsLs.Solve(settings, P(alpha, tau, ridge, rho, noiseVariance, q0, dt, steps)), cancellationToken);
        var (status, time) = StatusConversion.WithDivergenceTime(c.Status);
        return new LeastSquaresCurve(c.T, c.E, c.TrainLoss, c.TestLoss, c.M, c.Q, status, time);
    }
}
