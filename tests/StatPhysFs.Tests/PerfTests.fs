/// The fast committee right-hand side and analysis against the scalar oracles they replace.
module StatPhysFs.Tests.PerfTests

open System
open System.Runtime.Intrinsics
open Expecto
open StatPhysFs
open StatPhysFs.Gaussian
open StatPhysFs.Models
open StatPhysFs.Ode
open StatPhysFs.Tests.Prop

// A generic state away from every fixed point: random overlaps of Gaussian vectors in dimension 3 (K + M), so the
// field covariance is a well-conditioned Gram matrix, with a random teacher and second layers.
let private randomCase (seed: int) (k: int) (m: int) (trainV: bool) =
    let rng = Rng(seed, 7)
    let dim = 3 * (k + m)
    let vec () = Array.init dim (fun _ -> rng.NextNormal() / sqrt (float dim))
    let w = Array.init k (fun _ -> vec ())
    let ws = Array.init m (fun _ -> vec ())
    let dot (x: float[]) (y: float[]) = Array.fold2 (fun s a b -> s + a * b) 0.0 x y

    let p =
        { Committee.create k m with
            T = Array2D.init m m (fun i j -> dot ws[i] ws[j])
            VTeacher = Array.init m (fun _ -> 0.5 + rng.NextDouble())
            LrSecond = (if trainV then Some 0.3 else None)
            NoiseVar = 0.1
            WeightDecay = 0.01
            Lr = 0.7
        }

    let s =
        {
            Q = Array2D.init k k (fun i j -> dot w[i] w[j])
            R = Array2D.init k m (fun i n -> dot w[i] ws[n])
            V = Array.init k (fun _ -> 0.5 + rng.NextDouble())
        }

    p, s

let private maxAbs (x: float[]) = x |> Array.map abs |> Array.max

[<Tests>]
let tests =
    testList
        "performance paths against their oracles"
        [
            testCase "vector asin is within 4 ulp of Math.Asin on [-1, 1]"
            <| fun () ->
                let xs =
                    Array.append
                        (Array.init 200001 (fun i -> -1.0 + 2.0 * float i / 200000.0))
                        [| 1e-300; -1e-17; 0.5; -0.5; 0.4999999999999999; 0.975; 1.0 - 1e-15; -1.0 + 1e-15 |]

                for x in xs do
                    let v = ErfKernels.asin4 (Vector256.Create x)
                    let e = Math.Asin x
                    let ulp = Math.BitIncrement(abs e) - abs e

                    if abs (v.GetElement 0 - e) > 4.0 * max ulp Double.Epsilon then
                        failtestf "asin(%.17g): %.17g vs %.17g" x (v.GetElement 0) e

            testCase "erf right-hand side equals the scalar closed-form oracle to 1e-13 (K = 1..9, M = 1..7)"
            <| fun () ->
                for k, m, trainV in
                    [ 1, 1, false; 2, 2, false; 2, 3, true; 3, 1, true; 4, 4, false; 5, 7, true; 9, 3, false ] do
                    let p, s = randomCase (10 * k + m) k m trainV
                    let y = CommitteeLayout.pack p s
                    let fast = Array.zeroCreate y.Length
                    let slow = Array.zeroCreate y.Length
                    Committee.rhs p s.V 0.0 y fast
                    Committee.rhsReference p s.V 0.0 y slow
                    let scale = maxAbs slow

                    for i in 0 .. y.Length - 1 do
                        if abs (fast[i] - slow[i]) > 1e-13 * scale then
                            failtestf "K=%d M=%d component %d: %.17g vs %.17g" k m i fast[i] slow[i]

            testCase "erf right-hand side is bitwise the same single- and multi-threaded (K = M = 12)"
            <| fun () ->
                let p, s = randomCase 5 12 12 true
                let y = CommitteeLayout.pack p s
                let run threshold =
                    let quad =
                        { CommitteeQuadrature.defaults with
                            ParallelThreshold = threshold
                        }

                    let dy = Array.zeroCreate y.Length
                    Committee.rhsWith quad p LearningRateSchedule.Constant s.V 0.0 y dy
                    dy

                let serial = run Int32.MaxValue
                let threaded = run 0
                let slow = Array.zeroCreate y.Length
                Committee.rhsReference p s.V 0.0 y slow
                Expect.sequenceEqual threaded serial "bitwise equal"

                for i in 0 .. y.Length - 1 do
                    expectClose 1e-12 serial[i] slow[i] (sprintf "component %d against the oracle" i)

            testCase "analysis from the Jacobian pencil equals the direct Jacobians (K = 3)"
            <| fun () ->
                let p = Committee.create 3 3
                let r = CommitteeAnalysis.analyse p ignore
                // Direct: a fresh finite-difference Jacobian at each learning rate, as the analysis did before.
                let perfect =
                    {
                        Q = Array2D.init 3 3 (fun i j -> if i = j then 1.0 else 0.0)
                        R = Array2D.init 3 3 (fun i j -> if i = j then 1.0 else 0.0)
                        V = Array.create 3 1.0
                    }

                let growth eta =
                    let q = { p with Lr = eta }
                    Analysis.growthRate (Committee.rhs q perfect.V) (CommitteeLayout.pack q perfect)

                Expect.isLessThan (growth (r.EtaMax * (1.0 - 1e-7))) 0.0 "stable just below eta_max"
                Expect.isGreaterThan (growth (r.EtaMax * (1.0 + 1e-7))) 0.0 "unstable just above eta_max"
                expectClose 1e-8 r.Rate (-(growth p.Lr)) "rate at the model's eta"
                expectClose 1e-8 r.RateAtEtaOpt (-(growth r.EtaOpt)) "rate at eta_opt"

                for f in [ 0.9; 1.1 ] do
                    Expect.isGreaterThan r.RateAtEtaOpt (-(growth (f * r.EtaOpt))) (sprintf "optimum vs %g eta_opt" f)

                // The reduced (Q, C, R, S) Newton finds the root of the full right-hand side.
                let pl = r.Plateau.Value
                let y = CommitteeLayout.pack p pl.State
                let dy = Array.zeroCreate y.Length
                Committee.rhs p pl.State.V 0.0 y dy
                Expect.isLessThan (maxAbs dy) 1e-11 "plateau is a fixed point of the full flow"
                expectClose 1e-8 pl.EscapeRate (Analysis.growthRate (Committee.rhs p pl.State.V) y) "escape rate"
        ]

// y' = y cos t, y = exp(sin t) (non-autonomous), and the harmonic oscillator (x, v) = (cos t, -sin t).
let private expSin =
    StatPhysFs.Ode.Ode.problem (fun t y dy -> dy[0] <- y[0] * cos t) [| 1.0 |] 0.0 2.0

[<Tests>]
let dop853Tests =
    testList
        "DOP853"
        [
            // At a pinned step (a huge tolerance never rejects), halving h must divide the error by 2^8.
            testCase "observed order 8 at a fixed step"
            <| fun () ->
                let hs = [| 0.5; 0.25; 0.125 |]

                let errors =
                    hs
                    |> Array.map (fun h ->
                        let s =
                            StatPhysFs.Ode.Ode.solve
                                StatPhysFs.Ode.Ode.defaultOptions
                                (StatPhysFs.Ode.Dop853
                                    {
                                        RelTol = 1e10
                                        AbsTol = 1e10
                                        InitialStep = h
                                        MaxStep = h
                                    })
                                expSin

                        abs (s.Y[s.Y.Length - 1][0] - exp (sin 2.0)))

                let order = Stats.logLogSlope hs errors
                Expect.floatClose { absolute = 0.6; relative = 0.0 } order 8.0 (sprintf "order (errors %A)" errors)

            testCase "tight tolerance, dense output between steps and events"
            <| fun () ->
                let osc =
                    StatPhysFs.Ode.Ode.problem
                        (fun _ y dy ->
                            dy[0] <- y[1]
                            dy[1] <- -y[0])
                        [| 1.0; 0.0 |]
                        0.0
                        20.0

                let ev =
                    {
                        Name = "x=0"
                        Observable = (fun _ y -> y[0])
                        Direction = StatPhysFs.Ode.Either
                        Terminal = false
                    }

                let s =
                    StatPhysFs.Ode.Ode.solve
                        { StatPhysFs.Ode.Ode.defaultOptions with
                            Events = [ ev ]
                        }
                        (StatPhysFs.Ode.Ode.dop853 1e-11 1e-13)
                        osc

                for t in Grid.linear 0.0 20.0 997 do
                    let y = s.Evaluate t
                    expectClose 1e-8 y[0] (cos t) (sprintf "x(%g)" t)
                    expectClose 1e-8 y[1] (-sin t) (sprintf "v(%g)" t)

                let zeros = s.Events |> List.map (fun e -> e.Time)
                Expect.equal zeros.Length 6 "six zeros of cos on [0, 20]"

                zeros
                |> List.iteri (fun i z -> expectClose 1e-9 z ((float i + 0.5) * Math.PI) (sprintf "zero %d" i))

            // The committee CLI's default tolerances (dopri5, rtol 1e-9, atol 1e-14) against an independent integrator
            // at a tight tolerance (DOP853, 1e-13) through plateau, escape and convergence.
            testCase "committee K = M = 2: default tolerances keep eg within 1e-4 of a tight DOP853 reference"
            <| fun () ->
                let p = Committee.create 2 2
                let s0 = CommitteeInitialState.spec 2 2
                let grid = Grid.linear 0.0 2000.0 401

                let eg (alg: OdeAlgorithm) =
                    let sol =
                        Ode.solve
                            { Ode.defaultOptions with
                                SaveAt = grid
                                Dense = false
                            }
                            alg
                            (Committee.odeProblem CommitteeQuadrature.defaults (Committee.problem p s0 2000.0))

                    sol.Y |> Array.map (fun y -> Committee.generalisationError p (CommitteeLayout.unpack p s0.V y))

                let reference = eg (Ode.dop853 1e-13 1e-16)
                let fast = eg (Ode.dopri5 1e-9 1e-14)

                for i in 0 .. grid.Length - 1 do
                    if reference[i] > 1e-8 && abs (fast[i] - reference[i]) > 1e-4 * reference[i] then
                        failtestf "eg(%g): %.10g vs reference %.10g" grid[i] fast[i] reference[i]
        ]
