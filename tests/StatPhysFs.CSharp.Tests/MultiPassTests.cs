using System;
using System.Linq;
using System.Threading;
using Xunit;

namespace StatPhysFs.CSharp.Tests;

public class MultiPassTests
{
    [Fact]
    public void ExactClosureEqualsTheVolterraCurve()
    {
        // Two independent derivations (moment-closed DMFT vs Marchenko-Pastur Volterra), equal to roundoff.
        var problem = new MultiPassSgd(Loss.Square, Teacher.Linear) { Alpha = 2, Tau = 1, Steps = 40 };
        var dmft = problem.SolveDmft(method: DmftMethod.ExactClosure);
        var curve = LeastSquaresClosure.Solve(alpha: 2, tau: 1, dt: 0.1, steps: 40);
        var (e, train, status) = (curve.E, curve.TrainLoss, curve.Status);
        Assert.Equal(SolveStatus.Completed, status);
        for (var k = 0; k <= 40; k++)
        {
            Assert.True(Math.Abs(e[k] + 0.25 - dmft.TestLoss.Mean[k]) < 1e-12, $"test loss at k = {k}");
            Assert.True(Math.Abs(train[k] - dmft.TrainLoss.Mean[k]) < 1e-12, $"train loss at k = {k}");
        }
        // The response kernel is causal with R(t + dt, t) = 1.
        Assert.Equal(1.0, dmft.Response![5, 4]);
        Assert.Equal(0.0, dmft.Response[4, 5]);
    }

    [Fact]
    public void CriticalTauAndStationaryValues()
    {
        Assert.True(Math.Abs(LeastSquaresClosure.CriticalTau(alpha: 3, ridge: 0) - 2.0) < 1e-12);
        var st = LeastSquaresClosure.Stationary(alpha: 2, tau: 1, noiseVariance: 0.25);
        Assert.NotNull(st);
        Assert.True(Math.Abs(st!.Value.TrainLoss - 0.25) < 1e-12); // sigma^2 (1 - 1/alpha) / (1 - tau/2)
        Assert.Null(LeastSquaresClosure.Stationary(alpha: 2, tau: 2.5));
        var status = LeastSquaresClosure.Solve(alpha: 2, tau: 3, dt: 0.1, steps: 5000).Status;
        Assert.Equal(SolveStatus.Diverged, status);
    }

    [Fact]
    public void LogisticDmftAgreesWithTheSgfSimulation()
    {
        var problem = new MultiPassSgd(Loss.Logistic, Teacher.Sign)
        { Alpha = 2, Tau = 1, Ridge = 0.05, Rho = 4, NoiseVariance = 0, Steps = 20 };
        var theory = problem.SolveDmft(samples: 6000, replicas: 4);
        var sim = problem.Simulate(SimulatedProcess.Sgf, dimension: 1000, seeds: 4);
        Assert.NotNull(theory.TestError);
        var k = 20;
        double Gap(Series a, Series b) =>
            Math.Abs(a.Mean[k] - b.Mean[k]) / Math.Sqrt(a.StdErr[k] * a.StdErr[k] + b.StdErr[k] * b.StdErr[k]);
        // 4.5 combined standard errors plus 2% finite-d bias at d = 1000.
        Assert.True(Math.Abs(theory.M[0, 0].Mean[k] - sim.M[0, 0].Mean[k]) < 4.5 * Math.Sqrt(Math.Pow(theory.M[0, 0].StdErr[k], 2) + Math.Pow(sim.M[0, 0].StdErr[k], 2)) + 0.02 * sim.M[0, 0].Mean[k],
            $"m gap {Gap(theory.M[0, 0], sim.M[0, 0])} s.e.");
        Assert.True(Math.Abs(theory.TrainLoss.Mean[k] - sim.TrainLoss.Mean[k]) < 4.5 * Math.Sqrt(Math.Pow(theory.TrainLoss.StdErr[k], 2) + Math.Pow(sim.TrainLoss.StdErr[k], 2)) + 0.02 * sim.TrainLoss.Mean[k],
            $"train gap {Gap(theory.TrainLoss, sim.TrainLoss)} s.e.");
    }

    [Fact]
    public void CustomLossThroughFuncsEqualsTheBuiltInSquare()
    {
        var custom = Loss.Custom("half-square", (r, y) => (r - y) * (r - y), (r, y) => r - y, (r, y) => 1.0);
        var a = new MultiPassSgd(custom, Teacher.Custom("linear-again", (rs, eps) => rs + eps)) { Steps = 10 }.SolveDmft(samples: 3000, replicas: 2);
        var b = new MultiPassSgd(Loss.Square, Teacher.Linear) { Steps = 10 }.SolveDmft(samples: 3000, replicas: 2);
        // Same random streams and the same arithmetic: identical numbers.
        Assert.Equal(b.Q[0, 0].Mean.ToArray(), a.Q[0, 0].Mean.ToArray());
    }

    [Fact]
    public void TwoLayerNetworkHasKByKKernels()
    {
        var net = new MultiPassSgd(ActivationFunction.Tanh, new[] { 1.0, 0.5 }, ActivationFunction.Tanh, new[] { 1.0, 1.0 })
        { Ridge = 0.01, NoiseVariance = 0.01, InitialVariance = 0.25, TimeStep = 0.2, Steps = 5 };
        var s = net.SolveDmft(samples: 2000, replicas: 2);
        Assert.Equal(2, s.Correlation!.Width);
        Assert.Equal(s.Correlation[3, 2, 0, 1], s.Correlation[2, 3, 1, 0]);
        Assert.Equal(2, s.Q.GetLength(0));
    }

    [Fact]
    public void BadInputAndCancellation()
    {
        var ex = Assert.ThrowsAny<ArgumentException>(() => new MultiPassSgd(Loss.Square, Teacher.Linear) { Alpha = 0 }.SolveDmft());
        Assert.Contains("alpha", ex.Message);
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() =>
            new MultiPassSgd(Loss.Logistic, Teacher.Sign).SolveDmft(samples: 1000, cancellationToken: cts.Token));
    }
}
