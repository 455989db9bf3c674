using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.FSharp.Core;
using StatPhysFs.Models;
using StatPhysFs.Simulation;
using FsCommittee = StatPhysFs.Models.Committee;
using FsAnalysis = StatPhysFs.Models.Analysis;
using FsOde = StatPhysFs.Ode.Ode;

namespace StatPhysFs.CSharp;

/// <summary>Overlaps of a committee: Q (K x K, student-student), R (K x M, student-teacher), V (K, second layer).</summary>
public sealed record CommitteeOverlaps(double[,] Q, double[,] R, double[] V)
{
    internal CommitteeState ToFs() => new(Q, R, V);

    /// <summary>Q must be K x K, R K x M and V of length K, all finite.</summary>
    internal static void Check(CommitteeOverlaps? s, int k, int m, string name)
    {
        Guard.NotNull(s, name);
        Guard.Matrix(s!.Q, k, k, name + ".Q");
        Guard.Matrix(s.R, k, m, name + ".R");
        Guard.Vector(s.V, k, name + ".V");
    }
    internal static CommitteeOverlaps Of(CommitteeState s) => new(s.Q, s.R, s.V);
}

/// <summary>A committee learning curve from the ODE: the generalisation error and the overlaps at each time.</summary>
public sealed record CommitteeCurve(IReadOnlyList<double> Times, IReadOnlyList<double> Eg, IReadOnlyList<CommitteeOverlaps?> States,
    SolveStatus Status, double? DivergenceTime, int Steps, int Evaluations);

/// <summary>Simulated committee learning curve: eg mean and standard error over seeds, and divergences.</summary>
public sealed record CommitteeSimulation(IReadOnlyList<double> Times, IReadOnlyList<double> Eg, IReadOnlyList<double> EgStdErr,
    IReadOnlyList<(int Run, double Time)> Divergences);

/// <summary>Online SGD on a two-layer teacher-student network (K student, M teacher units) in the proportional
/// limit, in the Goldt et al. / nn2pp convention: first-layer step eta/sqrt d, second layer etaV/d, per-step weight
/// decay kappa/d, time t = steps/d. Set parameters with an object initialiser.</summary>
public sealed class TeacherStudentCommittee
{
    /// <summary>Student hidden units.</summary>
    public int K { get; init; } = 2;
    /// <summary>Teacher hidden units.</summary>
    public int M { get; init; } = 2;
    /// <summary>Activation of the student (and of the teacher unless <see cref="TeacherActivation"/> is set).</summary>
    public Activation Activation { get; init; } = Activation.Erf;
    /// <summary>The teacher's activation when it differs from the student's; null for the same.</summary>
    public Activation? TeacherActivation { get; init; }
    /// <summary>First-layer learning rate eta.</summary>
    public double LearningRate { get; init; } = 0.5;
    /// <summary>Second-layer learning rate; null keeps the second layer fixed.</summary>
    public double? SecondLayerLearningRate { get; init; }
    /// <summary>Label-noise variance.</summary>
    public double NoiseVariance { get; init; }
    /// <summary>Per-step weight decay kappa (kappa = eta * lambda for a loss-term ridge lambda).</summary>
    public double WeightDecay { get; init; }
    /// <summary>Mini-batch size.</summary>
    public int BatchSize { get; init; } = 1;
    /// <summary>Heavy-ball momentum beta in [0, 1) (the ODE uses eta/(1-beta)).</summary>
    public double Momentum { get; init; }
    /// <summary>Teacher overlaps T (M x M); null for the identity.</summary>
    public double[,]? TeacherOverlaps { get; init; }
    /// <summary>Teacher second layer (M); null for ones.</summary>
    public double[]? TeacherSecondLayer { get; init; }
    /// <summary>Fixed student pre-activation biases b (K); null for none.</summary>
    public double[]? StudentBias { get; init; }
    /// <summary>Fixed teacher pre-activation biases b* (M); null for none.</summary>
    public double[]? TeacherBias { get; init; }

    internal CommitteeParams ToParams()
    {
        if (K < 1 || K > 1000) throw new ArgumentOutOfRangeException(nameof(K), K, "K must lie in [1, 1000].");
        if (M < 1 || M > 1000) throw new ArgumentOutOfRangeException(nameof(M), M, "M must lie in [1, 1000].");
        Guard.NotNull(Activation, nameof(Activation));
        Guard.Finite(LearningRate, nameof(LearningRate));
        if (SecondLayerLearningRate is double lr2) Guard.Finite(lr2, nameof(SecondLayerLearningRate));
        Guard.Finite(NoiseVariance, nameof(NoiseVariance));
        Guard.Finite(WeightDecay, nameof(WeightDecay));
        Guard.Finite(Momentum, nameof(Momentum));
        if (TeacherOverlaps is not null) Guard.Matrix(TeacherOverlaps, M, M, nameof(TeacherOverlaps));
        if (TeacherSecondLayer is not null) Guard.Vector(TeacherSecondLayer, M, nameof(TeacherSecondLayer));
        if (StudentBias is not null && StudentBias.Length > 0) Guard.Vector(StudentBias, K, nameof(StudentBias));
        if (TeacherBias is not null && TeacherBias.Length > 0) Guard.Vector(TeacherBias, M, nameof(TeacherBias));
        var b = FsCommittee.Create(K, M);
        var p = new CommitteeParams(K, M, Activation.Value, LearningRate,
            SecondLayerLearningRate is double v ? FSharpOption<double>.Some(v) : FSharpOption<double>.None,
            NoiseVariance, WeightDecay, BatchSize, Momentum, TeacherOverlaps ?? b.T, TeacherSecondLayer ?? b.VTeacher,
            StudentBias ?? Array.Empty<double>(), TeacherBias ?? Array.Empty<double>(),
            TeacherActivation is null ? FSharpOption<StatPhysFs.Gaussian.Activation>.None : FSharpOption<StatPhysFs.Gaussian.Activation>.Some(TeacherActivation.Value));
        // Every method validates the whole parameter set, so no result is computed from an invalid model.
        FsCommittee.Validate(p);
        return p;
    }

    /// <summary>The generalisation error eg = (1/2) E[(yhat - y_clean)^2] at the given overlaps.</summary>
    public double GeneralisationError(CommitteeOverlaps state)
    {
        CommitteeOverlaps.Check(state, K, M, nameof(state));
        return FsCommittee.GeneralisationError(ToParams(), state.ToFs());
    }

    /// <summary>Integrate the order-parameter ODE (adaptive Dormand-Prince) on a time grid. An optional schedule
    /// eta(t) replaces the constant learning rate.</summary>
    public CommitteeCurve Integrate(CommitteeOverlaps initial, double tEnd, int points, GridSpacing spacing = GridSpacing.Linear,
        double relativeTolerance = 1e-8, Func<double, double>? schedule = null, IProgress<double>? progress = null,
        CancellationToken cancellationToken = default)
    {
        CommitteeOverlaps.Check(initial, K, M, nameof(initial));
        Guard.Positive(tEnd, nameof(tEnd));
        Guard.Defined(spacing, nameof(spacing));
        if (!(relativeTolerance >= 1e-14 && relativeTolerance <= 1e-2))
            throw new ArgumentOutOfRangeException(nameof(relativeTolerance), relativeTolerance, "relativeTolerance must lie in [1e-14, 1e-2].");
        var p = ToParams();
        var grid = TimeGrid.Create(tEnd, points, spacing);
        var problem = FsCommittee.Problem(p, initial.ToFs(), tEnd);
        if (schedule is not null)
        {
            var sched = FSharpOption<FSharpFunc<double, double>>.Some(FuncConvert.FromFunc(schedule));
            problem = new StatPhysFs.Ode.OdeProblem(FsCommittee.RhsWithSchedule(p, sched, initial.V), problem.Y0, problem.T0, problem.TEnd, problem.Names);
        }
        var settings = new OdeSettings { RelativeTolerance = relativeTolerance, AbsoluteTolerance = relativeTolerance * 1e-2, SaveAt = grid, DivergenceBound = 1e8 };
        var r = Guard.Run(() => new OdeResult(FsOde.Solve(OdeSolver.ToOptions(settings, progress, cancellationToken), OdeSolver.ToAlgorithm(settings), problem)), cancellationToken);
        var states = grid.Select((t, k) => k < r.Times.Count && r.Times[k] == t ? CommitteeOverlaps.Of(FsCommittee.Unpack(p, initial.V, r.States[k])) : null).ToArray();
        var eg = states.Select(s => s is null ? double.NaN : FsCommittee.GeneralisationError(p, s.ToFs())).ToArray();
        return new CommitteeCurve(grid, eg, states, r.Status, r.Status == SolveStatus.Diverged ? r.StatusTime : null, r.Steps, r.Evaluations);
    }

    /// <summary>Simulate online SGD at dimension d from the exact initial overlaps, averaged over seeds in parallel; an
    /// optional schedule eta(t) (t = steps/d) replaces the constant first-layer learning rate, as in <see cref="Integrate"/>.</summary>
    public CommitteeSimulation Simulate(CommitteeOverlaps initial, double[] times, int dimension, int seeds, int seed = 1,
        IProgress<double>? progress = null, CancellationToken cancellationToken = default, Func<double, double>? schedule = null)
    {
        CommitteeOverlaps.Check(initial, K, M, nameof(initial));
        ArgumentNullException.ThrowIfNull(times);
        Guard.AllFinite(times, nameof(times));
        var o = new SimulationOptions(dimension, seeds, seed, 1e8, Environment.ProcessorCount);
        var sched = schedule is null ? FSharpOption<FSharpFunc<double, double>>.None : FSharpOption<FSharpFunc<double, double>>.Some(FuncConvert.FromFunc(schedule));
        var p = ToParams();
        var r = Guard.Run(() => OnlineCommitteeSim.RunWithSchedule(o, FuncConvert.FromAction<double>(f => progress?.Report(f)), cancellationToken, p, sched, initial.ToFs(), times), cancellationToken);
        return new CommitteeSimulation(r.T, r.Eg.Mean, r.Eg.StdErr, r.Divergences.Select(d => (d.Item1, d.Item2)).ToArray());
    }

    /// <summary>A fixed point of the ODE near <paramref name="guess"/> (damped Newton), or null if none is found.
    /// The second layer of the guess is kept when it is not trained.</summary>
    public CommitteeOverlaps? FixedPoint(CommitteeOverlaps guess, double tolerance = 1e-12)
    {
        CommitteeOverlaps.Check(guess, K, M, nameof(guess));
        Guard.Positive(tolerance, nameof(tolerance));
        var p = ToParams();
        var y = FsAnalysis.FixedPoint(tolerance, FsCommittee.Rhs(p, guess.V), FsCommittee.Pack(p, guess.ToFs()));
        return FSharpOption<double[]>.get_IsSome(y) ? CommitteeOverlaps.Of(FsCommittee.Unpack(p, guess.V, y.Value)) : null;
    }

    /// <summary>Largest real part of the Jacobian's eigenvalues at a state: negative means locally stable.</summary>
    public double GrowthRate(CommitteeOverlaps state)
    {
        CommitteeOverlaps.Check(state, K, M, nameof(state));
        var p = ToParams();
        return FsAnalysis.GrowthRate(FsCommittee.Rhs(p, state.V), FsCommittee.Pack(p, state.ToFs()));
    }
}

/// <summary>The unspecialised plateau: the symmetric fixed point, its error and the escape rate omega_esc.</summary>
public sealed record PlateauInfo(CommitteeOverlaps State, double Eg, double EscapeRate)
{
    /// <summary>Predicted plateau length ln(1/s0)/omega_esc for an initial asymmetry s0.</summary>
    public double Length(double asymmetry) => asymmetry > 0 && asymmetry <= 1
        ? Math.Log(1 / asymmetry) / EscapeRate
        : throw new ArgumentOutOfRangeException(nameof(asymmetry), asymmetry, "asymmetry must lie in (0, 1].");
}

/// <summary>Analyses of the realisable committee (K = M, T = I, v = vT = 1 fixed).</summary>
public static class CommitteeAnalysisExtensions
{
    /// <summary>The plateau at the model's learning rate, or null where no physical symmetric fixed point exists.</summary>
    public static PlateauInfo? Plateau(this TeacherStudentCommittee model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var r = StatPhysFs.Models.CommitteeAnalysis.Plateau(model.ToParams());
        return FSharpOption<Plateau>.get_IsSome(r) ? new PlateauInfo(CommitteeOverlaps.Of(r.Value.State), r.Value.Eg, r.Value.EscapeRate) : null;
    }

    /// <summary>eta_max: where the perfect solution loses stability (Jacobian eigenvalue crossing zero).</summary>
    public static double MaxLearningRate(this TeacherStudentCommittee model) =>
        StatPhysFs.Models.CommitteeAnalysis.MaxLearningRate(Guard.NotNull(model, nameof(model)).ToParams());

    /// <summary>eta_opt and the slowest decay rate it achieves at the perfect solution.</summary>
    public static (double LearningRate, double Rate) OptimalLearningRate(this TeacherStudentCommittee model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var (eta, rate) = StatPhysFs.Models.CommitteeAnalysis.OptimalLearningRate(model.ToParams()).ToValueTuple();
        return (eta, rate);
    }
}
