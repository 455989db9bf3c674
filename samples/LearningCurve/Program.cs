// The learning curve of online SGD on linear regression, from the StatPhysFs.CSharp package: the order-parameter
// ODE, its closed form and a finite-d simulation with standard errors. Exits 1 if the ODE and the closed form
// disagree or the simulation is off the theory by more than 5 standard errors plus the O(1/d) bias.
using StatPhysFs.CSharp;

var model = new OnlineLinearRegression { LearningRate = 0.5, NoiseVariance = 0.1, Q0 = 0.1 };
var ode = model.Integrate(tEnd: 10.0, points: 11);
var times = ode.Times.ToArray();
var sim = model.Simulate(times, dimension: 500, seeds: 8, seed: 1);

Console.WriteLine($"online SGD, linear regression: eta = {model.LearningRate}, sigma^2 = {model.NoiseVariance}, " +
                  $"critical eta = {model.CriticalLearningRate.Value} ({model.CriticalLearningRate.Convention})");
Console.WriteLine("     t   eg (ODE)    eg (closed form)   eg (simulation, d = 500, 8 seeds)");
var ok = true;
for (var k = 0; k < times.Length; k++)
{
    var exact = model.ClosedForm(times[k]).Eg;
    Console.WriteLine($"{times[k],6:F1}   {ode.Eg[k]:F6}    {exact:F6}           {sim.Eg[k]:F6} +- {sim.EgStdErr[k]:F6}");
    ok &= Math.Abs(ode.Eg[k] - exact) < 1e-8;
    ok &= Math.Abs(sim.Eg[k] - exact) < 5 * sim.EgStdErr[k] + 0.01 * (exact + model.NoiseVariance);
}
var steady = model.SteadyState();
Console.WriteLine($"steady state: eg = {steady?.Eg:F6}");
Console.WriteLine(ok ? "learning curve: ODE, closed form and simulation agree" : "learning curve: MISMATCH");
return ok ? 0 : 1;
