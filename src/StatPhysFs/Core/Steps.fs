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
            (sprintf
                "%s (%g) must be >= %s (%g): the run takes floor(%s/%s) steps, here none."
                horizonName
                horizon
                stepName
                step
                horizonName
                stepName)

        Check.that
            horizonName
            (n <= float Int32.MaxValue)
            (sprintf
                "%s/%s = %g steps exceeds %d: raise %s or lower %s."
                horizonName
                stepName
                n
                Int32.MaxValue
                stepName
                horizonName)

        int n
