namespace StatPhysFs

/// Argument validation that names the parameter and its valid range, so bad input never becomes a silent NaN.
[<RequireQualifiedAccess>]
module Check =
    let private fail (name: string) (msg: string) =
        raise (System.ArgumentOutOfRangeException(name, msg))

    let finite (name: string) (x: float) =
        if System.Double.IsNaN x || System.Double.IsInfinity x then
            fail name ($"%s{name} must be a finite number, got %g{x}.")

    let positive (name: string) (x: float) =
        finite name x

        if not (x > 0.0) then
            fail name ($"%s{name} must be > 0, got %g{x}.")

    let nonNegative (name: string) (x: float) =
        finite name x

        if not (x >= 0.0) then
            fail name ($"%s{name} must be >= 0, got %g{x}.")

    let greaterThan (name: string) (bound: float) (x: float) =
        finite name x

        if not (x > bound) then
            fail name ($"%s{name} must be > %g{bound}, got %g{x}.")

    let inRange (name: string) (lo: float) (hi: float) (x: float) =
        finite name x

        if not (x >= lo && x <= hi) then
            fail name ($"%s{name} must lie in [%g{lo}, %g{hi}], got %g{x}.")

    let positiveInt (name: string) (n: int) =
        if n < 1 then
            fail name ($"%s{name} must be >= 1, got %d{n}.")

    let intInRange (name: string) (lo: int) (hi: int) (n: int) =
        if n < lo || n > hi then
            fail name ($"%s{name} must lie in [%d{lo}, %d{hi}], got %d{n}.")

    let that (name: string) (ok: bool) (msg: string) =
        if not ok then
            fail name msg
