namespace StatPhysFs.Models

open System
open StatPhysFs
open StatPhysFs.Ode

/// Fixed points and their stability for any autonomous right-hand side.
[<RequireQualifiedAccess>]
module Analysis =
    /// Jacobian by central differences, step 1e-6 (1 + |y_i|): error O(1e-12) relative for smooth right-hand sides;
    /// reports the fraction of columns done.
    [<CompiledName("JacobianWithProgress")>]
    let jacobianWithProgress (progress: float -> unit) (rhs: Rhs) (y: float[]) =
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

            progress (float (c + 1) / float n)

        j

    /// Jacobian by central differences (see `jacobianWithProgress`).
    [<CompiledName("Jacobian")>]
    let jacobian (rhs: Rhs) (y: float[]) = jacobianWithProgress ignore rhs y

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

/// The early-stopping time: where an observable of the trajectory (a test error) has its lowest interior minimum.
[<RequireQualifiedAccess>]
module EarlyStopping =
    open StatPhysFs.Ode

    /// d g(y(t))/dt along the flow, by a central difference along f(t, y): g(y + h f) - g(y - h f) over 2h.
    let private rate (rhs: Rhs) (g: float[] -> float) =
        fun (t: float) (y: float[]) ->
            let f = Array.zeroCreate y.Length
            rhs t y f
            let scale = f |> Array.fold (fun s x -> max s (abs x)) 1e-300
            let h = 1e-6 / max 1.0 scale
            let yp = Array.init y.Length (fun i -> y[i] + h * f[i])
            let ym = Array.init y.Length (fun i -> y[i] - h * f[i])
            (g yp - g ym) / (2.0 * h)

    let private eventName = "minimum"

    /// The non-terminal event marking local minima of `observable` (its rate crossing zero upwards), to add to a
    /// solve the caller runs anyway, so the minimum costs no second integration.
    [<CompiledName("Event")>]
    let event (rhs: Rhs) (observable: float[] -> float) =
        {
            Name = eventName
            Observable = rate rhs observable
            Direction = Rising
            Terminal = false
        }

    /// (time, value) of the lowest interior minimum recorded by `event` in a solution over [t0, tEnd], or None
    /// when the curve has none there (monotone curves, or minima only at the ends).
    [<CompiledName("OfSolution")>]
    let ofSolution (observable: float[] -> float) (t0: float) (tEnd: float) (solution: OdeSolution) =
        solution.Events
        |> List.filter (fun e -> e.Event = eventName && e.Time > t0 && e.Time < tEnd)
        |> List.map (fun e -> e.Time, observable e.State)
        |> function
            | [] -> None
            | hits -> Some(List.minBy snd hits)

    /// Integrates the problem and returns (time, value) of its lowest interior minimum of `observable` (see
    /// `ofSolution`).
    [<CompiledName("Find")>]
    let find (options: SolveOptions) (algorithm: OdeAlgorithm) (observable: float[] -> float) (problem: OdeProblem) =
        Ode.solve
            { options with
                Events = event problem.Rhs observable :: options.Events
            }
            algorithm
            problem
        |> ofSolution observable problem.T0 problem.TEnd
