namespace StatPhysFs.CSharp;

/// <summary>How a run ended: the same five outcomes for every model, solver and simulator.</summary>
public enum SolveStatus
{
    /// <summary>Reached the end time.</summary>
    Completed,
    /// <summary>The state left its bound or became NaN at the result's stop time.</summary>
    Diverged,
    /// <summary>A terminal event stopped the run.</summary>
    StoppedByEvent,
    /// <summary>A step, memory or time budget ran out.</summary>
    BudgetExceeded,
    /// <summary>The cancellation token was triggered.</summary>
    Cancelled,
}

internal static class StatusConversion
{
    /// <summary>The library's status as (status, time it stopped, one-line message).</summary>
    internal static (SolveStatus Status, double? Time, string Message) Of(StatPhysFs.RunStatus s) => s switch
    {
        StatPhysFs.RunStatus.Diverged d => (SolveStatus.Diverged, d.time, d.reason),
        StatPhysFs.RunStatus.TerminatedByEvent e => (SolveStatus.StoppedByEvent, e.time, "event " + e.name),
        StatPhysFs.RunStatus.BudgetExceeded b => (SolveStatus.BudgetExceeded, b.time, b.reason),
        StatPhysFs.RunStatus.Cancelled c => (SolveStatus.Cancelled, c.time, "cancelled"),
        _ => (SolveStatus.Completed, null, "completed"),
    };

    /// <summary>The status and, only when it diverged, the divergence time (the records' DivergenceTime).</summary>
    internal static (SolveStatus Status, double? DivergenceTime) WithDivergenceTime(StatPhysFs.RunStatus s)
    {
        var (status, time, _) = Of(s);
        return (status, status == SolveStatus.Diverged ? time : null);
    }
}
