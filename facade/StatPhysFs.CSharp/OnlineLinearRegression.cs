using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.FSharp.Core;
using StatPhysFs.Models;
using StatPhysFs.Simulation;
using FsLinear = StatPhysFs.Models.OnlineLinear;

namespace StatPhysFs.CSharp;

/// <summary>Spacing of an output time grid.</summary>
public enum GridSpacing
{
    /// <summary>Equally spaced.</summary>
    Linear,
    /// <summary>Zero, then log-spaced from tEnd/1000 to tEnd.</summary>
    Log,
}

/// <summary>Time grids.</summary>
public static class TimeGrid
{
    /// <summary><paramref name="points"/> times from 0 to <paramref name="tEnd"/>.</summary>
    public static double[] Create(double tEnd, int points, GridSpacing spacing = GridSpacing.Linear)
    {
        Guard.Positive(tEnd, nameof(tEnd));
        Guard.Defined(spacing, nameof(spacing));
        if (points < 2 || points > 100_000_000) throw new ArgumentOutOfRangeException(nameof(points), points, "points must lie in [2, 1e8].");
        return spacing == GridSpacing.Log ? StatPhysFs.Grid.Log(0.0, tEnd, points) : StatPhysFs.Grid.Linear(0.0, tEnd, points);
    }
}

/// <summary>Order parameters of linear regression at one time: teacher overlap m, self-overlap q and the
/// generalisation error eg = (rho - 2m + q)/2 (label noise excluded).</summary>
public readonly record struct LinearOverlaps(double M, double Q, double Eg);

/// <summary>A stability threshold and the convention it refers to.</summary>
public sealed record LearningRateThreshold(double Value, string Convention);

/// <summary>A learning curve from the ODE.</summary>
public sealed record LinearCurve(IReadOnlyList<double> Times, IReadOnlyList<double> M, IReadOnlyList<double> Q,
    IReadOnlyList<double> Eg, SolveStatus Status, double? DivergenceTime);

/// <summary>A learning curve from finite-d simulation: means and standard errors over seeds
/// (NaN from the first time any run diverged).</summary>
public sealed record LinearSimulation(IReadOnlyList<double> Times,
    IReadOnlyList<double> M, IReadOnlyList<double> MStdErr, IReadOnlyList<double> Q, IReadOnlyList<double> QStdErr,
    IReadOnlyList<double> Eg, IReadOnlyList<double> EgStdErr, IReadOnlyList<(int Run, double Time)> Divergences);

/// <summary>Online SGD on linear regression in the proportional limit (time t = steps/d): teacher
/// y = w*.x/sqrt d + noise, fresh Gaussian inputs, mini-batch B, loss-term ridge lambda.
/// Set the parameters with an object initialiser; every method validates them and throws
/// <see cref="ArgumentOutOfRangeException"/> naming the parameter and its valid range.</summary>
public sealed class OnlineLinearRegression
{
    /// <summary>Teacher norm rho = |w*|^2/d (&gt; 0).</summary>
    public double Rho { get; init; } = 1.0;
    /// <summary>Label-noise variance sigma^2 (&gt;= 0).</summary>
    public double NoiseVariance { get; init; } = 0.1;
    /// <summary>Learning rate eta (&gt; 0).</summary>
    public double LearningRate { get; init; } = 0.5;
    /// <summary>Ridge lambda of the loss term (lambda/2)|w|^2/d (&gt;= 0).</summary>
    public double Ridge { get; init; }
    /// <summary>Mini-batch size B (&gt;= 1).</summary>
    public int BatchSize { get; init; } = 1;
    /// <summary>Initial teacher overlap m(0).</summary>
    public double M0 { get; init; }
    /// <summary>Initial self-overlap q(0) (&gt;= m0^2/rho).</summary>
    public double Q0 { get; init; } = 0.1;

    internal OnlineLinearParams ToParams()
    {
        Guard.Finite(Rho, nameof(Rho));
        Guard.Finite(NoiseVariance, nameof(NoiseVariance));
        Guard.Finite(LearningRate, nameof(LearningRate));
        Guard.Finite(Ridge, nameof(Ridge));
        Guard.Finite(M0, nameof(M0));
        Guard.Finite(Q0, nameof(Q0));
        return new(Rho, NoiseVariance, LearningRate, Ridge, BatchSize, M0, Q0);
    }

    private static LinearOverlaps Of(StatPhysFs.Models.LinearState s) => new(s.M, s.Q, s.Eg);

    /// <summary>The exact solution at time t.</summary>
    public LinearOverlaps ClosedForm(double t)
    {
        Guard.Finite(t, nameof(t));
        return Of(FsLinear.ClosedForm(ToParams(), t));
    }

    /// <summary>The steady state, or null at or above the critical learning rate.</summary>
    public LinearOverlaps? SteadyState()
    {
        var s = FsLinear.SteadyState(ToParams());
        return FSharpOption<StatPhysFs.Models.LinearState>.get_IsSome(s) ? Of(s.Value) : null;
    }

    /// <summary>The critical learning rate of this model, computed from its coefficient matrix:
    /// 2B(1+lambda) in the loss-term ridge convention.</summary>
    public LearningRateThreshold CriticalLearningRate
    {
        get { var t = FsLinear.CriticalLearningRate(ToParams()); return new(t.Value, t.Convention); }
    }

    /// <summary>The other convention, 2/c_x for inputs of variance c_x: not this model's threshold.</summary>
    public static LearningRateThreshold CriticalLearningRateInputVariance(double inputVariance)
    {
        var t = FsLinear.CriticalLearningRateInputVariance(inputVariance);
        return new(t.Value, t.Convention);
    }

    /// <summary>Integrate the order-parameter ODE on a time grid.</summary>
    public LinearCurve Integrate(double tEnd, int points, GridSpacing spacing = GridSpacing.Linear, OdeSettings? settings = null,
        CancellationToken cancellationToken = default)
    {
        Guard.Positive(tEnd, nameof(tEnd));
        Guard.Defined(spacing, nameof(spacing));
        var p = ToParams();
        var grid = TimeGrid.Create(tEnd, points, spacing);
        settings = (settings ?? new OdeSettings { RelativeTolerance = 1e-10, AbsoluteTolerance = 1e-12 });
        OdeSolver.Check(settings, nameof(settings));
        settings = new OdeSettings
        {
            Method = settings.Method, RelativeTolerance = settings.RelativeTolerance, AbsoluteTolerance = settings.AbsoluteTolerance,
            Step = settings.Step, SaveAt = grid, DivergenceBound = settings.DivergenceBound, MaxSteps = settings.MaxSteps, Events = settings.Events,
        };
        var d = FsLinear.DefaultSettings;
        var control = new StatPhysFs.RunControl(cancellationToken, FSharpOption<FSharpFunc<double, Unit>>.None, d.Control.MaxMemoryBytes, d.Control.MaxSeconds);
        var fs = new OnlineLinearSettings(OdeSolver.ToAlgorithm(settings), d.Points, d.Grid, grid, settings.DivergenceBound, settings.MaxSteps, false,
            OdeSolver.ToOptions(settings, null, cancellationToken).Events, control);
        var r = Guard.Run(() => FsLinear.Solve(fs, FsLinear.Problem(p, tEnd)), cancellationToken);
        var (status, time) = StatusConversion.WithDivergenceTime(r.Status);
        return new LinearCurve(r.T, r.M, r.Q, r.Eg, status, time);
    }

    /// <summary>Simulate online SGD at dimension d, averaged over seeds (in parallel; the numbers do not depend on
    /// the thread count). Progress is the fraction of SGD steps done; cancellation throws
    /// <see cref="OperationCanceledException"/>.</summary>
    public LinearSimulation Simulate(double[] times, int dimension, int seeds, int seed = 1, double divergenceBound = 1e8,
        IProgress<double>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(times);
        Guard.AllFinite(times, nameof(times));
        Guard.Positive(divergenceBound, nameof(divergenceBound));
        var o = new SimulationOptions(dimension, seeds, seed, divergenceBound, Environment.ProcessorCount);
        var report = FuncConvert.FromAction<double>(f => progress?.Report(f));
        var p = ToParams();
        var d = FsLinear.DefaultSettings;
        var control = new StatPhysFs.RunControl(cancellationToken, FSharpOption<FSharpFunc<double, Unit>>.Some(report), d.Control.MaxMemoryBytes, d.Control.MaxSeconds);
        var fs = new OnlineLinearSettings(d.Algorithm, d.Points, d.Grid, times, d.DivergenceBound, d.MaxSteps, false, d.Events, control);
        if (times.Length == 0) throw new ArgumentException("times must hold at least one time.", nameof(times));
        // The problem's horizon is not used when the output times are given.
        var r = Guard.Run(() => OnlineLinearSim.Simulate(o, fs, FsLinear.Problem(p, times[^1] > 0 ? times[^1] : 1.0)), cancellationToken);
        var e = r.Errors.Value;
        return new LinearSimulation(r.T, r.M, e.M, r.Q, e.Q, r.Eg, e.Eg,
            e.Divergences.Select(d => (d.Item1, d.Item2)).ToArray());
    }
}
