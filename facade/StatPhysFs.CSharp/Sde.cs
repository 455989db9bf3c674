using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using StatPhysFs.Sde;
using FsFlows = StatPhysFs.Sde.Flows;
using FsProblem = StatPhysFs.Sde.FiniteSumProblem;
using FsDataSet = StatPhysFs.Sde.DataSet;
using FsModel = StatPhysFs.Sde.SdeModel;
using FsOracle = StatPhysFs.Sde.LeastSquaresOracle;

namespace StatPhysFs.CSharp;

/// <summary>Diffusion models of SGD at small learning rate (time t = steps x eta).</summary>
public enum SdeKind
{
    /// <summary>dX = -grad F dt.</summary>
    GradientFlow,
    /// <summary>SME of first order (noise Sigma^{1/2} dW, shared W across points).</summary>
    Sme1,
    /// <summary>SME of second order.</summary>
    Sme2,
    /// <summary>First-order stochastic modified flow (one Brownian motion per data point).</summary>
    Smf1,
    /// <summary>Second-order stochastic modified flow: weak order 2, also for multi-point statistics.</summary>
    Smf2,
}

/// <summary>Time-stepping scheme for the SDE models, step h = eta / subSteps.</summary>
public enum SdeSchemeKind
{
    /// <summary>Euler-Maruyama (weak order 1 in h).</summary>
    EulerMaruyama,
    /// <summary>Euler-Maruyama with Richardson extrapolation (weak order 2 in h); the recommended default.</summary>
    EulerRichardson,
    /// <summary>Heun drift with Euler noise.</summary>
    HeunDrift,
}

/// <summary>A Monte Carlo estimate: mean and standard error.</summary>
public readonly record struct SdeEstimate(double Mean, double StdErr);

/// <summary>The outcome of an SGD or SDE Monte Carlo run: one estimate per observable at <see cref="Time"/>
/// (floor(Horizon/LearningRate) x LearningRate), and how the run ended. A run whose state left
/// |x_c| &lt;= DivergenceBound (or turned NaN) on some path is <see cref="SolveStatus.Diverged"/> at the first such time
/// (<see cref="StoppedAt"/>), and its estimates are NaN.</summary>
public sealed record SdeResult(IReadOnlyList<SdeEstimate> Estimates, double Time, SolveStatus Status, double? StoppedAt,
    string StatusMessage, double MaxAbsState)
{
    /// <summary>The estimate of observable <paramref name="index"/>.</summary>
    public SdeEstimate this[int index] => Estimates[index];
    /// <summary>Number of observables.</summary>
    public int Count => Estimates.Count;

    internal static SdeResult Of(SdeSolution s)
    {
        var (status, time, message) = StatusConversion.Of(s.Status);
        return new(s.Estimates.Select(e => new SdeEstimate(e.Mean, e.StdErr)).ToArray(), s.T[0], status, time, message,
            s.Statistics.MaxAbsState);
    }
}

/// <summary>A finite data set of per-sample losses f_i on parameters x in R^d, with gradients.</summary>
public sealed class FiniteSumLosses
{
    internal FiniteSumLosses(FsProblem p) { Value = p; }
    internal FsProblem Value { get; }
    /// <summary>Parameter dimension d.</summary>
    public int Dimension => Value.Dim;
    /// <summary>Number of data points n.</summary>
    public int Samples => Value.Samples;

    /// <summary>f_i(x) = (a_i.x - y_i)^2/2 + ridge |x|^2/2.</summary>
    public static FiniteSumLosses LeastSquares(double[][] a, double[] y, double ridge = 0)
    {
        Guard.Rows(a, nameof(a));
        Guard.Vector(y, a.Length, nameof(y));
        Guard.Finite(ridge, nameof(ridge));
        return new(FsProblem.LeastSquares(ridge, a, y));
    }

    /// <summary>f_i(x) = log(1 + exp(-c_i.x)) + ridge_i |x|^2/2.</summary>
    public static FiniteSumLosses Logistic(double[][] c, double[] ridge)
    {
        Guard.Rows(c, nameof(c));
        Guard.Vector(ridge, c.Length, nameof(ridge));
        return new(FsProblem.Logistic(ridge, c));
    }

    /// <summary>The two-layer teacher-student network on a finite data set: parameters are the K x N first-layer
    /// weights (row-major), readout v fixed; exact gradient and Hessian-vector product.</summary>
    public static FiniteSumLosses TwoLayer(ActivationFunction activation, double[] v, double[][] inputs, double[] labels)
    {
        ArgumentNullException.ThrowIfNull(activation);
        ArgumentNullException.ThrowIfNull(v);
        if (v.Length == 0) throw new ArgumentException("v must have at least one entry.", nameof(v));
        Guard.AllFinite(v, nameof(v));
        Guard.Rows(inputs, nameof(inputs));
        Guard.Vector(labels, inputs.Length, nameof(labels));
        return new(FsProblem.TwoLayer(activation.Value, v, inputs, labels));
    }

    /// <summary>A mean-field two-layer tanh network of <paramref name="width"/> particles (a, w, c) on data (z_i, y_i),
    /// as one point of dimension 3N: SGD moves every particle on the same sample, the SMF drives them with common
    /// noise (sme-smf.md section 4). <see cref="MeanFieldOutput"/> evaluates the network.</summary>
    public static FiniteSumLosses MeanField(double[] inputs, double[] labels, int width)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        if (inputs.Length == 0) throw new ArgumentException("inputs must have at least one entry.", nameof(inputs));
        Guard.AllFinite(inputs, nameof(inputs));
        Guard.Vector(labels, inputs.Length, nameof(labels));
        if (width < 1) throw new ArgumentOutOfRangeException(nameof(width), width, "width must be >= 1.");
        return new(StatPhysFs.Sde.MeanField.Problem(new MeanFieldData(inputs, labels, width)));
    }

    /// <summary>The mean-field network's output (1/N) sum_j a_j tanh(w_j z + c_j) at the stacked particles.</summary>
    public static double MeanFieldOutput(double[] particles, double z)
    {
        ArgumentNullException.ThrowIfNull(particles);
        if (particles.Length == 0 || particles.Length % 3 != 0)
            throw new ArgumentException("particles must hold 3N numbers (a, w, c per particle), N >= 1.", nameof(particles));
        Guard.Finite(z, nameof(z));
        return StatPhysFs.Sde.MeanField.Output(particles, z);
    }

    /// <summary>Any problem: gradient(i, x, out) writes grad f_i(x); Hessian-vector products by central differences.</summary>
    public static FiniteSumLosses Custom(string name, int dimension, int samples, Action<int, double[], double[]> gradient,
        Func<int, double[], double> loss)
    {
        ArgumentNullException.ThrowIfNull(gradient);
        ArgumentNullException.ThrowIfNull(loss);
        if (dimension < 1) throw new ArgumentOutOfRangeException(nameof(dimension), dimension, "dimension must be >= 1.");
        if (samples < 1) throw new ArgumentOutOfRangeException(nameof(samples), samples, "samples must be >= 1.");
        return new(FsProblem.Custom(name, dimension, samples, gradient, loss));
    }

    /// <summary>The built-in data set of <c>statphys sde</c> itself: rows a_i ~ N(0, I/d) and labels y_i ~ N(0, 1)
    /// drawn from the seed (the arrays <see cref="BuiltInLeastSquares"/> and <see cref="SgdDiffusion.ExactLeastSquares"/>
    /// take).</summary>
    public static (double[][] A, double[] Y) BuiltInData(int dimension = 3, int samples = 6, int dataSeed = 7)
    {
        CheckBuiltIn(dimension, samples, 0);
        var ds = FsDataSet.Gaussian(dimension, samples, dataSeed);
        return (ds.Features, ds.Labels);
    }

    /// <summary>The built-in data set of <c>statphys sde</c>: rows a_i ~ N(0, I/d), labels y_i ~ N(0, 1) from the seed,
    /// as least squares (f_i = (a_i.x - y_i)^2/2 + ridge |x|^2/2).</summary>
    public static FiniteSumLosses BuiltInLeastSquares(int dimension = 3, int samples = 6, int dataSeed = 7, double ridge = 0)
    {
        CheckBuiltIn(dimension, samples, ridge);
        return new(FsDataSet.Gaussian(dimension, samples, dataSeed).LeastSquares(ridge));
    }

    /// <summary>The built-in data set as logistic regression on the labels' signs (c_i = sign(y_i) a_i).</summary>
    public static FiniteSumLosses BuiltInLogistic(int dimension = 3, int samples = 6, int dataSeed = 7, double ridge = 0)
    {
        CheckBuiltIn(dimension, samples, ridge);
        return new(FsDataSet.Gaussian(dimension, samples, dataSeed).LogisticBySign(ridge));
    }

    /// <summary>The built-in two-layer problem: inputs sqrt(d) a_i, labels from a fixed two-unit erf teacher drawn
    /// from the seed; the student is a K = 2 erf committee (parameters 2 x d).</summary>
    public static FiniteSumLosses BuiltInTwoLayer(int dimension = 3, int samples = 6, int dataSeed = 7)
    {
        CheckBuiltIn(dimension, samples, 0);
        return new(FsDataSet.Gaussian(dimension, samples, dataSeed).TwoLayerTeacher(dataSeed));
    }

    /// <summary>A CSV data set (features then the label on each row; optional header; '#' comments) as least
    /// squares, or as logistic regression (labels all in {-1, 1} or all in {0, 1}).</summary>
    public static FiniteSumLosses FromCsv(string path, bool logistic = false, double ridge = 0)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!(double.IsFinite(ridge) && ridge >= 0))
            throw new ArgumentOutOfRangeException(nameof(ridge), ridge, "ridge must be a finite number >= 0.");
        var ds = FsDataSet.ReadCsv(path);
        return new(logistic ? ds.Logistic(ridge) : ds.LeastSquares(ridge));
    }

    private static void CheckBuiltIn(int dimension, int samples, double ridge)
    {
        if (dimension < 1 || dimension > 10_000)
            throw new ArgumentOutOfRangeException(nameof(dimension), dimension, "dimension must be in [1, 10000].");
        if (samples < 1 || samples > 1_000_000)
            throw new ArgumentOutOfRangeException(nameof(samples), samples, "samples must be in [1, 1000000].");
        if (!(double.IsFinite(ridge) && ridge >= 0))
            throw new ArgumentOutOfRangeException(nameof(ridge), ridge, "ridge must be a finite number >= 0.");
    }
}

/// <summary>SGD and its SME / SMF on a finite data set, from one or several initial points driven by the same samples
/// (multi-point motion). Set parameters with an object initialiser.</summary>
public sealed class SgdDiffusion
{
    /// <summary>Learning rate eta.</summary>
    public double LearningRate { get; init; } = 0.05;
    /// <summary>Horizon T (floor(T/eta) SGD steps).</summary>
    public double Horizon { get; init; } = 1.0;
    /// <summary>Sub-steps per eta for the SDE schemes.</summary>
    public int SubSteps { get; init; } = 2;
    /// <summary>Scheme for the SDE models.</summary>
    public SdeSchemeKind Scheme { get; init; } = SdeSchemeKind.EulerRichardson;
    /// <summary>Mini-batch size (with replacement).</summary>
    public int BatchSize { get; init; } = 1;
    /// <summary>Monte Carlo paths.</summary>
    public int Paths { get; init; } = 10000;
    /// <summary>Seed; path r uses the stream (seed, r).</summary>
    public int Seed { get; init; } = 1;
    /// <summary>A path whose state leaves |x_c| &lt;= DivergenceBound (or turns NaN) stops, and the run is
    /// <see cref="SolveStatus.Diverged"/> at the first such time.</summary>
    public double DivergenceBound { get; init; } = 1e8;

    private SdeSettings Settings(CancellationToken ct)
    {
        Guard.Defined(Scheme, nameof(Scheme));
        if (!(double.IsFinite(LearningRate) && LearningRate > 0))
            throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "LearningRate (eta) must be a finite number > 0.");
        Guard.Positive(Horizon, nameof(Horizon));
        if (Horizon < LearningRate)
            throw new ArgumentOutOfRangeException(nameof(Horizon), Horizon, "Horizon must be >= LearningRate (floor(Horizon/LearningRate) SGD steps).");
        if (Horizon / LearningRate * Math.Max(1, SubSteps) * 2 > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(Horizon), Horizon, "Horizon/LearningRate x SubSteps is too many steps for one path.");
        if (!(DivergenceBound > 0 && !double.IsNaN(DivergenceBound)))
            throw new ArgumentOutOfRangeException(nameof(DivergenceBound), DivergenceBound, "DivergenceBound must be > 0.");
        var control = new RunControl(ct, FSharpOption<FSharpFunc<double, Unit>>.None, long.MaxValue, double.PositiveInfinity);
        return new(SubSteps,
            Scheme switch
            {
                SdeSchemeKind.EulerMaruyama => SdeScheme.EulerMaruyama,
                SdeSchemeKind.HeunDrift => SdeScheme.HeunDrift,
                _ => SdeScheme.EulerRichardson,
            }, Paths, Seed, Environment.ProcessorCount, 1, DivergenceBound, control);
    }

    /// <summary>The observables as the library's named list ("0", "1", ... in the caller's order).</summary>
    private static FSharpList<PointObservable> Obs(IEnumerable<Func<double[][], double>> observables)
    {
        ArgumentNullException.ThrowIfNull(observables);
        var list = observables.ToArray();
        if (list.Any(f => f is null)) throw new ArgumentNullException(nameof(observables), "observables holds a null function.");
        var result = FSharpList<PointObservable>.Empty;
        for (var i = list.Length - 1; i >= 0; i--)
            result = FSharpList<PointObservable>.Cons(new PointObservable(i.ToString(), FuncConvert.FromFunc(list[i])), result);
        return result;
    }

    private SdeResult Solve(SdeProcess process, FiniteSumLosses problem, double[][] initialPoints,
        FSharpList<PointObservable> obs, CancellationToken ct)
    {
        var s = Settings(ct);
        var p = new SdeProblem(SdeData.NewFiniteSum(problem.Value), process, LearningRate, BatchSize, initialPoints, Horizon, obs);
        return SdeResult.Of(Guard.Run(() => FsFlows.Solve(s, p), ct));
    }

    private static void CheckPoints(FiniteSumLosses problem, double[][] initialPoints)
    {
        ArgumentNullException.ThrowIfNull(problem);
        Guard.Rows(initialPoints, nameof(initialPoints), problem.Dimension);
    }

    /// <summary>Monte Carlo of SGD (with or without replacement): each observable of the points at the horizon, and
    /// the run's status (Diverged with its time when a path left the bound).</summary>
    public SdeResult Sgd(FiniteSumLosses problem, double[][] initialPoints,
        IEnumerable<Func<double[][], double>> observables, bool withReplacement = true, CancellationToken cancellationToken = default)
    {
        CheckPoints(problem, initialPoints);
        var obs = Obs(observables);
        return Solve(SdeProcess.NewSgd(withReplacement ? BatchSampling.WithReplacement : BatchSampling.WithoutReplacement),
            problem, initialPoints, obs, cancellationToken);
    }

    /// <summary>Monte Carlo of a diffusion model: each observable of the points at the horizon, and the run's status.</summary>
    public SdeResult Simulate(SdeKind model, FiniteSumLosses problem, double[][] initialPoints,
        IEnumerable<Func<double[][], double>> observables, CancellationToken cancellationToken = default)
    {
        Guard.Defined(model, nameof(model));
        CheckPoints(problem, initialPoints);
        var obs = Obs(observables);
        return Solve(SdeProcess.NewDiffusion(ToModel(model)), problem, initialPoints, obs, cancellationToken);
    }

    internal static FsModel ToModel(SdeKind k) => k switch
    {
        SdeKind.GradientFlow => FsModel.GradientFlow,
        SdeKind.Sme1 => FsModel.NewSme(1, true),
        SdeKind.Sme2 => FsModel.NewSme(2, true),
        SdeKind.Smf1 => FsModel.NewSmf(1),
        _ => FsModel.NewSmf(2),
    };

    /// <summary>The weak orders of GF, SME1, SMF1 and SMF2 on least squares, from the exact oracles (no Monte Carlo):
    /// learning rates <paramref name="etas"/> (default 1/8 .. 1/256, distinct, each &lt;= horizon), the two standard
    /// initial points x_c = 1 + 0.3 c and -0.5 (1 + 0.3 c).</summary>
    public static WeakOrderResult WeakOrder(double[][] a, double[] y, double[]? etas = null, double horizon = 2, double ridge = 0,
        CancellationToken cancellationToken = default)
    {
        var d = Guard.Rows(a, nameof(a));
        Guard.Vector(y, a.Length, nameof(y));
        if (etas is not null) Guard.AllFinite(etas, nameof(etas));
        Guard.Positive(horizon, nameof(horizon));
        if (!(double.IsFinite(ridge) && ridge >= 0))
            throw new ArgumentOutOfRangeException(nameof(ridge), ridge, "ridge must be a finite number >= 0.");
        var x0 = Enumerable.Range(0, 2).Select(j => Enumerable.Range(0, d).Select(c => (j == 0 ? 1.0 : -0.5) * (1 + 0.3 * c)).ToArray()).ToArray();
        var problem = new WeakOrderProblem(a, y, ridge, etas ?? new[] { 1.0 / 8, 1.0 / 16, 1.0 / 32, 1.0 / 64, 1.0 / 128, 1.0 / 256 },
            horizon, x0);
        var settings = new WeakOrderSettings(3,
            new RunControl(cancellationToken, FSharpOption<FSharpFunc<double, Unit>>.None, long.MaxValue, double.PositiveInfinity));
        var s = Guard.Run(() => StatPhysFs.Sde.WeakOrder.Solve(settings, problem), cancellationToken);
        return new(s.Etas, s.Errors.ToDictionary(t => t.Item1, t => t.Item2), s.Slopes.ToDictionary(t => t.Item1, t => t.Item2),
            StatusConversion.Of(s.Status).Status);
    }

    /// <summary>Exact moments for least squares (no Monte Carlo): tr E[x x^T] of the first point and, with two points,
    /// E|x - y|^2, for SGD (exact recursion) or a model (moment ODE by the matrix exponential).</summary>
    public static (double TraceSecondMoment, double? TwoPointDistance) ExactLeastSquares(SdeKind? model, double[][] a, double[] y,
        double learningRate, double horizon, double[][] initialPoints, double ridge = 0)
    {
        if (model is SdeKind k) Guard.Defined(k, nameof(model));
        var d = Guard.Rows(a, nameof(a));
        Guard.Vector(y, a.Length, nameof(y));
        Guard.Rows(initialPoints, nameof(initialPoints), d);
        Guard.Positive(learningRate, nameof(learningRate));
        Guard.Positive(horizon, nameof(horizon));
        Guard.Finite(ridge, nameof(ridge));
        var m = model is null
            ? FsOracle.Sgd(ridge, a, y, learningRate, horizon, initialPoints)
            : FsOracle.Moments(ToModel(model.Value), ridge, a, y, learningRate, horizon, initialPoints);
        return (m.TraceSecond(0), initialPoints.Length > 1 ? m.TwoPoint(0, 1) : null);
    }
}

/// <summary>A weak-order study on the exact least-squares oracles: |E phi(SGD) - E phi(model)| at the horizon per
/// learning rate (gf_one_point, sme1_one_point, smf1_one_point, smf2_one_point, smf1_two_point, smf2_two_point) and
/// the log-log slopes over the finest three learning rates.</summary>
public sealed record WeakOrderResult(double[] Etas, IReadOnlyDictionary<string, double[]> Errors,
    IReadOnlyDictionary<string, double> Slopes, SolveStatus Status);

/// <summary>Closed-form oracles of sme-smf.md section 6 for quadratic problems.</summary>
public static class QuadraticOracles
{
    /// <summary>Stationary variances (SGD, SME1, SMF) of the 1-D quadratic with curvature lambda and additive noise
    /// variance c: eta c/(lambda (2 - eta lambda)), eta c/(2 lambda), eta c/(2 lambda (1 + eta lambda/2)).</summary>
    public static (double Sgd, double Sme1, double Smf) StationaryVariances(double eta, double lambda, double c)
    {
        var t = AdditiveNoiseQuadratic.StationaryVariances(eta, lambda, c);
        return (t.Item1, t.Item2, t.Item3);
    }

    /// <summary>The exact modified OU process (rate, diffusion c~) whose law equals SGD's at every grid time.</summary>
    public static (double Rate, double Diffusion) ModifiedOu(double eta, double lambda, double c)
    {
        var t = AdditiveNoiseQuadratic.ModifiedOu(eta, lambda, c);
        return (t.Item1, t.Item2);
    }

    /// <summary>Online Gaussian least squares with input covariance eigenvalues lambdas and label-noise variance s2: the
    /// stationary tr(H P) (twice the excess risk) of SGD, SME1 or the SMF (sme1/smf: pass SdeKind.Sme1 or Smf2), or null
    /// when there is no stationary state.</summary>
    public static double? OnlineStationaryExcess(SdeKind? model, double eta, double[] lambdas, double s2)
    {
        ArgumentNullException.ThrowIfNull(lambdas);
        Guard.AllFinite(lambdas, nameof(lambdas));
        var dyn = model switch
        {
            null => OnlineGaussianLeastSquares.Dynamics.Sgd,
            SdeKind.Sme1 => OnlineGaussianLeastSquares.Dynamics.Sme1,
            SdeKind.Smf2 => OnlineGaussianLeastSquares.Dynamics.Smf,
            _ => throw new ArgumentOutOfRangeException(nameof(model), "use null (SGD), Sme1 or Smf2."),
        };
        var r = OnlineGaussianLeastSquares.StationaryExcess(dyn, eta, lambdas, s2);
        return FSharpOption<double>.get_IsSome(r) ? r.Value : null;
    }
}
