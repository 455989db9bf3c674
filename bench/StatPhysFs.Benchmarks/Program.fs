/// Benchmarks and accuracy measurements, apart from the tests: `./build.sh bench`. Prints the numbers that go into
/// closing notes. Timings are medians of repeated runs after a warm-up (Stopwatch; the machine has 2 cores).
module StatPhysFs.Benchmarks.Program

open System
open System.Diagnostics
open System.Threading
open StatPhysFs
open StatPhysFs.Gaussian
open StatPhysFs.Ode
open StatPhysFs.Models
open StatPhysFs.Simulation

let time (reps: int) (f: unit -> 'a) =
    f () |> ignore

    let ts =
        Array.init reps (fun _ ->
            let sw = Stopwatch.StartNew()
            f () |> ignore
            sw.Elapsed.TotalSeconds)

    Array.sortInPlace ts
    ts[reps / 2]

let normalMoment k =
    if k % 2 = 1 then
        0.0
    else
        Seq.fold (fun s j -> s * float j) 1.0 (seq { k - 1 .. -2 .. 1 })

let randomCov (d: int) (seed: int) =
    let rng = Rng(seed, 17)
    let a = Array2D.init d d (fun _ _ -> rng.NextNormal())

    let c =
        Array2D.init d d (fun i j ->
            (Seq.sum (seq { for k in 0 .. d - 1 -> a[i, k] * a[j, k] })) / float d
            + (if i = j then 0.05 else 0.0))

    let top = Linalg.maxRealEigenvalue c
    Array2D.map (fun x -> x * 1.5 / top) c

let gaussHermite () =
    printfn "\n## Gauss-Hermite rules (oracle: normal moments (k-1)!!, E cos Z = e^-1/2)"
    printfn "| order | max rel. error, even moments <= 2n-2 | abs error E[cos Z] | build time |"
    printfn "|---|---|---|---|"

    for n in [ 5; 10; 20; 50; 100; 150 ] do
        let r = GaussHermite.rule n

        let worst =
            [ 0..2 .. min (2 * n - 2) 200 ]
            |> List.map (fun k ->
                abs (
                    (Array.fold2 (fun s x w -> s + w * x ** float k) 0.0 r.Nodes r.Weights)
                    / normalMoment k
                    - 1.0
                ))
            |> List.max

        let c = Array.fold2 (fun s x w -> s + w * cos x) 0.0 r.Nodes r.Weights

        printfn
            "| %d | %.2e | %.2e | %.2f ms |"
            n
            worst
            (abs (c - exp -0.5))
            (1e3 * time 5 (fun () -> GaussHermite.rule n))

let closedForms () =
    printfn "\n## Closed forms against independent evaluation (20 random covariances, largest eigenvalue 1.5)"

    printfn
        "| integral | vs tensor Gauss-Hermite (order) max abs diff | vs Monte Carlo 1e6: max |diff|/s.e. | time per call |"

    printfn "|---|---|---|---|"
    let zeros d = Array.zeroCreate<float> d

    let cases =
        [
            "erf I2",
            Erf,
            2,
            CommitteeIntegrals.i2,
            (fun (a: Activation) (x: float[]) -> Activation.value a x[0] * Activation.value a x[1]),
            60
            "erf J2",
            Erf,
            2,
            CommitteeIntegrals.j2,
            (fun a x -> Activation.derivative a x[0] * Activation.derivative a x[1]),
            60
            "erf I3",
            Erf,
            3,
            CommitteeIntegrals.i3,
            (fun a x -> Activation.derivative a x[0] * x[1] * Activation.value a x[2]),
            48
            "erf I4",
            Erf,
            4,
            CommitteeIntegrals.i4,
            (fun a x ->
                Activation.derivative a x[0]
                * Activation.derivative a x[1]
                * Activation.value a x[2]
                * Activation.value a x[3]),
            28
            "relu I2", Relu, 2, CommitteeIntegrals.i2, (fun a x -> Activation.value a x[0] * Activation.value a x[1]), 0
            "relu J2",
            Relu,
            2,
            CommitteeIntegrals.j2,
            (fun a x -> Activation.derivative a x[0] * Activation.derivative a x[1]),
            0
            "relu I3",
            Relu,
            3,
            CommitteeIntegrals.i3,
            (fun a x -> Activation.derivative a x[0] * x[1] * Activation.value a x[2]),
            0
            "linear I4", Linear, 4, CommitteeIntegrals.i4, (fun a x -> x[2] * x[3]), 4
        ]

    for name, act, d, closed, integrand, order in cases do
        let covs = [ for s in 1..20 -> randomCov d (1000 + s) ]

        let quad =
            if order = 0 then
                "n/a (kink: algebraic convergence)"
            else
                let rule = GaussianRule.tensor d order

                let e =
                    covs
                    |> List.map (fun c -> abs (closed act c - GaussianRule.expect rule (zeros d) c (integrand act)))
                    |> List.max

                sprintf "%.1e (%d)" e order

        let mc =
            covs
            |> List.take 5
            |> List.mapi (fun i c ->
                let est = GaussianMonteCarlo.estimate (i + 1) 1_000_000 (zeros d) c (integrand act)
                abs (closed act c - est.Mean) / est.StdErr)
            |> List.max

        let c0 = covs.Head

        let perCall =
            time 5 (fun () ->
                for _ in 1..100_000 do
                    closed act c0 |> ignore)
            / 1e5

        printfn "| %s | %s | %.2f | %.0f ns |" name quad mc (perCall * 1e9)

let orders () =
    printfn "\n## Convergence orders (y' = y cos t, y = exp(sin t), error at t = 2)"
    let p = Ode.problem (fun t y dy -> dy[0] <- y[0] * cos t) [| 1.0 |] 0.0 2.0

    let err alg =
        let s = Ode.solve Ode.defaultOptions alg p in abs (s.Y[s.Y.Length - 1][0] - exp (sin 2.0))

    let hs = [| 0.1; 0.05; 0.025; 0.0125 |]

    let slope f =
        Stats.logLogSlope hs (hs |> Array.map f)

    printfn "| scheme | observed order |"
    printfn "|---|---|"
    printfn "| Euler | %.3f |" (slope (fun h -> err (Euler h)))
    printfn "| RK4 | %.3f |" (slope (fun h -> err (RungeKutta4 h)))
    let hs2 = [| 0.2; 0.1; 0.05; 0.025 |]

    printfn
        "| Dormand-Prince 5 (fixed step) | %.3f |"
        (Stats.logLogSlope
            hs2
            (hs2
             |> Array.map (fun h ->
                 err (
                     Dopri5
                         {
                             RelTol = 1e10
                             AbsTol = 1e10
                             InitialStep = h
                             MaxStep = h
                         }
                 ))))

let linearOde () =
    printfn "\n## Online linear regression ODE (t_end = 10, 101 points) against its closed form"

    let p =
        { OnlineLinear.defaults with
            Ridge = 0.01
        }

    let grid = Grid.linear 0.0 10.0 101

    let run alg =
        let s =
            Ode.solve
                { Ode.defaultOptions with
                    SaveAt = grid
                    Dense = false
                }
                alg
                (OnlineLinear.odeProblem p 10.0)

        let e =
            Array.map2
                (fun t (y: float[]) -> let c = OnlineLinear.closedForm p t in max (abs (y[0] - c.M)) (abs (y[1] - c.Q)))
                grid
                s.Y
            |> Array.max

        e, s.Stats.Evaluations

    printfn "| solver | max abs error | RHS evaluations | time |"
    printfn "|---|---|---|---|"

    for name, alg in
        [
            "dopri5 rtol 1e-10", Ode.dopri5 1e-10 1e-12
            "dopri5 rtol 1e-6", Ode.dopri5 1e-6 1e-8
            "rk4 dt 0.01", RungeKutta4 0.01
            "euler dt 0.01 (peers)", Euler 0.01
        ] do
        let e, n = run alg
        printfn "| %s | %.1e | %d | %.3f ms |" name e n (1e3 * time 11 (fun () -> run alg))

let simulation () =
    printfn "\n## Online SGD simulation"
    let p = OnlineLinear.defaults
    printfn "| d | time per SGD step | per step / d |"
    printfn "|---|---|---|"

    for d in [ 1000; 4000; 16000 ] do
        let o =
            { SimulationOptions.defaults with
                Dim = d
                Seeds = 1
                MaxParallelism = 1
            }

        let t =
            time 3 (fun () -> OnlineLinearSim.run o ignore CancellationToken.None p [| 0.0; 2.0 |])
            / (2.0 * float d)

        printfn "| %d | %.2f us | %.2f ns |" d (t * 1e6) (t * 1e9 / float d)
    // Same CLI workload: d = 1000, 5 seeds, t = 10.
    let o =
        { SimulationOptions.defaults with
            Dim = 1000
            Seeds = 5
        }

    printfn
        "simulation d=1000, 5 seeds, t_end=10, all cores: %.2f s"
        (time 3 (fun () -> OnlineLinearSim.run o ignore CancellationToken.None p (Grid.linear 0.0 10.0 101)))

    printfn "\n## Fluctuations against d (rms deviation of one run from the ODE, t in [0.5, 2], 16 seeds)"

    let p =
        { OnlineLinear.defaults with
            Lr = 0.5
            NoiseVar = 0.5
            Q0 = 0.0
        }

    let times = Grid.linear 0.0 2.0 9
    let dims = [| 250.0; 1000.0; 4000.0; 16000.0 |]

    let rms =
        dims
        |> Array.map (fun d ->
            let r =
                OnlineLinearSim.run
                    { SimulationOptions.defaults with
                        Dim = int d
                        Seeds = 16
                        Seed = 3
                    }
                    ignore
                    CancellationToken.None
                    p
                    times

            let devs =
                [|
                    for run in r.EgPerRun do
                        for j in 2 .. times.Length - 1 -> run[j] - (OnlineLinear.closedForm p times[j]).Eg
                |]

            sqrt (devs |> Array.averageBy (fun x -> x * x)))

    for d, r in Array.zip dims rms do
        printfn "d = %6.0f: rms deviation %.3e" d r

    printfn "fitted slope of log(rms) vs log(d): %.3f (theory -0.5)" (Stats.logLogSlope dims rms)

let committee () =
    printfn "\n## Committee ODE (erf unless stated), spec section 6.7 initial state"

    let init k = CommitteeInitialState.spec k k

    let egAt (p: CommitteeParams) (s0: CommitteeState) (sol: OdeSolution) =
        sol.Y
        |> Array.map (fun y -> Committee.generalisationError p (CommitteeLayout.unpack p s0.V y))

    let p2 = Committee.create 2 2
    let s2 = init 2
    let grid = Grid.log 0.0 1e4 301

    let run alg =
        Ode.solve
            { Ode.defaultOptions with
                SaveAt = grid
                Dense = false
            }
            alg
            (Committee.odeProblem CommitteeQuadrature.defaults (Committee.problem p2 s2 1e4))

    let reference = run (Ode.dopri5 1e-12 1e-14)
    let refEg = egAt p2 s2 reference

    // The escape time: when eg first falls below 1e-3, located by an event on each method's own interpolant.
    let crossing (alg: OdeAlgorithm) =
        let ev =
            {
                Name = "eg < 1e-3"
                Observable = (fun _ y -> Committee.generalisationError p2 (CommitteeLayout.unpack p2 s2.V y) - 1e-3)
                Direction = Falling
                Terminal = true
            }

        match
            (Ode.solve
                { Ode.defaultOptions with
                    Events = [ ev ]
                    Dense = false
                }
                alg
                (Committee.odeProblem CommitteeQuadrature.defaults (Committee.problem p2 s2 1e4)))
                .Status
        with
        | TerminatedByEvent(_, t) -> t
        | _ -> nan

    printfn
        "| K = M = 2 to t = 1e4 | time | RHS evals | max |eg - ref| / ref on 301 log-spaced times while eg > 1e-6 | time eg crosses 1e-3 (event) |"

    printfn "|---|---|---|---|---|"

    for name, alg in
        [
            "reference dopri5 rtol 1e-12", Ode.dopri5 1e-12 1e-14
            "dopri5 rtol 1e-8", Ode.dopri5 1e-8 1e-10
            "rk4 dt 0.5", RungeKutta4 0.5
            "euler dt 0.01 (peers)", Euler 0.01
        ] do
        let t = time 3 (fun () -> run alg)
        let s = run alg
        let eg = egAt p2 s2 s

        let rel =
            Array.map2 (fun a b -> if b > 1e-6 then abs (a - b) / b else 0.0) eg refEg
            |> Array.max

        printfn "| %s | %.3f s | %d | %.1e | %.4f |" name t s.Stats.Evaluations rel (crossing alg)

    for k in [ 3; 5; 10 ] do
        let p = Committee.create k k
        let s0 = init k
        let tEnd = 1e3
        let sol = ref Unchecked.defaultof<OdeSolution>

        let t =
            time 1 (fun () ->
                sol.Value <-
                    Ode.solve
                        { Ode.defaultOptions with
                            SaveAt = [| 0.0; tEnd |]
                            Dense = false
                        }
                        (Ode.dopri5 1e-8 1e-10)
                        (Committee.odeProblem CommitteeQuadrature.defaults (Committee.problem p s0 tEnd)))

        let eg = Committee.generalisationError p (CommitteeLayout.unpack p s0.V sol.Value.Y[1])

        printfn
            "K = M = %d to t = 1e3 (dopri5 rtol 1e-8): %.2f s, %d RHS evaluations, %.2f ms per RHS, eg(1e3) = %.3g"
            k
            t
            sol.Value.Stats.Evaluations
            (1e3 * t / float sol.Value.Stats.Evaluations)
            eg

    let pt =
        { Committee.create 2 2 with
            Activation = Activation.tanh
        }

    let sol = ref Unchecked.defaultof<OdeSolution>

    let t =
        time 1 (fun () ->
            sol.Value <-
                Ode.solve
                    { Ode.defaultOptions with
                        SaveAt = [| 0.0; 100.0 |]
                        Dense = false
                    }
                    (Ode.dopri5 1e-6 1e-8)
                    (Committee.odeProblem CommitteeQuadrature.defaults (Committee.problem pt s2 100.0)))

    let pr =
        { Committee.create 2 2 with
            Activation = Relu
        }

    let solR = ref Unchecked.defaultof<OdeSolution>

    let tr =
        time 1 (fun () ->
            solR.Value <-
                Ode.solve
                    { Ode.defaultOptions with
                        SaveAt = [| 0.0; 100.0 |]
                        Dense = false
                    }
                    (Ode.dopri5 1e-8 1e-10)
                    (Committee.odeProblem CommitteeQuadrature.defaults (Committee.problem pr s2 100.0)))

    printfn
        "K = M = 2 ReLU (I4 by Stein + Plackett) to t = 100 (dopri5 rtol 1e-8): %.2f s, %d RHS evaluations"
        tr
        solR.Value.Stats.Evaluations

    let cR = Array2D.init 4 4 (fun i j -> if i = j then 1.0 else 0.3)

    printfn
        "ReLU I4, one call: %.1f us"
        (1e6
         * time 5 (fun () ->
             for _ in 1..1000 do
                 ReluI4.evaluate cR |> ignore)
         / 1000.0)

    printfn
        "K = M = 2 tanh (QMC, %d points) to t = 100 (dopri5 rtol 1e-6): %.2f s, %d RHS evaluations"
        CommitteeQuadrature.defaults.SampledPoints
        t
        sol.Value.Stats.Evaluations

    printfn "\n## Committee simulation cost (K = M = 2 erf, one core)"

    for d in [ 1000; 10000 ] do
        let o =
            { SimulationOptions.defaults with
                Dim = d
                Seeds = 1
                MaxParallelism = 1
            }

        let t =
            time 3 (fun () -> OnlineCommitteeSim.run o ignore CancellationToken.None p2 s2 [| 0.0; 1.0 |])
            / float d

        let x = Array.init d float

        let pass =
            time 5 (fun () ->
                for _ in 1..1000 do
                    Blas.dotArr x x |> ignore)
            / 1000.0

        printfn
            "d = %d: %.2f us per SGD step = %.1f passes over one weight vector (%.2f us per dot product)"
            d
            (t * 1e6)
            (t / pass)
            (pass * 1e6)

/// Simulation against the ODE at d = 4000 (too slow for CI): K = M = 2 from the spec 6.7 state, into the plateau.
let validation () =
    printfn "\n## Committee simulation at d = 4000 against the ODE (4 seeds, spec 6.7 initial state, lr = 0.5)"
    printfn "| activation | t | ODE eg | simulation eg +- s.e. | deviation / s.e. |"
    printfn "|---|---|---|---|---|"

    for act in [ Erf; Relu ] do
        let p =
            { Committee.create 2 2 with
                Activation = act
                Lr = 0.5
            }

        let s0 = CommitteeInitialState.spec 2 2
        let times = [| 0.0; 5.0; 20.0; 60.0 |]

        let sol =
            Ode.solve
                { Ode.defaultOptions with
                    SaveAt = times
                }
                (Ode.dopri5 1e-8 1e-10)
                (Committee.odeProblem CommitteeQuadrature.defaults (Committee.problem p s0 60.0))

        let sim =
            OnlineCommitteeSim.run
                { SimulationOptions.defaults with
                    Dim = 4000
                    Seeds = 4
                    Seed = 8
                }
                ignore
                CancellationToken.None
                p
                s0
                times

        for j in 1 .. times.Length - 1 do
            let eg = Committee.generalisationError p (CommitteeLayout.unpack p s0.V sol.Y[j])

            printfn
                "| %s | %g | %.5f | %.5f +- %.5f | %.1f |"
                act.Name
                times[j]
                eg
                sim.Eg.Mean[j]
                sim.Eg.StdErr[j]
                ((sim.Eg.Mean[j] - eg) / sim.Eg.StdErr[j])

/// Peak live managed heap while f runs: a full collection every 100 ms (GC.GetTotalMemory(true)), so garbage
/// awaiting collection is not counted. Time it separately: the forced collections slow f down.
let peakMemory (f: unit -> 'a) =
    GC.Collect()
    GC.WaitForPendingFinalizers()
    let baseline = GC.GetTotalMemory true
    let mutable peak = baseline
    let mutable running = true

    let sampler =
        Threading.Thread(fun () ->
            while running do
                peak <- max peak (GC.GetTotalMemory true)
                Threading.Thread.Sleep 100)

    sampler.Start()
    let r = f ()
    running <- false
    sampler.Join()
    r, float (peak - baseline) / 1e6

let dmft () =
    printfn "\n## Multi-pass SGD: DMFT of the SGF"

    let logistic steps =
        { Dmft.DmftProblem.glm Dmft.GlmLoss.Logistic Dmft.GlmTeacher.Sign with
            Alpha = 2.0
            Tau = 1.0
            Ridge = 0.05
            NoiseVar = 0.0
            Steps = steps
        }
        |> Dmft.DmftProblem.withRho 4.0

    let one n strategy =
        { Dmft.DmftSettings.defaults with
            Samples = n
            Replicas = 1
            Strategy = strategy
        }

    let t60 =
        time 3 (fun () -> Dmft.Dmft.solve (one 20000 Dmft.ForwardSweep) (logistic 60))

    printfn "logistic, 60 steps, 20000 samples, forward sweep: %.2f s (median of 3, 2 threads)" t60

    let t60s =
        time 3 (fun () ->
            Dmft.Dmft.solve
                { one 20000 Dmft.ForwardSweep with
                    MaxParallelism = 1
                }
                (logistic 60))

    printfn "  same on 1 thread: %.2f s (parallel speed-up %.2f)" t60s (t60s / t60)

    let sq =
        { Dmft.DmftProblem.glm Dmft.GlmLoss.Square Dmft.GlmTeacher.Linear with
            Steps = 1000
            Dt = 0.01
        }

    let tEx =
        time 3 (fun () ->
            Dmft.Dmft.solve
                { Dmft.DmftSettings.defaults with
                    Strategy = Dmft.ExactClosure
                }
                sq)

    let ls =
        { Dmft.LeastSquaresProblem.defaults with
            Dt = 0.01
            Steps = 1000
        }

    let tVd =
        time 3 (fun () -> Dmft.LeastSquaresSgf.solve Dmft.LeastSquaresSettings.defaults ls)

    let tVc =
        time 3 (fun () ->
            Dmft.LeastSquaresSgf.solve
                { Dmft.LeastSquaresSettings.defaults with
                    Scheme = Dmft.Continuous
                }
                ls)

    printfn
        "least squares, 1000 steps: exact DMFT closure %.3f s; discrete Volterra %.3f s; continuous Volterra %.3f s"
        tEx
        tVd
        tVc
    // Peak memory of both strategies at 400 steps (N = 1000 samples so that the sweep fits comfortably).
    let p400 = logistic 400

    let _, mSweep =
        peakMemory (fun () -> Dmft.Dmft.solve (one 1000 Dmft.ForwardSweep) p400)

    let _, mFp =
        peakMemory (fun () -> Dmft.Dmft.solve (one 1000 (Dmft.FixedPoint(250, 0.5, 4))) p400)

    let tSweep = time 1 (fun () -> Dmft.Dmft.solve (one 1000 Dmft.ForwardSweep) p400)

    let tFp =
        time 1 (fun () -> Dmft.Dmft.solve (one 1000 (Dmft.FixedPoint(250, 0.5, 4))) p400)

    printfn
        "400 steps, N = 1000: forward sweep peak %.0f MB (predicted sweep memory %.0f MB), %.1f s; fixed point (batch 250, 4 iterations) peak %.0f MB, %.1f s"
        mSweep
        (Dmft.Dmft.sweepMemory 1000 p400 / 1e6)
        tSweep
        mFp
        tFp

    printfn "\n### DMFT (N = 20000 x 4 replicas) against the SGF and real SGD (B = 1) simulated at d = 2000, 4 seeds"
    printfn "| case | t | obs | DMFT | SGF sim | (DMFT-SGF)/se | SGD sim | (SGD-SGF)/SGF |"
    printfn "|---|---|---|---|---|---|---|---|"

    let o =
        { SimulationOptions.defaults with
            Dim = 2000
            Seeds = 4
        }

    let compare
        (name: string)
        (p: Dmft.DmftProblem)
        (obs: (string * (Dmft.DmftSolution -> SeriesEstimate) * (MultiPassSimSolution -> SeriesEstimate)) list)
        =
        let th =
            Dmft.Dmft.solve
                { Dmft.DmftSettings.defaults with
                    Samples = 20000
                    Replicas = 4
                }
                p

        let sim proc =
            MultiPassSim.solve
                { MultiPassSimSettings.defaults with
                    Process = proc
                    Options = o
                }
                p

        let sgf = sim Sgf

        let sgd =
            if p.Tau > 0.0 then
                Some(sim (Sgd(1, WithReplacement)))
            else
                None

        for k in [ p.Steps / 2; p.Steps ] do
            for label, ft, fs in obs do
                let a, b = ft th, fs sgf
                let se = sqrt (a.StdErr[k] ** 2.0 + b.StdErr[k] ** 2.0)

                let sgdText =
                    match sgd with
                    | Some r ->
                        sprintf "%.4f | %+.2f%%" (fs r).Mean[k] (100.0 * ((fs r).Mean[k] - b.Mean[k]) / b.Mean[k])
                    | None -> "- | -"

                printfn
                    "| %s | %g | %s | %.4f | %.4f +- %.4f | %+.1f | %s |"
                    name
                    th.T[k]
                    label
                    a.Mean[k]
                    b.Mean[k]
                    b.StdErr[k]
                    ((a.Mean[k] - b.Mean[k]) / se)
                    sgdText

    let glmObs =
        [
            "m", (fun (s: Dmft.DmftSolution) -> s.M[0, 0]), (fun (r: MultiPassSimSolution) -> r.M[0, 0])
            "q", (fun s -> s.Q[0, 0]), (fun r -> r.Q[0, 0])
            "train", (fun s -> s.TrainLoss), (fun r -> r.TrainLoss)
            "test err", (fun s -> s.TestError.Value), (fun r -> r.TestError.Value)
        ]

    for a, tau in [ 2.0, 0.0; 2.0, 1.0; 0.7, 2.0 ] do
        compare
            (sprintf "logistic alpha=%g tau=%g" a tau)
            { logistic 60 with
                Alpha = a
                Tau = tau
            }
            glmObs

    let net =
        {
            Dmft.Student = Activation.tanh
            Dmft.V = [| 1.0; 0.5 |]
            Dmft.Teacher = Activation.tanh
            Dmft.VTeacher = [| 1.0; 1.0 |]
        }

    for tau in [ 0.0; 1.0 ] do
        compare
            (sprintf "tanh k=2 tau=%g" tau)
            { Dmft.DmftProblem.twoLayer net 0.25 with
                Tau = tau
                Steps = 30
            }
            [
                "C11", (fun s -> s.Q[0, 0]), (fun r -> r.Q[0, 0])
                "C12", (fun s -> s.Q[0, 1]), (fun r -> r.Q[0, 1])
                "M11", (fun s -> s.M[0, 0]), (fun r -> r.M[0, 0])
                "train", (fun s -> s.TrainLoss), (fun r -> r.TrainLoss)
            ]

    let sim4000 =
        time 1 (fun () ->
            MultiPassSim.solve
                { MultiPassSimSettings.defaults with
                    Options = { o with Dim = 4000; Seeds = 2 }
                }
                (logistic 60))

    printfn "SGF simulation, logistic, d = 4000 (n = 8000), 60 steps, 2 seeds: %.1f s" sim4000

let sde () =
    printfn "\n## SME / SMF"
    let rng = Rng(7, 1)
    let d, n = 3, 6
    let a = Array.init n (fun _ -> Array.init d (fun _ -> rng.NextNormal() / sqrt 3.0))
    let y = Array.init n (fun _ -> rng.NextNormal())
    let x0 = [| [| 1.0; -0.5; 0.3 |]; [| -0.4; 0.8; 0.1 |] |]

    let etas =
        [| 1.0 / 8.0; 1.0 / 16.0; 1.0 / 32.0; 1.0 / 64.0; 1.0 / 128.0; 1.0 / 256.0 |]

    let weak () =
        [ Sde.GradientFlow; Sde.Sme(1, true); Sde.Smf 1; Sde.Smf 2 ]
        |> List.map (fun model ->
            etas
            |> Array.map (fun eta ->
                let s = Sde.LeastSquaresOracle.sgd 0.0 a y eta 2.0 x0

                let pts =
                    match model with
                    | Sde.Sme _
                    | Sde.GradientFlow -> x0[..0]
                    | _ -> x0

                let s =
                    if pts.Length = 1 then
                        Sde.LeastSquaresOracle.sgd 0.0 a y eta 2.0 pts
                    else
                        s

                let m = Sde.LeastSquaresOracle.moments model 0.0 a y eta 2.0 pts
                abs (s.TraceSecond 0 - m.TraceSecond 0)))

    let tWeak = time 3 weak
    let errs = weak ()
    let tail (v: float[]) = v[v.Length - 3 ..]

    printfn
        "weak-order measurement on the exact least-squares oracles (4 models x 6 etas, T = 2): %.3f s; slopes GF %.3f, SME1 %.3f, SMF1 %.3f, SMF2 %.3f"
        tWeak
        (Stats.logLogSlope (tail etas) (tail errs[0]))
        (Stats.logLogSlope (tail etas) (tail errs[1]))
        (Stats.logLogSlope (tail etas) (tail errs[2]))
        (Stats.logLogSlope (tail etas) (tail errs[3]))
    // Cost per simulated step against one SGD step on the same problem: 20000 paths, T = 1, eta = 0.05 (20 SGD
    // steps per path), one point.
    for name, p, pts in
        [
            "least squares d=3 n=6", Sde.FiniteSumProblem.leastSquares 0.0 a y, [| x0[0] |]
            "mean field N=100 (d=300) n=8",
            Sde.MeanField.problem (fst (Sde.MeanField.fixture 100 5)),
            [| snd (Sde.MeanField.fixture 100 5) |]
        ] do
        let paths = if p.Dim > 10 then 500 else 20000

        let s =
            { Sde.SdeSettings.defaults with
                Paths = paths
                SubSteps = 1
                Scheme = Sde.EulerMaruyama
            }

        let obs: Sde.PointObservable list =
            [ { Name = "x1"; Value = fun (xs: float[][]) -> xs[0][0] } ]

        let steps = float paths * 20.0
        let problem proc = Sde.SdeProblem.create p proc 0.05 1.0 pts obs

        let tSgd =
            time 3 (fun () -> Sde.Flows.solve s (problem (Sde.SdeProcess.Sgd WithReplacement))) / steps

        let per model =
            time 3 (fun () -> Sde.Flows.solve s (problem (Sde.SdeProcess.Diffusion model))) / steps

        printfn
            "%s: SGD step %.2f us; per SDE step (EM): GF %.2f us, SMF1 %.2f us, SMF2 %.2f us (%.0fx SGD), SME1 %.2f us"
            name
            (1e6 * tSgd)
            (1e6 * per Sde.GradientFlow)
            (1e6 * per (Sde.Smf 1))
            (1e6 * per (Sde.Smf 2))
            (per (Sde.Smf 2) / tSgd)
            (if p.Dim <= 10 then 1e6 * per (Sde.Sme(1, true)) else nan)

/// The erf committee right-hand side from K = 2 to 50: vectorised path (one thread and both cores) against the scalar
/// closed forms it replaced (`Committee.rhsReference`), ns per I4 term, and the --analysis cost.
let rhsScaling () =
    printfn "\n## Committee right-hand side (erf, K = M, spec 6.7 initial state; medians, best of blocks)"
    printfn "I4 terms per right-hand side: K(K+1)/2 pairs x n(n+1)/2 (r <= u), n = K + M."

    printfn
        "| K | I4 terms | scalar reference | vectorised, 1 thread | ns / I4 term | both cores | speed-up | max rel. diff |"

    printfn "|---|---|---|---|---|---|---|---|"

    for k in [ 2; 3; 5; 8; 10; 13; 16; 20; 30; 40; 50 ] do
        let p = Committee.create k k
        let s = CommitteeInitialState.spec k k
        let y = CommitteeLayout.pack p s
        let fast = Committee.rhs p s.V
        let slow = Committee.rhsReference p s.V

        let withThreshold threshold =
            Committee.rhsWith
                { CommitteeQuadrature.defaults with
                    ParallelThreshold = threshold
                }
                p
                LearningRateSchedule.Constant
                s.V
        let dy = Array.zeroCreate y.Length
        let dr = Array.zeroCreate y.Length
        let n = 2 * k
        let terms = float (k * (k + 1) / 2 * (n * (n + 1) / 2))
        let inner = max 1 (int (3e5 / terms))

        let per (f: Rhs) reps =
            time reps (fun () ->
                for _ in 1..inner do
                    f 0.0 y dy)
            / float inner

        let serial = per (withThreshold Int32.MaxValue) 9
        let both = per (withThreshold 0) 9
        let reference = per slow (if k > 30 then 3 else 5)
        fast 0.0 y dy
        slow 0.0 y dr
        let scale = dr |> Array.map abs |> Array.max
        let diff = Array.map2 (fun a b -> abs (a - b)) dy dr |> Array.max

        printfn
            "| %d | %.0f | %.1f us | %.1f us | %.2f | %.1f us | %.1fx | %.1e |"
            k
            terms
            (reference * 1e6)
            (serial * 1e6)
            (serial * 1e9 / terms)
            (both * 1e6)
            (reference / min serial both)
            (diff / scale)

    printfn "\n## --analysis cost (plateau, eta_max, eta_opt; lr = 0.5)"
    printfn "| K | state size n | time |"
    printfn "|---|---|---|"

    for k in [ 2; 5; 8; 13 ] do
        let p = Committee.create k k
        let sw = Stopwatch.StartNew()
        CommitteeAnalysis.analyse p ignore |> ignore
        printfn "| %d | %d | %.2f s |" k (CommitteeLayout.size p) sw.Elapsed.TotalSeconds

/// Whole process against whole process: `statphys online committee` and the numpy/scipy peer (../shared/peers/,
/// or $STATPHYS_PEERS) from the same initial state, K = 2 to t = 1e4 and K = 10 to t = 1000, medians of 3 runs,
/// each eg(t_end) against a tight reference (our DOP853/Dormand-Prince at rtol 1e-12). The peer columns are
/// skipped with a note when python3 with numpy and scipy is missing (Debian: apt-get install python3-numpy
/// python3-scipy).
let peers () =
    printfn "\n## Whole process against the numpy/scipy peer (committee ODE, erf, eta = 0.5, nn2pp initial state)"

    let rec repoRoot (dir: IO.DirectoryInfo) =
        if isNull dir then
            None
        elif IO.File.Exists(IO.Path.Combine(dir.FullName, "build.sh")) then
            Some dir.FullName
        else
            repoRoot dir.Parent

    let root = repoRoot (IO.DirectoryInfo AppContext.BaseDirectory)

    let peerDir =
        match Environment.GetEnvironmentVariable "STATPHYS_PEERS" with
        | null
        | "" ->
            root
            |> Option.map (fun r -> IO.Path.GetFullPath(IO.Path.Combine(r, "..", "shared", "peers")))
        | d -> Some d

    let cli =
        root
        |> Option.map (fun r ->
            IO.Path.Combine(r, "src", "StatPhysFs.Cli", "bin", "Release", "net10.0", "statphys.dll"))
        |> Option.filter IO.File.Exists

    // The fastest build available: the published one (`./build.sh publish`: native, or ReadyToRun when the native
    // compile failed) when it is newer than the JIT build, else `dotnet statphys.dll`. (program, leading arguments)
    let program =
        cli
        |> Option.map (fun dll ->
            let published =
                root
                |> Option.map (fun r -> IO.Path.Combine(r, "artifacts", "statphys-linux-x64", "statphys"))
                |> Option.filter IO.File.Exists

            match published with
            | Some exe when IO.File.GetLastWriteTimeUtc exe >= IO.File.GetLastWriteTimeUtc dll ->
                let kind =
                    if IO.File.Exists(IO.Path.Combine(IO.Path.GetDirectoryName exe, "statphys.dll")) then
                        "ReadyToRun"
                    else
                        "native (Native AOT)"

                printfn "(ours: %s, %s)" exe kind
                exe, []
            | Some exe ->
                printfn "(ours: dotnet %s, JIT; %s is older than it: rerun ./build.sh publish)" dll exe
                "dotnet", [ dll ]
            | None ->
                printfn "(ours: dotnet %s, JIT; ./build.sh publish builds the faster native binary)" dll
                "dotnet", [ dll ])

    // Runs a process; returns (seconds, exit code, stdout).
    let run (exe: string) (args: string list) =
        let psi = ProcessStartInfo(exe, args)
        psi.RedirectStandardOutput <- true
        psi.RedirectStandardError <- true
        psi.UseShellExecute <- false
        let sw = Stopwatch.StartNew()
        use pr = Process.Start psi
        let errTask = pr.StandardError.ReadToEndAsync()
        let out = pr.StandardOutput.ReadToEnd()
        pr.WaitForExit()
        errTask.Wait()
        sw.Elapsed.TotalSeconds, pr.ExitCode, out

    let median3 f =
        let rs = Array.init 3 (fun _ -> f ())
        let ts = rs |> Array.map fst |> Array.sort
        ts[1], snd rs[0]

    let python =
        [ "/usr/bin/python3"; "python3" ]
        |> List.tryFind (fun exe ->
            try
                let _, rc, _ = run exe [ "-c"; "import numpy, scipy" ]
                rc = 0
            with _ ->
                false)

    match cli, peerDir with
    | None, _ -> printfn "(skipped: the CLI is not built; run ./build.sh bench)"
    | _, None -> printfn "(skipped: no peer folder)"
    | Some _, Some dir when not (IO.File.Exists(IO.Path.Combine(dir, "ode_peer.py"))) ->
        printfn "(skipped: %s/ode_peer.py not found; set STATPHYS_PEERS)" dir
    | Some _, Some dir ->
        let exe, lead = program.Value

        if python.IsNone then
            printfn
                "(peer columns skipped: python3 with numpy and scipy not found; apt-get install python3-numpy python3-scipy)"

        printfn "| case | ours (s) | peer (s) | peer/ours | eg ours | eg peer | eg reference | ours err | peer err |"
        printfn "|---|---|---|---|---|---|---|---|---|"
        printfn "(err: |eg - reference| / max(|reference|, 1e-6); reference: ours at --rtol 1e-12)"

        let tmp =
            IO.Path.Combine(IO.Path.GetTempPath(), sprintf "statphys-peers-%d" Environment.ProcessId)

        IO.Directory.CreateDirectory tmp |> ignore

        for k, tEnd in [ 2, 1e4; 10, 1000.0 ] do
            // The initial state as the CLI's --init JSON (the peer's own converter, or the same parsing here).
            let ic = IO.Path.Combine(dir, sprintf "ic_K%d.txt" k)

            let vals =
                IO.File.ReadAllText(ic).Split([| ' '; '\n'; '\r'; '\t' |], StringSplitOptions.RemoveEmptyEntries)
                |> Array.map float

            let kk, mm = int vals[0], int vals[1]
            let x = vals[2..]

            let rows (o: int) (r: int) (c: int) =
                [ for i in 0 .. r - 1 -> [ for j in 0 .. c - 1 -> x[o + i * c + j] ] ]

            let fmt (m: float list list) =
                "["
                + (m
                   |> List.map (fun r -> "[" + (r |> List.map (sprintf "%.17g") |> String.concat ",") + "]")
                   |> String.concat ",")
                + "]"

            let v = [ for i in 0 .. kk - 1 -> x[kk * kk + kk * mm + i] ]

            let json =
                sprintf
                    "{\"Q\":%s,\"R\":%s,\"T\":%s,\"v\":[%s],\"vTeacher\":[%s]}"
                    (fmt (rows 0 kk kk))
                    (fmt (rows (kk * kk) kk mm))
                    (fmt
                        [
                            for i in 0 .. mm - 1 -> [ for j in 0 .. mm - 1 -> if i = j then 1.0 else 0.0 ]
                        ])
                    (v |> List.map (sprintf "%.17g") |> String.concat ",")
                    (String.replicate mm "1," |> fun s -> s.TrimEnd ',')

            let init = IO.Path.Combine(tmp, sprintf "ic_K%d.json" k)
            IO.File.WriteAllText(init, json)

            let ours (extra: string list) =
                let out = IO.Path.Combine(tmp, "out.json")

                let t, rc, _ =
                    run
                        exe
                        (lead
                         @ [
                            "online"
                            "committee"
                            "--K"
                            string k
                            "--M"
                            string k
                            "--lr"
                            "0.5"
                            "--init"
                            init
                            "--t-end"
                            sprintf "%g" tEnd
                            "--points"
                            "2"
                            "--out"
                            out
                         ]
                         @ extra)

                if rc <> 0 then
                    failwithf "statphys exited with %d" rc

                let d = Text.Json.JsonDocument.Parse(IO.File.ReadAllText out)
                let eg = d.RootElement.GetProperty("series").GetProperty("eg")
                t, eg[eg.GetArrayLength() - 1].GetDouble()

            let tOurs, egOurs = median3 (fun () -> ours [])
            let _, egRef = ours [ "--rtol"; "1e-12" ]
            // Relative where eg is of order one; absolute once it has decayed below 1e-6 (K = 2 converges to ~0).
            let rel e = abs (e - egRef) / max (abs egRef) 1e-6

            match python with
            | Some py ->
                let tPeer, egPeer =
                    median3 (fun () ->
                        let t, rc, out =
                            run py [ IO.Path.Combine(dir, "ode_peer.py"); string k; sprintf "%g" tEnd ]

                        if rc <> 0 then
                            failwithf "the peer exited with %d" rc

                        t, float (out.Trim()))

                printfn
                    "| K = %d, t = %g | %.3f | %.3f | %.1fx | %.8g | %.8g | %.8g | %.1e | %.1e |"
                    k
                    tEnd
                    tOurs
                    tPeer
                    (tPeer / tOurs)
                    egOurs
                    egPeer
                    egRef
                    (rel egOurs)
                    (rel egPeer)
            | None ->
                printfn
                    "| K = %d, t = %g | %.3f | - | - | %.8g | - | %.8g | %.1e | - |"
                    k
                    tEnd
                    tOurs
                    egOurs
                    egRef
                    (rel egOurs)

        try
            IO.Directory.Delete(tmp, true)
        with _ ->
            ()

[<EntryPoint>]
let main argv =
    let all = argv.Length = 0
    let want (s: string) = all || Array.contains s argv

    printfn
        "# StatPhysFs benchmarks (%d cores, %s)"
        Environment.ProcessorCount
        (Runtime.InteropServices.RuntimeInformation.FrameworkDescription)

    if want "hermite" then
        gaussHermite ()

    if want "integrals" then
        closedForms ()

    if want "orders" then
        orders ()

    if want "linear" then
        linearOde ()

    if want "simulation" then
        simulation ()

    if want "committee" then
        committee ()

    if want "rhs" then
        rhsScaling ()

    if want "dmft" then
        dmft ()

    if want "sde" then
        sde ()

    if want "peers" then
        peers ()

    0
