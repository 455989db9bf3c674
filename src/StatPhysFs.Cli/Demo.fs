/// `statphys demo`: the showcase. Theory against simulation, written as data and figures into one folder.
module StatPhysFs.Cli.Demo

open System
open System.Diagnostics
open System.IO
open StatPhysFs
open StatPhysFs.Ode
open StatPhysFs.Models
open StatPhysFs.Simulation
open StatPhysFs.Cli.Output

let private fst3 (a, _, _) = a

let usage =
    "usage: statphys demo [--out DIR] [--progress]   (default DIR: ./statphys-demo)"

let main (argv: string list) =
    let a = Args.parse [ "out" ] [ "progress" ] argv
    let dir = Args.string a "out" "statphys-demo"
    Directory.CreateDirectory dir |> ignore
    let force = a.Flags.Contains "progress"
    let sw = Stopwatch.StartNew()
    let written = Collections.Generic.List<string>()

    let save name (doc: Document) =
        let json = Path.Combine(dir, name + ".json")
        Output.write (Some json) doc
        Output.write (Some(Path.Combine(dir, name + ".csv"))) doc
        let png = Path.Combine(dir, name + ".png")
        OnlineLinearCommand.plot png doc
        OnlineLinearCommand.plot (Path.Combine(dir, name + ".svg")) doc
        written.AddRange [ json; png ]

    let sim =
        Some
            { SimulationOptions.defaults with
                Dim = 1000
                Seeds = 10
                Seed = 2026
            }

    let baseP =
        { OnlineLinear.defaults with
            NoiseVar = 0.1
            Ridge = 0.0
            Q0 = 0.1
        }

    let settings lr tEnd : OnlineLinearCommand.Settings =
        {
            Params = { baseP with Lr = lr }
            TEnd = tEnd
            Points = 41
            Grid = LinearGrid
            Algorithm = Ode.dopri5 1e-10 1e-12
            Simulation = sim
            DivergenceBound = 1e8
            ForceProgress = force
        }

    let crit = OnlineLinear.criticalLearningRate baseP

    printfn
        "statphys demo: online SGD on linear regression, critical learning rate %.6g (%s)"
        crit.Value
        crit.Convention
    // Below the threshold: the learning curve relaxes to the noise floor eta sigma^2 / (2 (2 - eta)).
    let stable = OnlineLinearCommand.run (settings 0.5 10.0)
    save "online-linear-below-critical" stable
    // Above it: q grows like e^{(eta^2 - 2 eta) t} and crosses the bound 1e8 near t = 27; theory and simulation
    // both report the divergence time.
    let unstable = OnlineLinearCommand.run (settings (1.15 * crit.Value) 40.0)
    save "online-linear-above-critical" unstable

    let report (d: Document) =
        let meta k =
            d.Meta |> List.tryFind (fst >> (=) k) |> Option.map snd

        match meta "status", meta "divergence_time" with
        | Some(Str "diverged"), Some(Num t) -> sprintf "theory diverged at t = %.4g" t
        | Some(Str s), _ -> sprintf "theory %s" s
        | _ -> ""

    printfn
        "  lr = 0.5:   %s; steady-state eg = %.6g"
        (report stable)
        (OnlineLinear.steadyState { baseP with Lr = 0.5 }).Value.Eg

    let simDiv =
        match unstable.Meta |> List.tryFind (fst >> (=) "simulation") with
        | Some(_, Obj kv) ->
            match kv |> List.tryFind (fst >> (=) "divergences") with
            | Some(_, Arr ds) -> sprintf "; %d of 10 simulated runs diverged" ds.Length
            | _ -> ""
        | _ -> ""

    printfn "  lr = %.3g: %s%s" (1.15 * crit.Value) (report unstable) simDiv
    // Committee machine K = M = 2 (erf): the unspecialised plateau and its escape, theory against simulation.
    // Finite-d fluctuations seed the asymmetry that ends the plateau, so the simulation escapes earlier than the
    // d -> infinity ODE started from a 1e-4 asymmetry (plateau length ~ ln(1/s0)/omega_esc, spec section 5.2).
    let committee =
        CommitteeCommand.run
            { (fst3 (
                  CommitteeCommand.parse
                      [
                          "--K"
                          "2"
                          "--M"
                          "2"
                          "--lr"
                          "0.5"
                          "--t-end"
                          "300"
                          "--points"
                          "31"
                          "--grid"
                          "log"
                      ]
              )) with
                Simulation =
                    Some
                        { SimulationOptions.defaults with
                            Dim = 1000
                            Seeds = 4
                            Seed = 2026
                        }
                ForceProgress = force
            }

    let cname = "online-committee-plateau"
    Output.write (Some(Path.Combine(dir, cname + ".json"))) committee
    Output.write (Some(Path.Combine(dir, cname + ".csv"))) committee
    CommitteeCommand.plot (Path.Combine(dir, cname + ".png")) committee
    CommitteeCommand.plot (Path.Combine(dir, cname + ".svg")) committee
    written.AddRange [ Path.Combine(dir, cname + ".json"); Path.Combine(dir, cname + ".png") ]
    let eg = committee.Series |> List.find (fst >> (=) "eg") |> snd
    let j = committee.T |> Array.findIndex (fun t -> t >= 30.0)

    printfn
        "  committee K = M = 2, lr = 0.5: plateau eg = %.4g (t = %.3g), final eg = %.3g (t = 300)"
        eg[j]
        committee.T[j]
        eg[eg.Length - 1]

    printfn "wrote %d files to %s in %.1f s:" (written.Count * 2) (Path.GetFullPath dir) sw.Elapsed.TotalSeconds

    for f in written do
        printfn "  %s" (Path.GetFullPath f)

    0
