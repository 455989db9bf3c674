using System;
using System.Linq;
using Xunit;

namespace StatPhysFs.CSharp.Tests;

public class CommitteeTests
{
    private static CommitteeOverlaps SpecInit() => new(
        new[,] { { 0.2, 1e-4 }, { 1e-4, 0.3 } }, new[,] { { 1e-4, 2e-4 }, { 3e-4, 1e-4 } }, new[] { 1.0, 1.0 });

    [Fact]
    public void PlateauThenSpecialisation()
    {
        var model = new TeacherStudentCommittee { K = 2, M = 2, LearningRate = 0.5 };
        var curve = model.Integrate(SpecInit(), tEnd: 600, points: 61);
        Assert.Equal(SolveStatus.Completed, curve.Status);
        // Plateau near the symmetric fixed point (eg* ~ 0.0116 as eta -> 0, slightly higher at eta = 0.5) ...
        Assert.InRange(curve.Eg[10], 0.0115, 0.0160);
        // ... then escape to the perfect solution, a permutation of the teacher.
        Assert.True(curve.Eg[^1] < 1e-6, $"final eg {curve.Eg[^1]}");
        var r = curve.States[^1]!.R;
        Assert.True(Math.Abs(Math.Abs(r[0, 0] - r[0, 1]) - 1.0) < 1e-2, "one teacher unit per student unit");
    }

    [Fact]
    public void EtaMaxOfTheSingleUnitIsPiSqrtFiveThirds()
    {
        var perfect = new CommitteeOverlaps(new[,] { { 1.0 } }, new[,] { { 1.0 } }, new[] { 1.0 });
        double Growth(double eta) => new TeacherStudentCommittee { K = 1, M = 1, LearningRate = eta }.GrowthRate(perfect);
        Assert.True(Growth(0.99 * Math.PI * Math.Sqrt(5.0 / 3.0)) < 0);
        Assert.True(Growth(1.01 * Math.PI * Math.Sqrt(5.0 / 3.0)) > 0);
    }

    [Fact]
    public void NewtonFindsThePlateau()
    {
        var model = new TeacherStudentCommittee { K = 2, M = 2, LearningRate = 0.01 };
        double q = 1.0 / 3, r = 1 / Math.Sqrt(6);
        var fp = model.FixedPoint(new CommitteeOverlaps(new[,] { { q, q }, { q, q } }, new[,] { { r, r }, { r, r } }, new[] { 1.0, 1.0 }));
        Assert.NotNull(fp);
        Assert.Equal(2 / Math.PI * (Math.PI / 6 - 2 * Math.Asin(0.25)), model.GeneralisationError(fp!), tolerance: 2e-4);
    }

    [Fact]
    public void SimulationTracksTheOdeOnTheWayIn()
    {
        var model = new TeacherStudentCommittee { K = 2, M = 2, LearningRate = 0.5 };
        var init = SpecInit();
        var times = new[] { 0.0, 2.0, 8.0 };
        var sim = model.Simulate(init, times, dimension: 600, seeds: 4, seed: 3);
        var ode = model.Integrate(init, 8.0, 5);
        Assert.Equal(ode.Eg[0], sim.Eg[0], 12);
        Assert.InRange(sim.Eg[2], ode.Eg[4] - 4.5 * sim.EgStdErr[2] - 1e-3, ode.Eg[4] + 4.5 * sim.EgStdErr[2] + 1e-3);
    }

    [Fact]
    public void InvalidInitialOverlapsAreRejected()
    {
        var bad = new CommitteeOverlaps(new[,] { { 0.1, 0 }, { 0, 0.1 } }, new[,] { { 1.0, 0 }, { 0, 1.0 } }, new[] { 1.0, 1.0 });
        var ex = Assert.ThrowsAny<ArgumentException>(() => new TeacherStudentCommittee().Integrate(bad, 1, 2));
        Assert.Contains("positive semi-definite", ex.Message);
    }
}

public class CommitteeAnalysisTests
{
    [Fact]
    public void PlateauAndThresholdsFromCSharp()
    {
        var model = new TeacherStudentCommittee { K = 2, M = 2, LearningRate = 0.5 };
        var plateau = model.Plateau();
        Assert.NotNull(plateau);
        Assert.True(plateau!.EscapeRate > 0, "the plateau is a saddle");
        Assert.Null(new TeacherStudentCommittee { K = 3, M = 3, LearningRate = 1.5 }.Plateau());
        Assert.Equal(Math.PI * Math.Sqrt(5.0 / 3.0), new TeacherStudentCommittee { K = 1, M = 1 }.MaxLearningRate(), 6);
        var (eta, rate) = model.OptimalLearningRate();
        Assert.InRange(eta, 0.1, model.MaxLearningRate());
        Assert.True(rate > 0);
    }
}

public class PlateauLengthTests
{
    /// <summary>The student vectors of the plateau state split along the teacher difference B1 - B2 by +-a: the exact
    /// overlaps of real vectors (so PSD), with R's asymmetry 2a.</summary>
    private static CommitteeOverlaps Split(CommitteeOverlaps s, double a)
    {
        var q = (double[,])s.Q.Clone();
        var r = (double[,])s.R.Clone();
        // w1 + a u, w2 - a u with u = B1 - B2 (T = I, so u.B1 = 1, u.B2 = -1, |u|^2 = 2).
        double u1 = s.R[0, 0] - s.R[0, 1], u2 = s.R[1, 0] - s.R[1, 1];
        q[0, 0] += 2 * a * u1 + 2 * a * a;
        q[1, 1] += -2 * a * u2 + 2 * a * a;
        q[0, 1] += a * u2 - a * u1 - 2 * a * a;
        q[1, 0] = q[0, 1];
        r[0, 0] += a; r[0, 1] -= a; r[1, 0] -= a; r[1, 1] += a;
        return new CommitteeOverlaps(q, r, s.V);
    }

    private static double EscapeTime(TeacherStudentCommittee model, CommitteeOverlaps start, double plateauEg)
    {
        var curve = model.Integrate(start, tEnd: 2000, points: 20001, relativeTolerance: 1e-10);
        for (var k = 0; k < curve.Times.Count; k++)
            if (curve.Eg[k] < 0.5 * plateauEg) return curve.Times[k];
        throw new Xunit.Sdk.XunitException("no escape from the plateau by t = 2000");
    }

    /// <summary>Oracle: the integrated ODE. Started on the plateau with two asymmetries a1 > a2, the measured escape
    /// times differ by ln(a1/a2)/omega_esc, the difference of the predicted lengths (the time to leave the plateau's
    /// neighbourhood cancels).</summary>
    [Fact]
    public void PredictedPlateauLengthsDifferAsTheIntegratedOdesEscapes()
    {
        var model = new TeacherStudentCommittee { K = 2, M = 2, LearningRate = 0.5 };
        var plateau = model.Plateau()!;
        double a1 = 1e-5, a2 = 1e-7;
        var measured = EscapeTime(model, Split(plateau.State, a2), plateau.Eg) - EscapeTime(model, Split(plateau.State, a1), plateau.Eg);
        var predicted = plateau.Length(a2) - plateau.Length(a1);
        Assert.InRange(measured / predicted, 0.97, 1.03);
    }
}

public class MixedActivationTests
{
    [Fact]
    public void TeacherActivationMayDifferFromTheStudents()
    {
        var init = new CommitteeOverlaps(new[,] { { 0.5, 0.1 }, { 0.1, 0.4 } }, new[,] { { 0.3, 0.05 }, { 0.02, 0.2 } }, new[] { 1.0, 1.0 });
        var same = new TeacherStudentCommittee { K = 2, M = 2, TeacherActivation = ActivationFunction.Erf };
        var linear = new TeacherStudentCommittee { K = 2, M = 2, TeacherActivation = ActivationFunction.Linear };
        // Same activation named twice is the closed-form model; a linear teacher changes the error.
        Assert.Equal(new TeacherStudentCommittee { K = 2, M = 2 }.GeneralisationError(init), same.GeneralisationError(init), 14);
        Assert.NotEqual(same.GeneralisationError(init), linear.GeneralisationError(init), 3);
        Assert.Equal(SolveStatus.Completed, linear.Integrate(init, 5, 3).Status);
    }
}
