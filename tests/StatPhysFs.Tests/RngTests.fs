module StatPhysFs.Tests.RngTests

open System
open Expecto
open StatPhysFs

let private normalCdf x =
    MathNet.Numerics.Distributions.Normal.CDF(0.0, 1.0, x)

[<Tests>]
let tests =
    testList
        "random numbers"
        [
            // 2e6 draws: the standard errors of mean, variance and fourth moment are 7e-4, 1e-3 and 7e-3; 5 of them.
            testCase "ziggurat normals: moments and tail mass within their error bars"
            <| fun () ->
                let r = Rng(11)
                let n = 2_000_000
                let xs = Array.init n (fun _ -> r.NextNormal())
                let sn = sqrt (float n)
                Expect.isLessThan (abs (Array.average xs)) (5.0 / sn) "mean 0"

                Expect.isLessThan
                    (abs ((xs |> Array.averageBy (fun x -> x * x)) - 1.0))
                    (5.0 * sqrt 2.0 / sn)
                    "variance 1"

                Expect.isLessThan
                    (abs ((xs |> Array.averageBy (fun x -> pown x 4)) - 3.0))
                    (5.0 * sqrt 96.0 / sn)
                    "fourth moment 3"
                // The base layer's tail beyond r = 3.4426 is sampled separately: its mass must be 2 (1 - Phi(r)).
                let p = 2.0 * (1.0 - normalCdf 3.442619855899)

                let tail =
                    float (xs |> Array.filter (fun x -> abs x > 3.442619855899) |> Array.length)
                    / float n

                Expect.isLessThan (abs (tail - p)) (5.0 * sqrt (p / float n)) "tail mass"

            // Kolmogorov-Smirnov at 1e6 draws: the 0.1% critical value is 1.95/sqrt(n).
            testCase "ziggurat normals pass Kolmogorov-Smirnov against Phi"
            <| fun () ->
                let r = Rng(12, 3)
                let n = 1_000_000
                let xs = Array.init n (fun _ -> r.NextNormal()) |> Array.sort

                let d =
                    xs
                    |> Array.mapi (fun i x ->
                        max (abs (float (i + 1) / float n - normalCdf x)) (abs (float i / float n - normalCdf x)))
                    |> Array.max

                Expect.isLessThan d (1.95 / sqrt (float n)) "KS statistic"

            testCase "uniforms: moments, and the open interval stays open"
            <| fun () ->
                let r = Rng(13)
                let n = 1_000_000
                let us = Array.init n (fun _ -> r.NextDouble())
                Expect.isLessThan (abs (Array.average us - 0.5)) (5.0 * sqrt (1.0 / 12.0 / float n)) "mean 1/2"
                Expect.isTrue (us |> Array.forall (fun u -> u >= 0.0 && u < 1.0)) "[0, 1)"

                Expect.isTrue
                    (Seq.init 100_000 (fun _ -> r.NextOpenDouble())
                     |> Seq.forall (fun u -> u > 0.0 && u < 1.0))
                    "(0, 1)"

            testCase "a (seed, stream) pair is reproducible and streams are independent"
            <| fun () ->
                let draw (seed: int) (stream: int) =
                    let r = Rng(seed, stream) in Array.init 100_000 (fun _ -> r.NextNormal())

                Expect.equal (draw 5 2) (draw 5 2) "same seed and stream, same numbers"
                let a, b = draw 5 2, draw 5 3
                let corr = Array.fold2 (fun s x y -> s + x * y) 0.0 a b / float a.Length
                Expect.isLessThan (abs corr) (5.0 / sqrt (float a.Length)) "neighbouring streams uncorrelated"
        ]
