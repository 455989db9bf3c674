namespace StatPhysFs

open System

/// Roots of scalar and vector functions.
[<RequireQualifiedAccess>]
module RootFinding =
    /// A root of f in [lo, hi] by MathNet's Brent method (inverse quadratic interpolation guarded by bisection) to
    /// `accuracy` in f, or None when f does not change sign on [lo, hi] or the iterations run out.
    [<CompiledName("TryBrent")>]
    let tryBrent (accuracy: float) (f: float -> float) (lo: float) (hi: float) =
        Check.positive "accuracy" accuracy
        Check.finite "lo" lo
        Check.finite "hi" hi
        Check.that "hi" (hi > lo) ($"hi (%g{hi}) must be > lo (%g{lo}).")
        let mutable root = nan

        if MathNet.Numerics.RootFinding.Brent.TryFindRoot(Func<float, float> f, lo, hi, accuracy, 200, &root) then
            Some root
        else
            None

    /// The crossing of an increasing sign change, f(lo) = flo < 0 < f(hi) = fhi, to `relTol` relative in x: the
    /// Illinois variant of regula falsi (superlinear where f is smooth) with a bisection step whenever the bracket
    /// fails to halve, at most 100 iterations; `iteration i` is called after each. For an f costly to evaluate (an
    /// eigen-decomposition): ~10 evaluations to 1e-13 where bisection takes ~45. Fails, naming lo or hi, when the
    /// bracket has no sign change.
    [<CompiledName("Illinois")>]
    let illinois
        (relTol: float)
        (iteration: int -> unit)
        (f: float -> float)
        (lo: float, flo: float)
        (hi: float, fhi: float)
        =
        Check.that "lo" (flo < 0.0) "the function must be negative at lo."
        Check.that "hi" (fhi > 0.0) "the function must be positive at hi."
        let mutable lo = lo
        let mutable glo = flo
        let mutable hi = hi
        let mutable ghi = fhi
        let mutable i = 0
        let mutable side = 0

        while i < 100 && hi - lo > relTol * hi do
            let width = hi - lo
            let secant = (lo * ghi - hi * glo) / (ghi - glo)

            let m =
                if secant > lo && secant < hi then
                    secant
                else
                    0.5 * (lo + hi)

            let gm = f m

            if gm < 0.0 then
                lo <- m
                glo <- gm
                // Illinois: the retained end's value is halved when the same end survives twice.
                if side = -1 then
                    ghi <- 0.5 * ghi

                side <- -1
            else
                hi <- m
                ghi <- gm

                if side = 1 then
                    glo <- 0.5 * glo

                side <- 1

            // Guard: a step that kept more than half the bracket is followed by a bisection.
            if hi - lo > 0.5 * width && hi - lo > relTol * hi then
                let b = 0.5 * (lo + hi)
                let gb = f b

                if gb < 0.0 then
                    lo <- b
                    glo <- gb
                else
                    hi <- b
                    ghi <- gb

                side <- 0

            i <- i + 1
            iteration i

        0.5 * (lo + hi)

    /// A root of f: R^n -> R^n (written in place, `f x fx`) by damped Newton iteration from x0 with the
    /// finite-difference Jacobian, or None when it does not converge to |f| < tol in 100 iterations (or a step
    /// cannot reduce |f| by halving it down to 1e-6).
    [<CompiledName("Newton")>]
    let newton (tol: float) (f: float[] -> float[] -> unit) (x0: float[]) =
        let n = x0.Length
        let y = Array.copy x0
        let fy = Array.zeroCreate n
        let norm (v: float[]) = sqrt (Array.sumBy (fun x -> x * x) v)
        let mutable result = None
        let mutable iter = 0
        f y fy

        while result.IsNone && iter < 100 do
            iter <- iter + 1
            let fn = norm fy

            if fn < tol then
                result <- Some(Array.copy y)
            else
                let j = Linalg.ofArray2D (FiniteDifferences.jacobian ignore f y)

                let step =
                    j.Solve(MathNet.Numerics.LinearAlgebra.Vector<float>.Build.DenseOfArray fy).ToArray()
                // Backtracking: halve the Newton step until the residual decreases.
                let mutable lam = 1.0
                let mutable accepted = false
                let trial = Array.zeroCreate n
                let ft = Array.zeroCreate n

                while not accepted && lam > 1e-6 do
                    for i in 0 .. n - 1 do
                        trial[i] <- y[i] - lam * step[i]

                    f trial ft

                    if norm ft < fn && Array.forall Double.IsFinite ft then
                        accepted <- true
                    else
                        lam <- lam / 2.0

                if not accepted then
                    iter <- 1000
                else
                    Array.blit trial 0 y 0 n
                    Array.blit ft 0 fy 0 n

        result
