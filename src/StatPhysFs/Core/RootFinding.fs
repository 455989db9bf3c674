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

    /// The final bracket (lo, hi) of a sign change of f, for either direction of crossing: f(lo) = flo is nonzero, and
    /// f(hi) = fhi is zero or of the other sign. A trial point where f has the sign of flo replaces lo; any other (f
    /// zero or of the other sign) replaces hi, so hi stays at or past the crossing (an event's time: the first point
    /// where f has left the sign of flo) and lo strictly before it. The Illinois variant of regula falsi (superlinear
    /// where f is smooth; the stale end's value is halved when the same end survives twice), with a bisection every
    /// third step unless the bracket has halved meanwhile (and whenever the secant falls outside), until
    /// |hi - lo| <= absTol + relTol |hi| (absTol for brackets near x = 0, relTol for large x) or 200 iterations. One
    /// evaluation of f per iteration, never at lo or hi; `iteration i` is called after each. lo may lie on either side
    /// of hi. ~10 evaluations to 1e-13 where bisection takes ~45: for an f costly to evaluate (an eigen-decomposition,
    /// an ODE's dense output and observable). Fails, naming lo or hi, when the bracket has no sign change.
    [<CompiledName("IllinoisBracket")>]
    let illinoisBracket
        (absTol: float)
        (relTol: float)
        (iteration: int -> unit)
        (f: float -> float)
        (lo: float, flo: float)
        (hi: float, fhi: float)
        =
        Check.nonNegative "absTol" absTol
        Check.nonNegative "relTol" relTol
        Check.finite "lo" lo
        Check.finite "hi" hi
        Check.that "lo" (flo <> 0.0 && not (Double.IsNaN flo)) "the function must be nonzero at lo."

        Check.that
            "hi"
            (fhi = 0.0 || (fhi > 0.0 && flo < 0.0) || (fhi < 0.0 && flo > 0.0))
            "the function must be zero at hi or of the other sign than at lo."

        let positive = flo > 0.0
        // Strictly of lo's sign; zero, the other sign and NaN are past the crossing.
        let onLoSide g = if positive then g > 0.0 else g < 0.0
        let mutable lo = lo
        let mutable glo = flo
        let mutable hi = hi
        let mutable ghi = fhi
        let mutable side = 0
        let mutable width = abs (hi - lo)
        let mutable i = 0

        while i < 200 && abs (hi - lo) > absTol + relTol * abs hi do
            i <- i + 1
            let secant = hi - ghi * (hi - lo) / (ghi - glo)
            let inside = secant > min lo hi && secant < max lo hi
            let bisect = (i % 3 = 0 && abs (hi - lo) > 0.5 * width) || not inside

            if i % 3 = 0 then
                width <- abs (hi - lo)

            let m = if bisect then 0.5 * (lo + hi) else secant
            let g = f m

            if onLoSide g then
                lo <- m
                glo <- g

                if side = -1 then
                    ghi <- 0.5 * ghi

                side <- -1
            else
                hi <- m
                ghi <- g

                if side = 1 then
                    glo <- 0.5 * glo

                side <- 1

            iteration i

        lo, hi

    /// The crossing of an increasing sign change, f(lo) = flo < 0 < f(hi) = fhi, to `relTol` relative in x: the
    /// midpoint of the final bracket of illinoisBracket (no absolute tolerance). Fails, naming lo or hi, when the
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
        let lo, hi = illinoisBracket 0.0 relTol iteration f (lo, flo) (hi, fhi)
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
