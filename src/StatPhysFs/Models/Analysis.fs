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
        FiniteDifferences.jacobian progress (rhs 0.0) y

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
    let fixedPoint (tol: float) (rhs: Rhs) (y0: float[]) = RootFinding.newton tol (rhs 0.0) y0

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

/// The solve every ODE model's `solve` shares: its output times, and its ODE integrated with the settings' run knobs
/// (plus the early-stopping event when asked), read back at those times.
[<RequireQualifiedAccess>]
module internal OutputGrid =
    open StatPhysFs.Ode

    /// The explicit save times when there are any, else the grid over [0, tEnd].
    let times (saveAt: float[]) (grid: GridKind) (points: int) (tEnd: float) =
        if saveAt.Length > 0 then
            Array.copy saveAt
        else
            Grid.make grid 0.0 tEnd points

    /// Integrates `ode` saving at `times` and returns the solution, the state at each output time (None where the
    /// run stopped before it), and the early-stopping minimum of `egOf` over [0, ode.TEnd] when `earlyStopping`.
    let solve
        (times: float[])
        (divergenceBound: float)
        (maxSteps: int)
        (control: RunControl)
        (events: OdeEvent list)
        (earlyStopping: bool)
        (algorithm: OdeAlgorithm)
        (egOf: float[] -> float)
        (ode: OdeProblem)
        =
        let sol =
            Ode.solve
                { Ode.defaultOptions with
                    SaveAt = times
                    DivergenceBound = divergenceBound
                    MaxSteps = maxSteps
                    Dense = false
                    Control = control
                    Events =
                        if earlyStopping then
                            EarlyStopping.event ode.Rhs egOf :: events
                        else
                            events
                }
                algorithm
                ode

        let states =
            Array.init times.Length (fun k ->
                if k < sol.T.Length && sol.T[k] = times[k] then
                    Some sol.Y[k]
                else
                    None)

        let minimum =
            if earlyStopping then
                EarlyStopping.ofSolution egOf 0.0 ode.TEnd sol
            else
                None

        sol, states, minimum
