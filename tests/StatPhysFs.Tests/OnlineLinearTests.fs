module StatPhysFs.Tests.OnlineLinearTests

open System
open System.Threading
open Expecto
open FsCheck
open FsCheck.FSharp
open StatPhysFs
open StatPhysFs.Ode
open StatPhysFs.Models
open StatPhysFs.Simulation
open StatPhysFs.Tests.Prop

/// Random valid parameters; the learning rate spans below and above the critical one.
let private paramsOf (seed: int) =
    let r = Rng(seed, 41)
    let u () = r.NextDouble()
    let rho = 0.3 + 2.0 * u ()
    let q0 = 2.0 * u ()
    let m0 = (2.0 * u () - 1.0) * sqrt (rho * q0)
    let batch = 1 + int (4.0 * u ())
    let ridge = if u () < 0.3 then 0.0 else 0.5 * u ()
    let etaC = 2.0 * float batch * (1.0 + ridge)

    {
        Rho = rho
        NoiseVar = u ()
        Lr = etaC * (0.05 + 1.1 * u ())
        Ridge = ridge
        Batch = batch
        M0 = m0
        Q0 = q0
    }

let private paramsArb = Arb.fromGen (seeds |> Gen.map paramsOf)
let private tight = Ode.dopri5 1e-12 1e-14

let private solveOn (p: OnlineLinearParams) (grid: float[]) =
    Ode.solve
        { Ode.defaultOptions with
            SaveAt = grid
            DivergenceBound = 1e300
        }
        tight
        (OnlineLinear.odeProblem p grid[grid.Length - 1])

[<Tests>]
let special =
    // Oracle: the Taylor series sum_{k>=1} x^k/k! in System.Decimal (28 digits), from the exact decimal x, so the
    // oracle's own rounding (a double-precision Taylor sum is off by up to ~4.6 ulps near x = -1, which made an
    // earlier version of this test flaky) is far below the tolerance. The 4 ulps allow Kahan's ~2 ulps plus the
    // half-ulp rounding of x itself (condition number of expm1 is <= 1.6 on [-1, 1]); measured worst 2.3 ulps.
    testProp "expm1 equals its Taylor series to 4 ulps on [-1, 1]" 200
    <| Prop.forAll (Arb.fromGen (Gen.choose (-1_000_000, 1_000_000))) (fun k ->
        let xd = decimal k / 1_000_000m * (if k % 3 = 0 then 0.0001m else 1m)
        let x = float xd
        let mutable term = xd
        let mutable sum = 0m

        for j in 2..30 do
            sum <- sum + term
            term <- term * xd / decimal j

        abs (Special.expm1 x - float sum) <= 4.0 * 2.2e-16 * abs (float sum))

[<Tests>]
let theory =
    testList
        "online linear regression: theory"
        [
            // The issue's bar: integrated ODE against the closed form to 1e-9 relative.
            testProp "the ODE integrated by Dormand-Prince equals the closed form to 1e-9 relative" 60
            <| Prop.forAll paramsArb (fun p ->
                let grid = Grid.linear 0.0 6.0 25
                let s = solveOn p grid

                Array.zip grid s.Y
                |> Array.forall (fun (t, y) ->
                    let c = OnlineLinear.closedForm p t
                    close 1e-9 y[0] c.M && close 1e-9 y[1] c.Q))

            // Independent closed form from the spec (lambda = 0, B = 1): D(t) = D_inf + (D0 - D_inf) e^{-eta(2-eta)t}.
            testProp "eg(t) matches the spec's D(t) formula for lambda = 0, B = 1" 60
            <| Prop.forAll paramsArb (fun p ->
                let p =
                    { p with
                        Ridge = 0.0
                        Batch = 1
                        Lr = 0.05 + 1.9 * (p.Lr / (2.0 * float p.Batch * (1.0 + p.Ridge)) / 1.15)
                    }

                let eta, s2 = p.Lr, p.NoiseVar
                let dInf = eta * s2 / (2.0 - eta)
                let d0 = p.Rho - 2.0 * p.M0 + p.Q0

                [ 0.0; 0.3; 1.0; 4.0; 20.0 ]
                |> List.forall (fun t ->
                    close
                        1e-12
                        (OnlineLinear.closedForm p t).Eg
                        (0.5 * (dInf + (d0 - dInf) * exp (-eta * (2.0 - eta) * t)))))

            testProp "critical learning rate from the model's matrix is 2B(1+lambda)" 60
            <| Prop.forAll paramsArb (fun p ->
                close 1e-12 (OnlineLinear.criticalLearningRate p).Value (2.0 * float p.Batch * (1.0 + p.Ridge)))

            testCase "the other convention, 2/c_x, is a different number and says so"
            <| fun () ->
                let t = OnlineLinear.criticalLearningRateInputVariance 1.5
                expectClose 1e-15 t.Value (2.0 / 1.5) "2/c_x"
                Expect.stringContains t.Convention "input" "labelled"

                let p =
                    { OnlineLinear.defaults with
                        Ridge = 0.5
                    }

                Expect.stringContains (OnlineLinear.criticalLearningRate p).Convention "2B(1+lambda)" "labelled"

            testProp "below the threshold the solution settles to the steady state" 60
            <| Prop.forAll paramsArb (fun p ->
                let etaC = (OnlineLinear.criticalLearningRate p).Value
                let p = { p with Lr = min p.Lr (0.9 * etaC) }

                match OnlineLinear.steadyState p with
                | None -> false
                | Some ss ->
                    // Slowest rate is min(eta(1+lambda), |a2|); wait 40 e-folds.
                    let a, _ = OnlineLinear.coefficients p
                    let slow = min (abs a[0, 0]) (abs a[1, 1])
                    let s = solveOn p [| 0.0; 40.0 / slow |]
                    let y = s.Y[1]
                    close 1e-8 y[0] ss.M && close 1e-8 y[1] ss.Q)

            testProp "above the threshold the integration is reported as divergent" 40
            <| Prop.forAll paramsArb (fun p ->
                let etaC = (OnlineLinear.criticalLearningRate p).Value

                let p =
                    { p with
                        Lr = etaC * 1.2
                        NoiseVar = max p.NoiseVar 0.01
                    }

                let s =
                    Ode.solve
                        { Ode.defaultOptions with
                            DivergenceBound = 1e6
                        }
                        (Ode.dopri5 1e-8 1e-10)
                        (OnlineLinear.odeProblem p 1e4)

                OnlineLinear.steadyState p = None
                && (match s.Status with
                    | Diverged(t, _) -> t > 0.0 && t < 1e4
                    | _ -> false))

            testCase "steady-state formulas of the spec (sections 4.1 and 4.4)"
            <| fun () ->
                for eta in [ 0.1; 0.5; 1.0; 1.7 ] do
                    for b in [ 1; 4 ] do
                        let p =
                            { OnlineLinear.defaults with
                                Lr = eta
                                Batch = b
                                NoiseVar = 0.3
                            }

                        let tau = eta / float b

                        expectClose
                            1e-13
                            (OnlineLinear.steadyState p).Value.Eg
                            (tau * 0.3 / (2.0 * (2.0 - tau)))
                            (sprintf "eg_inf eta=%g B=%d" eta b)

                for lam in [ 0.0; 0.1; 1.0 ] do
                    let p =
                        { OnlineLinear.defaults with
                            Lr = 0.7
                            Ridge = lam
                            NoiseVar = 0.2
                            Rho = 1.3
                        }

                    let m = p.Rho / (1.0 + lam)

                    let q =
                        (p.Lr * (p.Rho - 2.0 * m + p.NoiseVar) + 2.0 * m) / (2.0 * (1.0 + lam) - p.Lr)

                    let ss = (OnlineLinear.steadyState p).Value
                    expectClose 1e-13 ss.M m "m*"
                    expectClose 1e-13 ss.Q q (sprintf "q* lambda=%g" lam)

            testProp "B -> infinity removes the noise term: gradient flow on the population risk" 60
            <| Prop.forAll paramsArb (fun p ->
                let p =
                    { p with
                        Batch = 1_000_000_000
                        Ridge = 0.0
                        Lr = min p.Lr 3.0
                    }

                let d0 = p.Rho - 2.0 * p.M0 + p.Q0

                [ 0.5; 2.0; 5.0 ]
                |> List.forall (fun t ->
                    let c = OnlineLinear.closedForm p t

                    close 1e-7 c.M (p.Rho + (p.M0 - p.Rho) * exp (-p.Lr * t))
                    && close 1e-7 c.Eg (0.5 * d0 * exp (-2.0 * p.Lr * t))))

            testCase "the marginal case (eta exactly critical) has a finite closed form"
            <| fun () ->
                let p =
                    { OnlineLinear.defaults with
                        Lr = 2.0
                        NoiseVar = 0.1
                    }

                let s = solveOn p (Grid.linear 0.0 5.0 11)

                for t, y in Array.zip s.T s.Y do
                    expectClose 1e-9 y[1] (OnlineLinear.closedForm p t).Q (sprintf "q(%g)" t)

            // Spec 4.3: the greedy schedule's implicit solution and its 1/t law (the optimal batch estimator's rate).
            testCase "greedy schedule: implicit solution t(D) and eg ~ sigma^2/(2 B t)"
            <| fun () ->
                for b in [ 1; 3 ] do
                    let p =
                        { OnlineLinear.defaults with
                            NoiseVar = 0.2
                            Batch = b
                            M0 = 0.1
                            Q0 = 0.3
                        }

                    let times = [| 0.0; 1.0; 10.0; 100.0; 1e4 |]

                    let s =
                        Ode.solve
                            { Ode.defaultOptions with
                                SaveAt = times
                            }
                            (Ode.dopri5 1e-11 1e-15)
                            (OnlineLinear.greedyProblem p 1e4)

                    for j in 1 .. times.Length - 1 do
                        let d = p.Rho - 2.0 * s.Y[j][0] + s.Y[j][1]
                        // D = rho - 2m + q loses digits to cancellation as D -> 0 (D ~ 1e-5 at t = 1e4): 1e-5 relative.
                        expectClose
                            1e-5
                            (OnlineLinear.greedyTimeToReach p d)
                            times[j]
                            (sprintf "B=%d: t(D) at t=%g" b times[j])

                    let eg = OnlineLinear.generalisationError p (s.Y[4][0]) (s.Y[4][1])
                    // D = sigma^2/(B t) up to a relative O(ln t / t) correction: 1e-3 at t = 1e4.
                    expectClose 2e-3 (eg * 2.0 * float b * 1e4 / p.NoiseVar) 1.0 (sprintf "B=%d: 1/t law" b)

            testCase "invalid parameters name themselves and their range"
            <| fun () ->
                let ex =
                    Expect.throwsC
                        (fun () ->
                            OnlineLinear.validate
                                { OnlineLinear.defaults with
                                    M0 = 1.0
                                    Q0 = 0.1
                                })
                        id

                Expect.stringContains ex.Message "q0" "names q0"

                let ex =
                    Expect.throwsC (fun () -> OnlineLinear.validate { OnlineLinear.defaults with Lr = -0.1 }) id

                Expect.stringContains ex.Message "lr must be > 0" "names lr and its range"
        ]

let private sim dim seeds seed p times =
    OnlineLinearSim.run
        { SimulationOptions.defaults with
            Dim = dim
            Seeds = seeds
            Seed = seed
        }
        ignore
        CancellationToken.None
        p
        times

[<Tests>]
let simulation =
    testList
        "online linear regression: simulation twin"
        [
            // Error bar: 4.5 standard errors at each of 9 times, plus the finite-d bias 4/d * (eg + sigma^2): the
            // per-step noise term carries E|x|^2/d = 1 + 2/d (Gaussian fourth moment), an O(1/d) effect.
            testCase "simulation agrees with the ODE within error bars (d = 1000, 24 seeds)"
            <| fun () ->
                let p =
                    { OnlineLinear.defaults with
                        Lr = 0.8
                        NoiseVar = 0.2
                        Ridge = 0.05
                        Q0 = 0.5
                        M0 = 0.1
                    }

                let times = Grid.linear 0.0 4.0 9
                let r = sim 1000 24 7 p times
                // The shared check, on the solution shape: the ODE (itself checked against the closed form above) on
                // the grid against the simulation of the same problem.
                let problem = OnlineLinear.problem p 4.0

                let settings =
                    { OnlineLinear.defaultSettings with
                        Algorithm = tight
                        SaveAt = times
                    }

                let simulated =
                    OnlineLinearSim.simulate
                        { SimulationOptions.defaults with
                            Dim = 1000
                            Seeds = 24
                            Seed = 7
                        }
                        settings
                        problem

                Expect.equal simulated.Eg r.Eg.Mean "simulate returns the runs' means"

                SolutionChecks.odeAgainstSimulation
                    "linear regression, d = 1000"
                    4.5
                    (fun theory -> 4e-3 * (theory + p.NoiseVar) + 1e-12)
                    [ "eg" ]
                    (OnlineLinear.solve settings problem)
                    simulated

                expectClose 1e-12 r.Eg.Mean[0] (OnlineLinear.closedForm p 0.0).Eg "exact initial overlaps"

            testCase "mini-batch simulation agrees with the B-divided noise term"
            <| fun () ->
                let p =
                    { OnlineLinear.defaults with
                        Lr = 3.0
                        Batch = 4
                        NoiseVar = 0.5
                        Q0 = 0.2
                    }

                let times = [| 0.0; 1.0; 3.0 |]
                let r = sim 800 16 3 p times

                for j in 1..2 do
                    let theory = (OnlineLinear.closedForm p times[j]).Eg

                    Expect.isLessThan
                        (abs (r.Eg.Mean[j] - theory))
                        (4.5 * r.Eg.StdErr[j] + 5e-3 * (theory + p.NoiseVar))
                        (sprintf "t=%g" times[j])

            // Fluctuations of one run around the d -> infinity curve scale as d^{-1/2}. With 12 runs per d the fitted
            // slope has sd 0.07-0.08 over seeds (measured, 40 seeds, either generator), so the 0.15 band failed one seed
            // in 20; 48 runs give sd 0.05 (20 seeds, mean -0.505), and 0.15 is 3 sd.
            testCase "deviation from theory shrinks like 1/sqrt(d) (fitted slope)"
            <| fun () ->
                let p =
                    { OnlineLinear.defaults with
                        Lr = 0.5
                        NoiseVar = 0.5
                        Q0 = 0.0
                    }

                let times = Grid.linear 0.0 2.0 9
                let dims = [| 200.0; 800.0; 3200.0 |]

                let rms =
                    dims
                    |> Array.map (fun d ->
                        let r = sim (int d) 48 11 p times

                        let devs =
                            [|
                                for run in r.EgPerRun do
                                    for j in 2 .. times.Length - 1 -> run[j] - (OnlineLinear.closedForm p times[j]).Eg
                            |]

                        sqrt (devs |> Array.averageBy (fun x -> x * x)))

                let slope = Stats.logLogSlope dims rms

                Expect.floatClose
                    { absolute = 0.15; relative = 0.0 }
                    slope
                    -0.5
                    (sprintf "slope of rms deviation vs d (rms %A)" rms)

            testCase "same seed gives the same numbers whatever the thread count"
            <| fun () ->
                let p = OnlineLinear.defaults
                let times = [| 0.0; 0.5; 1.0 |]

                let run par =
                    OnlineLinearSim.run
                        { SimulationOptions.defaults with
                            Dim = 300
                            Seeds = 6
                            MaxParallelism = par
                        }
                        ignore
                        CancellationToken.None
                        p
                        times

                let a, b = run 1, run 2
                Expect.equal a.EgPerRun b.EgPerRun "bitwise equal"

            testCase "above the critical learning rate the simulation reports divergence with its time"
            <| fun () ->
                let p = { OnlineLinear.defaults with Lr = 2.6 }

                let r =
                    OnlineLinearSim.run
                        { SimulationOptions.defaults with
                            Dim = 400
                            Seeds = 3
                            DivergenceBound = 1e6
                        }
                        ignore
                        CancellationToken.None
                        p
                        (Grid.linear 0.0 60.0 7)

                Expect.equal r.Divergences.Length 3 "every run diverges"
                // Theory: q grows like e^{(eta^2 - 2 eta) t} = e^{1.56 t}, so 1e6 is reached near t = ln(1e6)/1.56 ~ 9.
                for _, t in r.Divergences do
                    Expect.isTrue (t > 4.0 && t < 16.0) (sprintf "divergence time %g" t)

                Expect.isTrue (Double.IsNaN r.Eg.Mean[r.Eg.Mean.Length - 1]) "no mean is reported past divergence"
        ]

/// The early-stopping time of eg on [0, 30] found by the solver's minimum event (dopri5 at rtol, atol).
let private earlyStop rtol atol (p: OnlineLinearParams) =
    EarlyStopping.find
        Ode.defaultOptions
        (Ode.dopri5 rtol atol)
        (fun y -> OnlineLinear.generalisationError p y[0] y[1])
        (OnlineLinear.odeProblem p 30.0)

[<Tests>]
let earlyStopping =
    testList
        "early stopping"
        [
            // With ridge, q relaxes faster than m, so eg can dip below its stationary value. Oracle: golden-section
            // minimisation of the closed form eg(t).
            testCase "the interior minimum of eg(t) matches the closed form's argmin"
            <| fun () ->
                let p =
                    {
                        Rho = 1.0
                        NoiseVar = 0.41
                        Lr = 0.89
                        Ridge = 0.64
                        Batch = 1
                        M0 = 0.889
                        Q0 = 1.95
                    }

                let found = earlyStop 1e-11 1e-13 p

                let eg t = (OnlineLinear.closedForm p t).Eg
                let mutable a, b = 0.0, 30.0
                let g = (sqrt 5.0 - 1.0) / 2.0

                for _ in 1..200 do
                    let c, d = b - g * (b - a), a + g * (b - a)
                    if eg c < eg d then b <- d else a <- c

                let tStar = 0.5 * (a + b)

                match found with
                | Some(t, v) ->
                    expectClose 1e-5 t tStar "time of the minimum"
                    expectClose 1e-10 v (eg tStar) "eg at the minimum"
                | None -> failtest "no interior minimum found"

            testCase "a monotone learning curve has no early-stopping time"
            <| fun () ->
                let p =
                    { OnlineLinear.defaults with
                        Ridge = 0.0
                    }

                let found = earlyStop 1e-10 1e-12 p

                Expect.isNone found "D obeys a closed linear ODE without ridge: monotone"
        ]
