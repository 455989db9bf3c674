// Run from the repository root after ./build.sh build:
//   DOTNET_TieredCompilation=0 dotnet fsi --optimize+ bench/StatPhysFs.Micro/scripts/sim-vs-ode.fsx
#r "../../../src/StatPhysFs/bin/Release/net10.0/StatPhysFs.dll"

open System
open StatPhysFs
open StatPhysFs.Models
open StatPhysFs.Simulation
open StatPhysFs.Ode
// The case of the test "K = M = 2 erf: simulation (d = 1000) against the ODE into the plateau", repeated over base
// seeds 1..20 (6 runs each): z = (sim eg - ODE eg) / stderr at t = 10, 20, 30, 40.
let p = Committee.create 2 2

let s0 =
    {
        Q = array2D [ [ 0.2; 1e-4 ]; [ 1e-4; 0.3 ] ]
        R = array2D [ [ 0.1; 0.02 ]; [ 0.03; 0.1 ] ]
        V = [| 1.0; 1.0 |]
    }

let times = Grid.linear 0.0 40.0 5
let problem = Committee.problem p s0 40.0

let settings =
    { Committee.defaultSettings with
        Algorithm = Ode.dopri5 1e-9 1e-11
        SaveAt = times
        DivergenceBound = 1e10
    }

let sol = Committee.solve settings problem
let zs = ResizeArray()
let sw = Diagnostics.Stopwatch.StartNew()

for seed in 1..20 do
    let sim =
        OnlineCommitteeSim.simulate
            { SimulationOptions.defaults with
                Dim = 1000
                Seeds = 6
                Seed = seed
            }
            settings
            problem

    for j in 1 .. times.Length - 1 do
        zs.Add((sim.Eg[j] - sol.Eg[j]) / sim.Errors.Value.Eg[j])

let a = zs.ToArray()

printfn
    "eg: n = %d, mean |z| = %.3f (0.798 for unbiased Gaussian z), mean z = %.3f, max |z| = %.2f, rms z = %.3f  [%.1f s]"
    a.Length
    (Array.averageBy abs a)
    (Array.average a)
    (Array.max (Array.map abs a))
    (sqrt (Array.averageBy (fun z -> z * z) a))
    sw.Elapsed.TotalSeconds
