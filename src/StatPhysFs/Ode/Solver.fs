namespace StatPhysFs.Ode

open System
open StatPhysFs

/// Interpolation data of one accepted step.
[<NoComparison; NoEquality>]
type private Segment =
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
    }

module private Segment =
    let eval (s: Segment) (t: float) (out: float[]) =
        let th = if s.H = 0.0 then 1.0 else (t - s.T0) / s.H
        let th1 = 1.0 - th

        if s.Dp then
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

/// Solvers for `OdeProblem`s. `solve options algorithm problem` returns an `OdeSolution`.
[<RequireQualifiedAccess>]
module Ode =
    /// Default options: output at every step, no events, divergence bound 1e10, 10^7 steps, dense output on.
    [<CompiledName("DefaultOptions")>]
    let defaultOptions =
        {
            SaveAt = [||]
            Events = []
            DivergenceBound = 1e10
            MaxSteps = 10_000_000
            Dense = true
            CancellationToken = Threading.CancellationToken.None
            Progress = None
        }

    [<CompiledName("Dopri5")>]
    let dopri5 (relTol: float) (absTol: float) =
        Dopri5
            {
                RelTol = relTol
                AbsTol = absTol
                InitialStep = 0.0
                MaxStep = infinity
            }

    [<CompiledName("Problem")>]
    let problem (rhs: Rhs) (y0: float[]) (t0: float) (tEnd: float) =
        {
            Rhs = rhs
            Y0 = Array.copy y0
            T0 = t0
            TEnd = tEnd
            Names = Array.init y0.Length (sprintf "y%d")
        }

    // Dormand-Prince 5(4) tableau (Hairer, Norsett & Wanner), with the dense-output coefficients of DOPRI5.
    let private c2, c3, c4, c5 = 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0
    let private a21 = 1.0 / 5.0
    let private a31, a32 = 3.0 / 40.0, 9.0 / 40.0
    let private a41, a42, a43 = 44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0

    let private a51, a52, a53, a54 =
        19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0

    let private a61, a62, a63, a64, a65 =
        9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0

    let private a71, a73, a74, a75, a76 =
        35.0 / 384.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0

    let private e1, e3, e4, e5, e6, e7 =
        71.0 / 57600.0, -71.0 / 16695.0, 71.0 / 1920.0, -17253.0 / 339200.0, 22.0 / 525.0, -1.0 / 40.0

    let private d1, d3, d4 =
        -12715105075.0 / 11282082432.0, 87487479700.0 / 32700410799.0, -10690763975.0 / 1880347072.0

    let private d5, d6, d7 =
        701980252875.0 / 199316789632.0, -1453857185.0 / 822651844.0, 69997945.0 / 29380423.0

    let private validate (o: SolveOptions) (alg: OdeAlgorithm) (p: OdeProblem) =
        Check.finite "T0" p.T0
        Check.greaterThan "TEnd" p.T0 p.TEnd
        Check.that "Y0" (p.Y0.Length > 0) "Y0 must have at least one component."
        p.Y0 |> Array.iteri (fun i v -> Check.finite (sprintf "Y0[%d]" i) v)
        Check.positive "DivergenceBound" o.DivergenceBound
        Check.positiveInt "MaxSteps" o.MaxSteps

        match alg with
        | Dopri5 d ->
            Check.positive "RelTol" d.RelTol
            Check.nonNegative "AbsTol" d.AbsTol
            Check.nonNegative "InitialStep" d.InitialStep

            Check.that
                "MaxStep"
                (d.MaxStep > 0.0)
                (sprintf "MaxStep must be > 0 (infinity for none), got %g." d.MaxStep)
        | RungeKutta4 dt
        | Euler dt -> Check.positive "dt" dt

        let s = o.SaveAt

        for i in 0 .. s.Length - 1 do
            Check.inRange (sprintf "SaveAt[%d]" i) p.T0 p.TEnd s[i]

            if i > 0 then
                Check.that "SaveAt" (s[i] > s[i - 1]) "SaveAt must be strictly increasing."

    /// Solve the problem with the algorithm. Never throws on a blow-up: a state that exceeds
    /// `DivergenceBound` or turns NaN ends the run with `Diverged(time, reason)`, where time is located on the
    /// step's interpolant.
    [<CompiledName("Solve")>]
    let solve (options: SolveOptions) (algorithm: OdeAlgorithm) (problem: OdeProblem) : OdeSolution =
        validate options algorithm problem
        let n = problem.Y0.Length
        let f = problem.Rhs
        let t0, tEnd = problem.T0, problem.TEnd
        let span = tEnd - t0
        let mutable evals = 0

        let rhs t (y: float[]) (dy: float[]) =
            evals <- evals + 1
            f t y dy

        let outT = ResizeArray<float>()
        let outY = ResizeArray<float[]>()
        let segments = ResizeArray<Segment>()
        let hits = ResizeArray<EventHit>()
        let saveAt = options.SaveAt
        let mutable nextOut = 0
        let mutable status = Completed
        let mutable steps = 0
        let mutable rejected = 0
        let mutable lastProgress = 0.0

        let mutable t = t0
        let y = Array.copy problem.Y0
        let f0 = Array.zeroCreate n
        rhs t y f0

        let emit tt (yy: float[]) =
            outT.Add tt
            outY.Add(Array.copy yy)

        if saveAt.Length = 0 then
            emit t y
        else
            while nextOut < saveAt.Length && saveAt[nextOut] <= t0 do
                emit saveAt[nextOut] y
                nextOut <- nextOut + 1

        let eventValues =
            options.Events |> List.map (fun e -> e.Observable t y) |> Array.ofList

        let events = Array.ofList options.Events

        let bad (v: float[]) =
            let mutable b = false

            for i in 0 .. v.Length - 1 do
                if not (abs v[i] <= options.DivergenceBound) then
                    b <- true

            b

        let tmp = Array.zeroCreate n

        /// First point of the segment (on its interpolant) where the predicate holds, by bisection.
        let locate (seg: Segment) (pred: float -> float[] -> bool) =
            let mutable lo = seg.T0
            let mutable hi = seg.T0 + seg.H

            for _ in 1..100 do
                if hi - lo > 1e-15 * (1.0 + abs hi) then
                    let mid = 0.5 * (lo + hi)
                    Segment.eval seg mid tmp
                    if pred mid tmp then hi <- mid else lo <- mid

            hi

        let eventRoot (seg: Segment) (ev: OdeEvent) (g0: float) =
            let mutable lo = seg.T0
            let mutable hi = seg.T0 + seg.H
            let mutable glo = g0

            for _ in 1..200 do
                if hi - lo > 4e-16 * (1.0 + abs hi) then
                    let mid = 0.5 * (lo + hi)
                    Segment.eval seg mid tmp
                    let g = ev.Observable mid tmp

                    if (g >= 0.0) = (glo >= 0.0) then
                        lo <- mid
                        glo <- g
                    else
                        hi <- mid

            hi

        let crossed (dir: EventDirection) g0 g1 =
            match dir with
            | Rising -> g0 < 0.0 && g1 >= 0.0
            | Falling -> g0 > 0.0 && g1 <= 0.0
            | Either -> (g0 < 0.0 && g1 >= 0.0) || (g0 > 0.0 && g1 <= 0.0)

        /// Everything that happens after a step is accepted. Returns false when the run must stop.
        let accept (seg: Segment) (y1: float[]) (f1: float[]) =
            steps <- steps + 1
            let t1 = seg.T0 + seg.H
            let mutable stopAt = t1
            let mutable go = true

            if bad y1 then
                let tc = locate seg (fun _ v -> bad v)
                stopAt <- tc

                let why =
                    if y1 |> Array.exists Double.IsNaN then
                        "the state became NaN"
                    else
                        sprintf "|y| exceeded the divergence bound %g" options.DivergenceBound

                status <- Diverged(tc, why)
                go <- false
            else
                let mutable first = None

                for k in 0 .. events.Length - 1 do
                    let ev = events[k]
                    let g1 = ev.Observable t1 y1

                    if crossed ev.Direction eventValues[k] g1 then
                        let te = eventRoot seg ev eventValues[k]
                        Segment.eval seg te tmp

                        hits.Add
                            {
                                Event = ev.Name
                                Time = te
                                State = Array.copy tmp
                            }

                        if ev.Terminal then
                            match first with
                            | Some(_, tf) when tf <= te -> ()
                            | _ -> first <- Some(ev.Name, te)

                    eventValues[k] <- g1

                match first with
                | Some(name, te) ->
                    stopAt <- te
                    status <- TerminatedByEvent(name, te)
                    go <- false
                    // Keep only hits up to the terminal event.
                    hits.RemoveAll(fun h -> h.Time > te) |> ignore
                | None -> ()

            if saveAt.Length = 0 then
                if go then
                    emit t1 y1
                else
                    Segment.eval seg stopAt tmp
                    emit stopAt tmp
            else
                while nextOut < saveAt.Length && saveAt[nextOut] <= stopAt do
                    let ts = saveAt[nextOut]

                    if abs (ts - t1) <= 1e-13 * (1.0 + abs t1) then
                        emit ts y1
                    else
                        Segment.eval seg ts tmp
                        emit ts tmp

                    nextOut <- nextOut + 1

                if not go then
                    Segment.eval seg stopAt tmp
                    emit stopAt tmp

            if options.Dense then
                segments.Add seg

            match options.Progress with
            | Some report when (t1 - t0) / span - lastProgress >= 0.01 || t1 >= tEnd ->
                lastProgress <- (t1 - t0) / span
                report (min 1.0 lastProgress)
            | _ -> ()

            go

        let checkStop () =
            if options.CancellationToken.IsCancellationRequested then
                status <- Cancelled t
                false
            elif steps >= options.MaxSteps then
                status <- MaxStepsReached t
                false
            else
                true

        match algorithm with
        | RungeKutta4 dt
        | Euler dt ->
            let isRk4 =
                (match algorithm with
                 | RungeKutta4 _ -> true
                 | _ -> false)

            let nsteps = int (ceil (span / dt - 1e-9)) |> max 1
            let k2, k3, k4 = Array.zeroCreate n, Array.zeroCreate n, Array.zeroCreate n
            let ys = Array.zeroCreate n
            let mutable k = 0
            let mutable go = true

            while go && k < nsteps do
                if not (checkStop ()) then
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
                        }

                    go <- accept seg y1 f1
                    t <- t1
                    Array.blit y1 0 y 0 n
                    Array.blit f1 0 f0 0 n
                    k <- k + 1

        | Dopri5 o ->
            let k2, k3, k4, k5, k6, k7 =
                Array.zeroCreate n,
                Array.zeroCreate n,
                Array.zeroCreate n,
                Array.zeroCreate n,
                Array.zeroCreate n,
                Array.zeroCreate n

            let ys = Array.zeroCreate n
            let y1 = Array.zeroCreate n

            let norm (v: float[]) (ya: float[]) (yb: float[]) =
                let mutable s = 0.0

                for i in 0 .. n - 1 do
                    let sc = o.AbsTol + o.RelTol * max (abs ya[i]) (abs yb[i])
                    let r = v[i] / sc
                    s <- s + r * r

                sqrt (s / float n)

            let mutable h =
                if o.InitialStep > 0.0 then
                    o.InitialStep
                else
                    let d0 = norm y y y
                    let d1 = norm f0 y y
                    let h0 = if d0 < 1e-5 || d1 < 1e-5 then 1e-6 else 0.01 * d0 / d1
                    let h0 = min h0 span

                    for i in 0 .. n - 1 do
                        ys[i] <- y[i] + h0 * f0[i]

                    rhs (t + h0) ys k2

                    for i in 0 .. n - 1 do
                        k3[i] <- k2[i] - f0[i]

                    let d2 = norm k3 y y / h0
                    let m = max d1 d2

                    let h1 =
                        if m <= 1e-15 then
                            max 1e-6 (h0 * 1e-3)
                        else
                            (0.01 / m) ** 0.2

                    let h = min (100.0 * h0) h1
                    if Double.IsFinite h && h > 0.0 then h else 1e-6 * span

            h <- min h o.MaxStep
            let mutable facMax = 10.0
            let mutable go = true
            let err = Array.zeroCreate n

            while go && t < tEnd do
                if not (checkStop ()) then
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
                            }

                        go <- accept seg y1 k7
                        t <- tn
                        Array.blit y1 0 y 0 n
                        Array.blit k7 0 f0 0 n

                        let fac =
                            if e = 0.0 then
                                facMax
                            else
                                min facMax (max 0.2 (0.9 * e ** -0.2))

                        h <- min o.MaxStep (h' * fac)
                        facMax <- 10.0
                    else
                        rejected <- rejected + 1
                        let fac = if Double.IsFinite e then max 0.1 (0.9 * e ** -0.2) else 0.1
                        h <- h' * fac
                        facMax <- 1.0

                        if h < 1e-14 * max 1.0 (abs t) then
                            status <-
                                Diverged(
                                    t,
                                    "the step size underflowed (the solution blows up or the right-hand side is not finite)"
                                )

                            emit t y
                            go <- false

        let dense =
            if options.Dense && segments.Count > 0 then
                let segs = segments.ToArray()
                let starts = segs |> Array.map (fun s -> s.T0)
                let tLast = segs[segs.Length - 1].T0 + segs[segs.Length - 1].H

                Some(fun (time: float) ->
                    Check.inRange "time" t0 tLast time
                    let i = Array.BinarySearch(starts, time)
                    let i = if i >= 0 then i else max 0 (~~~i - 1)
                    let out = Array.zeroCreate n
                    Segment.eval segs[i] time out
                    out)
            else
                None

        OdeSolution(
            outT.ToArray(),
            outY.ToArray(),
            status,
            List.ofSeq hits,
            {
                Steps = steps
                Rejected = rejected
                Evaluations = evals
            },
            dense
        )
