/// Checks shared by the model families' tests, written against the common solution shape (`ISolution`).
module StatPhysFs.Tests.SolutionChecks

open System
open Expecto
open StatPhysFs

let private observable (label: string) (name: string) (s: ISolution) =
    match s.Observables |> List.tryFind (fun o -> o.Name = name) with
    | Some o -> o
    | None -> failtestf "%s: the solution has no observable %s" label name

/// The ODE on a grid against a simulation on the same grid: for every named observable and every time, the
/// simulation's mean must lie within z standard errors plus `slack` (a function of the ODE's value: the finite-d
/// bias allowance) of the ODE's value. Fails when the grids differ, the simulation carries no standard errors,
/// or the ODE did not reach a time.
let odeAgainstSimulation
    (label: string)
    (z: float)
    (slack: float -> float)
    (names: string list)
    (ode: ISolution)
    (sim: ISolution)
    =
    Expect.equal sim.Times ode.Times (sprintf "%s: the ODE and the simulation share the time grid" label)

    for name in names do
        let o = observable label name ode
        let s = observable label name sim

        let se =
            match s.StdErr with
            | Some e -> e
            | None -> failtestf "%s: the simulation's %s carries no standard errors" label name

        for j in 0 .. ode.Times.Length - 1 do
            let theory = o.Values[j]

            if not (Double.IsFinite theory) then
                failtestf "%s: the ODE's %s is not finite at t = %g (status %s)" label name ode.Times[j] (RunStatus.describe ode.Status)

            if not (abs (s.Values[j] - theory) <= z * se[j] + slack theory) then
                failtestf
                    "%s t=%g: simulation %s = %.5g +- %.2g vs ODE %.5g"
                    label
                    ode.Times[j]
                    name
                    s.Values[j]
                    se[j]
                    theory
