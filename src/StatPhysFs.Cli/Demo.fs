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

let main (ctx: Validate.Context) (argv: string list) =
    let a = Args.parse Options.demo argv
    let dir = Args.string a "out"
    Directory.CreateDirectory dir |> ignore
    let force = a.Flags.Contains "progress"
    let sw = Stopwatch.StartNew()
    let written = Collections.Generic.List<string>()

    // Every file goes through these two, so the count printed at the end is the files actually written.
    let writeDoc name (doc: Document) =
        for ext in [ ".json"; ".csv" ] do
            let f = Path.Combine(dir, name + ext)
            Output.write (Some f) doc
            written.Add f

    let drawFigure name (draw: string -> unit) =
        for ext in [ ".png"; ".svg" ] do
            let f = Path.Combine(dir, name + ext)
            draw f
            written.Add f

    // The learning curve of online linear regression: the theory on a dense grid (401 points) as the line, the
    // simulation's points from the document.
    let save name (doc: Document) (dense: Document) =
        writeDoc name doc

        drawFigure name (fun f ->
            Plot.learningCurveOf
                f
                "Online SGD on linear regression"
                (Plot.caption
                    doc
                    [
                        "lr", "lr"
                        "rho", "rho"
                        "noise_var", "sigma^2"
                        "ridge", "ridge"
                        "q0", "q0"
                    ])
                dense
                doc)

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

    printfn $"statphys demo: online SGD on linear regression, critical learning rate %.6g{crit.Value} (%s{crit.Convention})"
    // Below the threshold: the learning curve relaxes to the noise floor eta sigma^2 / (2 (2 - eta)).
    let theoryOnly (st: OnlineLinearCommand.Settings) =
        OnlineLinearCommand.run ctx
            { st with
                Points = 401
                Simulation = None
            }

    let stable = OnlineLinearCommand.run ctx (settings 0.5 10.0)
    save "online-linear-below-critical" stable (theoryOnly (settings 0.5 10.0))
    // Above it: q grows like e^{(eta^2 - 2 eta) t} and crosses the bound 1e8 near t = 27; theory and simulation
    // both report the divergence time.
    let unstable = OnlineLinearCommand.run ctx (settings (1.15 * crit.Value) 40.0)
    save "online-linear-above-critical" unstable (theoryOnly (settings (1.15 * crit.Value) 40.0))

    let report (d: Document) =
        let meta k =
            d.Meta |> List.tryFind (fst >> (=) k) |> Option.map snd

        match meta "status", meta "divergence_time" with
        | Some(Str "diverged"), Some(Num t) -> $"theory diverged at t = %.4g{t}"
        | Some(Str s), _ -> $"theory %s{s}"
        | _ -> ""

    printfn $"  lr = 0.5:   %s{(report stable)}; steady-state eg = %.6g{(OnlineLinear.steadyState { baseP with Lr = 0.5 }).Value.Eg}"

    let simDiv =
        match unstable.Meta |> List.tryFind (fst >> (=) "simulation") with
        | Some(_, Obj kv) ->
            match kv |> List.tryFind (fst >> (=) "divergences") with
            | Some(_, Arr ds) -> $"; %d{ds.Length} of 10 simulated runs diverged"
            | _ -> ""
        | _ -> ""

    printfn $"  lr = %.3g{(1.15 * crit.Value)}: %s{(report unstable)}%s{simDiv}"
    // Committee machine K = M = 2 (erf), lr = 0.5: the unspecialised plateau and its escape. The escape is driven by
    // the asymmetry between the students' teacher overlaps, which grows like e^{omega_esc t} (spec section 5.2). (1) The
    // ODE and the simulation start from the same overlaps with an asymmetry R11 - R12 = 0.1, well above the finite-d
    // fluctuations 1/sqrt(d) = 0.03 at d = 1000: they agree through plateau and escape (the d = 4000 test of
    // CommitteeTests does the same with error bars). (2) From an asymmetry of 0.001, the simulation's fluctuations
    // seed the escape earlier than the ODE's small initial asymmetry at small d; its escape time grows towards the
    // ODE's as d grows. (A simulation costs ~ d^2 t: d = 50, 200, 800 keep the demo near a minute.)
    let committeeModel = { Committee.create 2 2 with Lr = 0.5 }

    let committeeSettings (asymmetry: float) (tEnd: float) (points: int) (sim: SimulationOptions option) : CommitteeCommand.Settings =
        {
            Params = committeeModel
            Init =
                {
                    Q = array2D [ [ 0.2; 0.0 ]; [ 0.0; 0.2 ] ]
                    R =
                        array2D
                            [
                                [ 0.1 + asymmetry / 2.0; 0.1 - asymmetry / 2.0 ]
                                [ 0.1 - asymmetry / 2.0; 0.1 + asymmetry / 2.0 ]
                            ]
                    V = [| 1.0; 1.0 |]
                }
            Schedule = LearningRateSchedule.Constant
            ScheduleName = LearningRateSchedule.describe LearningRateSchedule.Constant
            TEnd = tEnd
            Points = points
            Grid = LinearGrid
            // The command's default tolerance (online committee --rtol): Dormand-Prince 5(4) at 1e-9, atol 1e-14.
            RelTol = 1e-9
            Simulation = sim
            Normalised = false
            ForceProgress = force
            Analysis = false
        }

    let simAt dim seeds =
        Some
            { SimulationOptions.defaults with
                Dim = dim
                Seeds = seeds
                Seed = 2026
            }

    let seriesOf (d: Document) name =
        d.Series |> List.find (fst >> (=) name) |> snd

    // The unspecialised plateau's eg from the library (the symmetric fixed point), not from a document's metadata.
    let plateauEg =
        match CommitteeAnalysis.plateau committeeModel with
        | Some pl -> pl.Eg
        | None -> failwith "demo: the K = M = 2 erf committee has no unspecialised plateau"

    // Escape time: the first time eg(t) falls below half its plateau value (log-linear interpolation on the grid).
    let escapeTime (t: float[]) (eg: float[]) (threshold: float) =
        let j = t |> Array.findIndex (fun x -> x >= 20.0)

        match [ j .. t.Length - 1 ] |> List.tryFind (fun i -> eg[i] < threshold) with
        | Some i when i > j ->
            let a, b = log eg[i - 1], log eg[i]
            t[i - 1] + (t[i] - t[i - 1]) * (a - log threshold) / (a - b)
        | _ -> nan

    let committeeCaption = "erf, lr = 0.5, Q(0) = 0.2 I"

    // (1) The same overlaps, asymmetry 0.1, d = 1000.
    let committee = CommitteeCommand.run ctx (committeeSettings 0.1 120.0 61 (simAt 1000 4))
    let committeeDense = CommitteeCommand.run ctx (committeeSettings 0.1 120.0 601 None)
    let cname = "online-committee-plateau"
    writeDoc cname committee

    drawFigure cname (fun f ->
        Plot.learningCurveOf
            f
            "Online SGD, committee K = M = 2: plateau and escape from the same initial overlaps"
            (committeeCaption
             + ", R(0) = [[0.15, 0.05], [0.05, 0.15]]: asymmetry 0.1 >> 1/sqrt(d) = 0.03")
            committeeDense
            committee)

    let eg = seriesOf committee "eg"
    let egSim = seriesOf committee "eg_sim"
    let threshold = plateauEg / 2.0
    let j = committee.T |> Array.findIndex (fun t -> t >= 30.0)

    printfn $"""  committee K = M = 2, lr = 0.5, asymmetry 0.1: plateau eg = %.4g{eg[j]} (t = %.3g{committee.T[j]}), escape (eg < plateau/2) at t = %.1f{(escapeTime committeeDense.T (seriesOf committeeDense "eg") threshold)} (ODE) and %.1f{(escapeTime committee.T egSim threshold)} (simulation, d = 1000); final eg = %.3g{eg[eg.Length - 1]} (t = 120)"""

    // (2) Asymmetry 0.001: escape time against d.
    let small = 0.001
    let scanDense = CommitteeCommand.run ctx (committeeSettings small 300.0 1201 None)
    let odeEscape = escapeTime scanDense.T (seriesOf scanDense "eg") threshold

    let scan =
        [
            for dim, seeds in [ 50, 6; 200, 6; 800, 4 ] ->
                // The command's document (ODE on the grid + simulation), built here to keep each run's eg(t) for
                // per-run escape times and their standard error.
                let st = committeeSettings small 300.0 151 None
                let ode = CommitteeCommand.run ctx st
                let o = (simAt dim seeds).Value
                let bar = Progress.create ($"simulating d=%d{dim}, %d{seeds} seeds") force
                let sw = Stopwatch.StartNew()

                let runs =
                    OnlineCommitteeSim.run o bar.Report Threading.CancellationToken.None st.Params st.Init ode.T

                bar.Done()

                let doc =
                    { ode with
                        Series = ode.Series @ [ "eg_sim", runs.Eg.Mean; "eg_sim_stderr", runs.Eg.StdErr ]
                        Meta = ode.Meta @ Output.simulation o runs.Divergences sw.Elapsed.TotalSeconds
                    }

                let times = runs.EgPerRun |> Array.map (fun e -> escapeTime doc.T e threshold)
                let e = Stats.estimate times
                dim, doc, e.Mean, e.StdErr
        ]

    for dim, doc, _, _ in scan do
        writeDoc ($"online-committee-escape-d%d{dim}") doc

    drawFigure "online-committee-escape-vs-d" (fun f ->
        Plot.render
            f
            {
                Title = "Committee K = M = 2: the simulation's escape from the plateau approaches the ODE's as d grows"
                Caption =
                    committeeCaption
                    + $", R(0) = 0.1 +- %g{small}/2 (asymmetry %g{small}); simulations d = 50, 200 (6 seeds), 800 (4 seeds)"
                XLabel = "t = steps / d"
                YLabel = "generalisation error eg"
                XScale = Plot.Linear
                YScale = Plot.Log
                Curves =
                    [
                        yield Plot.line "theory (ODE, d -> infinity)" scanDense.T (seriesOf scanDense "eg")
                        for dim, doc, _, _ in scan ->
                            Plot.points
                                ($"simulation d = %d{dim} (mean +- s.e.)")
                                doc.T
                                (seriesOf doc "eg_sim")
                                (seriesOf doc "eg_sim_stderr")
                    ]
            })

    printfn $"""  committee from asymmetry %g{small}: escape time ODE %.1f{odeEscape}; simulation %s{(scan |> List.map (fun (dim, _, m, se) -> $"d = %d{dim}: %.1f{m} +- %.1f{se}") |> String.concat ", ")}"""

    printfn
        "    (at small d the simulation escapes earlier: its finite-d fluctuations, of order 1/sqrt(d), break the students' symmetry sooner than the small initial asymmetry of the ODE, which describes d -> infinity)"

    // Multi-pass SGD (issue 4): logistic regression on n = 2d samples, the DMFT of the SGF against the SGF and
    // real SGD simulated at d = 1000; the SGF-SGD gap is the one the spec predicts for nonlinear losses.
    let logistic =
        DmftCommand.runArgs
            ctx
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
                "--mc-samples"
                "5000"
                "--simulate"
                "--sgd"
                "--dim"
                "1000"
                "--no-kernels"
            ]

    let lname = "multipass-logistic"
    writeDoc lname logistic
    drawFigure lname (fun f -> DmftCommand.plot f logistic)

    let last name =
        (logistic.Series |> List.find (fst >> (=) name) |> snd) |> Array.last

    printfn $"""  multi-pass logistic (alpha = 2, tau = 1), t = 4: test error DMFT %.4f{(last "test_error")}, SGF sim %.4f{(last "test_error_sim")}, SGD sim %.4f{(last "test_error_sgd")}; q %.4f{(last "q")} / %.4f{(last "q_sim")} / %.4f{(last "q_sgd")}"""
    // The online limit: least squares at alpha = 2, 20, 200 (exact Volterra) against the online ODE with eta = tau
    // on the clock t' = t/tau (spec section 4.3).
    let tau = 0.5
    let grid = Array.init 41 (fun k -> 0.1 * float k)

    // The Volterra solution on its own step 0.01 (401 points): the figure draws all of them, the documents keep the
    // 41-point grid.
    let volterraFull alpha =
        (Dmft.LeastSquaresSgf.solve
            { Dmft.LeastSquaresSettings.defaults with
                Scheme = Dmft.Continuous
            }
            { Dmft.LeastSquaresProblem.defaults with
                Alpha = alpha
                Tau = tau
                Dt = 0.01
                Steps = 400
            })
            .E

    let volterras = [ for a in [ 2.0; 20.0; 200.0 ] -> a, volterraFull a ]

    let volterra alpha =
        let e = volterras |> List.find (fst >> (=) alpha) |> snd in Array.init 41 (fun k -> e[10 * k])

    let onlineAt (t: float) =
        let s =
            OnlineLinear.closedForm
                { OnlineLinear.defaults with
                    Rho = 1.0
                    NoiseVar = Dmft.LeastSquaresProblem.defaults.NoiseVar
                    Lr = tau
                    Ridge = 0.0
                    Batch = 1
                    M0 = 0.0
                    Q0 = 0.0
                }
                (t / tau)

        2.0 * s.Eg

    let online = grid |> Array.map onlineAt
    let fine = Array.init 401 (fun k -> 0.01 * float k)

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
                [ for a in [ 2.0; 20.0; 200.0 ] -> $"e_alpha%g{a}", volterra a ]
                @ [ "e_online", online ]
            Kernels = []
            Meta =
                [
                    "e_definition", Str "|theta - theta*|^2/d (test MSE - sigma^2)"
                    "online_clock", Str "online ODE at eta = tau, time t' = t/tau"
                ]
        }

    let oname = "multipass-online-limit"
    writeDoc oname onlineDoc

    drawFigure oname (fun f ->
        Plot.render
            f
            {
                Title = "Least squares: multi-pass SGD tends to online SGD as alpha = n/d -> infinity"
                Caption =
                    "tau = 0.5, sigma^2 = 0.25, rho = 1, theta(0) = 0; Volterra equation (step 0.01); online ODE at eta = tau, clock t/tau"
                XLabel = "SGF time t"
                YLabel = "e = |theta - theta*|^2 / d"
                XScale = Plot.Linear
                YScale = Plot.Auto
                Curves =
                    [
                        yield Plot.wide "online ODE (eta = tau), the limit" fine (fine |> Array.map onlineAt)
                        for a, e in volterras -> Plot.line ($"Volterra, alpha = %g{a}") fine e
                    ]
            })

    printfn $"  online limit at t = 4: e(alpha = 2, 20, 200) = %.4f{(onlineDoc.Series[0] |> snd |> Array.last)}, %.4f{(onlineDoc.Series[1] |> snd |> Array.last)}, %.4f{(onlineDoc.Series[2] |> snd |> Array.last)}; online ODE %.4f{(Array.last online)}"

    // SDE models of SGD (issue 5): the weak error against eta on exact least-squares oracles.
    let weak = SdeCommand.runWeakOrderArgs ctx []
    let wname = "sde-weak-order"

    writeDoc wname weak
    drawFigure wname (fun f -> SdeCommand.plotWeakOrder f weak)

    let slopes =
        match weak.Meta |> List.tryFind (fst >> (=) "slopes") with
        | Some(_, Obj kv) ->
            kv
            |> List.map (fun (k, v) ->
                match v with
                | Num x -> $"%s{k} %.2f{x}"
                | _ -> k)
            |> String.concat ", "
        | _ -> ""

    printfn $"  SDE weak-order slopes (exact least-squares oracles): %s{slopes}"

    printfn $"wrote %d{written.Count} files to %s{(Path.GetFullPath dir)} in %.1f{sw.Elapsed.TotalSeconds} s:"

    for f in written do
        printfn $"  %s{(Path.GetFullPath f)}"

    0
