using System;
using System.Linq;
using System.Threading;
using Xunit;

namespace StatPhysFs.CSharp.Tests;

public class OnlineLinearRegressionTests
{
    private static readonly OnlineLinearRegression Model = new()
    {
        Rho = 1, NoiseVariance = 0.1, LearningRate = 0.5, Ridge = 0.01, BatchSize = 1, M0 = 0, Q0 = 0.1,
    };

    [Fact]
    public void IntegratedOdeEqualsTheClosedForm()
    {
        var curve = Model.Integrate(tEnd: 10, points: 21);
        Assert.Equal(SolveStatus.Completed, curve.Status);
        for (int k = 0; k < curve.Times.Count; k++)
        {
            var exact = Model.ClosedForm(curve.Times[k]);
            Assert.Equal(exact.M, curve.M[k], tolerance: 1e-9 * Math.Max(1, Math.Abs(exact.M)));
            Assert.Equal(exact.Q, curve.Q[k], tolerance: 1e-9 * Math.Max(1, Math.Abs(exact.Q)));
        }
    }

    /// <summary>A terminal event in the settings stops the integration where m crosses 0.5; oracle: the closed form's
    /// crossing time, by bisection.</summary>
    [Fact]
    public void TerminalEventsInTheSettingsStopTheRun()
    {
        double lo = 0, hi = 10;
        for (int i = 0; i < 100; i++) { var mid = 0.5 * (lo + hi); if (Model.ClosedForm(mid).M < 0.5) lo = mid; else hi = mid; }
        var ev = new OdeEventSpec("m = 0.5", (t, y) => y[0] - 0.5, CrossingDirection.Rising, Terminal: true);
        var curve = Model.Integrate(tEnd: 10, points: 101, settings: new OdeSettings { RelativeTolerance = 1e-10, AbsoluteTolerance = 1e-12, Events = new[] { ev } });
        Assert.Equal(SolveStatus.StoppedByEvent, curve.Status);
        for (int k = 0; k < curve.Times.Count; k++)
            Assert.Equal(curve.Times[k] <= lo, !double.IsNaN(curve.M[k]));
    }

    [Fact]
    public void CriticalLearningRateAndSteadyStateFollowTheSpec()
    {
        Assert.Equal(2 * 1.01, Model.CriticalLearningRate.Value, 12);
        Assert.Contains("2B(1+lambda)", Model.CriticalLearningRate.Convention);
        var noRidge = new OnlineLinearRegression { LearningRate = 0.5, NoiseVariance = 0.1 };
        // eg_inf = eta sigma^2 / (2 (2 - eta)).
        Assert.Equal(0.5 * 0.1 / (2 * 1.5), noRidge.SteadyState()!.Value.Eg, 14);
        Assert.Null(new OnlineLinearRegression { LearningRate = 2.5 }.SteadyState());
        Assert.Equal(2 / 1.01, OnlineLinearRegression.CriticalLearningRateInputVariance(1.01).Value, 14);
    }

    [Fact]
    public void AboveTheThresholdTheCurveDiverges()
    {
        var curve = new OnlineLinearRegression { LearningRate = 2.4 }.Integrate(100, 11, settings: new OdeSettings { DivergenceBound = 1e6 });
        Assert.Equal(SolveStatus.Diverged, curve.Status);
        Assert.NotNull(curve.DivergenceTime);
        Assert.True(double.IsNaN(curve.Eg[^1]));
    }

    [Fact]
    public void SimulationAgreesWithTheoryWithinErrorBars()
    {
        var times = new[] { 0.0, 1.0, 2.0, 4.0 };
        var last = 0.0;
        var sim = Model.Simulate(times, dimension: 1000, seeds: 16, seed: 3, progress: new SynchronousProgress(f => last = f));
        Assert.Equal(1.0, last, 12);
        for (int k = 1; k < times.Length; k++)
        {
            var theory = Model.ClosedForm(times[k]).Eg;
            // 4.5 standard errors plus the O(1/d) finite-size bias (see the F# test for its origin).
            Assert.InRange(sim.Eg[k], theory - 4.5 * sim.EgStdErr[k] - 4e-3 * (theory + 0.1), theory + 4.5 * sim.EgStdErr[k] + 4e-3 * (theory + 0.1));
        }
        Assert.Empty(sim.Divergences);
    }

    [Fact]
    public void CancelledSimulationThrows()
    {
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => Model.Simulate(new[] { 0.0, 1.0 }, 500, 2, cancellationToken: cts.Token));
    }

    [Fact]
    public void BadParametersNameThemselves()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new OnlineLinearRegression { LearningRate = -1 }.ClosedForm(1));
        Assert.Equal("lr", ex.ParamName);
        ex = Assert.Throws<ArgumentOutOfRangeException>(() => new OnlineLinearRegression { M0 = 1, Q0 = 0.1 }.SteadyState());
        Assert.Equal("q0", ex.ParamName);
    }
}
