using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.FSharp.Core;
using StatPhysFs.Models;
using StatPhysFs.Simulation;
using FsCommittee = StatPhysFs.Models.Committee;
using FsAnalysis = StatPhysFs.Models.Analysis;
using FsLayout = StatPhysFs.Models.CommitteeLayout;
using FsInitial = StatPhysFs.Models.CommitteeInitialState;

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

    /// <summary>The initial state of spec section 6.7: Q = diag(linspace(0.2, 0.3, K)) + 1e-4 off the diagonal,
    /// R = 1e-4 (1 + index mod 3), V = 1 (the CLI's --init default).</summary>
    public static CommitteeOverlaps Spec(int k, int m) => Of(Guard.Run(() => FsInitial.Spec(k, m), default));
    /// <summary>A student near the origin: Q = 1e-3 I, R = 1e-5, V = 1 (--init small).</summary>
    public static CommitteeOverlaps Small(int k, int m) => Of(Guard.Run(() => FsInitial.Small(k, m), default));
    /// <summary>Each student unit at overlap 0.9 with teacher unit k mod M, V = 1 (--init informed).</summary>
    public static CommitteeOverlaps Informed(int k, int m) => Of(Guard.Run(() => FsInitial.Informed(k, m), default));
    /// <summary>The exact overlaps of random Gaussian students in dimension <paramref name="dimension"/>, drawn with
    /// <paramref name="seed"/>, against an orthonormal teacher (--init random).</summary>
    public static CommitteeOverlaps Random(int k, int m, int dimension, int seed = 1) =>
        Of(Guard.Run(() => FsInitial.Random(k, m, dimension, seed), default));
}

/// <summary>The first-layer learning rate as a function of time t = steps/d.</summary>
public sealed class CommitteeSchedule
{
    private CommitteeSchedule(LearningRateSchedule value) { Value = value; }
    internal LearningRateSchedule Value { get; }
    /// <summary>eta(t) = the model's learning rate.</summary>
    public static CommitteeSchedule Constant { get; } = new(LearningRateSchedule.Constant);
    /// <summary>eta(t) = min(eta, c/t), the annealed eta0/t family.</summary>
    public static CommitteeSchedule Inverse(double c)
    {
        Guard.Positive(c, nameof(c));
        return new(LearningRateSchedule.NewInverse(c));
    }
    /// <summary>Any eta(t) &gt; 0, with a name for output.</summary>
    public static CommitteeSchedule Custom(string name, Func<double, double> eta)
    {
        ArgumentNullException.ThrowIfNull(eta);
        return new(LearningRateSchedule.NewCustom(name ?? "custom", FuncConvert.FromFunc(eta)));
    }
    /// <summary>The name written to output files.</summary>
    public override string ToString() => Value.Description;
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
    public ActivationFunction Activation { get; init; } = ActivationFunction.Erf;
    /// <summary>The teacher's activation when it differs from the student's; null for the same.</summary>
    public ActivationFunction? TeacherActivation { get; init; }
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
    /// <summary>The first-layer learning-rate schedule (constant by default).</summary>
    public CommitteeSchedule Schedule { get; init; } = CommitteeSchedule.Constant;

    internal CommitteeProblem ToProblem(CommitteeOverlaps initial, double tEnd, Func<double, double>? schedule)
    {
        Guard.NotNull(Schedule, nameof(Schedule));
        var sched = schedule is null ? Schedule.Value : CommitteeSchedule.Custom("custom", schedule).Value;
        return new CommitteeProblem(ToParams(), sched, initial.ToFs(), tEnd);
    }

    /// <summary>True when the plateau / eta_max / eta_opt analyses apply from this initial state: K = M, T = I,
    /// erf, fixed second layer v = vT = 1, no noise, weight decay or biases.</summary>
    public bool AnalysisApplies(CommitteeOverlaps initial)
    {
        CommitteeOverlaps.Check(initial, K, M, nameof(initial));
        return StatPhysFs.Models.CommitteeAnalysis.Applies(ToProblem(initial, 1.0, null));
    }

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
        var grid = TimeGrid.Create(tEnd, points, spacing);
        var problem = ToProblem(initial, tEnd, schedule);
        var settings = Settings(grid, relativeTolerance, progress, cancellationToken);
        var r = Guard.Run(() => FsCommittee.Solve(settings, problem), cancellationToken);
        var states = r.States.Select(st => FSharpOption<CommitteeState>.get_IsSome(st) ? CommitteeOverlaps.Of(st.Value) : null).ToArray();
        var (status, time) = StatusConversion.WithDivergenceTime(r.Status);
        return new CommitteeCurve(r.T, r.Eg, states, status, time, r.Stats.Steps, r.Stats.Evaluations);
    }

    private static CommitteeSettings Settings(double[] times, double relativeTolerance, IProgress<double>? progress, CancellationToken ct)
    {
        var d = FsCommittee.DefaultSettings;
        var report = progress is null
            ? FSharpOption<FSharpFunc<double, Unit>>.None
            : FSharpOption<FSharpFunc<double, Unit>>.Some(FuncConvert.FromAction<double>(progress.Report));
        var control = new StatPhysFs.RunControl(ct, report, d.Control.MaxMemoryBytes, d.Control.MaxSeconds);
        // Dormand-Prince with atol = rtol * 1e-2 and the bound 1e8, as this entry always integrated.
        return new CommitteeSettings(StatPhysFs.Ode.Ode.Dopri5(relativeTolerance, relativeTolerance * 1e-2), d.Points, d.Grid, times,
            1e8, d.MaxSteps, false, d.Events, d.Quadrature, control);
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
        if (times.Length == 0) throw new ArgumentException("times must hold at least one time.", nameof(times));
        // The problem's horizon is not used when the output times are given.
        var problem = ToProblem(initial, times[^1] > 0 ? times[^1] : 1.0, schedule);
        var r = Guard.Run(() => OnlineCommitteeSim.Simulate(o, Settings(times, 1e-8, progress, cancellationToken), problem), cancellationToken);
        var e = r.Errors.Value;
        return new CommitteeSimulation(r.T, r.Eg, e.Eg, e.Divergences.Select(d => (d.Item1, d.Item2)).ToArray());
    }

    /// <summary>A fixed point of the ODE near <paramref name="guess"/> (damped Newton), or null if none is found.
    /// The second layer of the guess is kept when it is not trained.</summary>
    public CommitteeOverlaps? FixedPoint(CommitteeOverlaps guess, double tolerance = 1e-12)
    {
        CommitteeOverlaps.Check(guess, K, M, nameof(guess));
        Guard.Positive(tolerance, nameof(tolerance));
        var p = ToParams();
        var y = FsAnalysis.FixedPoint(tolerance, FsCommittee.Rhs(p, guess.V), FsLayout.Pack(p, guess.ToFs()));
        return FSharpOption<double[]>.get_IsSome(y) ? CommitteeOverlaps.Of(FsLayout.Unpack(p, guess.V, y.Value)) : null;
    }

    /// <summary>Largest real part of the Jacobian's eigenvalues at a state: negative means locally stable.</summary>
    public double GrowthRate(CommitteeOverlaps state)
    {
        CommitteeOverlaps.Check(state, K, M, nameof(state));
        var p = ToParams();
        return FsAnalysis.GrowthRate(FsCommittee.Rhs(p, state.V), FsLayout.Pack(p, state.ToFs()));
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
