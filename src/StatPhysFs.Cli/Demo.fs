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

    // Multi-pass SGD (issue 4): logistic regression on n = 2d samples, the DMFT of the SGF against the SGF and
    // real SGD simulated at d = 1000; the SGF-SGD gap is the one the spec predicts for nonlinear losses.
    let logistic =
        DmftCommand.runArgs
            false
            [
                "--loss"
                "logistic"
                "--teacher"
                "sign"
                "--rho"
                "4"
                "--noise-var"
                "0"
                "--ridge"
                "0.05"
                "--alpha"
                "2"
                "--tau"
                "1"
                "--t-end"
                "4"
                "--samples"
                "5000"
                "--simulate"
                "--sgd"
                "--dim"
                "1000"
                "--no-kernels"
            ]

    let lname = "multipass-logistic"

    for ext in [ ".json"; ".csv" ] do
        Output.write (Some(Path.Combine(dir, lname + ext))) logistic

    DmftCommand.plot (Path.Combine(dir, lname + ".png")) logistic
    DmftCommand.plot (Path.Combine(dir, lname + ".svg")) logistic
    written.AddRange [ Path.Combine(dir, lname + ".json"); Path.Combine(dir, lname + ".png") ]

    let last name =
        (logistic.Series |> List.find (fst >> (=) name) |> snd) |> Array.last

    printfn
        "  multi-pass logistic (alpha = 2, tau = 1), t = 4: test error DMFT %.4f, SGF sim %.4f, SGD sim %.4f; q %.4f / %.4f / %.4f"
        (last "test_error")
        (last "test_error_sim")
        (last "test_error_sgd")
        (last "q")
        (last "q_sim")
        (last "q_sgd")
    // The online limit: least squares at alpha = 2, 20, 200 (exact Volterra) against the online ODE with eta = tau
    // on the clock t' = t/tau (spec section 4.3).
    let tau = 0.5
    let grid = Array.init 41 (fun k -> 0.1 * float k)

    let volterra alpha =
        let c =
            Dmft.LeastSquaresSgf.continuous
                (Dmft.MarchenkoPastur.ofAlpha alpha)
                0.01
                400
                { Dmft.LeastSquaresSgf.defaults with
                    Alpha = alpha
                    Tau = tau
                }

        Array.init 41 (fun k -> c.E[10 * k])

    let online =
        grid
        |> Array.map (fun t ->
            let s =
                OnlineLinear.closedForm
                    { OnlineLinear.defaults with
                        Rho = 1.0
                        NoiseVar = Dmft.LeastSquaresSgf.defaults.NoiseVar
                        Lr = tau
                        Ridge = 0.0
                        Batch = 1
                        M0 = 0.0
                        Q0 = 0.0
                    }
                    (t / tau)

            2.0 * s.Eg)

    let onlineDoc =
        {
            Parameters =
                [
                    "model", Str "least-squares SGF"
                    "tau", Num tau
                    "noise_var", Num 0.25
                    "rho", Num 1.0
                ]
            T = grid
            Series =
                [ for a in [ 2.0; 20.0; 200.0 ] -> sprintf "e_alpha%g" a, volterra a ]
                @ [ "e_online", online ]
            Kernels = []
            Meta =
                [
                    "e_definition", Str "|theta - theta*|^2/d (test MSE - sigma^2)"
                    "online_clock", Str "online ODE at eta = tau, time t' = t/tau"
                ]
        }

    let oname = "multipass-online-limit"
    Output.write (Some(Path.Combine(dir, oname + ".json"))) onlineDoc
    Output.write (Some(Path.Combine(dir, oname + ".csv"))) onlineDoc

    for ext in [ ".png"; ".svg" ] do
        Plot.save
            (Path.Combine(dir, oname + ext))
            "least squares: alpha -> infinity is online SGD"
            "SGF time t"
            "e = |theta - theta*|^2 / d"
            false
            [
                for name, y in onlineDoc.Series ->
                    Plot.line
                        (if name = "e_online" then
                             "online ODE (eta = tau)"
                         else
                             name.Replace("e_alpha", "alpha = "))
                        grid
                        y
            ]

    written.AddRange [ Path.Combine(dir, oname + ".json"); Path.Combine(dir, oname + ".png") ]

    printfn
        "  online limit at t = 4: e(alpha = 2, 20, 200) = %.4f, %.4f, %.4f; online ODE %.4f"
        (onlineDoc.Series[0] |> snd |> Array.last)
        (onlineDoc.Series[1] |> snd |> Array.last)
        (onlineDoc.Series[2] |> snd |> Array.last)
        (Array.last online)

    // SDE models of SGD (issue 5): the weak error against eta on exact least-squares oracles.
    let weak = SdeCommand.runWeakOrderArgs []
    let wname = "sde-weak-order"

    for ext in [ ".json"; ".csv" ] do
        Output.write (Some(Path.Combine(dir, wname + ext))) weak

    for ext in [ ".png"; ".svg" ] do
        SdeCommand.plotWeakOrder (Path.Combine(dir, wname + ext)) weak

    written.AddRange [ Path.Combine(dir, wname + ".json"); Path.Combine(dir, wname + ".png") ]

    let slopes =
        match weak.Meta |> List.tryFind (fst >> (=) "slopes") with
        | Some(_, Obj kv) ->
            kv
            |> List.map (fun (k, v) ->
                match v with
                | Num x -> sprintf "%s %.2f" k x
                | _ -> k)
            |> String.concat ", "
        | _ -> ""

    printfn "  SDE weak-order slopes (exact least-squares oracles): %s" slopes

    printfn "wrote %d files to %s in %.1f s:" (written.Count * 2) (Path.GetFullPath dir) sw.Elapsed.TotalSeconds

    for f in written do
        printfn "  %s" (Path.GetFullPath f)

    0
