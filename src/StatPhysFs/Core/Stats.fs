namespace StatPhysFs

/// A Monte Carlo or across-seed estimate with its standard error.
type Estimate =
    {
        Mean: float
        StdErr: float
        Count: int
    }

[<RequireQualifiedAccess>]
module Stats =
    let mean (xs: float[]) = Array.average xs

    /// Mean and standard error of the mean (sample standard deviation / sqrt n).
    let estimate (xs: float[]) =
        let n = xs.Length
        Check.positiveInt "samples" n
        let m = Array.average xs

        let se =
            if n < 2 then
                nan
            else
                sqrt ((xs |> Array.sumBy (fun x -> (x - m) * (x - m))) / float (n - 1) / float n)

        { Mean = m; StdErr = se; Count = n }

    /// Least-squares line y = a + b x; returns (intercept, slope).
    let linearFit (xs: float[]) (ys: float[]) =
        Check.that
            "xs"
            (xs.Length = ys.Length && xs.Length >= 2)
            "linearFit needs two or more (x, y) pairs of equal length."

        let mx = Array.average xs
        let my = Array.average ys
        let sxy = Array.fold2 (fun s x y -> s + (x - mx) * (y - my)) 0.0 xs ys
        let sxx = xs |> Array.sumBy (fun x -> (x - mx) * (x - mx))
        let b = sxy / sxx
        my - b * mx, b

    /// Slope of log y against log x: the exponent of a power law.
    let logLogSlope (xs: float[]) (ys: float[]) =
        linearFit (Array.map log xs) (Array.map log ys) |> snd
