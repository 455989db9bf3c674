namespace StatPhysFs

/// Richardson extrapolation in a step size h: from v(h) and v(h/2) of a quantity whose error expands as
/// v(h) = v + c h^p + O(h^(p+1)), the combination (2^p v(h/2) - v(h)) / (2^p - 1) cancels the h^p term.
[<RequireQualifiedAccess>]
module Richardson =
    /// (2^p fine - coarse) / (2^p - 1) for an error of order p >= 1: 2 v(h/2) - v(h) at p = 1.
    [<CompiledName("Extrapolate")>]
    let extrapolate (order: int) (coarse: float) (fine: float) =
        let r = 2.0 ** float order
        (r * fine - coarse) / (r - 1.0)

    /// The standard error of the order-1 combination 2 F - C of independent estimates F (fine) and C (coarse):
    /// sqrt(4 sF^2 + sC^2).
    [<CompiledName("StdErr")>]
    let stdErr (coarse: float) (fine: float) =
        sqrt (4.0 * fine * fine + coarse * coarse)

    /// 2 F - C of independent Monte Carlo estimates at h (coarse) and h/2 (fine), with its standard error; the
    /// count is the draws of both.
    [<CompiledName("OfEstimates")>]
    let ofEstimates (coarse: Estimate) (fine: Estimate) : Estimate =
        {
            Mean = extrapolate 1 coarse.Mean fine.Mean
            StdErr = stdErr coarse.StdErr fine.StdErr
            Count = coarse.Count + fine.Count
        }
