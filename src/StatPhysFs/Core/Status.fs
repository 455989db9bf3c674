namespace StatPhysFs

/// How any run ended (ODE, DMFT, SDE, simulator): the one status type every solution carries.
type RunStatus =
    | Completed
    /// A terminal event fired (an ODE event with Terminal = true).
    | TerminatedByEvent of name: string * time: float
    /// The state left its bound or became NaN at this time.
    | Diverged of time: float * reason: string
    | Cancelled of time: float
    /// A step, memory or time budget ran out at this time (eg the ODE's MaxSteps).
    | BudgetExceeded of time: float * reason: string

[<RequireQualifiedAccess>]
module RunStatus =
    /// Completed or stopped by a terminal event: the whole requested result is valid.
    [<CompiledName("Succeeded")>]
    let succeeded (s: RunStatus) =
        match s with
        | Completed
        | TerminatedByEvent _ -> true
        | _ -> false

    /// The time the run stopped early, if it did.
    [<CompiledName("StoppedAt")>]
    let stoppedAt (s: RunStatus) =
        match s with
        | Completed -> None
        | TerminatedByEvent(_, t)
        | Diverged(t, _)
        | Cancelled t
        | BudgetExceeded(t, _) -> Some t

    /// The short name written to files: completed, event, diverged, cancelled, budget-exceeded.
    [<CompiledName("Name")>]
    let name (s: RunStatus) =
        match s with
        | Completed -> "completed"
        | TerminatedByEvent _ -> "event"
        | Diverged _ -> "diverged"
        | Cancelled _ -> "cancelled"
        | BudgetExceeded _ -> "budget-exceeded"

    /// One line for people: the name, the time and the reason.
    [<CompiledName("Describe")>]
    let describe (s: RunStatus) =
        match s with
        | Completed -> "completed"
        | TerminatedByEvent(n, t) -> $"stopped by event %s{n} at t = %g{t}"
        | Diverged(t, why) -> $"diverged at t = %g{t} (%s{why})"
        | Cancelled t -> $"cancelled at t = %g{t}"
        | BudgetExceeded(t, why) -> $"budget exceeded at t = %g{t} (%s{why})"
