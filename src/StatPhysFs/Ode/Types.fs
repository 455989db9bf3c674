namespace StatPhysFs.Ode

open System.Threading
open StatPhysFs

/// dy/dt = f(t, y), written into the third argument (no allocation per call).
type Rhs = float -> float[] -> float[] -> unit

/// An initial-value problem: a value, solved by `Ode.solve`.
type OdeProblem =
    {
        Rhs: Rhs
        Y0: float[]
        T0: float
        TEnd: float
        /// Component names, for output and error messages.
        Names: string[]
    }

type EventDirection =
    | Rising
    | Falling
    | Either

/// Stop (or just record) when an observable g(t, y) crosses zero.
type OdeEvent =
    {
        Name: string
        Observable: float -> float[] -> float
        Direction: EventDirection
        Terminal: bool
    }

type EventHit =
    {
        Event: string
        Time: float
        State: float[]
    }

type OdeStats =
    {
        Steps: int
        Rejected: int
        Evaluations: int
    }

type Dopri5Options =
    {
        RelTol: float
        AbsTol: float
        /// 0 chooses the first step automatically (Hairer's estimate).
        InitialStep: float
        /// Largest step; infinity for none.
        MaxStep: float
    }

/// The integrator: adaptive Dormand-Prince 5(4) or 8(5,3), or the fixed-step schemes peers use.
type OdeAlgorithm =
    | Dopri5 of Dopri5Options
    /// Dormand-Prince 8(5,3) (same options; the error is the 5th-order estimate damped by the 3rd-order one).
    | Dop853 of Dopri5Options
    | RungeKutta4 of dt: float
    | Euler of dt: float

type SolveOptions =
    {
        /// Output times; empty means every accepted step.
        SaveAt: float[]
        Events: OdeEvent list
        /// The run is reported as divergent when any |y_i| exceeds this, or a NaN appears.
        DivergenceBound: float
        MaxSteps: int
        /// Keep the interpolation data of every step, for `OdeSolution.Evaluate`.
        Dense: bool
        /// Cancellation (ends the run as Cancelled), progress (the fraction of [T0, TEnd] done, at most ~100 calls per
        /// run) and the wall-clock budget MaxSeconds (ends it as BudgetExceeded).
        Control: RunControl
    }

/// The trajectory: values at the output times, the end status, events and statistics, and dense output.
type OdeSolution
    (
        t: float[],
        y: float[][],
        status: RunStatus,
        events: EventHit list,
        stats: OdeStats,
        dense: (float -> float[]) option
    ) =
    member _.T = t
    member _.Y = y
    member _.Status = status
    member _.Events = events
    member _.Stats = stats

    member _.Succeeded = RunStatus.succeeded status

    /// Component i along the output times.
    member _.Component(i: int) = y |> Array.map (fun s -> s[i])

    /// The state at any time inside the integrated range, from the method's own interpolant
    /// (Dormand-Prince: 4th-order continuous extension; fixed-step: cubic Hermite).
    member _.Evaluate(time: float) =
        match dense with
        | Some f -> f time
        | None ->
            invalidOp
                "this solution was computed with Dense = false; solve again with Dense = true to evaluate it between output times."
