/// The fast committee right-hand side and analysis against the scalar oracles they replace.
module StatPhysFs.Tests.PerfTests

open System
open System.Runtime.Intrinsics
open Expecto
open StatPhysFs
open StatPhysFs.Gaussian
open StatPhysFs.Models
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
                    let y = Committee.pack p s
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
                let y = Committee.pack p s
                let run threshold =
                    let saved = Committee.parallelThreshold
                    Committee.parallelThreshold <- threshold

                    try
                        let dy = Array.zeroCreate y.Length
                        Committee.rhs p s.V 0.0 y dy
                        dy
                    finally
                        Committee.parallelThreshold <- saved

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
                    Analysis.growthRate (Committee.rhs q perfect.V) (Committee.pack q perfect)

                Expect.isLessThan (growth (r.EtaMax * (1.0 - 1e-7))) 0.0 "stable just below eta_max"
                Expect.isGreaterThan (growth (r.EtaMax * (1.0 + 1e-7))) 0.0 "unstable just above eta_max"
                expectClose 1e-8 r.Rate (-(growth p.Lr)) "rate at the model's eta"
                expectClose 1e-8 r.RateAtEtaOpt (-(growth r.EtaOpt)) "rate at eta_opt"

                for f in [ 0.9; 1.1 ] do
                    Expect.isGreaterThan r.RateAtEtaOpt (-(growth (f * r.EtaOpt))) (sprintf "optimum vs %g eta_opt" f)

                // The reduced (Q, C, R, S) Newton finds the root of the full right-hand side.
                let pl = r.Plateau.Value
                let y = Committee.pack p pl.State
                let dy = Array.zeroCreate y.Length
                Committee.rhs p pl.State.V 0.0 y dy
                Expect.isLessThan (maxAbs dy) 1e-11 "plateau is a fixed point of the full flow"
                expectClose 1e-8 pl.EscapeRate (Analysis.growthRate (Committee.rhs p pl.State.V) y) "escape rate"
        ]
