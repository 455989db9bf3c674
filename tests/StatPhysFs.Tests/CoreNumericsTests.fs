module StatPhysFs.Tests.CoreNumericsTests

open System
open System.Numerics
open System.Threading
open Expecto
open FsCheck
open FsCheck.FSharp
open StatPhysFs
open StatPhysFs.Tests.Prop

/// The radical inverse by its definition, in exact rational arithmetic: i = sum_k d_k b^k maps to
/// sum_k d_k b^-(k+1), rounded once to a double at the end.
let private radicalInverseExact (b: int) (i: int) =
    let mutable num = BigInteger.Zero
    let mutable den = BigInteger.One
    let mutable k = i

    while k > 0 do
        num <- num * BigInteger b + BigInteger(k % b)
        den <- den * BigInteger b
        k <- k / b

    float num / float den

let private isPrime n =
    n >= 2 && Seq.forall (fun d -> n % d <> 0) (seq { 2 .. int (sqrt (float n)) })

let private throwsNaming (name: string) (f: unit -> 'a) msg =
    try
        f () |> ignore
        failtestf "%s: no exception" msg
    with :? ArgumentException as e ->
        Expect.stringContains e.Message name (sprintf "%s: the message names %s" msg name)

[<Tests>]
let tests =
    testList
        "core numerics"
        [
            testCase "Halton: radical inverses equal the digit-mirror definition (exact rationals), bases are primes"
            <| fun () ->
                // Hand values: 6 = 110_2 -> 0.011_2 = 3/8; 5 = 12_3 -> 0.21_3 = 7/9; 0 -> 0.
                Expect.equal (Halton.radicalInverse 2 6) 0.375 "phi_2(6)"
                expectClose 1e-15 (Halton.radicalInverse 3 5) (7.0 / 9.0) "phi_3(5)"
                Expect.equal (Halton.radicalInverse 7 0) 0.0 "phi_b(0)"

                for b in Halton.primes do
                    for i in [ 1..200 ] @ [ 4095; 65_537; 1 <<< 20; Int32.MaxValue ] do
                        expectClose
                            1e-15
                            (Halton.radicalInverse b i)
                            (radicalInverseExact b i)
                            (sprintf "b=%d i=%d" b i)

                Expect.equal Halton.primes.Length 30 "30 bases"
                Expect.isTrue (Array.forall isPrime Halton.primes) "every base is prime"

                Expect.equal
                    (Array.toList Halton.primes)
                    ([ 2..113 ] |> List.filter isPrime)
                    "the first 30 primes, in order"

                let p = Halton.point 5 123
                Expect.equal p (Array.init 5 (fun j -> Halton.radicalInverse Halton.primes[j] 123)) "point = inverses"
                throwsNaming "dimension" (fun () -> Halton.point 31 1) "dimension 31"

            testCase "Halton: equidistributed, the integral of x y z over the cube to O(log^3 N / N)"
            <| fun () ->
                let n = 20_000

                let s =
                    Seq.sum (seq { for i in 1..n -> Array.fold (*) 1.0 (Halton.point 3 i) })
                    / float n
                // Koksma-Hlawka: error <= V(f) D*_N, D*_N ~ (log N)^3 / N ~ 5e-2 at worst; observed far smaller.
                Expect.isLessThan (abs (s - 0.125)) 1e-3 "E[x y z] = 1/8"

            testCase "Brent (MathNet): closed-form roots, None without a sign change"
            <| fun () ->
                expectClose 1e-12 (RootFinding.tryBrent 1e-14 (fun x -> x * x - 2.0) 0.0 2.0).Value (sqrt 2.0) "sqrt 2"
                expectClose 1e-12 (RootFinding.tryBrent 1e-14 (fun x -> exp x - 3.0) -5.0 5.0).Value (log 3.0) "ln 3"
                expectClose 1e-12 (RootFinding.tryBrent 1e-14 cos 0.0 3.0).Value (Math.PI / 2.0) "pi/2"
                Expect.isNone (RootFinding.tryBrent 1e-12 (fun x -> x * x + 1.0) -1.0 1.0) "x^2 + 1 has no root"
                throwsNaming "hi" (fun () -> RootFinding.tryBrent 1e-12 id 1.0 0.0) "hi < lo"

            testCase "Illinois: closed-form roots to 1e-13 in fewer evaluations than bisection; bad brackets named"
            <| fun () ->
                let mutable evals = 0

                let f x =
                    evals <- evals + 1
                    x * x * x - 2.0

                let r = RootFinding.illinois 1e-13 ignore f (0.5, f 0.5) (4.0, f 4.0)
                expectClose 1e-13 r (Math.Cbrt 2.0) "cbrt 2"
                // Bisection from width 3.5 to 1e-13 takes 45 halvings.
                Expect.isLessThan evals 30 (sprintf "evaluations %d" evals)
                // Steep and flat: tanh(20 (x - 0.3)) - crossing at 0.3.
                let g x = tanh (20.0 * (x - 0.3))
                expectClose 1e-12 (RootFinding.illinois 1e-13 ignore g (0.0, g 0.0) (1.0, g 1.0)) 0.3 "tanh root"
                let mutable last = 0

                RootFinding.illinois 1e-13 (fun i -> last <- i) g (0.0, g 0.0) (1.0, g 1.0)
                |> ignore

                Expect.isGreaterThan last 0 "iterations reported"
                throwsNaming "lo" (fun () -> RootFinding.illinois 1e-13 ignore f (2.0, f 2.0) (4.0, f 4.0)) "f(lo) > 0"
                throwsNaming "hi" (fun () -> RootFinding.illinois 1e-13 ignore f (0.0, f 0.0) (1.0, f 1.0)) "f(hi) < 0"

            testCase "Newton: a 2-D system with a closed-form root; None where there is no root"
            <| fun () ->
                // x^2 + y^2 = 4, x = y: (sqrt 2, sqrt 2).
                let f (v: float[]) (fv: float[]) =
                    fv[0] <- v[0] * v[0] + v[1] * v[1] - 4.0
                    fv[1] <- v[0] - v[1]

                let r = (RootFinding.newton 1e-12 f [| 1.0; 0.5 |]).Value
                expectClose 1e-12 r[0] (sqrt 2.0) "x"
                expectClose 1e-12 r[1] (sqrt 2.0) "y"
                // x^2 + 1 = 0 has no real root: the damped iteration cannot reduce |f| below 1.
                let h (v: float[]) (fv: float[]) = fv[0] <- v[0] * v[0] + 1.0
                Expect.isNone (RootFinding.newton 1e-12 h [| 0.7 |]) "no root"

            testCase "finite-difference Jacobian against the analytic one"
            <| fun () ->
                let f (v: float[]) (fv: float[]) =
                    fv[0] <- v[0] * v[0] * v[1]
                    fv[1] <- sin v[0] + v[1] * v[1] * v[1]

                let x, y = 0.7, -1.3
                let j = FiniteDifferences.jacobian ignore f [| x; y |]
                let exact = array2D [ [ 2.0 * x * y; x * x ]; [ cos x; 3.0 * y * y ] ]

                for r in 0..1 do
                    for c in 0..1 do
                        expectClose 1e-9 j[r, c] exact[r, c] (sprintf "J[%d,%d]" r c)

            testCase "Richardson: order p removes the h^p term (slopes 2 and 4 on known expansions)"
            <| fun () ->
                // v(h) = (e^h - 1)/h = 1 + h/2 + h^2/6 + ...: one step leaves h^2 terms, error(h)/error(h/2) -> 4.
                let v h = (exp h - 1.0) / h

                let e1 h =
                    abs (Richardson.extrapolate 1 (v h) (v (h / 2.0)) - 1.0)

                expectClose 0.05 (log (e1 0.1 / e1 0.05) / log 2.0) 2.0 "order-1 combination: second order"
                // w(h) = sin(h)/h = 1 - h^2/6 + h^4/120: even powers only, so order 2 leaves h^4 terms.
                let w h = sin h / h

                let e2 h =
                    abs (Richardson.extrapolate 2 (w h) (w (h / 2.0)) - 1.0)

                expectClose 0.05 (log (e2 0.4 / e2 0.2) / log 2.0) 4.0 "order-2 combination: fourth order"
                // Exactly 2 F - C at order 1 (the same arithmetic as the callers had).
                Expect.equal (Richardson.extrapolate 1 0.3 0.7) (2.0 * 0.7 - 0.3) "2 F - C bitwise"

            testCase "Richardson: the standard error of 2 F - C matches the spread of simulated independent estimates"
            <| fun () ->
                let rng = Rng(5, 3)
                let sc, sf = 0.4, 0.3
                let n = 200_000
                let xs = Array.init n (fun _ -> 2.0 * sf * rng.NextNormal() - sc * rng.NextNormal())
                let sd = sqrt (Array.averageBy (fun x -> x * x) xs)
                // The sample sd has relative error 1/sqrt(2n) = 1.6e-3; 5 of them.
                expectClose 8e-3 sd (Richardson.stdErr sc sf) "sd of 2F - C"

                let e =
                    Richardson.ofEstimates
                        { Mean = 1.0; StdErr = sc; Count = 10 }
                        { Mean = 2.0; StdErr = sf; Count = 20 }

                Expect.equal (e.Mean, e.Count) (3.0, 30) "mean 2F - C, count of both"

            testCase "step counts: whole multiples survive roundoff; zero and overflow are named errors"
            <| fun () ->
                // 0.3 / 0.1 = 2.9999999999999996 and 0.7 / 0.1 = 6.999999999999999 in doubles.
                Expect.equal (Steps.count "horizon" 0.3 "eta" 0.1) 3 "0.3 / 0.1"
                Expect.equal (Steps.count "horizon" 0.7 "eta" 0.1) 7 "0.7 / 0.1"
                Expect.equal (Steps.count "horizon" 1.0 "eta" 0.3) 3 "floor, not round: 3.33"
                Expect.equal (Steps.count "horizon" 1.0 "eta" 0.4) 2 "floor, not round: 2.5"
                Expect.equal (Steps.count "horizon" 1.0 "eta" 1.0) 1 "one step"
                Expect.equal (Steps.count "t" (float Int32.MaxValue) "dt" 1.0) Int32.MaxValue "int max fits"
                throwsNaming "horizon" (fun () -> Steps.count "horizon" 0.5 "eta" 1.0) "horizon < eta"
                throwsNaming "eta" (fun () -> Steps.count "horizon" 0.5 "eta" 1.0) "message names eta too"
                throwsNaming "t-end" (fun () -> Steps.count "t-end" 1e10 "dt" 1e-3) "1e13 steps"
                throwsNaming "dt" (fun () -> Steps.count "t-end" 1.0 "dt" 0.0) "dt = 0"
                throwsNaming "t-end" (fun () -> Steps.count "t-end" nan "dt" 0.1) "NaN horizon"

            testCase "ensemble: the same numbers at 1, 2 and 4 threads; member i draws from Rng(seed, i)"
            <| fun () ->
                let member' i (tick: int64 -> unit) =
                    let rng = Rng(9, i)
                    let mutable s = 0.0

                    for k in 1..1000 do
                        s <- s + rng.NextNormal()

                        if k % 100 = 0 then
                            tick 100L

                    s

                let at p =
                    Ensemble.run p CancellationToken.None ignore 16000.0 16 member'

                let one = at 1
                Expect.equal (at 2) one "2 threads"
                Expect.equal (at 4) one "4 threads"
                // Oracle for the streams: sequential draws, member by member.
                let direct =
                    Array.init 16 (fun i -> let r = Rng(9, i) in Seq.sum (seq { for _ in 1..1000 -> r.NextNormal() }))

                Expect.equal one direct "streams (seed, i)"

                let sampled p =
                    Ensemble.sample p CancellationToken.None 4 1000 8 (fun i rng -> float i + rng.NextDouble())

                Expect.equal (sampled 3) (sampled 1) "sample: thread count"
                Expect.equal (sampled 1) (Array.init 8 (fun i -> float i + Rng(4, 1000 + i).NextDouble())) "offset"

            testCase "ensemble: progress reaches 1; a cancelled token stops it with OperationCanceledException"
            <| fun () ->
                let mutable last = 0.0

                Ensemble.run 2 CancellationToken.None (fun f -> last <- max last f) 40.0 4 (fun _ tick ->
                    for _ in 1..10 do
                        tick 1L)
                |> ignore

                Expect.equal last 1.0 "progress 1"
                use cts = new CancellationTokenSource()

                let run () =
                    Ensemble.run 2 cts.Token ignore 1e9 8 (fun i tick ->
                        for k in 1..1_000_000 do
                            if i = 0 && k = 10 then
                                cts.Cancel()

                            tick 1L)

                Expect.throwsT<OperationCanceledException> (run >> ignore) "cancelled mid-run"

                throwsNaming
                    "max parallelism"
                    (fun () -> Ensemble.run 0 CancellationToken.None ignore 1.0 1 (fun _ _ -> 0))
                    "0"

            testProp "chunked loop: every index runs exactly once, at any parallelism, with one state per thread" 100
            <| fun (count: int) (par: int) ->
                let count = abs count % 300
                let par = 1 + abs par % 6
                let hits: int[] = Array.zeroCreate count
                let states = Collections.Concurrent.ConcurrentBag<int[]>()

                Chunked.forWith
                    par
                    CancellationToken.None
                    count
                    (fun () ->
                        let st = [| 0 |]
                        states.Add st
                        st)
                    (fun st i ->
                        st[0] <- st[0] + 1
                        Interlocked.Increment(&hits[i]) |> ignore)

                Array.forall ((=) 1) hits
                && states.Count <= min par (max count 1)
                && (states |> Seq.sumBy (fun st -> st[0])) = count

            testCase
                "chunked loop: a body's exception comes out unwrapped; cancellation ends in OperationCanceledException"
            <| fun () ->
                let boom () =
                    Chunked.forEach 4 CancellationToken.None 1000 (fun i ->
                        if i = 517 then
                            invalidArg "x" "index 517")

                Expect.throwsT<ArgumentException> boom "the body's own exception type, not AggregateException"
                use cts = new CancellationTokenSource()
                let ran = ref 0

                let cancelled () =
                    Chunked.forEach 2 cts.Token 100_000 (fun i ->
                        if i = 10 then
                            cts.Cancel()

                        Interlocked.Increment(&ran.contents) |> ignore)

                Expect.throwsT<OperationCanceledException> cancelled "cancelled"
                // Indices already claimed when the token flips still run: at most a few per thread.
                Expect.isLessThan ran.Value 100 "the rest are skipped"

            testCase "chunked loop: a cancellation or a failure skips the remaining indices at once, not one by one"
            <| fun () ->
                // 10^8 indices: skipping them one claim at a time takes seconds (it was ~0.4 s per 10^7 Monte Carlo
                // paths); the loop must end a few indices after the stop, in milliseconds.
                let count = 100_000_000

                for par in [ 1; 2; 4 ] do
                    use cts = new CancellationTokenSource()
                    let ran = ref 0
                    let stopped = Diagnostics.Stopwatch()

                    Expect.throwsT<OperationCanceledException>
                        (fun () ->
                            Chunked.forEach par cts.Token count (fun i ->
                                if Interlocked.Increment(&ran.contents) = 1000 then
                                    stopped.Start()
                                    cts.Cancel())
                            |> ignore)
                        "cancelled"

                    let ms = stopped.Elapsed.TotalMilliseconds
                    Expect.isLessThan ran.Value 1100 (sprintf "parallelism %d: the rest skipped" par)
                    // Tolerance: ~10^3 below the one-by-one skip, well above scheduling noise on a loaded machine.
                    Expect.isLessThan ms 100.0 (sprintf "parallelism %d: ended %.1f ms after the cancellation" par ms)

                    let failedAt = Diagnostics.Stopwatch()

                    let fail () =
                        Chunked.forEach par CancellationToken.None count (fun i ->
                            if i = 2000 then
                                failedAt.Start()
                                invalidOp "index 2000")

                    Expect.throwsT<InvalidOperationException> fail "the body's exception"
                    let ms = failedAt.Elapsed.TotalMilliseconds
                    Expect.isLessThan ms 100.0 (sprintf "parallelism %d: ended %.1f ms after the failure" par ms)

            // Sequenced: it blocks every pool thread, which would stall the timers and tasks of tests running beside it
            // (a CancellationTokenSource(100) then fired seconds late in the Monte Carlo cancellation test).
            testSequenced
            <| testCase "chunked loop: does not wait for the thread pool (all pool threads blocked)" (fun () ->
                // Block every pool thread the pool will give without its ~0.5 s injection delay, then run a loop
                // that asks for 4 workers: the caller must do the work alone, at once. (Parallel.For waits for the
                // replicas it queued, here for thread injection.)
                let minWorkers, _ = ThreadPool.GetMinThreads()
                // Not disposed: blockers the pool starts later still read it.
                let release = new ManualResetEventSlim(false)
                let blockers = minWorkers + 4
                let started = ref 0

                for _ in 1..blockers do
                    ThreadPool.UnsafeQueueUserWorkItem(
                        (fun _ ->
                            Interlocked.Increment(&started.contents) |> ignore
                            release.Wait()),
                        null
                    )
                    |> ignore

                try
                    let sw = Diagnostics.Stopwatch.StartNew()
                    let out = Array.zeroCreate 64
                    Chunked.forEach 4 CancellationToken.None 64 (fun i -> out[i] <- i * i)
                    let ms = sw.Elapsed.TotalMilliseconds
                    Expect.equal out (Array.init 64 (fun i -> i * i)) "all indices done"
                    // Tolerance: far below the pool's injection interval (500 ms), well above scheduling noise.
                    Expect.isLessThan ms 200.0 (sprintf "finished in %.1f ms with the pool blocked" ms)
                finally
                    release.Set())

            testCase "batch sampler: without replacement every epoch is a permutation; with replacement uniform"
            <| fun () ->
                let n = 7
                let s = BatchSampler(WithoutReplacement, n, Rng(3, 2))
                let firsts = Array.zeroCreate n

                for _ in 1..7000 do
                    let epoch = Array.init n (fun _ -> s.Next())
                    Expect.equal (Array.sort epoch) (Array.init n id) "a permutation"
                    firsts[epoch[0]] <- firsts[epoch[0]] + 1
                // Each index opens an epoch with probability 1/7: counts 1000 +- 5 sd (sd = 30).
                for c in firsts do
                    Expect.isLessThan (abs (float c - 1000.0)) 150.0 "uniform first index"

                let w = BatchSampler(WithReplacement, n, Rng(3, 4))
                let counts = Array.zeroCreate n

                for _ in 1..70_000 do
                    let i = w.Next()
                    counts[i] <- counts[i] + 1

                for c in counts do
                    Expect.isLessThan (abs (float c - 10_000.0)) 460.0 "uniform (5 sd)"

                throwsNaming "n" (fun () -> BatchSampler(WithReplacement, 0, Rng(1))) "n = 0"
        ]

/// Bisection with illinoisBracket's side rule (a point strictly of f(lo)'s sign replaces lo, any other replaces hi):
/// the oracle bracket, halved until it is below `width`.
let private bisectBracket (f: float -> float) (lo: float) (hi: float) (width: float) =
    let positive = f lo > 0.0
    let mutable lo, hi = lo, hi
    let mutable n = 0

    while abs (hi - lo) > width && n < 2000 do
        let m = 0.5 * (lo + hi)

        if (if positive then f m > 0.0 else f m < 0.0) then
            lo <- m
        else
            hi <- m

        n <- n + 1

    lo, hi

[<Tests>]
let illinoisBracket =
    // Random strictly monotone f (linear, cubic with a small linear part, steep tanh, exp - 1), rising or falling,
    // its root anywhere in a bracket of width 1e-3..1e2 centred up to 1e4 from 0 (or near 0), the ends in either
    // x-order, with f(hi) = 0 exactly in one case in eight (an event that lands on the step's end); absolute
    // tolerance 0 or 1e-16..1e-6, relative 1e-15..1e-6 (at least a few ulps of hi).
    let case (seed: int) =
        let rng = Rng(seed, 23)
        let u () = rng.NextDouble()

        let centre =
            if u () < 0.25 then
                0.0
            else
                (2.0 * u () - 1.0) * 10.0 ** (4.0 * u ())

        let w = 10.0 ** (-3.0 + 5.0 * u ())
        let a = centre - w * u ()
        let b = a + w
        let root = a + w * (0.001 + 0.998 * u ())
        let dir = if u () < 0.5 then 1.0 else -1.0
        let scale = 10.0 ** (-3.0 + 6.0 * u ())
        let steep = 10.0 ** (-1.0 + 3.0 * u ()) / w

        let h: float -> float =
            match int (4.0 * u ()) with
            | 0 -> fun x -> x
            | 1 -> fun x -> x * x * x + 1e-3 * w * w * x
            | 2 -> fun x -> tanh (steep * x)
            | _ -> fun x -> Special.expm1 (steep * x)

        let f x = dir * scale * h (x - root)
        let lo, hi = if u () < 0.5 then a, b else b, a
        // f(hi) = 0 exactly: hi at the root itself.
        let hi = if u () < 0.125 then root else hi
        let absTol = if u () < 0.3 then 0.0 else 10.0 ** (-16.0 + 10.0 * u ())
        let relTol = 10.0 ** (-15.0 + 9.0 * u ())
        f, lo, hi, absTol, relTol

    testList
        "RootFinding.illinoisBracket"
        [
            testProp "brackets the sign change to the tolerance, where bisection finds it, both directions" 500
            <| Prop.forAll (Arb.fromGen seeds) (fun s ->
                let f, lo0, hi0, absTol, relTol = case s
                let flo, fhi = f lo0, f hi0

                let lo, hi =
                    RootFinding.illinoisBracket absTol relTol ignore f (lo0, flo) (hi0, fhi)

                let tol = absTol + relTol * abs hi

                let onLoSide x =
                    if flo > 0.0 then f x > 0.0 else f x < 0.0
                // The bracket: lo strictly of f(lo0)'s sign, hi zero or past it, both within the first bracket.
                Expect.isTrue (onLoSide lo) $"f(lo) keeps the sign of f(lo0) (seed %d{s})"
                Expect.isFalse (onLoSide hi) $"f(hi) is zero or of the other sign (seed %d{s})"
                let inFirst x = x >= min lo0 hi0 && x <= max lo0 hi0
                Expect.isTrue (inFirst lo && inFirst hi) $"inside the first bracket (seed %d{s})"
                Expect.isLessThanOrEqual (abs (hi - lo)) tol $"converged: |hi - lo| = %g{abs (hi - lo)} (seed %d{s})"

                if fhi = 0.0 then
                    Expect.equal hi hi0 $"f(hi) = 0: hi stays the root (seed %d{s})"

                // Oracle: bisection to a quarter of the tolerance; f is monotone, so both brackets hold the one sign
                // change and their far ends are within the sum of their widths.
                let blo, bhi = bisectBracket f lo0 hi0 (0.25 * tol)

                Expect.isLessThanOrEqual
                    (abs (hi - bhi))
                    (abs (hi - lo) + abs (bhi - blo))
                    $"hi = %.17g{hi}, bisection %.17g{bhi} (seed %d{s})")

            testCase "a few evaluations where bisection takes ~45, both directions; bad brackets named"
            <| fun () ->
                for dir in [ 1.0; -1.0 ] do
                    let mutable evals = 0

                    let f x =
                        evals <- evals + 1
                        dir * (x * x * x - 2.0)

                    let lo, hi =
                        RootFinding.illinoisBracket 0.0 1e-13 ignore f (0.5, f 0.5) (4.0, f 4.0)

                    Expect.isTrue (lo <= Math.Cbrt 2.0 + 1e-15 && hi >= Math.Cbrt 2.0 - 1e-15) "cbrt 2 bracketed"
                    Expect.isLessThan evals 20 $"evaluations %d{evals} (dir %g{dir})"

                throwsNaming
                    "lo"
                    (fun () -> RootFinding.illinoisBracket 0.0 1e-13 ignore id (0.0, 0.0) (1.0, 1.0))
                    "f(lo) = 0"

                throwsNaming
                    "hi"
                    (fun () -> RootFinding.illinoisBracket 0.0 1e-13 ignore id (1.0, 1.0) (2.0, 2.0))
                    "same sign"

                throwsNaming
                    "relTol"
                    (fun () -> RootFinding.illinoisBracket 0.0 -1.0 ignore id (-1.0, -1.0) (2.0, 2.0))
                    "relTol < 0"
        ]
