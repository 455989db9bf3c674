using System;
using Xunit;

namespace StatPhysFs.CSharp.Tests;

public class GaussianTests
{
    private static readonly double[,] Cov = { { 1.2, 0.4, -0.3 }, { 0.4, 0.9, 0.2 }, { -0.3, 0.2, 1.5 } };

    [Fact]
    public void GaussHermiteIsExactOnNormalMoments()
    {
        var rule = QuadratureRule.GaussHermite(10);
        // E[Z^2] = 1, E[Z^4] = 3, E[Z^18] = 17!! = 34459425 (degree 18 <= 2n - 1 = 19).
        Assert.Equal(1.0, rule.Expect(z => z * z), 14);
        Assert.Equal(3.0, rule.Expect(z => Math.Pow(z, 4)), 13);
        Assert.Equal(1.0, rule.Expect(z => Math.Pow(z, 18)) / 34459425.0, 12);
    }

    [Fact]
    public void TensorAndSparseRulesGiveTheCovariance()
    {
        var mean = new double[3];
        Assert.Equal(0.4, GaussianExpectation.Tensor(x => x[0] * x[1], mean, Cov, order: 3), 12);
        Assert.Equal(-0.3, GaussianExpectation.Sparse(x => x[0] * x[2], mean, Cov, level: 2), 12);
    }

    [Fact]
    public void MonteCarloIsReproducibleAndWithinItsErrorBar()
    {
        var mean = new double[] { 0.5, 0, 0 };
        var a = GaussianExpectation.MonteCarlo(x => x[0] * x[0], mean, Cov, samples: 200_000, seed: 9);
        var b = GaussianExpectation.MonteCarlo(x => x[0] * x[0], mean, Cov, samples: 200_000, seed: 9);
        Assert.Equal(a, b);
        Assert.InRange(a.Mean, 1.45 - 5 * a.StandardError, 1.45 + 5 * a.StandardError); // C00 + mu0^2
    }

    [Fact]
    public void ClosedFormsHitTheSpecTrapValues()
    {
        var unit = new double[,] { { 1, 1 }, { 1, 1 } };
        Assert.Equal(0.5, CommitteeExpectations.I2(ActivationFunction.Relu, unit), 15);
        var half = new double[,] { { 1, 0.5 }, { 0.5, 1 } };
        Assert.Equal(2 / Math.PI * Math.Asin(0.25), CommitteeExpectations.I2(ActivationFunction.Erf, half), 15);
    }

    [Fact]
    public void CustomActivationFromCSharpMatchesTheBuiltInErf()
    {
        // erf(x/sqrt2) written by hand through the generic quadrature path, against the closed form.
        var erf = ActivationFunction.Custom("my-erf", x => StatPhysFs.Gaussian.Activation.Erf.Evaluate(x),
            x => Math.Sqrt(2 / Math.PI) * Math.Exp(-x * x / 2));
        Assert.Equal(CommitteeExpectations.I3(ActivationFunction.Erf, Cov), CommitteeExpectations.I3(erf, Cov), tolerance: 1e-9);
    }

    [Fact]
    public void BadCovarianceIsRejectedByName()
    {
        var bad = new double[,] { { 1, 2 }, { 2, 1 } };
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => CommitteeExpectations.I2(ActivationFunction.Tanh, bad));
        Assert.Contains("positive semi-definite", ex.Message);
    }
}
