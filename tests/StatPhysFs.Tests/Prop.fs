/// FsCheck 3 properties run as Expecto tests, and generators shared by the test files.
module StatPhysFs.Tests.Prop

open Expecto
open FsCheck
open FsCheck.FSharp
open StatPhysFs

/// FNV-1a of the test name: a stable per-test seed (string.GetHashCode is randomised per process).
let private stableHash (s: string) =
    let mutable h = 14695981039346656037UL

    for c in s do
        h <- (h ^^^ uint64 c) * 1099511628211UL

    h

/// The cases are reproducible: each property draws from a fixed seed derived from its name (and from
/// STATPHYS_FSCHECK_SEED, an integer, when set), so CI is deterministic. STATPHYS_FSCHECK_SEED=random explores
/// fresh cases on every run; a failure prints its replay seed either way.
let private replayFor (name: string) =
    match System.Environment.GetEnvironmentVariable "STATPHYS_FSCHECK_SEED" with
    | "random" -> None
    | v ->
        let salt =
            match System.UInt64.TryParse v with
            | true, n -> n
            | _ -> 0UL

        Some
            {
                Rnd = Rnd(stableHash name ^^^ (salt * 0x9E3779B97F4A7C15UL), 0x9E3779B97F4A7C15UL)
                Size = None
            }

/// A property test: FsCheck runs `maxTest` cases and throws (failing the Expecto test) with the counter-example.
let testProp (name: string) (maxTest: int) (property: 'a) =
    testCase name
    <| fun () -> Check.One(Config.QuickThrowOnFailure.WithMaxTest(maxTest).WithReplay(replayFor name), property)

/// Seeds for our own generator: the shrinkable FsCheck value is the seed, the object is built from it.
let seeds = Gen.choose (0, System.Int32.MaxValue - 1)

/// A random symmetric positive-definite d x d covariance, entries O(1), smallest eigenvalue >= 0.05.
let randomCov (d: int) (seed: int) =
    let rng = Rng(seed, 17)
    let a = Array2D.init d d (fun _ _ -> rng.NextNormal())
    let scale = 0.3 + 1.5 * rng.NextDouble()

    Array2D.init d d (fun i j ->
        let mutable s = 0.0

        for k in 0 .. d - 1 do
            s <- s + a[i, k] * a[j, k]

        scale * s / float d + (if i = j then 0.05 else 0.0))

/// A random covariance rescaled so that its largest eigenvalue lies in [0.2, 2]: order parameters of order one, where
/// fixed-order Gauss-Hermite on erf reaches ~1e-10 (measured: the quadrature error grows with the largest
/// eigenvalue, e.g. 3e-7 for I4 at order 24 when it is 4.3). Larger covariances need higher orders.
let moderateCov (d: int) (seed: int) =
    let c = randomCov d seed
    let top = Linalg.maxRealEigenvalue c
    let target = 0.2 + 1.8 * Rng(seed, 23).NextDouble()
    Array2D.map (fun x -> x * target / top) c

/// A random rank-r PSD d x d covariance (singular when r < d).
let randomSingularCov (d: int) (r: int) (seed: int) =
    let rng = Rng(seed, 29)
    let a = Array2D.init d r (fun _ _ -> rng.NextNormal())

    Array2D.init d d (fun i j ->
        let mutable s = 0.0

        for k in 0 .. r - 1 do
            s <- s + a[i, k] * a[j, k]

        s / float r)

let covArb d =
    Arb.fromGen (seeds |> Gen.map (randomCov d))

let moderateCovArb d =
    Arb.fromGen (seeds |> Gen.map (moderateCov d))

/// |a - b| <= tol * max(1, |b|): relative for large values, absolute near zero.
let close (tol: float) (a: float) (b: float) = abs (a - b) <= tol * max 1.0 (abs b)

let expectClose tol (a: float) (b: float) msg =
    if not (close tol a b) then
        failtestf "%s: %.17g vs %.17g (diff %.3g, tol %.3g)" msg a b (a - b) tol

/// Double factorial (k-1)!!, the k-th moment of a standard normal for even k.
let normalMoment (k: int) =
    if k % 2 = 1 then
        0.0
    else
        Seq.fold (fun s j -> s * float j) 1.0 (seq { k - 1 .. -2 .. 1 })

/// Runs `run` with a token that a dedicated thread cancels 100 ms in, expects OperationCanceledException, and returns
/// the seconds from the cancel to the exception: how long the code under test took to see the token. A
/// CancellationTokenSource(100) would time the harness instead: its timer fires on a thread-pool thread, which a
/// parallel test run can starve for seconds (it did, twice, in fresh-clone CI runs).
let secondsToObserveCancel (run: System.Threading.CancellationToken -> unit) =
    use cts = new System.Threading.CancellationTokenSource()
    let sw = System.Diagnostics.Stopwatch.StartNew()
    let mutable cancelledAt = System.TimeSpan.Zero

    let canceller =
        System.Threading.Thread(
            (fun () ->
                System.Threading.Thread.Sleep 100
                cancelledAt <- sw.Elapsed
                cts.Cancel()),
            IsBackground = true
        )

    canceller.Start()
    Expect.throwsT<System.OperationCanceledException> (fun () -> run cts.Token) "cancelled"
    let observed = sw.Elapsed
    canceller.Join()
    (observed - cancelledAt).TotalSeconds
