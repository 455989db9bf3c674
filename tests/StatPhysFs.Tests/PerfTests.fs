/// The fast committee right-hand side and analysis against the scalar oracles they replace.
module StatPhysFs.Tests.PerfTests

open System
open System.Runtime.Intrinsics
open Expecto
open FsCheck
open FsCheck.FSharp
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

            testCase "8-lane vector asin is within 4 ulp of Math.Asin on [-1, 1]"
            <| fun () ->
                for i in 0 .. 200000 / 8 do
                    let xs = Array.init 8 (fun j -> -1.0 + 2.0 * float (8 * i + j) / 200007.0)
                    let v = ErfKernels.asin8 (Vector512.Create<float>(xs: float[]))

                    for j in 0 .. 7 do
                        let e = Math.Asin xs[j]
                        let ulp = Math.BitIncrement(abs e) - abs e

                        if abs (v.GetElement j - e) > 4.0 * max ulp Double.Epsilon then
                            failtestf "asin(%.17g): %.17g vs %.17g" xs[j] (v.GetElement j) e

            // Random arguments, dense near the branch point 1/2, near +-1 (where the square root branch loses most)
            // and near 0, each lane of both widths against Math.Asin.
            testProp "vector asin, 4 and 8 lanes, within 4 ulp of Math.Asin (random arguments)" 300
            <| Prop.forAll
                (Arb.fromGen (
                    Gen.arrayOfLength
                        8
                        (Gen.oneof
                            [
                                Gen.choose (-1000000, 1000000) |> Gen.map (fun i -> float i / 1e6)
                                Gen.choose (0, 300) |> Gen.map (fun e -> 1.0 - Math.Pow(10.0, -float e / 20.0))
                                Gen.choose (0, 300) |> Gen.map (fun e -> -0.5 + Math.Pow(10.0, -float e / 20.0))
                                Gen.choose (1, 3000) |> Gen.map (fun e -> Math.Pow(10.0, -float e / 10.0))
                                Gen.choose (1, 3000) |> Gen.map (fun e -> -Math.Pow(10.0, -float e / 10.0))
                            ]
                         |> Gen.map (fun x -> max -1.0 (min 1.0 x)))
                ))
                (fun (xs: float[]) ->
                    let v8 = ErfKernels.asin8 (Vector512.Create<float>(xs: float[]))
                    let lo = ErfKernels.asin4 (Vector256.Create<float>(xs, 0))
                    let hi = ErfKernels.asin4 (Vector256.Create<float>(xs, 4))

                    for j in 0 .. 7 do
                        let e = Math.Asin xs[j]
                        let tol = 4.0 * max (Math.BitIncrement(abs e) - abs e) Double.Epsilon
                        let v4 = if j < 4 then lo.GetElement j else hi.GetElement(j - 4)

                        if abs (v8.GetElement j - e) > tol || abs (v4 - e) > tol then
                            failtestf "asin(%.17g): %.17g (8 lanes), %.17g (4 lanes) vs %.17g" xs[j] (v8.GetElement j) v4 e)

            testProp "erf right-hand side equals the scalar closed-form oracle to 1e-13 (random K <= 9, M <= 7, states)" 80
            <| Prop.forAll
                (Arb.fromGen (Gen.zip3 (Gen.zip (Gen.choose (1, 9)) (Gen.choose (1, 7))) (Gen.elements [ false; true ]) Prop.seeds))
                (fun ((k, m), trainV, seed) ->
                    let p, s = randomCase seed k m trainV
                    let y = CommitteeLayout.pack p s
                    let fast = Array.zeroCreate y.Length
                    let slow = Array.zeroCreate y.Length
                    Committee.rhs p s.V 0.0 y fast
                    Committee.rhsReference p s.V 0.0 y slow
                    let scale = maxAbs slow

                    for i in 0 .. y.Length - 1 do
                        if abs (fast[i] - slow[i]) > 1e-13 * scale then
                            failtestf "K=%d M=%d component %d: %.17g vs %.17g" k m i fast[i] slow[i])

            // A pair's sum runs in one lane in a fixed order, so the vector width cannot change it.
            testProp "erf I4 pair blocks are bitwise the same at 4 and 8 lanes, and equal the scalar I4 sum" 60
            <| Prop.forAll
                (Arb.fromGen (Gen.zip3 (Gen.choose (1, 8)) (Gen.choose (1, 8)) Prop.seeds))
                (fun (k, m, seed) ->
                    let p, s = randomCase seed k m true
                    let n = k + m
                    let np = ErfKernels.padded n
                    let cov = CommitteeLayout.fieldCovariance p s
                    let c = Array.zeroCreate (np * np)

                    for i in 0 .. n - 1 do
                        for j in 0 .. n - 1 do
                            c[i * np + j] <- cov[i, j]

                    let a = Array.init np (fun i -> if i < k then s.V[i] elif i < n then -p.VTeacher[i - k] else 0.0)
                    // Eight pairs i <= l over all fields (cycled when there are fewer).
                    let all = [| for i in 0 .. n - 1 do for l in i .. n - 1 -> i, l |]
                    let pairs = Array.init 8 (fun q -> all[q % all.Length])
                    let pi = Array.map fst pairs
                    let pl = Array.map snd pairs
                    let scratch = Array.zeroCreate (ErfKernels.blockScratch n)
                    let four = Array.zeroCreate 8
                    let eight = Array.zeroCreate 8
                    ErfKernels.pairBlockWith 4 c np n a pi pl 0 scratch four
                    ErfKernels.pairBlockWith 4 c np n a pi pl 4 scratch four
                    ErfKernels.pairBlockWith 8 c np n a pi pl 0 scratch eight
                    Expect.sequenceEqual four eight "bitwise equal"

                    for q in 0 .. 7 do
                        let i, l = pairs[q]
                        let mutable sum = 0.0
                        let mutable mag = 0.0

                        for r in 0 .. n - 1 do
                            for u in 0 .. n - 1 do
                                let t =
                                    a[r] * a[u]
                                    * CommitteeIntegrals.erfI4
                                        cov[i, i] cov[i, l] cov[i, r] cov[i, u] cov[l, l] cov[l, r] cov[l, u] cov[r, r] cov[r, u] cov[u, u]

                                sum <- sum + t
                                mag <- mag + abs t

                        if abs (eight[q] - sum) > 1e-13 * mag then
                            failtestf "pair (%d, %d): %.17g vs %.17g" i l eight[q] sum)

            testProp "the early-stopping erf eg from the packed state equals generalisationError" 60
            <| Prop.forAll
                (Arb.fromGen (Gen.zip3 (Gen.zip (Gen.choose (1, 9)) (Gen.choose (1, 7))) (Gen.elements [ false; true ]) Prop.seeds))
                (fun ((k, m), trainV, seed) ->
                    let p, s = randomCase seed k m trainV
                    let fast = Committee.erfErrorOf p s.V (CommitteeLayout.pack p s)
                    let slow = Committee.generalisationError p s
                    let scale = (Array.sumBy abs s.V + Array.sumBy abs p.VTeacher) ** 2.0
                    expectClose 1e-14 (fast / scale) (slow / scale) (sprintf "eg K=%d M=%d" k m))

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
