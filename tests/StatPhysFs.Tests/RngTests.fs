module StatPhysFs.Tests.RngTests

open System
open System.Runtime.Intrinsics
open Expecto
open StatPhysFs

let private normalCdf x =
    MathNet.Numerics.Distributions.Normal.CDF(0.0, 1.0, x)

/// Mean 0, variance 1 and fourth moment 3 within 5 standard errors (1/sqrt n, sqrt(2/n), sqrt(96/n)), and the mass
/// beyond each edge, 2 (1 - Phi(edge)), within 5 binomial standard errors.
let private expectStandardNormal (xs: float[]) (edges: float list) =
    let n = xs.Length
    let sn = sqrt (float n)
    Expect.isLessThan (abs (Array.average xs)) (5.0 / sn) "mean 0"
    Expect.isLessThan (abs ((xs |> Array.averageBy (fun x -> x * x)) - 1.0)) (5.0 * sqrt 2.0 / sn) "variance 1"

    Expect.isLessThan (abs ((xs |> Array.averageBy (fun x -> pown x 4)) - 3.0)) (5.0 * sqrt 96.0 / sn) "fourth moment 3"

    for edge in edges do
        let p = 2.0 * (1.0 - normalCdf edge)

        let tail =
            float (xs |> Array.filter (fun x -> abs x > edge) |> Array.length) / float n

        Expect.isLessThan (abs (tail - p)) (5.0 * sqrt (p / float n)) $"tail mass beyond {edge}"

/// Box-Muller by the system's libm, from the two words of a pair as documented on `BoxMuller`: u1 = 2 - 1.m with m the
/// top 52 bits of ra; u2 = (o + f)/8 with the octant o the top 3 bits of rb and f the next 52 (integer arithmetic here,
/// bit tricks there). Returns r, r cos(2 pi u2), r sin(2 pi u2), the angle split at the octant's start.
let private boxMullerOracle (ra: uint64) (rb: uint64) =
    let u1 = 2.0 - BitConverter.UInt64BitsToDouble((ra >>> 12) ||| 0x3FF0000000000000UL)
    let o = float (rb >>> 61)
    let f = float ((rb >>> 9) &&& ((1UL <<< 52) - 1UL)) / 4503599627370496.0
    let a, b = o * Math.PI / 4.0, f * Math.PI / 4.0
    let r = sqrt (-2.0 * log u1)
    r, r * (cos a * cos b - sin a * sin b), r * (sin a * cos b + cos a * sin b)

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
                // The base layer's tail beyond r = 3.4426 is sampled separately: its mass must be 2 (1 - Phi(r)).
                expectStandardNormal xs [ 3.442619855899 ]

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

            // The expected outputs come from an independent computation (tests/oracles/xoshiro_jump.py): the xoshiro256**
            // transition written as a 256 x 256 matrix over GF(2) and raised to 2^128 by 128 squarings, applied to the
            // SplitMix64-seeded state of Rng(5, 2). It pins the jump polynomial's constants.
            testCase "the 2^128 jump matches the transition matrix raised to 2^128 over GF(2)"
            <| fun () ->
                let r = Rng(5, 2)
                let fresh = Rng(5, 2)
                Expect.equal (fresh.NextUInt64()) 0x11b9865ad5d1b393UL "seeding as in the oracle"
                r.Jump()
                let once = r.State
                Expect.equal (r.NextUInt64()) 0xdd2deb1c9f568b88UL "one jump"
                r.State <- once
                r.Jump()
                Expect.equal (r.NextUInt64()) 0x8b227a84c2972c2eUL "two jumps"

            // 2e6 draws, as for the scalar ziggurat: mean, variance, fourth moment and the tail mass beyond 3 and 4 (the
            // radius's tail: u1 below 0.011 and 3.4e-4).
            testCase "SIMD block normals: moments and tail mass within their error bars"
            <| fun () ->
                let n = 2_000_000
                let xs = Array.zeroCreate n
                NormalBlock(Rng(11)).Fill(Span xs)
                expectStandardNormal xs [ 3.0; 4.0 ]

            // The 128-layer table's constants against the closed forms: the layer area v = r f(r) + sqrt(pi/2)
            // erfc(r/sqrt 2) (the base layer's rectangle plus the tail), and the top layer closing on it,
            // x[127] (1 - f(x[127])) = v. The recursion amplifies an error in r about 500-fold: the published 13-digit
            // r closes to 1.2e-9 (a layer-selection bias of 1e-11, far below any test); a wrong 10th digit fails.
            testCase "ziggurat table: layer area and the top layer's closing condition"
            <| fun () ->
                let f x = exp (-0.5 * x * x)
                let r, v = Ziggurat.r, Ziggurat.v

                let area =
                    r * f r
                    + sqrt (Math.PI / 2.0) * MathNet.Numerics.SpecialFunctions.Erfc(r / sqrt 2.0)

                Prop.expectClose 1e-9 v area "v"
                let x = Ziggurat.edges 128 r v
                Prop.expectClose 1e-8 (x[127] * (1.0 - f x[127]) / v) 1.0 "the top layer's area"

            // Each pair against Box-Muller by the system's libm on the same two words (the oracle's own error is under
            // 4e-16 r; 2e-15 r allows for both). Relative to the radius, so that the small radii near u1 = 1 (where
            // ln u1 must keep its relative accuracy) are checked as strictly as the large ones.
            Prop.testProp "Box-Muller pairs equal r (cos, sin) of the libm oracle within 2e-15 r, 512 and 256 bits" 300
            <| FsCheck.FSharp.Prop.forAll (FsCheck.FSharp.Arb.fromGen Prop.seeds) (fun seed ->
                let words = Rng(seed, 5)
                // Random words, then the edges: u1 = 1 (r = 0), u1 = 2^-52 (the largest radius), mantissas on either
                // side of sqrt 2, and the angle's octant and fraction at their ends.
                let cases =
                    [
                        yield! List.init 16 (fun _ -> words.NextUInt64(), words.NextUInt64())
                        0UL, 0UL
                        UInt64.MaxValue, UInt64.MaxValue
                        0x6A09E667F3BCC000UL, 0x2000000000000000UL
                        0x6A09E667F3BCD000UL, 0x1FFFFFFFFFFFFFFFUL
                        words.NextUInt64() >>> 40, words.NextUInt64() ||| 0xE000000000000000UL
                    ]

                cases
                |> List.forall (fun (ra, rb) ->
                    let r, c, s = boxMullerOracle ra rb
                    let ok (z: float) (e: float) = abs (z - e) <= 2e-15 * r

                    let struct (a, b) = BoxMuller.pair false ra rb
                    let struct (a5, b5) = BoxMuller.pair Vector512.IsHardwareAccelerated ra rb
                    ok a c && ok b s && a5 = a && b5 = b))

            // The layout: lane l (the parent jumped l + 1 times) gives, from its words 2g and 2g + 1, draws 16g + l
            // (r cos theta) and 16g + 8 + l (r sin theta).
            testCase "SIMD block normals: draw 16g + l and 16g + 8 + l are lane l's pair g"
            <| fun () ->
                let xs = Array.zeroCreate 200
                NormalBlock(Rng(9, 1)).Fill(Span xs)

                for l in 0..7 do
                    let lane = Rng(9, 1)

                    for _ in 0..l do
                        lane.Jump()

                    for g in 0 .. 200 / 16 - 1 do
                        let ra = lane.NextUInt64()
                        let r, c, s = boxMullerOracle ra (lane.NextUInt64())
                        Expect.isLessThanOrEqual (abs (xs[16 * g + l] - c)) (2e-15 * r) $"lane {l}, group {g}: cos"
                        Expect.isLessThanOrEqual (abs (xs[16 * g + 8 + l] - s)) (2e-15 * r) $"lane {l}, group {g}: sin"

            // Counts of |x| in 256 bins of equal probability (edges from the inverse of Phi) against n/256 each. 2e6
            // draws, 255 degrees of freedom: chi^2 has mean 255 and sd 22.6; 400 is 6.4 sd.
            testCase "SIMD block normals: counts in 256 equiprobable bins of |x| follow Phi (chi-square)"
            <| fun () ->
                let n = 2_000_000
                let xs = Array.zeroCreate n
                NormalBlock(Rng(21, 4)).Fill(Span xs)

                let edges =
                    Array.init 256 (fun k ->
                        MathNet.Numerics.Distributions.Normal.InvCDF(0.0, 1.0, 0.5 + 0.5 * float k / 256.0))

                let counts = Array.zeroCreate 256

                for x in xs do
                    let k = Array.BinarySearch(edges, abs x)
                    let bin = if k >= 0 then k else ~~~k - 1
                    counts[bin] <- counts[bin] + 1

                let e = float n / 256.0
                let chi2 = counts |> Array.sumBy (fun c -> (float c - e) ** 2.0 / e)
                Expect.isLessThan chi2 400.0 "chi-square over 256 equiprobable bins"

            // KS against Phi at 1e6 draws, and per lane (every eighth draw: a lane's cos and sin draws, 125000 each; the
            // 0.1% critical value 1.95/sqrt(n)), so a lane-specific defect (a bad jump, a wrong octant) cannot hide.
            testCase "SIMD block normals pass Kolmogorov-Smirnov, overall and lane by lane"
            <| fun () ->
                let n = 1_000_000
                let xs = Array.zeroCreate n
                NormalBlock(Rng(12, 3)).Fill(Span xs)

                let ks (ys: float[]) =
                    let ys = Array.sort ys
                    let m = float ys.Length

                    ys
                    |> Array.mapi (fun i x ->
                        max (abs (float (i + 1) / m - normalCdf x)) (abs (float i / m - normalCdf x)))
                    |> Array.max

                Expect.isLessThan (ks xs) (1.95 / sqrt (float n)) "KS statistic"

                for l in 0..7 do
                    let lane = Array.init (n / 8) (fun g -> xs[8 * g + l])
                    Expect.isLessThan (ks lane) (1.95 / sqrt (float lane.Length)) (sprintf "KS statistic of lane %d" l)

            testCase "SIMD block normals: neighbours and lanes uncorrelated"
            <| fun () ->
                let n = 800_000
                let xs = Array.zeroCreate n
                NormalBlock(Rng(14, 1)).Fill(Span xs)
                // Lags 1..16: within a group (different lanes), across groups, and the same lane one group on.
                for lag in 1..16 do
                    let c =
                        Seq.init (n - lag) (fun i -> xs[i] * xs[i + lag])
                        |> Seq.sum
                        |> fun s -> s / float (n - lag)

                    Expect.isLessThan (abs c) (5.0 / sqrt (float (n - lag))) (sprintf "lag %d" lag)

            testCase "SIMD block normals: one stream for any chunking, with or without Vector512; the parent unmoved"
            <| fun () ->
                let n = 100_003
                let whole = Array.zeroCreate n
                NormalBlock(Rng(5, 2)).Fill(Span whole)
                // Chunks of whole groups (random multiples of 16), then the remainder; the 256-bit form.
                let b = NormalBlock(Rng(5, 2))
                b.Vector512 <- false
                let chunked = Array.zeroCreate n
                let sizes = Rng(1)
                let mutable o = 0

                while o < n do
                    let len = min (16 * (1 + int (sizes.NextDouble() * 150.0))) (n - o)
                    b.Fill(Span(chunked, o, len))
                    o <- o + len

                Expect.equal chunked whole "same numbers"
                // A different seed or stream gives different numbers; the parent keeps its own stream.
                let other = Array.zeroCreate 64
                NormalBlock(Rng(5, 3)).Fill(Span other)
                Expect.notEqual other whole[0..63] "another stream"
                let parent = Rng(5, 2)
                NormalBlock(parent) |> ignore
                Expect.equal (parent.NextUInt64()) (Rng(5, 2).NextUInt64()) "the parent is where it was"
        ]
