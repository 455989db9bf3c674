namespace StatPhysFs.Ode

open System
open StatPhysFs.Ode.Tableaux

/// What a stepper needs from the driver (`Ode.solve`): the state it advances in place, the counted right-hand side,
/// and the driver's handling of an accepted step (output, events, divergence), of stops and of rejections.
[<NoComparison; NoEquality>]
type internal StepContext =
    {
        N: int
        T0: float
        TEnd: float
        /// The current state and f(t, y), advanced in place.
        Y: float[]
        F0: float[]
        Rhs: float -> float[] -> float[] -> unit
        /// Everything after an accepted step; false when the run must stop.
        Accept: Segment -> float[] -> float[] -> bool
        /// Cancellation and the step budget at time t; false when the run must stop.
        CheckStop: float -> bool
        /// The step size underflowed at (t, y).
        Underflow: float -> float[] -> unit
        CountRejected: unit -> unit
        /// Dense output is kept (DOP853 then builds its interpolant for every step).
        KeepDense: bool
    }

/// The schemes: each advances the context from T0 to TEnd, or until the driver stops it.
module internal Steppers =
    /// Classical RK4 (isRk4) or explicit Euler at a fixed step dt, with a cubic Hermite interpolant.
    let fixedStep (isRk4: bool) (dt: float) (c: StepContext) =
        let n = c.N
        let y = c.Y
        let f0 = c.F0
        let rhs = c.Rhs
        let accept = c.Accept
        let t0, tEnd = c.T0, c.TEnd
        let span = tEnd - t0
        let mutable t = t0
        let nsteps = int (ceil (span / dt - 1e-9)) |> max 1
        let k2, k3, k4 = Array.zeroCreate n, Array.zeroCreate n, Array.zeroCreate n
        let ys = Array.zeroCreate n
        let mutable k = 0
        let mutable go = true

        while go && k < nsteps do
            if not (c.CheckStop t) then
                go <- false
            else
                let t1 = if k = nsteps - 1 then tEnd else t0 + float (k + 1) * dt
                let h = t1 - t
                let y1 = Array.zeroCreate n

                if isRk4 then
                    for i in 0 .. n - 1 do
                        ys[i] <- y[i] + 0.5 * h * f0[i]

                    rhs (t + 0.5 * h) ys k2

                    for i in 0 .. n - 1 do
                        ys[i] <- y[i] + 0.5 * h * k2[i]

                    rhs (t + 0.5 * h) ys k3

                    for i in 0 .. n - 1 do
                        ys[i] <- y[i] + h * k3[i]

                    rhs t1 ys k4

                    for i in 0 .. n - 1 do
                        y1[i] <- y[i] + h / 6.0 * (f0[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i])
                else
                    for i in 0 .. n - 1 do
                        y1[i] <- y[i] + h * f0[i]

                let f1 = Array.zeroCreate n
                rhs t1 y1 f1

                let seg =
                    {
                        T0 = t
                        H = h
                        Dp = false
                        A = Array.copy y
                        B = Array.copy f0
                        C = y1
                        D = f1
                        E = null
                        Dense8 = null
                    }

                go <- accept seg y1 f1
                t <- t1
                Array.blit y1 0 y 0 n
                Array.blit f1 0 f0 0 n
                k <- k + 1


    /// The weighted RMS norm of the embedded Runge-Kutta error control: sqrt(mean_i (v_i / sc_i)^2) with
    /// sc_i = AbsTol + RelTol max(|ya_i|, |yb_i|).
    let private errorNorm (o: Dopri5Options) (n: int) (v: float[]) (ya: float[]) (yb: float[]) =
        let mutable s = 0.0

        for i in 0 .. n - 1 do
            let sc = o.AbsTol + o.RelTol * max (abs ya[i]) (abs yb[i])
            let r = v[i] / sc
            s <- s + r * r

        sqrt (s / float n)

    /// The first step: o.InitialStep when set, else Hairer's estimate (one Euler trial step of the context's
    /// state; `exponent` = 1 / order of the error estimate). ys and k are scratch of length n, overwritten.
    let private initialStep (o: Dopri5Options) (c: StepContext) (exponent: float) (ys: float[]) (k: float[]) =
        if o.InitialStep > 0.0 then
            o.InitialStep
        else
            let n = c.N
            let y = c.Y
            let f0 = c.F0
            let span = c.TEnd - c.T0
            let norm = errorNorm o n
            let d0 = norm y y y
            let d1 = norm f0 y y
            let h0 = if d0 < 1e-5 || d1 < 1e-5 then 1e-6 else 0.01 * d0 / d1
            let h0 = min h0 span

            for i in 0 .. n - 1 do
                ys[i] <- y[i] + h0 * f0[i]

            c.Rhs (c.T0 + h0) ys k

            for i in 0 .. n - 1 do
                k[i] <- k[i] - f0[i]

            let d2 = norm k y y / h0
            let m = max d1 d2

            let h1 =
                if m <= 1e-15 then
                    max 1e-6 (h0 * 1e-3)
                else
                    (0.01 / m) ** exponent

            let h = min (100.0 * h0) h1
            if Double.IsFinite h && h > 0.0 then h else 1e-6 * span

    /// Counts a rejected step and whether the retry with step h from (t, y) can go on: false (reported to the
    /// driver as an underflow) when h is below 1e-14 max(1, |t|).
    let private retry (c: StepContext) (t: float) (y: float[]) (h: float) =
        c.CountRejected()

        if h < 1e-14 * max 1.0 (abs t) then
            c.Underflow t y
            false
        else
            true

    /// Dormand-Prince 5(4) with Hairer's step-size control and the DOPRI5 continuous extension.
    let dopri5 (o: Dopri5Options) (c: StepContext) =
        let n = c.N
        let y = c.Y
        let f0 = c.F0
        let rhs = c.Rhs
        let accept = c.Accept
        let t0, tEnd = c.T0, c.TEnd
        let span = tEnd - t0
        let mutable t = t0
        let k2, k3, k4, k5, k6, k7 =
            Array.zeroCreate n,
            Array.zeroCreate n,
            Array.zeroCreate n,
            Array.zeroCreate n,
            Array.zeroCreate n,
            Array.zeroCreate n

        let ys = Array.zeroCreate n
        let y1 = Array.zeroCreate n

        let norm = errorNorm o n

        let mutable h = initialStep o c 0.2 ys k2

        h <- min h o.MaxStep
        let mutable facMax = 10.0
        let mutable go = true
        let err = Array.zeroCreate n

        while go && t < tEnd do
            if not (c.CheckStop t) then
                go <- false
            else
                let last = t + h >= tEnd - 1e-14 * abs tEnd
                let h' = if last then tEnd - t else h

                for i in 0 .. n - 1 do
                    ys[i] <- y[i] + h' * a21 * f0[i]

                rhs (t + c2 * h') ys k2

                for i in 0 .. n - 1 do
                    ys[i] <- y[i] + h' * (a31 * f0[i] + a32 * k2[i])

                rhs (t + c3 * h') ys k3

                for i in 0 .. n - 1 do
                    ys[i] <- y[i] + h' * (a41 * f0[i] + a42 * k2[i] + a43 * k3[i])

                rhs (t + c4 * h') ys k4

                for i in 0 .. n - 1 do
                    ys[i] <- y[i] + h' * (a51 * f0[i] + a52 * k2[i] + a53 * k3[i] + a54 * k4[i])

                rhs (t + c5 * h') ys k5

                for i in 0 .. n - 1 do
                    ys[i] <-
                        y[i]
                        + h' * (a61 * f0[i] + a62 * k2[i] + a63 * k3[i] + a64 * k4[i] + a65 * k5[i])

                let tn = if last then tEnd else t + h'
                rhs tn ys k6

                for i in 0 .. n - 1 do
                    y1[i] <-
                        y[i]
                        + h' * (a71 * f0[i] + a73 * k3[i] + a74 * k4[i] + a75 * k5[i] + a76 * k6[i])

                rhs tn y1 k7

                for i in 0 .. n - 1 do
                    err[i] <-
                        h'
                        * (e1 * f0[i] + e3 * k3[i] + e4 * k4[i] + e5 * k5[i] + e6 * k6[i] + e7 * k7[i])

                let e = norm err y y1

                if Double.IsFinite e && e <= 1.0 then
                    let ydiff = Array.init n (fun i -> y1[i] - y[i])
                    let bspl = Array.init n (fun i -> h' * f0[i] - ydiff[i])

                    let seg =
                        {
                            T0 = t
                            H = h'
                            Dp = true
                            A = Array.copy y
                            B = ydiff
                            C = bspl
                            D = Array.init n (fun i -> ydiff[i] - h' * k7[i] - bspl[i])
                            E =
                                Array.init n (fun i ->
                                    h'
                                    * (d1 * f0[i] + d3 * k3[i] + d4 * k4[i] + d5 * k5[i] + d6 * k6[i] + d7 * k7[i]))
                            Dense8 = null
                        }

                    go <- accept seg y1 k7
                    t <- tn
                    Array.blit y1 0 y 0 n
                    Array.blit k7 0 f0 0 n

                    let fac = acceptedFactor -0.2 0.2 facMax e

                    h <- min o.MaxStep (h' * fac)
                    facMax <- 10.0
                else
                    let fac = rejectedFactor -0.2 0.1 e
                    h <- h' * fac
                    facMax <- 1.0
                    go <- retry c t y h

    /// Dormand-Prince 8(5,3) with its 7th-order dense output.
    let dop853 (o: Dopri5Options) (c: StepContext) =
        let n = c.N
        let y = c.Y
        let f0 = c.F0
        let rhs = c.Rhs
        let accept = c.Accept
        let t0, tEnd = c.T0, c.TEnd
        let span = tEnd - t0
        let mutable t = t0
        let stage = Array.init 16 (fun j -> if j = 0 then f0 else Array.zeroCreate n)
        let ys = Array.zeroCreate n
        let y1 = Array.zeroCreate n

        let norm = errorNorm o n

        // ys = y + h sum_j a_sj k_j for stage s.
        let stageState (s: int) (h: float) =
            let cols = dop853Cols[s]
            let coefs = dop853Coefs[s]

            for i in 0 .. n - 1 do
                let mutable acc = 0.0

                for q in 0 .. cols.Length - 1 do
                    acc <- acc + coefs[q] * stage[cols[q]][i]

                ys[i] <- y[i] + h * acc

        // Hairer's starting-step estimate for an 8th-order method.
        let mutable h = initialStep o c (1.0 / 8.0) ys stage[1]

        h <- min h o.MaxStep
        let mutable facMax = 6.0
        let mutable go = true
        let e5 = Array.zeroCreate n

        while go && t < tEnd do
            if not (c.CheckStop t) then
                go <- false
            else
                let last = t + h >= tEnd - 1e-14 * abs tEnd
                let h' = if last then tEnd - t else h

                for s in 1..11 do
                    stageState s h'
                    rhs (t + dop853C[s] * h') ys stage[s]

                // The 8th-order solution (row 12 of the tableau).
                stageState 12 h'
                Array.blit ys 0 y1 0 n
                // Error: the 5th-order estimate, damped by the 3rd-order one (Hairer's err5^2/sqrt(err5^2 +
                // 0.01 err3^2)), in the weighted RMS norm.
                let mutable err5 = 0.0
                let mutable err3 = 0.0

                for i in 0 .. n - 1 do
                    let sc = o.AbsTol + o.RelTol * max (abs y[i]) (abs y1[i])
                    let mutable a5 = 0.0

                    for q in 0 .. dop853E5.Length - 1 do
                        let j, c = dop853E5[q]
                        a5 <- a5 + c * stage[j][i]

                    let mutable bhh = 0.0

                    for q in 0 .. dop853Bhh.Length - 1 do
                        let j, c = dop853Bhh[q]
                        bhh <- bhh + c * stage[j][i]

                    let a3 = (y1[i] - y[i]) / h' - bhh
                    e5[i] <- a5
                    err5 <- err5 + (a5 / sc) * (a5 / sc)
                    err3 <- err3 + (a3 / sc) * (a3 / sc)

                let e =
                    if err5 = 0.0 && err3 = 0.0 then
                        0.0
                    else
                        abs h' * err5 / sqrt ((err5 + 0.01 * err3) * float n)

                if Double.IsFinite e && e <= 1.0 then
                    let tn = if last then tEnd else t + h'
                    let f1 = stage[12]
                    rhs tn y1 f1
                    let y0 = Array.copy y
                    let hs = h'
                    let ts = t
                    // The interpolant reads the live stage arrays: it is forced within `accept` or, when dense
                    // output is kept, right after it, before the next step overwrites them.
                    let dense8 =
                        lazy
                            (for s in 13..15 do
                                stageState s hs
                                rhs (ts + dop853C[s] * hs) ys stage[s]

                             let f = Array.init 7 (fun _ -> Array.zeroCreate n)

                             for i in 0 .. n - 1 do
                                 let dy = y1[i] - y0[i]
                                 let bspl = hs * stage[0][i] - dy
                                 f[0][i] <- dy
                                 f[1][i] <- bspl
                                 f[2][i] <- dy - hs * stage[12][i] - bspl

                             for r in 0..3 do
                                 let row = dop853D[r]

                                 for i in 0 .. n - 1 do
                                     let mutable acc = 0.0

                                     for q in 0 .. row.Length - 1 do
                                         let j, c = row[q]
                                         acc <- acc + c * stage[j][i]

                                     f[3 + r][i] <- hs * acc

                             f)

                    let seg =
                        {
                            T0 = t
                            H = h'
                            Dp = false
                            A = y0
                            B = null
                            C = null
                            D = null
                            E = null
                            Dense8 = dense8
                        }

                    go <- accept seg y1 f1

                    if c.KeepDense then
                        dense8.Force() |> ignore

                    t <- tn
                    Array.blit y1 0 y 0 n
                    Array.blit f1 0 f0 0 n

                    let fac = acceptedFactor -0.125 0.333 facMax e

                    h <- min o.MaxStep (h' * fac)
                    facMax <- 6.0
                else
                    let fac = rejectedFactor -0.125 0.333 e
                    h <- h' * fac
                    facMax <- 1.0
                    go <- retry c t y h
