using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Threading;
using Microsoft.FSharp.Collections;
using Microsoft.FSharp.Core;
using StatPhysFs.Sweep;
using FsSweep = StatPhysFs.Sweep.Sweep;
using FsSpec = StatPhysFs.Sweep.Spec;

namespace StatPhysFs.CSharp;

/// <summary>How a sweep point ended.</summary>
public enum SweepPointStatus
{
    /// <summary>The run reached its end.</summary>
    Completed,
    /// <summary>The run diverged (a result, with its divergence time).</summary>
    Diverged,
    /// <summary>The run failed (bad parameter combination, exception); the message says why.</summary>
    Failed,
}

/// <summary>One point of a sweep: its stable index and key, and its full parameter set (fixed flags then axis
/// values). A value is a <see cref="double"/>, a <see cref="string"/> or a <see cref="bool"/> (a switch).</summary>
public sealed record SweepPoint(int Index, string Key, IReadOnlyDictionary<string, object> Parameters)
{
    /// <summary>A numeric parameter, or <paramref name="fallback"/> when absent.</summary>
    public double Number(string name, double fallback = double.NaN) =>
        Parameters.TryGetValue(name, out var v) ? v switch
        {
            double d => d,
            _ => throw new ArgumentException($"sweep parameter '{name}' is not a number: {v}", name),
        } : fallback;
}

/// <summary>What an evaluator returns for a point: a status and named numbers.</summary>
public sealed record SweepPointResult(SweepPointStatus Status, IReadOnlyDictionary<string, double> Values,
    double? DivergenceTime = null, string? Message = null)
{
    /// <summary>A completed point with these values.</summary>
    public static SweepPointResult Completed(IReadOnlyDictionary<string, double> values) => new(SweepPointStatus.Completed, values);

    /// <summary>A failed point with its reason.</summary>
    public static SweepPointResult Failed(string message) =>
        new(SweepPointStatus.Failed, new Dictionary<string, double>(), null, message);
}

/// <summary>One row of a merged sweep: the axis values and the point's result.</summary>
public sealed record SweepRow(int Index, IReadOnlyDictionary<string, object> Coordinates, SweepPointStatus Status,
    double? DivergenceTime, string? Message, IReadOnlyDictionary<string, double> Values, double WallTimeSeconds);

/// <summary>Counts of a sweep run (this shard): computed now, already stored (skipped), failed now; and whether it
/// was cancelled before the end (a rerun resumes).</summary>
public sealed record SweepSummary(int Computed, int Skipped, int Failed, bool Cancelled);

/// <summary>Sweeps over a grid of parameters, in-process and in parallel, stored point by point in a folder so a
/// rerun resumes (the format of <c>statphys sweep</c>: see its spec file). Spec errors throw
/// <see cref="ArgumentException"/> whose message names the field.</summary>
public static class Sweeps
{
    private static SweepSpec ParseSpec(string specJson)
    {
        ArgumentNullException.ThrowIfNull(specJson);
        try { return FsSpec.parse(specJson); }
        catch (SpecError e) { throw new ArgumentException(e.Data0, "specJson"); }
    }

    private static object Box(ParamValue v) => v switch
    {
        ParamValue.Number n => n.Item,
        ParamValue.Text t => t.Item,
        ParamValue.Switch s => s.Item,
        _ => throw new InvalidOperationException("unknown parameter value"),
    };

    private static IReadOnlyDictionary<string, object> Dict(FSharpList<Tuple<string, ParamValue>> kvs) =>
        kvs.ToDictionary(kv => kv.Item1, kv => Box(kv.Item2));

    private static SweepPointStatus Of(PointStatus s) =>
        s.IsCompleted ? SweepPointStatus.Completed : s.IsDiverged ? SweepPointStatus.Diverged : SweepPointStatus.Failed;

    private static PointStatus To(SweepPointStatus s) => s switch
    {
        SweepPointStatus.Completed => PointStatus.Completed,
        SweepPointStatus.Diverged => PointStatus.Diverged,
        _ => PointStatus.Failed,
    };

    /// <summary>The points of a spec, in index order.</summary>
    public static IReadOnlyList<SweepPoint> Points(string specJson) =>
        FsSpec.points(ParseSpec(specJson)).Select(p => new SweepPoint(p.Index, p.Key, Dict(p.Parameters))).ToArray();

    /// <summary>Run the points of shard <paramref name="shard"/> ("I/N", default all) not yet stored in
    /// <paramref name="directory"/>, <paramref name="parallelism"/> at a time (0: one per core). An exception from
    /// <paramref name="evaluate"/> marks that point failed; the sweep goes on. Cancellation stops starting points
    /// and keeps the finished ones. The results do not depend on the parallelism.</summary>
    public static SweepSummary Run(string specJson, string directory, Func<SweepPoint, SweepPointResult> evaluate,
        int parallelism = 0, string? shard = null, bool force = false, IProgress<(int Done, int Total)>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(directory);
        ArgumentNullException.ThrowIfNull(evaluate);
        var spec = ParseSpec(specJson);
        if (parallelism < 0) throw new ArgumentOutOfRangeException(nameof(parallelism), "parallelism must be >= 0 (0: one per core).");
        try
        {
            var options = new RunOptions(parallelism == 0 ? Environment.ProcessorCount : parallelism,
                shard is null ? StatPhysFs.Sweep.Shard.All : StatPhysFs.Sweep.Shard.Parse("shard", shard), force);
            var report = FuncConvert.FromAction<RunProgress>(p => progress?.Report((p.Done, p.Total)));
            var eval = FuncConvert.FromFunc<Point, PointResult>(p =>
            {
                var r = evaluate(new SweepPoint(p.Index, p.Key, Dict(p.Parameters)));
                return new PointResult(To(r.Status),
                    r.DivergenceTime is double t ? FSharpOption<double>.Some(t) : FSharpOption<double>.None,
                    r.Message is null ? FSharpOption<string>.None : FSharpOption<string>.Some(r.Message),
                    FsList(r.Values.Select(kv => Tuple.Create(kv.Key, kv.Value))));
            });
            var s = FsSweep.run(directory, spec, options, report, cancellationToken, eval);
            return new SweepSummary(s.Computed, s.Skipped, s.Failed, s.Cancelled);
        }
        catch (SpecError e) { throw new ArgumentException(e.Data0); }
    }

    /// <summary>An F# list of the items, in order.</summary>
    private static FSharpList<T> FsList<T>(IEnumerable<T> items) =>
        items.Reverse().Aggregate(FSharpList<T>.Empty, (tail, head) => FSharpList<T>.Cons(head, tail));

    /// <summary>Every point of the sweep in <paramref name="directory"/>, in index order. Throws
    /// <see cref="InvalidOperationException"/> listing the missing indices when the sweep is incomplete.</summary>
    public static IReadOnlyList<SweepRow> Merge(string directory) =>
        MergeTable(directory).Rows.Select(r => new SweepRow(r.Index, Dict(r.Coordinates), Of(r.Result.Status),
            FSharpOption<double>.get_IsSome(r.Result.DivergenceTime) ? r.Result.DivergenceTime.Value : null,
            FSharpOption<string>.get_IsSome(r.Result.Message) ? r.Result.Message.Value : null,
            r.Result.Values.ToDictionary(kv => kv.Item1, kv => kv.Item2), r.WallTimeSeconds)).ToArray();

    /// <summary>The merged table as CSV (the format of <c>statphys sweep merge</c>, readable by
    /// <c>statphys sweep plot</c>).</summary>
    public static string MergeToCsv(string directory, bool withWallTime = true) => FsSweep.toCsv(withWallTime, MergeTable(directory));

    private static Table MergeTable(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        FSharpResult<Table, FSharpList<int>> r;
        try { r = FsSweep.merge(directory); }
        catch (SpecError e) { throw new ArgumentException(e.Data0, nameof(directory)); }
        if (r.IsError) throw new InvalidOperationException(
            $"sweep in {directory} is missing {r.ErrorValue.Length} points: indices {string.Join(", ", r.ErrorValue)}");
        return r.ResultValue;
    }

    /// <summary>An evaluator over the library's online linear regression ODE: parameters named as on the
    /// command line (rho, noise-var, lr, ridge, batch, m0, q0, t-end; defaults as <c>statphys online linear</c>);
    /// values m, q, eg at t-end (NaN after a divergence).</summary>
    public static Func<SweepPoint, SweepPointResult> OnlineLinear(int points = 101) => p =>
    {
        var model = new OnlineLinearRegression
        {
            Rho = p.Number("rho", 1.0), NoiseVariance = p.Number("noise-var", 0.1), LearningRate = p.Number("lr", 0.5),
            Ridge = p.Number("ridge", 0.0), BatchSize = (int)p.Number("batch", 1), M0 = p.Number("m0", 0.0), Q0 = p.Number("q0", 0.1),
        };
        var curve = model.Integrate(p.Number("t-end", 10.0), points);
        var values = new Dictionary<string, double> { ["m"] = curve.M[^1], ["q"] = curve.Q[^1], ["eg"] = curve.Eg[^1] };
        return curve.Status == SolveStatus.Diverged
            ? new SweepPointResult(SweepPointStatus.Diverged, values, curve.DivergenceTime)
            : SweepPointResult.Completed(values);
    };
}
