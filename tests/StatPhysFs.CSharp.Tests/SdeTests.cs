using System;
using System.Linq;
using Xunit;

namespace StatPhysFs.CSharp.Tests;

public class SdeTests
{
    private static (double[][] A, double[] Y) Data()
    {
        var rng = new Random(3);
        double N() => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
        var a = Enumerable.Range(0, 6).Select(_ => Enumerable.Range(0, 3).Select(_ => N() / Math.Sqrt(3)).ToArray()).ToArray();
        var y = Enumerable.Range(0, 6).Select(_ => N()).ToArray();
        return (a, y);
    }

    private static readonly double[][] X0 = { new[] { 1.0, -0.5, 0.3 }, new[] { -0.4, 0.8, 0.1 } };

    [Fact]
    public void SecondOrderSmfHasWeakOrderTwoOnExactOracles()
    {
        var (a, y) = Data();
        double Err(SdeKind k, double eta) =>
            Math.Abs(SgdDiffusion.ExactLeastSquares(null, a, y, eta, 2, X0).TwoPointDistance!.Value
                     - SgdDiffusion.ExactLeastSquares(k, a, y, eta, 2, X0).TwoPointDistance!.Value);
        // Halving eta divides the SMF2 error by ~4 and the first-order SMF error by ~2.
        var r2 = Err(SdeKind.Smf2, 1.0 / 64) / Err(SdeKind.Smf2, 1.0 / 128);
        var r1 = Err(SdeKind.Smf1, 1.0 / 64) / Err(SdeKind.Smf1, 1.0 / 128);
        Assert.InRange(r2, 3.5, 4.5);
        Assert.InRange(r1, 1.7, 2.3);
    }

    [Fact]
    public void MonteCarloSgdMatchesItsExactRecursion()
    {
        var (a, y) = Data();
        var sim = new SgdDiffusion { LearningRate = 0.1, Horizon = 2, Paths = 6000 };
        var est = sim.Sgd(FiniteSumLosses.LeastSquares(a, y), X0, new Func<double[][], double>[] { xs => xs[0].Sum(v => v * v) });
        var exact = SgdDiffusion.ExactLeastSquares(null, a, y, 0.1, 2, X0).TraceSecondMoment;
        Assert.True(Math.Abs(est[0].Mean - exact) < 4 * est[0].StdErr, $"{est[0].Mean} +- {est[0].StdErr} vs {exact}");
    }

    [Fact]
    public void CustomProblemFromCSharpDelegatesEqualsTheBuiltIn()
    {
        var (a, y) = Data();
        var custom = FiniteSumLosses.Custom("ls", 3, 6,
            (i, x, g) => { var r = a[i].Zip(x, (u, v) => u * v).Sum() - y[i]; for (var j = 0; j < 3; j++) g[j] = a[i][j] * r; },
            (i, x) => 0.5 * Math.Pow(a[i].Zip(x, (u, v) => u * v).Sum() - y[i], 2));
        var sim = new SgdDiffusion { LearningRate = 0.1, Horizon = 1, Paths = 500, Scheme = SdeSchemeKind.EulerMaruyama };
        Func<double[][], double>[] obs = { xs => xs[0][0] };
        var viaCustom = sim.Simulate(SdeKind.Smf2, custom, X0, obs)[0];
        var builtIn = sim.Simulate(SdeKind.Smf2, FiniteSumLosses.LeastSquares(a, y), X0, obs)[0];
        // Same noise stream; the custom problem's Hessian-vector product is a finite difference (~1e-10 relative).
        Assert.True(Math.Abs(viaCustom.Mean - builtIn.Mean) < 1e-7, $"{viaCustom.Mean} vs {builtIn.Mean}");
    }

    [Fact]
    public void MeanFieldSgdAndSmfAgreeInMean()
    {
        var z = new[] { -1.5, -0.5, 0.5, 1.5 };
        var yv = z.Select(v => Math.Tanh(1.2 * v)).ToArray();
        var problem = FiniteSumLosses.MeanField(z, yv, width: 20);
        var rng = new Random(5);
        var particles = Enumerable.Range(0, 60).Select(_ => rng.NextDouble() - 0.5).ToArray();
        var sim = new SgdDiffusion { LearningRate = 0.1, Horizon = 1, Paths = 1500 };
        Func<double[][], double>[] obs = { xs => FiniteSumLosses.MeanFieldOutput(xs[0], 0.7) };
        var sgd = sim.Sgd(problem, new[] { particles }, obs)[0];
        var smf = sim.Simulate(SdeKind.Smf2, problem, new[] { particles }, obs)[0];
        var se = Math.Sqrt(sgd.StdErr * sgd.StdErr + smf.StdErr * smf.StdErr);
        Assert.True(Math.Abs(sgd.Mean - smf.Mean) < 4 * se, $"SGD {sgd.Mean} vs SMF {smf.Mean} (se {se})");
        // The common sample moves the whole network: fluctuations of order sqrt(eta), not 1/sqrt(N) of them.
        Assert.True(sgd.StdErr * Math.Sqrt(1500) > 0.01, $"SGD spread {sgd.StdErr * Math.Sqrt(1500)}");
    }

    [Fact]
    public void DivergenceIsReportedWithItsTimeAndAStableRunCompletes()
    {
        // One data point, f = x^2/2: SGD is x_k = (1 - eta)^k x0 with no noise. At eta = 3 the factor is -2, so the
        // first step with |x| > 1e8 (the default bound) is k = 27 (2^27 > 1e8 > 2^26): Diverged at t = 27 x 3 = 81.
        var one = FiniteSumLosses.LeastSquares(new[] { new[] { 1.0 } }, new[] { 0.0 });
        Func<double[][], double>[] obs = { xs => xs[0][0] };
        var blowUp = new SgdDiffusion { LearningRate = 3, Horizon = 100, Paths = 8 }.Sgd(one, new[] { new[] { 1.0 } }, obs);
        Assert.Equal(SolveStatus.Diverged, blowUp.Status);
        Assert.Equal(81.0, blowUp.StoppedAt!.Value, 12);
        Assert.True(double.IsNaN(blowUp[0].Mean), "a diverged run's estimates are NaN");
        // eta = 0.5: the factor is 1/2, the run completes at t = 100 with x = 2^-200 exactly.
        var stable = new SgdDiffusion { LearningRate = 0.5, Horizon = 100, Paths = 8 }.Sgd(one, new[] { new[] { 1.0 } }, obs);
        Assert.Equal(SolveStatus.Completed, stable.Status);
        Assert.Null(stable.StoppedAt);
        Assert.Equal(100.0, stable.Time, 12);
        Assert.Equal(1.0, stable[0].Mean / Math.Pow(0.5, 200), 12);
    }

    [Fact]
    public void BuiltInDataSetSgdMatchesTheExactRecursion()
    {
        // The built-in data set of `statphys sde` (d = 3, n = 6, seed 7): Monte Carlo SGD against the exact moment
        // recursion on the same arrays, within 4 standard errors.
        var (a, y) = FiniteSumLosses.BuiltInData();
        var problem = FiniteSumLosses.BuiltInLeastSquares();
        Assert.Equal(3, problem.Dimension);
        Assert.Equal(6, problem.Samples);
        var sim = new SgdDiffusion { LearningRate = 0.05, Horizon = 1, Paths = 4000 };
        var est = sim.Sgd(problem, X0, new Func<double[][], double>[] { xs => xs[0].Sum(v => v * v) });
        Assert.Equal(SolveStatus.Completed, est.Status);
        var exact = SgdDiffusion.ExactLeastSquares(null, a, y, 0.05, 1, X0).TraceSecondMoment;
        Assert.True(Math.Abs(est[0].Mean - exact) < 4 * est[0].StdErr, $"{est[0].Mean} +- {est[0].StdErr} vs {exact}");
    }

    [Fact]
    public void WeakOrderStudyFitsTheExpectedOrders()
    {
        // The library's study against this file's own two-rate ratios above: SMF2 order 2, GF/SME1/SMF1 order 1.
        var (a, y) = Data();
        var r = SgdDiffusion.WeakOrder(a, y);
        Assert.Equal(6, r.Etas.Length);
        Assert.InRange(r.Slopes["smf2_one_point"], 1.85, 2.15);
        Assert.InRange(r.Slopes["smf2_two_point"], 1.85, 2.15);
        Assert.InRange(r.Slopes["gf_one_point"], 0.85, 1.15);
        Assert.InRange(r.Slopes["smf1_two_point"], 0.85, 1.15);
        Assert.Equal(SolveStatus.Completed, r.Status);
        var ex = Assert.ThrowsAny<ArgumentException>(() => SgdDiffusion.WeakOrder(a, y, new[] { 0.1, 0.1 }));
        Assert.Contains("etas", ex.Message);
    }

    [Fact]
    public void BadLearningRateNamesTheParameter()
    {
        var (a, y) = Data();
        var ex = Assert.ThrowsAny<ArgumentException>(() =>
            new SgdDiffusion { LearningRate = 0 }.Simulate(SdeKind.Smf2, FiniteSumLosses.LeastSquares(a, y), X0, new Func<double[][], double>[] { xs => 0 }));
        Assert.Contains("eta", ex.Message);
    }
}

public class QuadraticOracleTests
{
    [Fact]
    public void ModifiedOuReproducesSgdVarianceAndTheTableIsOrdered()
    {
        double eta = 0.1, lambda = 2, c = 1;
        var (rate, diff) = QuadraticOracles.ModifiedOu(eta, lambda, c);
        // Stationary variance of the OU, eta c~ / (2 rate), equals SGD's eta c / (lambda (2 - eta lambda)).
        var (sgd, sme1, smf) = QuadraticOracles.StationaryVariances(eta, lambda, c);
        Assert.True(Math.Abs(eta * diff / (2 * rate) - sgd) < 1e-12 * sgd);
        Assert.True(sgd > sme1 && sme1 > smf);
        var lambdas = new[] { 1.0, 0.5, 0.25, 0.1 };
        var eSgd = QuadraticOracles.OnlineStationaryExcess(null, 0.1, lambdas, 0.2)!.Value;
        var eSmf = QuadraticOracles.OnlineStationaryExcess(SdeKind.Smf2, 0.1, lambdas, 0.2)!.Value;
        // s^2 sigma/(1 - sigma) with sigma = eta tr H / 2 for the SMF.
        var sigma = 0.1 * lambdas.Sum() / 2;
        Assert.True(Math.Abs(eSmf - 0.2 * sigma / (1 - sigma)) < 1e-14);
        Assert.True(eSgd > eSmf);
        Assert.Null(QuadraticOracles.OnlineStationaryExcess(null, 2.5, lambdas, 0.2));
    }
}
