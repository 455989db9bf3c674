using System;
using System.Threading;
using Xunit;

namespace StatPhysFs.CSharp.Tests;

public class OdeTests
{
    [Fact]
    public void DormandPrinceSolvesExponentialDecayWithDenseOutput()
    {
        var r = OdeSolver.Solve((t, y, dy) => dy[0] = -y[0], new[] { 1.0 }, 0, 5,
            new OdeSettings { RelativeTolerance = 1e-10, AbsoluteTolerance = 1e-12 });
        Assert.Equal(SolveStatus.Completed, r.Status);
        Assert.Equal(Math.Exp(-5), r.States[^1][0], 10);
        Assert.Equal(Math.Exp(-2.345), r.Evaluate(2.345)[0], 8);
    }

    [Fact]
    public void TerminalEventStopsAtTheCrossing()
    {
        var settings = new OdeSettings { Events = new[] { new OdeEventSpec("half", (t, y) => y[0] - 0.5, CrossingDirection.Falling) } };
        var r = OdeSolver.Solve((t, y, dy) => dy[0] = -y[0], new[] { 1.0 }, 0, 10, settings);
        Assert.Equal(SolveStatus.StoppedByEvent, r.Status);
        Assert.Equal(Math.Log(2), r.StatusTime!.Value, 8);
    }

    [Fact]
    public void BlowUpIsReportedAsDivergenceWithItsTime()
    {
        var r = OdeSolver.Solve((t, y, dy) => dy[0] = y[0], new[] { 1.0 }, 0, 100,
            new OdeSettings { Method = OdeMethod.RungeKutta4, Step = 0.01, DivergenceBound = 1e6 });
        Assert.Equal(SolveStatus.Diverged, r.Status);
        Assert.Equal(Math.Log(1e6), r.StatusTime!.Value, 5);
    }

    [Fact]
    public void CancellationAndProgressAreHonoured()
    {
        var seen = 0.0;
        var progress = new SynchronousProgress(f => seen = Math.Max(seen, f));
        var done = OdeSolver.Solve((t, y, dy) => dy[0] = Math.Cos(t), new[] { 0.0 }, 0, 10, progress: progress);
        Assert.Equal(1.0, seen);
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        // One cancellation contract across the facade: a cancelled run throws, as .NET does.
        Assert.ThrowsAny<OperationCanceledException>(() =>
            OdeSolver.Solve((t, y, dy) => dy[0] = Math.Cos(t), new[] { 0.0 }, 0, 10, cancellationToken: cts.Token));
    }
}

/// <summary>IProgress that reports on the calling thread (Progress&lt;T&gt; posts to the thread pool).</summary>
internal sealed class SynchronousProgress(Action<double> report) : IProgress<double>
{
    public void Report(double value) => report(value);
}
