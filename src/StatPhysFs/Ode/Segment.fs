namespace StatPhysFs.Ode

open System

/// Interpolation data of one accepted step.
[<NoComparison; NoEquality>]
type internal Segment =
    {
        T0: float
        H: float
        /// Dormand-Prince continuous extension (5 coefficient vectors), or cubic Hermite (y0, f0, y1, f1).
        Dp: bool
        A: float[]
        B: float[]
        C: float[]
        D: float[]
        E: float[]
        /// DOP853: y0 (in A) plus x (F0 + (1-x)(F1 + x(F2 + ...))) with the 7 vectors F built on first use (3 more
        /// right-hand sides); null for the other schemes.
        Dense8: Lazy<float[][]>
    }

module internal Segment =
    let eval (s: Segment) (t: float) (out: float[]) =
        let th = if s.H = 0.0 then 1.0 else (t - s.T0) / s.H
        let th1 = 1.0 - th

        if not (isNull s.Dense8) then
            let f = s.Dense8.Force()

            for i in 0 .. out.Length - 1 do
                out[i] <-
                    s.A[i]
                    + th
                      * (f[0][i]
                         + th1
                           * (f[1][i]
                              + th
                                * (f[2][i] + th1 * (f[3][i] + th * (f[4][i] + th1 * (f[5][i] + th * f[6][i]))))))
        elif s.Dp then
            for i in 0 .. out.Length - 1 do
                out[i] <- s.A[i] + th * (s.B[i] + th1 * (s.C[i] + th * (s.D[i] + th1 * s.E[i])))
        else
            // Hermite basis on [0, 1].
            let h00 = (1.0 + 2.0 * th) * th1 * th1
            let h10 = th * th1 * th1
            let h01 = th * th * (3.0 - 2.0 * th)
            let h11 = -th * th * th1

            for i in 0 .. out.Length - 1 do
                out[i] <- h00 * s.A[i] + h10 * s.H * s.B[i] + h01 * s.C[i] + h11 * s.H * s.D[i]
