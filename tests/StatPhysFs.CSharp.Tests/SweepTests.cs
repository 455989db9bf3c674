using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using Xunit;

namespace StatPhysFs.CSharp.Tests;

public class SweepTests
{
    private const string Spec = """
        {"command": "online linear", "fixed": {"noise-var": 0.1, "t-end": 8},
         "axes": {"lr": {"from": 0.25, "to": 3, "points": 6, "spacing": "log"}, "ridge": [0, 0.5]}}
        """;

    private static string NewDir() => Path.Combine(Path.GetTempPath(), "statphys-cs-sweep-" + Guid.NewGuid().ToString("N"));

    [Fact]
    public void OnlineLinearSweepMatchesTheClosedFormAndDivergesAboveTheCriticalRate()
    {
        var dir = NewDir();
        try
        {
            var s = Sweeps.Run(Spec, dir, Sweeps.OnlineLinear(), parallelism: 2);
            Assert.Equal((12, 0, 0, false), (s.Computed, s.Skipped, s.Failed, s.Cancelled));
            var rows = Sweeps.Merge(dir);
            Assert.Equal(Enumerable.Range(0, 12), rows.Select(r => r.Index));
            foreach (var r in rows)
            {
                double lr = (double)r.Coordinates["lr"], ridge = (double)r.Coordinates["ridge"];
                var model = new OnlineLinearRegression { NoiseVariance = 0.1, LearningRate = lr, Ridge = ridge };
                if (r.Status == SweepPointStatus.Diverged)
                {
                    // Only above the critical rate 2B(1 + ridge).
                    Assert.True(lr > model.CriticalLearningRate.Value, $"lr {lr} ridge {ridge}");
                    continue;
                }
                var exact = model.ClosedForm(8.0);
                Assert.Equal(exact.M, r.Values["m"], tolerance: 1e-8 * Math.Max(1, Math.Abs(exact.M)));
                Assert.Equal(exact.Q, r.Values["q"], tolerance: 1e-8 * Math.Max(1, Math.Abs(exact.Q)));
            }
            Assert.Contains(rows, r => r.Status == SweepPointStatus.Diverged);
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }

    [Fact]
    public void CancelledSweepResumesToTheUninterruptedTable()
    {
        string whole = NewDir(), cut = NewDir();
        try
        {
            // A Func evaluator: any C# code.
            Func<SweepPoint, SweepPointResult> f = p => SweepPointResult.Completed(new Dictionary<string, double>
                { ["f"] = Math.Sin(p.Number("lr")) * Math.Exp(-p.Number("ridge")) });
            Sweeps.Run(Spec, whole, f, parallelism: 1);
            using var cts = new CancellationTokenSource();
            var progress = new SyncProgress(d => { if (d.Done >= 5) cts.Cancel(); });
            var first = Sweeps.Run(Spec, cut, f, parallelism: 1, progress: progress, cancellationToken: cts.Token);
            Assert.True(first.Cancelled);
            Assert.Throws<InvalidOperationException>(() => Sweeps.Merge(cut));
            var second = Sweeps.Run(Spec, cut, f, parallelism: 2);
            Assert.Equal(first.Computed, second.Skipped);
            Assert.Equal(12, second.Skipped + second.Computed);
            Assert.Equal(Sweeps.MergeToCsv(whole, withWallTime: false), Sweeps.MergeToCsv(cut, withWallTime: false));
        }
        finally
        {
            foreach (var d in new[] { whole, cut }) if (Directory.Exists(d)) Directory.Delete(d, true);
        }
    }

    [Fact]
    public void BadSpecsNameTheField()
    {
        var e = Assert.Throws<ArgumentException>(() => Sweeps.Points("""{"command": "c", "axes": {"lr": []}}"""));
        Assert.StartsWith("axes.lr: empty axis", e.Message);
        var dir = NewDir();
        var s = Assert.Throws<ArgumentException>(() => Sweeps.Run(Spec, dir, Sweeps.OnlineLinear(), shard: "3/3"));
        Assert.StartsWith("shard:", s.Message);
        Assert.False(Directory.Exists(dir));
    }

    /// <summary>Progress reported on the calling thread (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class SyncProgress(Action<(int Done, int Total)> f) : IProgress<(int Done, int Total)>
    {
        public void Report((int Done, int Total) value) => f(value);
    }
}
