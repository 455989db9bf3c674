module StatPhysFs.Tests.OdeTests

open System
open Expecto
open StatPhysFs
open StatPhysFs.Ode
open StatPhysFs.Tests.Prop

let private opts = Ode.defaultOptions

// y' = y cos t, y(0) = 1: y = exp(sin t). Non-autonomous, so every stage's time offset matters.
let private expSin =
    Ode.problem (fun t y dy -> dy[0] <- y[0] * cos t) [| 1.0 |] 0.0 2.0

let private expSinExact t = exp (sin t)

// Harmonic oscillator: (x, v) = (cos t, -sin t).
let private oscillator tEnd =
    Ode.problem
        (fun _ y dy ->
            dy[0] <- y[1]
            dy[1] <- -y[0])
        [| 1.0; 0.0 |]
        0.0
        tEnd

let private finalError alg =
    let s = Ode.solve opts alg expSin
    abs (s.Y[s.Y.Length - 1][0] - expSinExact 2.0)

/// Observed order: slope of log(error) against log(step) over halving steps.
let private observedOrder (errors: float[]) (steps: float[]) = Stats.logLogSlope steps errors

[<Tests>]
let tests =
    testList
        "ODE integrators"
        [
            testCase "Dormand-Prince meets a tight tolerance on a known solution"
            <| fun () ->
                let s = Ode.solve opts (Ode.dopri5 1e-11 1e-13) expSin
                Expect.equal s.Status Completed "completed"

                for t, y in Array.zip s.T s.Y do
                    expectClose 1e-9 y[0] (expSinExact t) (sprintf "y(%g)" t)

            testCase "dense output is accurate between steps"
            <| fun () ->
                let s = Ode.solve opts (Ode.dopri5 1e-9 1e-12) (oscillator 20.0)

                for t in Grid.linear 0.0 20.0 997 do
                    let y = s.Evaluate t
                    expectClose 1e-7 y[0] (cos t) (sprintf "x(%g)" t)
                    expectClose 1e-7 y[1] (-sin t) (sprintf "v(%g)" t)

            testCase "output on a log grid hits the requested times"
            <| fun () ->
                let grid = Grid.log 0.0 2.0 40
                let s = Ode.solve { opts with SaveAt = grid } (Ode.dopri5 1e-10 1e-12) expSin
                Expect.equal s.T grid "output times"

                for t, y in Array.zip s.T s.Y do
                    expectClose 1e-8 y[0] (expSinExact t) (sprintf "y(%g)" t)

            // Orders measured, not assumed: halving dt must divide the error by 2^p.
            testCase "convergence orders: Euler 1, RK4 4, Dormand-Prince 5"
            <| fun () ->
                let dts = [| 0.1; 0.05; 0.025; 0.0125 |]
                let euler = observedOrder (dts |> Array.map (fun h -> finalError (Euler h))) dts
                let rk4 = observedOrder (dts |> Array.map (fun h -> finalError (RungeKutta4 h))) dts
                // DP5 at a fixed step: a huge tolerance never rejects and MaxStep pins the step.
                let dpDts = [| 0.2; 0.1; 0.05; 0.025 |]

                let dp =
                    dpDts
                    |> Array.map (fun h ->
                        finalError (
                            Dopri5
                                {
                                    RelTol = 1e10
                                    AbsTol = 1e10
                                    InitialStep = h
                                    MaxStep = h
                                }
                        ))

                let dp5 = observedOrder dp dpDts
                Expect.floatClose { absolute = 0.15; relative = 0.0 } euler 1.0 "Euler order"
                Expect.floatClose { absolute = 0.25; relative = 0.0 } rk4 4.0 "RK4 order"
                Expect.floatClose { absolute = 0.35; relative = 0.0 } dp5 5.0 "DP5 order"

            testCase "events locate a crossing and stop the run"
            <| fun () ->
                let p = Ode.problem (fun _ y dy -> dy[0] <- -y[0]) [| 1.0 |] 0.0 10.0

                let ev =
                    {
                        Name = "half"
                        Observable = (fun _ y -> y[0] - 0.5)
                        Direction = Falling
                        Terminal = true
                    }

                let s = Ode.solve { opts with Events = [ ev ] } (Ode.dopri5 1e-10 1e-12) p

                match s.Status with
                | TerminatedByEvent("half", t) -> expectClose 1e-9 t (log 2.0) "event time ln 2"
                | other -> failtestf "expected the event to stop the run, got %A" other

                expectClose 1e-9 s.T[s.T.Length - 1] (log 2.0) "last output at the event"

            testCase "non-terminal events are recorded; direction is respected"
            <| fun () ->
                let s =
                    Ode.solve
                        { opts with
                            Events =
                                [
                                    {
                                        Name = "x=0 down"
                                        Observable = (fun _ y -> y[0])
                                        Direction = Falling
                                        Terminal = false
                                    }
                                ]
                        }
                        (Ode.dopri5 1e-10 1e-12)
                        (oscillator 10.0)

                let times = s.Events |> List.map (fun e -> e.Time)
                // cos t crosses zero downwards at pi/2 and 5 pi/2 in [0, 10].
                Expect.equal times.Length 2 "two downward crossings"
                expectClose 1e-8 times[0] (Math.PI / 2.0) "first"
                expectClose 1e-8 times[1] (5.0 * Math.PI / 2.0) "second"

            testCase "exponential growth is reported as divergence at the bound's crossing time"
            <| fun () ->
                let p = Ode.problem (fun _ y dy -> dy[0] <- y[0]) [| 1.0 |] 0.0 100.0

                for alg in [ Ode.dopri5 1e-10 1e-12; RungeKutta4 0.01 ] do
                    let s = Ode.solve { opts with DivergenceBound = 1e10 } alg p

                    match s.Status with
                    | Diverged(t, _) -> expectClose 1e-6 t (log 1e10) "crosses 1e10 at ln(1e10)"
                    | other -> failtestf "expected divergence, got %A" other

            testCase "finite-time blow-up (y' = y^2) is reported near t = 1"
            <| fun () ->
                let p = Ode.problem (fun _ y dy -> dy[0] <- y[0] * y[0]) [| 1.0 |] 0.0 2.0
                let s = Ode.solve opts (Ode.dopri5 1e-8 1e-10) p

                match s.Status with
                | Diverged(t, _) -> Expect.isTrue (t > 0.999 && t < 1.001) (sprintf "blow-up time %g" t)
                | other -> failtestf "expected divergence, got %A" other

            testCase "statistics count steps, rejections and evaluations"
            <| fun () ->
                let s = Ode.solve opts (Ode.dopri5 1e-8 1e-10) (oscillator 10.0)
                Expect.isGreaterThan s.Stats.Steps 10 "steps"
                // 6 evaluations per attempted step (FSAL), plus the first and the initial-step estimate.
                Expect.equal s.Stats.Evaluations (6 * (s.Stats.Steps + s.Stats.Rejected) + 2) "evaluations"

            testCase "cancellation stops the run and says so"
            <| fun () ->
                use cts = new Threading.CancellationTokenSource()
                cts.Cancel()

                let s =
                    Ode.solve
                        { opts with
                            Control = RunControl.withCancellation cts.Token opts.Control
                        }
                        (RungeKutta4 0.1)
                        (oscillator 10.0)

                match s.Status with
                | Cancelled _ -> ()
                | other -> failtestf "expected Cancelled, got %A" other

            testCase "the wall-clock budget of RunControl stops the run as BudgetExceeded"
            <| fun () ->
                // 10^7 fixed steps cannot finish in a microsecond: the run stops within its first steps.
                let s =
                    Ode.solve
                        { opts with
                            Control = { opts.Control with MaxSeconds = 1e-6 }
                        }
                        (RungeKutta4 1e-6)
                        (oscillator 10.0)

                match s.Status with
                | BudgetExceeded(t, why) ->
                    Expect.isLessThan t 10.0 "stopped early"
                    Expect.stringContains why "MaxSeconds" "names the budget"
                | other -> failtestf "expected BudgetExceeded, got %A" other

            testCase "bad input names the parameter"
            <| fun () ->
                let ex =
                    Expect.throwsC (fun () -> Ode.solve opts (Euler -1.0) (oscillator 1.0) |> ignore) id

                Expect.stringContains ex.Message "dt" "names dt"

                let ex =
                    Expect.throwsC
                        (fun () ->
                            Ode.solve opts (Euler 0.1) (Ode.problem (fun _ _ _ -> ()) [| 1.0 |] 1.0 0.5)
                            |> ignore)
                        id

                Expect.stringContains ex.Message "TEnd" "names TEnd"
        ]
