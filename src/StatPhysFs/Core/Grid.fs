namespace StatPhysFs

/// Time grids for output.
type GridKind =
    | LinearGrid
    | LogGrid

[<RequireQualifiedAccess>]
module Grid =
    /// n points from t0 to t1 inclusive, equally spaced.
    [<CompiledName("Linear")>]
    let linear (t0: float) (t1: float) (n: int) =
        Check.intInRange "points" 2 100_000_000 n
        Check.finite "t0" t0
        Check.greaterThan "tEnd" t0 t1

        Array.init n (fun i ->
            if i = n - 1 then
                t1
            else
                t0 + (t1 - t0) * float i / float (n - 1))

    /// t0 followed by n-1 log-spaced points ending at t1. The first positive point is t1 * 1e-3 when t0 = 0,
    /// because a log grid cannot start at zero and learning curves start to move on that scale.
    [<CompiledName("Log")>]
    let log (t0: float) (t1: float) (n: int) =
        Check.intInRange "points" 3 100_000_000 n
        Check.nonNegative "t0" t0
        Check.greaterThan "tEnd" t0 t1
        let first = if t0 > 0.0 then t0 else t1 * 1e-3
        let a = System.Math.Log first
        let b = System.Math.Log t1
        let m = if t0 > 0.0 then n else n - 1

        let pts =
            Array.init m (fun i ->
                if i = m - 1 then
                    t1
                else
                    exp (a + (b - a) * float i / float (m - 1)))

        if t0 > 0.0 then pts else Array.append [| 0.0 |] pts

    [<CompiledName("Make")>]
    let make (kind: GridKind) t0 t1 n =
        match kind with
        | LinearGrid -> linear t0 t1 n
        | LogGrid -> log t0 t1 n
