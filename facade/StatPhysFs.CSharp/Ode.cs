using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.FSharp.Core;
using Microsoft.FSharp.Collections;
using StatPhysFs.Ode;
using FsOde = StatPhysFs.Ode.Ode;

namespace StatPhysFs.CSharp;

/// <summary>The integration scheme.</summary>
public enum OdeMethod
{
    /// <summary>Adaptive Dormand-Prince 5(4) with error control and 4th-order dense output.</summary>
    DormandPrince5,
    /// <summary>Classical fixed-step Runge-Kutta of order 4.</summary>
    RungeKutta4,
    /// <summary>Fixed-step explicit Euler (what most peer codes use), for comparison.</summary>
    Euler,
}

/// <summary>Which zero crossings of an event observable count.</summary>
public enum CrossingDirection
{
    /// <summary>From negative to non-negative.</summary>
    Rising,
    /// <summary>From positive to non-positive.</summary>
    Falling,
    /// <summary>Either way.</summary>
    Either,
}

/// <summary>An event: the run records (and, if terminal, stops at) the times where the observable crosses zero.</summary>
public sealed record OdeEventSpec(string Name, Func<double, double[], double> Observable, CrossingDirection Direction = CrossingDirection.Either, bool Terminal = true);

/// <summary>A recorded event crossing.</summary>
public sealed record OdeEventHit(string Name, double Time, IReadOnlyList<double> State);

/// <summary>Settings of <see cref="OdeSolver.Solve"/>. Defaults: Dormand-Prince, rtol 1e-8, atol 1e-10,
/// output at every step, divergence bound 1e10.</summary>
public sealed class OdeSettings
{
    /// <summary>The scheme.</summary>
    public OdeMethod Method { get; init; } = OdeMethod.DormandPrince5;
    /// <summary>Relative tolerance (Dormand-Prince).</summary>
    public double RelativeTolerance { get; init; } = 1e-8;
    /// <summary>Absolute tolerance (Dormand-Prince).</summary>
    public double AbsoluteTolerance { get; init; } = 1e-10;
    /// <summary>Step size of the fixed-step schemes.</summary>
    public double Step { get; init; } = 0.01;
    /// <summary>Output times (strictly increasing, inside the time span); null for every accepted step.</summary>
    public double[]? SaveAt { get; init; }
    /// <summary>A state with some |y_i| above this, or a NaN, ends the run as <see cref="SolveStatus.Diverged"/>.</summary>
    public double DivergenceBound { get; init; } = 1e10;
    /// <summary>Largest number of steps.</summary>
    public int MaxSteps { get; init; } = 10_000_000;
    /// <summary>Events to detect.</summary>
    public IReadOnlyList<OdeEventSpec> Events { get; init; } = Array.Empty<OdeEventSpec>();
}

/// <summary>The result of an integration, with dense output.</summary>
public sealed class OdeResult
{
    private readonly OdeSolution _solution;

    internal OdeResult(OdeSolution s)
    {
        _solution = s;
        Times = s.T;
        States = s.Y;
        Events = s.Events.Select(h => new OdeEventHit(h.Event, h.Time, h.State)).ToArray();
        (Status, StatusTime, Message) = StatusConversion.Of(s.Status);
        Steps = s.Stats.Steps;
        RejectedSteps = s.Stats.Rejected;
        Evaluations = s.Stats.Evaluations;
    }

    /// <summary>Output times.</summary>
    public IReadOnlyList<double> Times { get; }
    /// <summary>States at the output times.</summary>
    public IReadOnlyList<double[]> States { get; }
    /// <summary>How the run ended.</summary>
    public SolveStatus Status { get; }
    /// <summary>When it diverged, stopped or was cancelled; null when it completed.</summary>
    public double? StatusTime { get; }
    /// <summary>A human-readable reason.</summary>
    public string Message { get; }
    /// <summary>Recorded event crossings.</summary>
    public IReadOnlyList<OdeEventHit> Events { get; }
    /// <summary>Accepted steps.</summary>
    public int Steps { get; }
    /// <summary>Rejected steps (adaptive scheme).</summary>
    public int RejectedSteps { get; }
    /// <summary>Right-hand side evaluations.</summary>
    public int Evaluations { get; }
    /// <summary>The state at any time in the integrated range, from the scheme's interpolant.</summary>
    public double[] Evaluate(double time) => _solution.Evaluate(time);
    /// <summary>One component along the output times.</summary>
    public double[] Component(int index) => _solution.Component(index);
}

/// <summary>Solves dy/dt = f(t, y). The right-hand side writes dy/dt into its third argument.</summary>
public static class OdeSolver
{
    /// <summary>Integrate from <paramref name="t0"/> to <paramref name="tEnd"/>. A blow-up is not an exception:
    /// it ends the run with <see cref="SolveStatus.Diverged"/> and the time it happened.</summary>
    public static OdeResult Solve(Action<double, double[], double[]> rhs, double[] y0, double t0, double tEnd,
        OdeSettings? settings = null, IProgress<double>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(rhs);
        ArgumentNullException.ThrowIfNull(y0);
        if (y0.Length == 0) throw new ArgumentException("y0 must have at least one component.", nameof(y0));
        Guard.AllFinite(y0, nameof(y0));
        Guard.Finite(t0, nameof(t0));
        Guard.Finite(tEnd, nameof(tEnd));
        settings ??= new OdeSettings();
        Check(settings, nameof(settings));
        var f = FuncConvert.FromAction<double, double[], double[]>(rhs);
        var problem = FsOde.Problem(f, y0, t0, tEnd);
        return Guard.Run(() => new OdeResult(FsOde.Solve(ToOptions(settings, progress, cancellationToken), ToAlgorithm(settings), problem)), cancellationToken);
    }

    /// <summary>Settings: a defined method, finite tolerances and step, no null event.</summary>
    internal static void Check(OdeSettings s, string name)
    {
        Guard.Defined(s.Method, name + ".Method");
        Guard.Positive(s.RelativeTolerance, name + ".RelativeTolerance");
        Guard.Positive(s.AbsoluteTolerance, name + ".AbsoluteTolerance");
        Guard.Positive(s.Step, name + ".Step");
        Guard.Positive(s.DivergenceBound, name + ".DivergenceBound");
        if (s.SaveAt is not null) Guard.AllFinite(s.SaveAt, name + ".SaveAt");
        if (s.Events is null) throw new ArgumentNullException(name + ".Events");
        foreach (var e in s.Events)
        {
            if (e is null) throw new ArgumentNullException(name + ".Events", "Events holds a null event.");
            if (e.Observable is null) throw new ArgumentNullException(name + ".Events", $"event {e.Name} has a null Observable.");
            Guard.Defined(e.Direction, name + ".Events.Direction");
        }
    }

    internal static OdeAlgorithm ToAlgorithm(OdeSettings s) => s.Method switch
    {
        OdeMethod.RungeKutta4 => OdeAlgorithm.NewRungeKutta4(s.Step),
        OdeMethod.Euler => OdeAlgorithm.NewEuler(s.Step),
        _ => OdeAlgorithm.NewDopri5(new Dopri5Options(s.RelativeTolerance, s.AbsoluteTolerance, 0.0, double.PositiveInfinity)),
    };

    internal static SolveOptions ToOptions(OdeSettings s, IProgress<double>? progress, CancellationToken ct)
    {
        var events = FSharpList<OdeEvent>.Empty;
        foreach (var ev in s.Events.Reverse().Select(e => new OdeEvent(
            e.Name,
            FuncConvert.FromFunc<double, double[], double>((t, y) => e.Observable(t, y)),
            e.Direction switch
            {
                CrossingDirection.Rising => EventDirection.Rising,
                CrossingDirection.Falling => EventDirection.Falling,
                _ => EventDirection.Either,
            },
            e.Terminal)))
            events = FSharpList<OdeEvent>.Cons(ev, events);
        var report = progress is null
            ? FSharpOption<FSharpFunc<double, Unit>>.None
            : FSharpOption<FSharpFunc<double, Unit>>.Some(FuncConvert.FromAction<double>(progress.Report));
        var d = FsOde.DefaultOptions.Control;
        return new SolveOptions(s.SaveAt ?? Array.Empty<double>(), events, s.DivergenceBound, s.MaxSteps, true,
            new StatPhysFs.RunControl(ct, report, d.MaxMemoryBytes, d.MaxSeconds));
    }
}
