namespace StatPhysFs

open System

/// The number of fixed steps a run takes to its horizon (SGD steps of size eta, SDE steps, grid points).
[<RequireQualifiedAccess>]
module Steps =
    /// floor(horizon / step + 1e-9): the whole steps of size `step` that fit in `horizon`. The 1e-9 keeps a horizon
    /// that is a whole multiple of the step from losing its last step to roundoff (1.0 / 0.1 = 9.999999999999998).
    /// Fails, naming both parameters, when the count is zero (horizon < step) or does not fit an int.
    [<CompiledName("Count")>]
    let count (horizonName: string) (horizon: float) (stepName: string) (step: float) : int =
        Check.positive horizonName horizon
        Check.positive stepName step
        let n = Math.Floor(horizon / step + 1e-9)

        Check.that
            horizonName
            (n >= 1.0)
            ($"%s{horizonName} (%g{horizon}) must be >= %s{stepName} (%g{step}): the run takes floor(%s{horizonName}/%s{stepName}) steps, here none.")

        Check.that
            horizonName
            (n <= float Int32.MaxValue)
            ($"%s{horizonName}/%s{stepName} = %g{n} steps exceeds %d{Int32.MaxValue}: raise %s{stepName} or lower %s{horizonName}.")

        int n
