namespace StatPhysFs.Ode

open System
open StatPhysFs

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
            Control = RunControl.defaults
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

    /// Dormand-Prince 8(5,3) with its 7th-order dense output: for smooth problems at tight tolerances it takes
    /// far fewer right-hand sides than `dopri5` (12 per step, 3 more only for steps that interpolate).
    [<CompiledName("Dop853")>]
    let dop853 (relTol: float) (absTol: float) =
        Dop853
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
            Names = Array.init y0.Length (fun i -> $"y%d{i}")
        }

    let private validate (o: SolveOptions) (alg: OdeAlgorithm) (p: OdeProblem) =
        Check.finite "T0" p.T0
        Check.greaterThan "TEnd" p.T0 p.TEnd
        Check.that "Y0" (p.Y0.Length > 0) "Y0 must have at least one component."
        p.Y0 |> Array.iteri (fun i v -> Check.finite ($"Y0[%d{i}]") v)
        Check.positive "DivergenceBound" o.DivergenceBound

        Check.that
            "MaxSeconds"
            (o.Control.MaxSeconds > 0.0)
            ($"MaxSeconds must be > 0 (infinity for none), got %g{o.Control.MaxSeconds}.")

        Check.positiveInt "MaxSteps" o.MaxSteps

        match alg with
        | Dopri5 d
        | Dop853 d ->
            Check.positive "RelTol" d.RelTol
            Check.nonNegative "AbsTol" d.AbsTol
            Check.nonNegative "InitialStep" d.InitialStep

            Check.that "MaxStep" (d.MaxStep > 0.0) ($"MaxStep must be > 0 (infinity for none), got %g{d.MaxStep}.")
        | RungeKutta4 dt
        | Euler dt -> Check.positive "dt" dt

        let s = o.SaveAt

        for i in 0 .. s.Length - 1 do
            Check.inRange ($"SaveAt[%d{i}]") p.T0 p.TEnd s[i]

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

        // The crossing inside the step: the end past it of the final bracket, to 4e-16 absolute + relative (t near 0
        // and large t alike), ~10 observables where plain bisection took ~50 (an early-stopping observable costs a
        // right-hand side and two errors). g0 is nonzero (the crossing test), g1 may be 0.
        let eventRoot (seg: Segment) (ev: OdeEvent) (g0: float) (g1: float) =
            let observable t =
                Segment.eval seg t tmp
                ev.Observable t tmp

            RootFinding.illinoisBracket 4e-16 4e-16 ignore observable (seg.T0, g0) (seg.T0 + seg.H, g1)
            |> snd

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
                        $"|y| exceeded the divergence bound %g{options.DivergenceBound}"

                status <- Diverged(tc, why)
                go <- false
            else
                let mutable first = None

                for k in 0 .. events.Length - 1 do
                    let ev = events[k]
                    let g1 = ev.Observable t1 y1

                    if crossed ev.Direction eventValues[k] g1 then
                        let te = eventRoot seg ev eventValues[k] g1
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

            match options.Control.Progress with
            | Some report when (t1 - t0) / span - lastProgress >= 0.01 || t1 >= tEnd ->
                lastProgress <- (t1 - t0) / span
                report (min 1.0 lastProgress)
            | _ -> ()

            go

        let clock = Diagnostics.Stopwatch.StartNew()

        let checkStop () =
            if options.Control.CancellationToken.IsCancellationRequested then
                status <- Cancelled t
                false
            elif clock.Elapsed.TotalSeconds > options.Control.MaxSeconds then
                status <- BudgetExceeded(t, $"MaxSeconds = %g{options.Control.MaxSeconds} s of wall-clock time used")
                false
            elif steps >= options.MaxSteps then
                status <- BudgetExceeded(t, $"MaxSteps = %d{options.MaxSteps} steps taken")
                false
            else
                true

        let context =
            {
                N = n
                T0 = t0
                TEnd = tEnd
                Y = y
                F0 = f0
                Rhs = rhs
                Accept = accept
                CheckStop =
                    fun now ->
                        t <- now
                        checkStop ()
                Underflow =
                    fun now yy ->
                        status <- Diverged(now, Tableaux.stepUnderflow)
                        emit now yy
                CountRejected = fun () -> rejected <- rejected + 1
                KeepDense = options.Dense
            }

        match algorithm with
        | RungeKutta4 dt -> Steppers.fixedStep true dt context
        | Euler dt -> Steppers.fixedStep false dt context
        | Dopri5 o -> Steppers.dopri5 o context
        | Dop853 o -> Steppers.dop853 o context

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
