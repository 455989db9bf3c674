namespace StatPhysFs.Models

open System
open StatPhysFs
open StatPhysFs.Ode

/// Fixed points and their stability for any autonomous right-hand side.
[<RequireQualifiedAccess>]
module Analysis =
    /// Jacobian by central differences, step 1e-6 (1 + |y_i|): error O(1e-12) relative for smooth right-hand sides.
    [<CompiledName("Jacobian")>]
    let jacobian (rhs: Rhs) (y: float[]) =
        let n = y.Length
        let j = Array2D.zeroCreate n n
        let yp = Array.copy y
        let fp = Array.zeroCreate n
        let fm = Array.zeroCreate n

        for c in 0 .. n - 1 do
            let h = 1e-6 * (1.0 + abs y[c])
            yp[c] <- y[c] + h
            rhs 0.0 yp fp
            yp[c] <- y[c] - h
            rhs 0.0 yp fm
            yp[c] <- y[c]

            for r in 0 .. n - 1 do
                j[r, c] <- (fp[r] - fm[r]) / (2.0 * h)

        j

    /// Eigenvalues of the Jacobian at y, sorted by decreasing real part.
    [<CompiledName("Spectrum")>]
    let spectrum (rhs: Rhs) (y: float[]) =
        (Linalg.ofArray2D (jacobian rhs y)).Evd().EigenValues.ToArray()
        |> Array.sortByDescending (fun z -> z.Real)

    /// Largest real part of the Jacobian's eigenvalues: the growth rate of the least stable mode.
    [<CompiledName("GrowthRate")>]
    let growthRate (rhs: Rhs) (y: float[]) =
        let s = spectrum rhs y
        s[0].Real

    /// A fixed point by damped Newton iteration from y0, or None when it does not converge (|f| < tol).
    [<CompiledName("FixedPoint")>]
    let fixedPoint (tol: float) (rhs: Rhs) (y0: float[]) =
        let n = y0.Length
        let y = Array.copy y0
        let f = Array.zeroCreate n
        let norm (v: float[]) = sqrt (Array.sumBy (fun x -> x * x) v)
        let mutable result = None
        let mutable iter = 0
        rhs 0.0 y f

        while result.IsNone && iter < 100 do
            iter <- iter + 1
            let fn = norm f

            if fn < tol then
                result <- Some(Array.copy y)
            else
                let j = Linalg.ofArray2D (jacobian rhs y)

                let step =
                    j.Solve(MathNet.Numerics.LinearAlgebra.Vector<float>.Build.DenseOfArray f).ToArray()
                // Backtracking: halve the Newton step until the residual decreases.
                let mutable lam = 1.0
                let mutable accepted = false
                let trial = Array.zeroCreate n
                let ft = Array.zeroCreate n

                while not accepted && lam > 1e-6 do
                    for i in 0 .. n - 1 do
                        trial[i] <- y[i] - lam * step[i]

                    rhs 0.0 trial ft

                    if norm ft < fn && Array.forall Double.IsFinite ft then
                        accepted <- true
                    else
                        lam <- lam / 2.0

                if not accepted then
                    iter <- 1000
                else
                    Array.blit trial 0 y 0 n
                    Array.blit ft 0 f 0 n

        result

    /// The parameter value in [lo, hi] where `growth` changes sign from negative to positive, by bisection.
    [<CompiledName("Threshold")>]
    let threshold (growth: float -> float) (lo: float) (hi: float) =
        Check.that "lo" (growth lo < 0.0) "growth must be negative at lo."
        Check.that "hi" (growth hi > 0.0) "growth must be positive at hi."
        let mutable a = lo
        let mutable b = hi

        for _ in 1..60 do
            let m = 0.5 * (a + b)
            if growth m < 0.0 then a <- m else b <- m

        0.5 * (a + b)
