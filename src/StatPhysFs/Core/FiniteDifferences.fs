namespace StatPhysFs

/// Derivatives of vector functions by finite differences, for functions written in place: `f x fx` fills fx.
[<RequireQualifiedAccess>]
module FiniteDifferences =
    /// Jacobian J[r, c] = d f_r / d x_c by central differences, step 1e-6 (1 + |x_c|): error O(1e-12) relative for
    /// smooth f (2 n evaluations); `progress` receives the fraction of columns done.
    [<CompiledName("Jacobian")>]
    let jacobian (progress: float -> unit) (f: float[] -> float[] -> unit) (x: float[]) =
        let n = x.Length
        let j = Array2D.zeroCreate n n
        let xp = Array.copy x
        let fp = Array.zeroCreate n
        let fm = Array.zeroCreate n

        for c in 0 .. n - 1 do
            let h = 1e-6 * (1.0 + abs x[c])
            xp[c] <- x[c] + h
            f xp fp
            xp[c] <- x[c] - h
            f xp fm
            xp[c] <- x[c]

            for r in 0 .. n - 1 do
                j[r, c] <- (fp[r] - fm[r]) / (2.0 * h)

            progress (float (c + 1) / float n)

        j
