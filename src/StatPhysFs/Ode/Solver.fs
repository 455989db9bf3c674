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
        /// DOP853: y0 (in A) plus x (F0 + (1-x)(F1 + x(F2 + ...))) with the 7 vectors F built on first use (3 more
        /// right-hand sides); null for the other schemes.
        Dense8: Lazy<float[][]>
    }

module private Segment =
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
            Names = Array.init y0.Length (sprintf "y%d")
        }

    // Dormand-Prince 5(4) tableau (Hairer, Norsett & Wanner), with the dense-output coefficients of DOPRI5.
    /// Hairer's step-size factor after an accepted step with error norm e: 0.9 e^exponent (exponent -1/(q+1)),
    /// clipped to [facMin, facMax] (facMax is 1 right after a rejection).
    let private acceptedFactor (exponent: float) (facMin: float) (facMax: float) (e: float) =
        if e = 0.0 then
            facMax
        else
            min facMax (max facMin (0.9 * e ** exponent))

    /// The factor after a rejected step; a non-finite error norm (an overflowing stage) cuts the step tenfold.
    let private rejectedFactor (exponent: float) (facMin: float) (e: float) =
        if Double.IsFinite e then max facMin (0.9 * e ** exponent) else 0.1

    let private stepUnderflow =
        "the step size underflowed (the solution blows up or the right-hand side is not finite)"

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

    // Dormand-Prince 8(5,3) (DOP853, Hairer, Norsett & Wanner, Solving ODEs I, 2nd ed.; coefficients of Hairer's
    // published dop853): 12 stages, the 13th is f at the new point (FSAL), 3 more for the 7th-order dense output.
    let private dop853C =
        [| 0.0; 0.05260015195876773; 0.0789002279381516; 0.1183503419072274; 0.2816496580927726; 0.3333333333333333; 0.25; 0.3076923076923077; 0.6512820512820513; 0.6; 0.8571428571428571; 1.0; 1.0; 0.1; 0.2; 0.7777777777777778 |]

    /// Rows of the stage matrix as (column, coefficient) pairs, rows 1..15 (row 12 holds the 8th-order weights).
    let private dop853A =
        [|
            [||]
            [| 0, 5.26001519587677318785587544488e-2 |]
            [| 0, 1.97250569845378994544595329183e-2; 1, 5.91751709536136983633785987549e-2 |]
            [| 0, 2.95875854768068491816892993775e-2; 2, 8.87627564304205475450678981324e-2 |]
            [| 0, 2.41365134159266685502369798665e-1; 2, -8.84549479328286085344864962717e-1; 3, 9.24834003261792003115737966543e-1 |]
            [| 0, 3.7037037037037037037037037037e-2; 3, 1.70828608729473871279604482173e-1; 4, 1.25467687566822425016691814123e-1 |]
            [| 0, 3.7109375e-2; 3, 1.70252211019544039314978060272e-1; 4, 6.02165389804559606850219397283e-2; 5, -1.7578125e-2 |]
            [| 0, 3.70920001185047927108779319836e-2; 3, 1.70383925712239993810214054705e-1; 4, 1.07262030446373284651809199168e-1; 5, -1.53194377486244017527936158236e-2; 6, 8.27378916381402288758473766002e-3 |]
            [| 0, 6.24110958716075717114429577812e-1; 3, -3.36089262944694129406857109825; 4, -8.68219346841726006818189891453e-1; 5, 2.75920996994467083049415600797e1; 6, 2.01540675504778934086186788979e1; 7, -4.34898841810699588477366255144e1 |]
            [| 0, 4.77662536438264365890433908527e-1; 3, -2.48811461997166764192642586468; 4, -5.90290826836842996371446475743e-1; 5, 2.12300514481811942347288949897e1; 6, 1.52792336328824235832596922938e1; 7, -3.32882109689848629194453265587e1; 8, -2.03312017085086261358222928593e-2 |]
            [| 0, -9.3714243008598732571704021658e-1; 3, 5.18637242884406370830023853209; 4, 1.09143734899672957818500254654; 5, -8.14978701074692612513997267357; 6, -1.85200656599969598641566180701e1; 7, 2.27394870993505042818970056734e1; 8, 2.49360555267965238987089396762; 9, -3.0467644718982195003823669022 |]
            [| 0, 2.27331014751653820792359768449; 3, -1.05344954667372501984066689879e1; 4, -2.00087205822486249909675718444; 5, -1.79589318631187989172765950534e1; 6, 2.79488845294199600508499808837e1; 7, -2.85899827713502369474065508674; 8, -8.87285693353062954433549289258; 9, 1.23605671757943030647266201528e1; 10, 6.43392746015763530355970484046e-1 |]
            [| 0, 5.42937341165687622380535766363e-2; 5, 4.45031289275240888144113950566; 6, 1.89151789931450038304281599044; 7, -5.8012039600105847814672114227; 8, 3.1116436695781989440891606237e-1; 9, -1.52160949662516078556178806805e-1; 10, 2.01365400804030348374776537501e-1; 11, 4.47106157277725905176885569043e-2 |]
            [| 0, 5.61675022830479523392909219681e-2; 6, 2.53500210216624811088794765333e-1; 7, -2.46239037470802489917441475441e-1; 8, -1.24191423263816360469010140626e-1; 9, 1.5329179827876569731206322685e-1; 10, 8.20105229563468988491666602057e-3; 11, 7.56789766054569976138603589584e-3; 12, -8.298e-3 |]
            [| 0, 3.18346481635021405060768473261e-2; 5, 2.83009096723667755288322961402e-2; 6, 5.35419883074385676223797384372e-2; 7, -5.49237485713909884646569340306e-2; 10, -1.08347328697249322858509316994e-4; 11, 3.82571090835658412954920192323e-4; 12, -3.40465008687404560802977114492e-4; 13, 1.41312443674632500278074618366e-1 |]
            [| 0, -4.28896301583791923408573538692e-1; 5, -4.69762141536116384314449447206; 6, 7.68342119606259904184240953878; 7, 4.06898981839711007970213554331; 8, 3.56727187455281109270669543021e-1; 12, -1.39902416515901462129418009734e-3; 13, 2.9475147891527723389556272149; 14, -9.15095847217987001081870187138 |]
        |]

    /// 8th-order weights minus the 3rd-order ones (nonzero at stages 0, 8, 11 only).
    let private dop853Bhh = [| 0, 0.244094488188976377952755905512; 8, 0.733846688281611857341361741547; 11, 0.220588235294117647058823529412e-1 |]
    /// The 5th-order error estimator's weights.
    let private dop853E5 = [| 0, 0.1312004499419488073250102996e-1; 5, -0.1225156446376204440720569753e1; 6, -0.4957589496572501915214079952; 7, 0.1664377182454986536961530415e1; 8, -0.3503288487499736816886487290; 9, 0.3341791187130174790297318841; 10, 0.8192320648511571246570742613e-1; 11, -0.2235530786388629525884427845e-1 |]

    /// The dense-output coefficients of the 4 highest interpolant terms, over the 16 stages.
    let private dop853D =
        [|
            [| 0, -0.84289382761090128651353491142e1; 5, 0.56671495351937776962531783590; 6, -0.30689499459498916912797304727e1; 7, 0.23846676565120698287728149680e1; 8, 0.21170345824450282767155149946e1; 9, -0.87139158377797299206789907490; 10, 0.22404374302607882758541771650e1; 11, 0.63157877876946881815570249290; 12, -0.88990336451333310820698117400e-1; 13, 0.18148505520854727256656404962e2; 14, -0.91946323924783554000451984436e1; 15, -0.44360363875948939664310572000e1 |]
            [| 0, 0.10427508642579134603413151009e2; 5, 0.24228349177525818288430175319e3; 6, 0.16520045171727028198505394887e3; 7, -0.37454675472269020279518312152e3; 8, -0.22113666853125306036270938578e2; 9, 0.77334326684722638389603898808e1; 10, -0.30674084731089398182061213626e2; 11, -0.93321305264302278729567221706e1; 12, 0.15697238121770843886131091075e2; 13, -0.31139403219565177677282850411e2; 14, -0.93529243588444783865713862664e1; 15, 0.35816841486394083752465898540e2 |]
            [| 0, 0.19985053242002433820987653617e2; 5, -0.38703730874935176555105901742e3; 6, -0.18917813819516756882830838328e3; 7, 0.52780815920542364900561016686e3; 8, -0.11573902539959630126141871134e2; 9, 0.68812326946963000169666922661e1; 10, -0.10006050966910838403183860980e1; 11, 0.77771377980534432092869265740; 12, -0.27782057523535084065932004339e1; 13, -0.60196695231264120758267380846e2; 14, 0.84320405506677161018159903784e2; 15, 0.11992291136182789328035130030e2 |]
            [| 0, -0.25693933462703749003312586129e2; 5, -0.15418974869023643374053993627e3; 6, -0.23152937917604549567536039109e3; 7, 0.35763911791061412378285349910e3; 8, 0.93405324183624310003907691704e2; 9, -0.37458323136451633156875139351e2; 10, 0.10409964950896230045147246184e3; 11, 0.29840293426660503123344363579e2; 12, -0.43533456590011143754432175058e2; 13, 0.96324553959188282948394950600e2; 14, -0.39177261675615439165231486172e2; 15, -0.14972683625798562581422125276e3 |]
        |]

    let private dop853Cols = dop853A |> Array.map (Array.map fst)
    let private dop853Coefs = dop853A |> Array.map (Array.map snd)

    let private validate (o: SolveOptions) (alg: OdeAlgorithm) (p: OdeProblem) =
        Check.finite "T0" p.T0
        Check.greaterThan "TEnd" p.T0 p.TEnd
        Check.that "Y0" (p.Y0.Length > 0) "Y0 must have at least one component."
        p.Y0 |> Array.iteri (fun i v -> Check.finite (sprintf "Y0[%d]" i) v)
        Check.positive "DivergenceBound" o.DivergenceBound
        Check.positiveInt "MaxSteps" o.MaxSteps

        match alg with
        | Dopri5 d
        | Dop853 d ->
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
                status <- BudgetExceeded(t, sprintf "MaxSteps = %d steps taken" options.MaxSteps)
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
                            Dense8 = null
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
                        rejected <- rejected + 1
                        let fac = rejectedFactor -0.2 0.1 e
                        h <- h' * fac
                        facMax <- 1.0

                        if h < 1e-14 * max 1.0 (abs t) then
                            status <- Diverged(t, stepUnderflow)

                            emit t y
                            go <- false

        | Dop853 o ->
            let stage = Array.init 16 (fun j -> if j = 0 then f0 else Array.zeroCreate n)
            let ys = Array.zeroCreate n
            let y1 = Array.zeroCreate n

            let norm (v: float[]) (ya: float[]) (yb: float[]) =
                let mutable s = 0.0

                for i in 0 .. n - 1 do
                    let sc = o.AbsTol + o.RelTol * max (abs ya[i]) (abs yb[i])
                    let r = v[i] / sc
                    s <- s + r * r

                sqrt (s / float n)

            // ys = y + h sum_j a_sj k_j for stage s.
            let stageState (s: int) (h: float) =
                let cols = dop853Cols[s]
                let coefs = dop853Coefs[s]

                for i in 0 .. n - 1 do
                    let mutable acc = 0.0

                    for q in 0 .. cols.Length - 1 do
                        acc <- acc + coefs[q] * stage[cols[q]][i]

                    ys[i] <- y[i] + h * acc

            let mutable h =
                if o.InitialStep > 0.0 then
                    o.InitialStep
                else
                    // Hairer's starting-step estimate for an 8th-order method.
                    let d0 = norm y y y
                    let d1 = norm f0 y y
                    let h0 = if d0 < 1e-5 || d1 < 1e-5 then 1e-6 else 0.01 * d0 / d1
                    let h0 = min h0 span

                    for i in 0 .. n - 1 do
                        ys[i] <- y[i] + h0 * f0[i]

                    let k1 = stage[1]
                    rhs (t + h0) ys k1

                    for i in 0 .. n - 1 do
                        k1[i] <- k1[i] - f0[i]

                    let d2 = norm k1 y y / h0
                    let m = max d1 d2

                    let h1 =
                        if m <= 1e-15 then
                            max 1e-6 (h0 * 1e-3)
                        else
                            (0.01 / m) ** (1.0 / 8.0)

                    let h = min (100.0 * h0) h1
                    if Double.IsFinite h && h > 0.0 then h else 1e-6 * span

            h <- min h o.MaxStep
            let mutable facMax = 6.0
            let mutable go = true
            let e5 = Array.zeroCreate n

            while go && t < tEnd do
                if not (checkStop ()) then
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

                        if options.Dense then
                            dense8.Force() |> ignore

                        t <- tn
                        Array.blit y1 0 y 0 n
                        Array.blit f1 0 f0 0 n

                        let fac = acceptedFactor -0.125 0.333 facMax e

                        h <- min o.MaxStep (h' * fac)
                        facMax <- 6.0
                    else
                        rejected <- rejected + 1
                        let fac = rejectedFactor -0.125 0.333 e
                        h <- h' * fac
                        facMax <- 1.0

                        if h < 1e-14 * max 1.0 (abs t) then
                            status <- Diverged(t, stepUnderflow)

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
