using System;
using System.Collections.Generic;
using System.Threading;
using Microsoft.FSharp.Core;
using StatPhysFs.Gaussian;
using FsGaussianRule = StatPhysFs.Gaussian.GaussianRule;
using FsMonteCarlo = StatPhysFs.Gaussian.GaussianMonteCarlo;

namespace StatPhysFs.CSharp;

/// <summary>A Monte Carlo estimate: the mean, its standard error and the number of samples.</summary>
public readonly record struct McEstimate(double Mean, double StandardError, int Samples);

/// <summary>A one-dimensional quadrature rule for E[f(Z)], Z ~ N(0, 1); the weights sum to one.</summary>
public sealed class QuadratureRule
{
    private QuadratureRule(double[] nodes, double[] weights) { Nodes = nodes; Weights = weights; }

    /// <summary>Nodes of the rule.</summary>
    public IReadOnlyList<double> Nodes { get; }

    /// <summary>Weights of the rule (probabilists' normalisation: they sum to one).</summary>
    public IReadOnlyList<double> Weights { get; }

    /// <summary>The n-point Gauss-Hermite rule (Golub-Welsch, Newton-polished), exact for polynomials of degree 2n-1.</summary>
    /// <param name="order">Number of nodes, 1 to 2000.</param>
    public static QuadratureRule GaussHermite(int order)
    {
        var r = StatPhysFs.Gaussian.GaussHermite.Rule(order);
        return new QuadratureRule(r.Nodes, r.Weights);
    }

    /// <summary>E[f(Z)] for Z ~ N(0, 1) with this rule.</summary>
    public double Expect(Func<double, double> f)
    {
        ArgumentNullException.ThrowIfNull(f);
        double s = 0;
        for (int i = 0; i < Nodes.Count; i++) s += Weights[i] * f(Nodes[i]);
        return s;
    }
}

/// <summary>Expectations E[f(X)] over a multivariate Gaussian X ~ N(mean, covariance). The covariance may be
/// singular (positive semi-definite). The array passed to <c>f</c> is a buffer: read it, do not keep it.</summary>
public static class GaussianExpectation
{
    private static FSharpFunc<double[], double> Wrap(Func<double[], double> f)
    {
        ArgumentNullException.ThrowIfNull(f);
        return FuncConvert.FromFunc(f);
    }

    /// <summary>Tensor-product Gauss-Hermite with <paramref name="order"/> points per dimension.</summary>
    public static double Tensor(Func<double[], double> f, double[] mean, double[,] covariance, int order = 20) =>
        Guard.Run(() => FsGaussianRule.Expect(FsGaussianRule.Tensor(Check(mean, covariance), order), mean, covariance, Wrap(f)), default);

    /// <summary>The mean and a square covariance of the same size, finite.</summary>
    private static int Check(double[] mean, double[,] covariance)
    {
        ArgumentNullException.ThrowIfNull(mean);
        if (mean.Length == 0) throw new ArgumentException("mean must have at least one entry.", nameof(mean));
        Guard.AllFinite(mean, nameof(mean));
        Guard.Matrix(covariance, mean.Length, mean.Length, nameof(covariance));
        return mean.Length;
    }

    /// <summary>Smolyak sparse grid of the given level (1 = one node) on Gauss-Hermite rules.</summary>
    public static double Sparse(Func<double[], double> f, double[] mean, double[,] covariance, int level) =>
        Guard.Run(() => FsGaussianRule.Expect(FsGaussianRule.Sparse(Check(mean, covariance), level), mean, covariance, Wrap(f)), default);

    /// <summary>Monte Carlo with a seed; the same seed gives the same estimate whatever the thread count.
    /// Cancellation throws <see cref="OperationCanceledException"/>.</summary>
    public static McEstimate MonteCarlo(Func<double[], double> f, double[] mean, double[,] covariance, int samples, int seed = 1,
        CancellationToken cancellationToken = default)
    {
        Check(mean, covariance);
        var e = Guard.Run(() => FsMonteCarlo.EstimateCancellable(cancellationToken, seed, samples, mean, covariance, Wrap(f)), cancellationToken);
        return new McEstimate(e.Mean, e.StdErr, e.Count);
    }

    /// <summary>Randomised quasi-Monte Carlo: a Halton set of <paramref name="points"/> points under
    /// <paramref name="shifts"/> random shifts; the standard error is the spread across shifts. Cancellation throws
    /// <see cref="OperationCanceledException"/>.</summary>
    public static McEstimate QuasiMonteCarlo(Func<double[], double> f, double[] mean, double[,] covariance, int points, int shifts = 16, int seed = 1,
        CancellationToken cancellationToken = default)
    {
        Check(mean, covariance);
        var e = Guard.Run(() => FsMonteCarlo.EstimateQuasiCancellable(cancellationToken, seed, points, shifts, mean, covariance, Wrap(f)), cancellationToken);
        return new McEstimate(e.Mean, e.StdErr, e.Count);
    }
}

/// <summary>An activation g and its derivative. <see cref="Erf"/> is g(x) = erf(x/sqrt 2). (Named apart from the F#
/// type <c>StatPhysFs.Gaussian.Activation</c> it wraps.)</summary>
public sealed class ActivationFunction
{
    internal ActivationFunction(StatPhysFs.Gaussian.Activation value) { Value = value; }
    internal StatPhysFs.Gaussian.Activation Value { get; }

    /// <summary>The activation's name.</summary>
    public string Name => Value.Name;

    /// <summary>g(x) = erf(x / sqrt 2) (closed-form integrals).</summary>
    public static ActivationFunction Erf { get; } = new(StatPhysFs.Gaussian.Activation.Erf);
    /// <summary>g(x) = max(0, x) (closed-form I2, J2, I3).</summary>
    public static ActivationFunction Relu { get; } = new(StatPhysFs.Gaussian.Activation.Relu);
    /// <summary>g(x) = x (closed-form integrals).</summary>
    public static ActivationFunction Linear { get; } = new(StatPhysFs.Gaussian.Activation.Linear);
    /// <summary>tanh, through quadrature.</summary>
    public static ActivationFunction Tanh { get; } = new(StatPhysFs.Gaussian.Activation.Tanh);
    /// <summary>The logistic sigmoid, through quadrature.</summary>
    public static ActivationFunction Sigmoid { get; } = new(StatPhysFs.Gaussian.Activation.Sigmoid);

    /// <summary>Any activation given as a function and its derivative; its integrals go through quadrature.</summary>
    public static ActivationFunction Custom(string name, Func<double, double> g, Func<double, double> derivative)
    {
        ArgumentNullException.ThrowIfNull(g);
        ArgumentNullException.ThrowIfNull(derivative);
        return new(StatPhysFs.Gaussian.Activation.NewCustom(name, FuncConvert.FromFunc(g), FuncConvert.FromFunc(derivative)));
    }

    /// <summary>g(x).</summary>
    public double Evaluate(double x) => Value.Evaluate(x);
    /// <summary>g'(x).</summary>
    public double Derivative(double x) => Value.Derivative(x);
    /// <inheritdoc />
    public override string ToString() => Name;
}

/// <summary>The committee-machine integrals over centred Gaussians with covariance C (Saad-Solla convention,
/// I2 = (2/pi) asin(.) for erf): I2 = E[g(u)g(v)], J2 = E[g'(u)g'(v)], I3 = E[g'(u) v g(w)], I4 = E[g'(u)g'(v)g(w)g(z)].</summary>
public static class CommitteeExpectations
{
    /// <summary>E[g(u) g(v)] for a 2x2 covariance.</summary>
    public static double I2(ActivationFunction g, double[,] covariance) =>
        Checked(g, covariance, 2, StatPhysFs.Gaussian.CommitteeIntegrals.I2);
    /// <summary>E[g'(u) g'(v)] for a 2x2 covariance.</summary>
    public static double J2(ActivationFunction g, double[,] covariance) =>
        Checked(g, covariance, 2, StatPhysFs.Gaussian.CommitteeIntegrals.J2);
    /// <summary>E[g'(u) v g(w)] for a 3x3 covariance of (u, v, w).</summary>
    public static double I3(ActivationFunction g, double[,] covariance) =>
        Checked(g, covariance, 3, StatPhysFs.Gaussian.CommitteeIntegrals.I3);
    /// <summary>E[g'(u) g'(v) g(w) g(z)] for a 4x4 covariance of (u, v, w, z).</summary>
    public static double I4(ActivationFunction g, double[,] covariance) =>
        Checked(g, covariance, 4, StatPhysFs.Gaussian.CommitteeIntegrals.I4);

    /// <summary>Checks the activation and the n x n covariance (naming the C# parameters), then evaluates.</summary>
    private static double Checked(ActivationFunction g, double[,] covariance, int n,
        Func<StatPhysFs.Gaussian.Activation, double[,], double> integral)
    {
        ArgumentNullException.ThrowIfNull(g);
        Guard.Matrix(covariance, n, n, nameof(covariance));
        return integral(g.Value, covariance);
    }
}
