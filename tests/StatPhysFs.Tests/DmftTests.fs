module StatPhysFs.Tests.DmftTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open StatPhysFs
open StatPhysFs.Ode
open StatPhysFs.Dmft
open StatPhysFs.Gaussian
open StatPhysFs.Simulation
open StatPhysFs.Tests.Prop

let private square = DmftProblem.glm GlmLoss.Square GlmTeacher.Linear

let private exact =
    { DmftSettings.defaults with
        Strategy = ExactClosure
    }

let private lsOf (p: DmftProblem) = LeastSquaresProblem.ofDmft p

/// The least-squares curve of a problem: the discrete recursion, or the continuous Volterra equation on its grid.
let private volterra (scheme: LeastSquaresScheme) (p: LeastSquaresProblem) =
    LeastSquaresSgf.solve
        { LeastSquaresSettings.defaults with
            Scheme = scheme
        }
        p

/// The finite-d multi-pass simulation of a process.
let private simulate (o: SimulationOptions) (proc: MultiPassProcess) (p: DmftProblem) =
    MultiPassSim.solve
        { MultiPassSimSettings.defaults with
            Process = proc
            Options = o
        }
        p

/// Least-squares problems from a seed: alpha in [0.3, 4], tau in [0, 1.5], ridge in [0, 0.5], random rho, sigma^2,
/// q0, dt in [0.05, 0.2], up to 60 steps.
let private lsProblem (seed: int) =
    let r = Rng(seed, 11)
    let a = 0.3 + 3.7 * r.NextDouble()
    let smax = (1.0 + 1.0 / sqrt a) ** 2.0
    let ridge = if r.NextDouble() < 0.3 then 0.0 else 0.5 * r.NextDouble()

    { square with
        Alpha = a
        Tau = 1.5 * r.NextDouble()
        Ridge = ridge
        NoiseVar = r.NextDouble()
        Dt = min (0.05 + 0.15 * r.NextDouble()) (1.5 / (smax + ridge))
        Steps = 10 + int (50.0 * r.NextDouble())
    }
    |> DmftProblem.withRho (0.3 + 2.0 * r.NextDouble())
    |> DmftProblem.withQ0 (if r.NextDouble() < 0.5 then 0.0 else r.NextDouble())

let private within (k: float) (bias: float) (a: float) (sa: float) (b: float) (sb: float) =
    abs (a - b) <= k * sqrt (sa * sa + sb * sb) + bias * max 1.0 (abs b)

/// DMFT against simulation at grid index k: 4.5 combined standard errors plus `bias` relative.
let private agrees (context: string) (bias: float) (k: int) (name: string) (x: SeriesEstimate) (y: SeriesEstimate) =
    Expect.isTrue
        (within 4.5 bias x.Mean[k] x.StdErr[k] y.Mean[k] y.StdErr[k])
        (sprintf "%s %s: DMFT %g +- %g, SGF %g +- %g" context name x.Mean[k] x.StdErr[k] y.Mean[k] y.StdErr[k])

[<Tests>]
let leastSquares =
    testList
        "DMFT: least squares"
        [
            // Oracle: the discrete Marchenko-Pastur Volterra recursion (an independent derivation, spec section
            // 4.1): the moment-closed DMFT must equal it to roundoff (issue bar 1e-12).
            testProp "the Monte-Carlo-free DMFT equals the discrete Volterra recursion to 1e-12" 40
            <| Prop.forAll (Arb.fromGen seeds) (fun seed ->
                let p = lsProblem seed
                let sol = Dmft.solve exact p

                let v = volterra Discrete (lsOf p)

                let ok (a: float[]) (b: float[]) =
                    Array.forall2 (fun x y -> close 1e-12 x y) a b

                sol.Status = Completed
                && ok sol.Q[0, 0].Mean v.Q
                && ok sol.M[0, 0].Mean v.M
                && ok sol.TrainLoss.Mean v.TrainLoss
                && ok sol.TestLoss.Mean v.TestLoss)

            test "the Monte Carlo forward sweep and the fixed point agree with the exact closure within their errors" {
                // Tolerance: 4.5 standard errors (across 4 replicas) plus 0.5% for the O(1/N) bias of spec 5.4.
                let p =
                    { square with
                        Alpha = 2.0
                        Tau = 1.0
                        Steps = 40
                    }

                let ex = Dmft.solve exact p

                for strategy in [ ForwardSweep; FixedPoint(4000, 0.5, 8) ] do
                    let mc =
                        Dmft.solve
                            { DmftSettings.defaults with
                                Samples = 8000
                                Replicas = 4
                                Strategy = strategy
                            }
                            p

                    for k in [ 1; 10; 20; 40 ] do
                        let chk name (s: SeriesEstimate) (e: SeriesEstimate) =
                            Expect.isTrue
                                (within 4.5 0.005 s.Mean[k] s.StdErr[k] e.Mean[k] 0.0)
                                (sprintf
                                    "%A %s at k=%d: %g +- %g vs exact %g"
                                    strategy
                                    name
                                    k
                                    s.Mean[k]
                                    s.StdErr[k]
                                    e.Mean[k])

                        chk "q" mc.Q[0, 0] ex.Q[0, 0]
                        chk "m" mc.M[0, 0] ex.M[0, 0]
                        chk "train" mc.TrainLoss ex.TrainLoss
            }

            test "tau = 0 reproduces the continuous Marchenko-Pastur gradient flow as dt -> 0 (Richardson)" {
                // Oracle: the closed form e_GF(t). Euler's O(dt) error is removed by 2 v(dt/2) - v(dt).
                let p =
                    { square with
                        Alpha = 2.0
                        Tau = 0.0
                        Ridge = 0.1
                    }

                let law = MarchenkoPastur.ofAlpha 2.0
                let eGf, _, _ = LeastSquaresSgf.gradientFlow law (lsOf p) 2.0

                let e dt =
                    let s =
                        Dmft.solve
                            exact
                            { p with
                                Dt = dt
                                Steps = int (Math.Round(2.0 / dt))
                            }

                    s.TestLoss.Mean[s.T.Length - 1] - p.NoiseVar

                let rich = 2.0 * e 0.025 - e 0.05
                expectClose 2e-4 rich eGf "Richardson-extrapolated DMFT e(2) = e_GF(2)"
            }
        ]

[<Tests>]
let structure =
    testList
        "DMFT: structure and the first step"
        [
            test "C symmetric PSD, R causal with R(k+1, k) = I, Sigma_u PSD (logistic, Monte Carlo)" {
                let p =
                    { DmftProblem.glm GlmLoss.Logistic GlmTeacher.Sign with
                        Steps = 25
                    }
                    |> DmftProblem.withRho 4.0
                    |> DmftProblem.withQ0 0.1

                let s =
                    Dmft.solve
                        { DmftSettings.defaults with
                            Samples = 4000
                            Replicas = 2
                        }
                        p

                let c = s.Correlation.ToArray2D()
                let r = s.Response.ToArray2D()
                let su = s.NoiseCovariance.ToArray2D()
                let n = s.T.Length

                for k in 0 .. n - 1 do
                    for l in 0 .. n - 1 do
                        Expect.floatClose Accuracy.veryHigh c[k, l] c[l, k] "C symmetric"

                        if k <= l then
                            Expect.equal r[k, l] 0.0 "R(k, l) = 0 for k <= l"

                    if k > 0 then
                        Expect.equal r[k, k - 1] 1.0 "R(k+1, k) = 1"

                let minEig (a: float[,]) =
                    (Linalg.ofArray2D a).Evd().EigenValues |> Seq.map (fun z -> z.Real) |> Seq.min

                let scale (a: float[,]) =
                    Seq.max (seq { for i in 0 .. n - 1 -> abs a[i, i] })

                Expect.isGreaterThan (minEig c) (-1e-10 * scale c) "C PSD"
                Expect.isGreaterThan (minEig su) (-1e-10 * scale su) "Sigma_u PSD"
            }

            test "the first step equals its hand formula for every loss (spec V7)" {
                // theta_0 = 0, so r_0 = 0: C(1,1) = Dt^2 rho (E[dl/dw*])^2 + E[l(0)^2](Dt^2 + tau alpha Dt)/alpha
                // and m(1) = -Dt rho E[dl/dw*], with E[dl/dw*] = E[l(0; y) w*]/rho by Stein. Sign teacher,
                // sigma = 0: y = sign(w*), E[y w*] = sqrt(2 rho/pi). Logistic: l(0) = -y/2; hinge: l(0) = -y.
                let rho, dt, a, tau = 4.0, 0.1, 2.0, 1.0

                for loss, l0 in [ GlmLoss.Logistic, 0.5; GlmLoss.Hinge, 1.0 ] do
                    let p =
                        { DmftProblem.glm loss GlmTeacher.Sign with
                            Alpha = a
                            Tau = tau
                            NoiseVar = 0.0
                            Dt = dt
                            Steps = 1
                        }
                        |> DmftProblem.withRho rho

                    let dldws = -l0 * sqrt (2.0 * rho / Math.PI) / rho
                    let c11 = dt * dt * rho * dldws * dldws + l0 * l0 * (dt * dt + tau * a * dt) / a
                    let m1 = -dt * rho * dldws

                    let s =
                        Dmft.solve
                            { DmftSettings.defaults with
                                Samples = 20000
                                Replicas = 4
                            }
                            p
                    // l(0)^2 is constant, so C(1,1)'s only noise is E[l w*]^2: tight; 4.5 SE + 1e-3.
                    Expect.isTrue
                        (within 4.5 1e-3 s.Q[0, 0].Mean[1] s.Q[0, 0].StdErr[1] c11 0.0)
                        (sprintf "%s C(1,1) %g +- %g vs %g" loss.Name s.Q[0, 0].Mean[1] s.Q[0, 0].StdErr[1] c11)

                    Expect.isTrue
                        (within 4.5 1e-3 s.M[0, 0].Mean[1] s.M[0, 0].StdErr[1] m1 0.0)
                        (sprintf "%s m(1) %g +- %g vs %g" loss.Name s.M[0, 0].Mean[1] s.M[0, 0].StdErr[1] m1)
                // Square loss: exact, C(1,1) = Dt^2 rho + (rho + sigma^2)(Dt^2 + tau alpha Dt)/alpha, m(1) = Dt rho.
                let p =
                    { square with
                        Alpha = a
                        Tau = tau
                        Dt = dt
                        Steps = 1
                    }
                    |> DmftProblem.withRho rho

                let s = Dmft.solve exact p

                expectClose
                    1e-14
                    s.Q[0, 0].Mean[1]
                    (dt * dt * rho + (rho + p.NoiseVar) * (dt * dt + tau * a * dt) / a)
                    "square C(1,1)"

                expectClose 1e-14 s.M[0, 0].Mean[1] (dt * rho) "square m(1)"
            }

            test "the same seed gives the same numbers at any thread count" {
                let p =
                    { DmftProblem.glm GlmLoss.Logistic GlmTeacher.Sign with
                        Steps = 10
                    }

                let run par =
                    Dmft.solve
                        { DmftSettings.defaults with
                            Samples = 3000
                            Replicas = 2
                            MaxParallelism = par
                        }
                        p

                let a = run 1

                for par in [ 2; 4 ] do
                    let b = run par
                    let at = sprintf "(%d threads against 1)" par
                    Expect.equal a.Q[0, 0].Mean b.Q[0, 0].Mean ("q identical " + at)
                    Expect.equal a.M[0, 0].Mean b.M[0, 0].Mean ("m identical " + at)
                    Expect.equal a.TrainLoss.Mean b.TrainLoss.Mean ("train loss identical " + at)
                    Expect.equal a.Correlation.Data b.Correlation.Data ("C identical " + at)
                    Expect.equal a.Response.Data b.Response.Data ("R identical " + at)
                    Expect.equal a.NoiseCovariance.Data b.NoiseCovariance.Data ("Sigma_u identical " + at)
            }

            test "bad input names the parameter; tau above critical is reported as divergence with its time" {
                let ex =
                    Expect.throwsC (fun () -> Dmft.solve exact { square with Alpha = -1.0 } |> ignore) (fun e ->
                        e.Message)

                Expect.stringContains ex "alpha" "names alpha"

                let ex2 =
                    Expect.throwsC (fun () -> Dmft.solve exact { square with Dt = 1.5 } |> ignore) (fun e -> e.Message)

                Expect.stringContains ex2 "dt" "names dt"

                let ex3 =
                    Expect.throwsC
                        (fun () -> Dmft.solve exact (DmftProblem.glm GlmLoss.Logistic GlmTeacher.Sign) |> ignore)
                        (fun e -> e.Message)

                Expect.stringContains ex3 "square loss" "the closure says what it needs"
                let s = Dmft.solve exact { square with Tau = 3.0; Steps = 5000 }

                match s.Status with
                | Diverged(t, _) -> Expect.isGreaterThan t 1.0 "diverges after a while"
                | st -> failtestf "expected divergence at tau = 3 > tau_c = 2, got %A" st
            }
        ]

[<Tests>]
let online =
    testList
        "DMFT: online limit"
        [
            test "alpha -> infinity: logistic DMFT approaches the online ODE (Gaussian-quadrature drift, clock t)" {
                // Oracle: spec section 4.3, dm/dt = -E[l(w) w*], dq/dt = -2E[l(w) w] + tau E[l^2] - 2 lambda q,
                // integrated here by RK4 with a 2-D Gauss-Hermite rule (an independent code path: no row memory,
                // no responses). The DMFT at alpha = 200 must be within 1% (Monte Carlo 4.5 SE on top).
                let tau, rho, lam, dt = 1.0, 1.0, 0.05, 0.05
                let teacherSign = GlmTeacher.Sign
                let model = RowModel.create (Glm(GlmLoss.Logistic, teacherSign))
                let rule = GaussianRule.tensor 2 40
                let lbuf = [| 0.0 |]
                let jbuf = [| 0.0 |]
                let rbuf = [| 0.0 |]
                let wsb = [| 0.0 |]

                let drift (y: float[]) =
                    let m, q = y[0], y[1]
                    let cov = array2D [ [ q; m ]; [ m; rho ] ]

                    let e f =
                        GaussianRule.expect rule [| 0.0; 0.0 |] cov (fun x ->
                            rbuf[0] <- x[0]
                            wsb[0] <- x[1]
                            model.Eval rbuf (model.Label wsb 0.0) lbuf jbuf |> ignore
                            f x lbuf[0])

                    let lws = e (fun x l -> l * x[1])
                    let lw = e (fun x l -> l * x[0])
                    let l2 = e (fun _ l -> l * l)
                    [| -lws - lam * m; -2.0 * lw + tau * l2 - 2.0 * lam * q |]

                let steps = 40
                let mutable y = [| 0.0; 0.0 |]
                let h = 2.0 / float steps

                for _ in 1..steps do
                    let add (a: float[]) (b: float[]) c = Array.map2 (fun x z -> x + c * z) a b
                    let k1 = drift y
                    let k2 = drift (add y k1 (h / 2.0))
                    let k3 = drift (add y k2 (h / 2.0))
                    let k4 = drift (add y k3 h)
                    y <- Array.init 2 (fun i -> y[i] + h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]))

                let p =
                    { DmftProblem.glm GlmLoss.Logistic teacherSign with
                        Alpha = 200.0
                        Tau = tau
                        Ridge = lam
                        NoiseVar = 0.0
                        Dt = dt
                        Steps = 40
                    }

                let s =
                    Dmft.solve
                        { DmftSettings.defaults with
                            Samples = 8000
                            Replicas = 4
                        }
                        p

                let k = 40

                Expect.isTrue
                    (within 4.5 0.01 s.M[0, 0].Mean[k] s.M[0, 0].StdErr[k] y[0] 0.0)
                    (sprintf "m(2): DMFT %g +- %g, online %g" s.M[0, 0].Mean[k] s.M[0, 0].StdErr[k] y[0])

                Expect.isTrue
                    (within 4.5 0.01 s.Q[0, 0].Mean[k] s.Q[0, 0].StdErr[k] y[1] 0.0)
                    (sprintf "q(2): DMFT %g +- %g, online %g" s.Q[0, 0].Mean[k] s.Q[0, 0].StdErr[k] y[1])
            }
        ]


[<Tests>]
let simulation =
    testList
        "DMFT against the finite-d SGF"
        [
            // The issue's bar: logistic regression and a k = 2 two-layer network, DMFT against the SGF simulated at
            // d = 2000 (4 seeds). Tolerance: 4.5 combined standard errors plus 1.5% relative, the finite-d bias the
            // spec reports (~0.5% logistic, ~1.4% two-layer at d = 3000).
            test "logistic regression (alpha, tau) in (2, 0), (2, 1), (0.7, 2): m, q, train loss, test error" {
                for a, tau in [ 2.0, 0.0; 2.0, 1.0; 0.7, 2.0 ] do
                    let p =
                        { DmftProblem.glm GlmLoss.Logistic GlmTeacher.Sign with
                            Alpha = a
                            Tau = tau
                            Ridge = 0.05
                            NoiseVar = 0.0
                            Steps = 40
                        }
                        |> DmftProblem.withRho 4.0

                    let th =
                        Dmft.solve
                            { DmftSettings.defaults with
                                Samples = 10000
                                Replicas = 4
                            }
                            p

                    let sim =
                        simulate
                            { SimulationOptions.defaults with
                                Dim = 2000
                                Seeds = 4
                            }
                            Sgf
                            p

                    for k in [ 10; 20; 40 ] do
                        let chk = agrees (sprintf "alpha=%g tau=%g t=%g" a tau th.T[k]) 0.015 k

                        chk "m" th.M[0, 0] sim.M[0, 0]
                        chk "q" th.Q[0, 0] sim.Q[0, 0]
                        chk "train loss" th.TrainLoss sim.TrainLoss
                        chk "test error" th.TestError.Value sim.TestError.Value
            }

            test "two-layer tanh network, k = 2 (spec 3.4 settings), tau in {0, 1}: C, M, train and test loss" {
                let net =
                    {
                        Student = Activation.tanh
                        V = [| 1.0; 0.5 |]
                        Teacher = Activation.tanh
                        VTeacher = [| 1.0; 1.0 |]
                    }

                for tau in [ 0.0; 1.0 ] do
                    let p =
                        { DmftProblem.twoLayer net 0.25 with
                            Tau = tau
                            Steps = 20
                        }

                    let th =
                        Dmft.solve
                            { DmftSettings.defaults with
                                Samples = 8000
                                Replicas = 4
                            }
                            p

                    let sim =
                        simulate
                            { SimulationOptions.defaults with
                                Dim = 2000
                                Seeds = 4
                            }
                            Sgf
                            p

                    for k in [ 5; 20 ] do
                        let chk = agrees (sprintf "tau=%g t=%g" tau th.T[k]) 0.015 k

                        for i in 0..1 do
                            for j in 0..1 do
                                chk (sprintf "C%d%d" i j) th.Q[i, j] sim.Q[i, j]
                                chk (sprintf "M%d%d" i j) th.M[i, j] sim.M[i, j]

                        chk "train loss" th.TrainLoss sim.TrainLoss
                        chk "test loss" th.TestLoss sim.TestLoss
            }

            test "least squares: real mini-batch SGD with replacement follows the continuous-time SGF (Volterra)" {
                // For linear models SGD and the SGF coincide (spec 1.4). SGD's steps eta/d are tiny, so the oracle is
                // the continuous Volterra solution (trapezoid, dt = 0.01, error ~1e-4), not the Dt = 0.1
                // Euler-Maruyama DMFT (which differs by O(Dt): 7% in q at t = 1, measured 0.541 vs 0.504). B = 1, eta = tau,
                // d = 1000, 6 seeds; tolerance 4.5 SE + 1.5% finite-d bias.
                let p =
                    { square with
                        Alpha = 2.0
                        Tau = 0.5
                        Steps = 30
                    }

                let c = volterra Continuous { lsOf p with Dt = 0.01; Steps = 300 }

                let o =
                    { SimulationOptions.defaults with
                        Dim = 1000
                        Seeds = 6
                    }

                let sgd = simulate o (Sgd(1, WithReplacement)) p

                for k in [ 10; 30 ] do
                    Expect.isTrue
                        (within 4.5 0.015 sgd.Q[0, 0].Mean[k] sgd.Q[0, 0].StdErr[k] c.Q[10 * k] 0.0)
                        (sprintf
                            "q at t=%g: SGD %g +- %g, SGF %g"
                            sgd.T[k]
                            sgd.Q[0, 0].Mean[k]
                            sgd.Q[0, 0].StdErr[k]
                            c.Q[10 * k])

                    Expect.isTrue
                        (within 4.5 0.015 sgd.TrainLoss.Mean[k] sgd.TrainLoss.StdErr[k] c.TrainLoss[10 * k] 0.0)
                        (sprintf
                            "train at t=%g: SGD %g +- %g, SGF %g"
                            sgd.T[k]
                            sgd.TrainLoss.Mean[k]
                            sgd.TrainLoss.StdErr[k]
                            c.TrainLoss[10 * k])
            }
        ]

[<Tests>]
let extrapolation =
    test "Richardson in dt removes the O(dt) Euler-Maruyama error: second order against the continuous Volterra" {
        // Oracle: the continuous-time Volterra solution (trapezoid at dt = 0.0025, error ~1e-6). Measured at Dt = 0.1:
        // plain error 7.1e-2 in q(1), extrapolated 4.1e-3; halving Dt divides the extrapolated error by ~4.
        let c =
            volterra
                Continuous
                { LeastSquaresProblem.defaults with
                    Alpha = 2.0
                    Tau = 1.0
                    Dt = 0.0025
                    Steps = 400
                }

        let exactAt t = c.Q[int (Math.Round(t / 0.0025))]

        let errs dt =
            let p =
                { square with
                    Alpha = 2.0
                    Tau = 1.0
                    Dt = dt
                    Steps = int (Math.Round(1.0 / dt))
                }

            let plain = Dmft.solve exact p
            let rich = Dmft.solve { exact with ExtrapolateInStep = true } p
            let k = p.Steps
            abs (plain.Q[0, 0].Mean[k] - exactAt 1.0), abs (rich.Q[0, 0].Mean[rich.T.Length - 1] - exactAt 1.0)

        let p1, r1 = errs 0.1
        let _, r2 = errs 0.05
        Expect.isLessThan r1 (0.1 * p1) "extrapolation gains an order of magnitude at dt = 0.1"
        Expect.isTrue (r1 / r2 > 3.0 && r1 / r2 < 5.5) (sprintf "second order: error ratio %g" (r1 / r2))
    }

/// Runs `oracle` and the default sampler on the same 1000 samples at two threads (chunks of 256 and a last one of 232,
/// whose block of 16 ends in padding lanes) and expects the same reach and every kernel within `tol` relative (to
/// max(|x|, 1e-3)); then the default sampler at Vector<float> width (`NarrowVectors`) must equal it bit for bit (per
/// sample the same operations in the same order, R_g summed over the same slots). Returns the default sampler's
/// kernels, for the caller's check that the comparison had something to see.
let private expectSamplersAgree (name: string) (tol: float) (oracle: SamplerVariant) (p: DmftProblem) =
    let s =
        { DmftSettings.defaults with
            MaxParallelism = 2
        }

    let model = RowModel.create p.Model

    let run variant =
        DmftSweep.forwardSweepWith variant s p model 0 1000 0 ignore

    let c1, t1, n1, st1 = run oracle
    let c2, t2, n2, st2 = run DefaultSampler
    Expect.equal (n1, st1) (n2, st2) (name + ": same reach and status")
    Expect.equal n1 (p.Steps + 1) (name + ": completed")

    let chk what (a: float[]) (b: float[]) =
        let mutable worst = 0.0

        for i in 0 .. a.Length - 1 do
            worst <- max worst (abs (a[i] - b[i]) / (1e-3 + abs a[i]))

        Expect.isLessThan worst tol (sprintf "%s %s: worst relative difference %g" name what worst)

    chk "train loss" t1 t2
    chk "C" c1.C c2.C
    chk "R" c1.R c2.R
    chk "M" c1.M c2.M
    chk "R_g" c1.Rg c2.Rg
    chk "Sigma_u" c1.Su c2.Su
    let c3, t3, _, _ = run NarrowVectors
    Expect.equal t3 t2 (name + ": train loss, Vector512 = Vector<float>")
    Expect.equal c3.C c2.C (name + ": C, Vector512 = Vector<float>")
    Expect.equal c3.R c2.R (name + ": R, Vector512 = Vector<float>")
    Expect.equal c3.Rg c2.Rg (name + ": R_g, Vector512 = Vector<float>")
    Expect.equal c3.Su c2.Su (name + ": Sigma_u, Vector512 = Vector<float>")
    c2

[<Tests>]
let responseRecomputation =
    testList
        "DMFT: recomputed responses"
        [
            // Oracle: the stored-responses sampler (forward recursion over all rows of D, O(N K^2) memory) on the same
            // random streams. The default back substitution computes the same row of D = L^{-1} in another order, so
            // the two agree to roundoff; 1e-9 relative (to max(|value|, 1e-3)) leaves room for the sweep's amplification
            // of roundoff through the Cholesky factor over the steps, and is far below the Monte Carlo error (~1e-2).
            test
                "back substitution equals the stored responses to roundoff (logistic m = 1, tanh committee m = 2, m = 1 with m* = 2)" {
                let net =
                    {
                        Student = Activation.tanh
                        V = [| 1.0; 0.5 |]
                        Teacher = Activation.tanh
                        VTeacher = [| 1.0; 1.0 |]
                    }

                let problems =
                    [
                        "logistic",
                        ({ DmftProblem.glm GlmLoss.Logistic GlmTeacher.Sign with
                            Steps = 60
                            Tau = 1.0
                         }
                         |> DmftProblem.withQ0 0.1)
                        "two-layer tanh",
                        { DmftProblem.twoLayer net 0.25 with
                            Tau = 1.0
                            Steps = 20
                        }
                        // m = 1 with a two-unit teacher: the vectorised m = 1 sampler with m* = 2.
                        "one-unit tanh student, two-unit teacher",
                        { DmftProblem.twoLayer { net with V = [| 1.0 |] } 0.25 with
                            Tau = 1.0
                            Steps = 23
                        }
                    ]

                for name, p in problems do
                    let c2 = expectSamplersAgree name 1e-9 StoredResponses p
                    // The check can fail: the responses matter (R_g is built from them and is not zero).
                    Expect.isGreaterThan (Array.sumBy abs c2.Rg) 1e-3 (name + ": R_g is non-trivial")
            }
        ]

/// Runs `solve` with a token that its own progress callback cancels at the first report >= `at`, and returns the bytes
/// this thread allocated from that cancellation to the OperationCanceledException (failing if none is thrown). The
/// closures run on the calling thread, so the count is theirs.
let private allocatedAfterCancel (at: float) (solve: RunControl -> unit) =
    use cts = new Threading.CancellationTokenSource()
    let mutable cancelledAt = -1L

    let progress f =
        if f >= at - 1e-12 && cancelledAt < 0L then
            cts.Cancel()
            cancelledAt <- GC.GetAllocatedBytesForCurrentThread()

    let control =
        RunControl.defaults
        |> RunControl.withCancellation cts.Token
        |> RunControl.withProgress progress

    let thrown =
        try
            solve control
            false
        with :? OperationCanceledException ->
            true

    let bytes = GC.GetAllocatedBytesForCurrentThread() - cancelledAt
    Expect.isTrue (cancelledAt >= 0L) "the progress callback reached the cancellation point"
    Expect.isTrue thrown "a run cancelled before it returned throws OperationCanceledException"
    bytes

[<Tests>]
let closureCancellation =
    // The closures' O(K^2) (DMFT) and O(K) (least squares) arrays must not be allocated after a cancellation: the
    // token is seen before each of them. Cancelled from the progress callback at a known point, the run may allocate
    // no more than the exception itself (< 64 KB) before it throws; without the checks it allocates the arrays below.
    let bound = 64L * 1024L

    testList
        "closure cancellation"
        [
            test "exact closure, extrapolated: a cancellation at the end of the coarse solve starts no fine solve" {
                // Fine solve: 9 kernels of 401^2 doubles (11.6 MB) before its first step; coarse result 1.3 MB.
                let p = { square with Dt = 0.05; Steps = 200 }

                let bytes =
                    allocatedAfterCancel (1.0 / 3.0) (fun c ->
                        Dmft.solve
                            { exact with
                                ExtrapolateInStep = true
                                Control = c
                            }
                            p
                        |> ignore)

                Expect.isLessThan bytes bound $"bytes allocated after the cancellation: %d{bytes}"
            }
            test "exact closure: a cancellation at the last step builds no solution kernels" {
                // The solution's correlation, response and noise kernels: 3 x 401^2 doubles (3.9 MB).
                let p = { square with Dt = 0.025; Steps = 400 }

                let bytes =
                    allocatedAfterCancel 1.0 (fun c -> Dmft.solve { exact with Control = c } p |> ignore)

                Expect.isLessThan bytes bound $"bytes allocated after the cancellation: %d{bytes}"
            }
            for scheme in [ Discrete; Continuous ] do
                test $"least squares (%A{scheme}): a cancellation at the last step builds no solution arrays" {
                    // 10^4 steps: the solution's six series of 80 KB each.
                    let p =
                        { LeastSquaresProblem.defaults with
                            Dt = 0.001
                            Steps = 10_000
                        }

                    let bytes =
                        allocatedAfterCancel 1.0 (fun c ->
                            LeastSquaresSgf.solve
                                { LeastSquaresSettings.defaults with
                                    Scheme = scheme
                                    Control = c
                                }
                                p
                            |> ignore)

                    Expect.isLessThan bytes bound $"bytes allocated after the cancellation: %d{bytes}"
                }
        ]

/// Two-layer problems for the sampler tests: a student of width m with mixed-sign readouts, a teacher of width ms.
let private twoLayerOf (student: Activation) (teacher: Activation) (m: int) (ms: int) (steps: int) =
    let net =
        {
            Student = student
            V = Array.init m (fun a -> [| 1.0; 0.5; -0.7; 0.8; 0.3 |][a % 5])
            Teacher = teacher
            VTeacher = Array.init ms (fun b -> 1.0 - 0.3 * float b)
        }

    { DmftProblem.twoLayer net 0.25 with
        Tau = 1.0
        Steps = steps
    }

[<Tests>]
let twoLayerSampler =
    testList
        "DMFT: vectorised two-layer sampler"
        [
            // Oracle: SampleChunk's per-sample back substitution (the sampler before vectorisation, `PerSample`) on the
            // same random streams. BlockChunk computes the same estimator in another order: sums over samples per lane
            // and then across lanes, the fields and the Onsager memory as linear combinations of rows, J_k multiplied
            // in at the start of the recursion, fused multiply-adds. With activations whose psi'' is a closed form
            // (erf, ReLU, linear) each entry moves by a few ulps (measured: worst 3e-13 relative to max(|x|, 1e-3), in
            // Sigma_u, with no growth over the steps): 1e-12 is the bar, and a wrong index, a lost term or a
            // mis-summed lane moves the kernels by the Monte Carlo scale (~1e-2). Custom activations (tanh, sigmoid)
            // get psi'' by a central difference with h = 1e-5, which turns an ulp of r into ~1e-11 of psi'': there the
            // two orders agree to ~1e-11 (measured worst 6e-12 relative), and the bar is 1e-9.
            test "equals the per-sample back substitution to roundoff (m = 2, 3, 4, 5; m* = 1, 2, 3; padded lanes)" {
                let problems =
                    [
                        "m = 2 erf, m* = 2 erf", twoLayerOf Erf Erf 2 2 20, 1e-12
                        "m = 3 erf, m* = 3 relu", twoLayerOf Erf Relu 3 3 17, 1e-12
                        "m = 4 relu, m* = 1 linear", twoLayerOf Relu Linear 4 1 14, 1e-12
                        "m = 5 erf, m* = 2 erf", twoLayerOf Erf Erf 5 2 9, 1e-12
                        "m = 2 tanh, m* = 2 tanh", twoLayerOf Activation.tanh Activation.tanh 2 2 20, 1e-9
                        "m = 4 sigmoid, m* = 1 linear", twoLayerOf Activation.sigmoid Linear 4 1 14, 1e-9
                    ]

                for name, p, tol in problems do
                    let c2 = expectSamplersAgree name tol PerSample p
                    // The check can fail: R_g is built from the responses, with off-diagonal blocks that are not zero.
                    let m = c2.Width

                    let offDiagonal =
                        Array.init c2.Rg.Length (fun i -> if (i % (m * m)) % (m + 1) = 0 then 0.0 else abs c2.Rg[i])
                        |> Array.sum

                    Expect.isGreaterThan offDiagonal 1e-4 (name + ": R_g has off-diagonal entries")
            }

            test "the same seed gives the same numbers at 1, 2 and 4 threads (m = 2 and m = 3)" {
                for p in [ twoLayerOf Activation.tanh Activation.tanh 2 2 12; twoLayerOf Erf Erf 3 1 8 ] do
                    let run par =
                        Dmft.solve
                            { DmftSettings.defaults with
                                Samples = 3000
                                Replicas = 2
                                MaxParallelism = par
                                Strategy = ForwardSweep
                            }
                            p

                    let a = run 1

                    for par in [ 2; 4 ] do
                        let b = run par
                        let at = sprintf "(m = %d, %d threads against 1)" (Array2D.length1 a.Q) par

                        for i in 0 .. Array2D.length1 a.Q - 1 do
                            for j in 0 .. Array2D.length2 a.Q - 1 do
                                Expect.equal a.Q[i, j].Mean b.Q[i, j].Mean ("Q identical " + at)

                        for i in 0 .. Array2D.length1 a.M - 1 do
                            for j in 0 .. Array2D.length2 a.M - 1 do
                                Expect.equal a.M[i, j].Mean b.M[i, j].Mean ("M identical " + at)

                        Expect.equal a.TrainLoss.Mean b.TrainLoss.Mean ("train loss identical " + at)
                        Expect.equal a.Correlation.Data b.Correlation.Data ("C identical " + at)
                        Expect.equal a.Response.Data b.Response.Data ("R identical " + at)
                        Expect.equal a.NoiseCovariance.Data b.NoiseCovariance.Data ("Sigma_u identical " + at)
            }

            test "a one-unit linear committee is the GLM square loss bit for bit (train loss halved)" {
                // l = v psi'(r) (v psi(r) - y) = r - y and J = 1 exactly for psi = id, v = v* = 1; the committee's label
                // eps + w* is the GLM's w* + eps. Both run the m = 1 sampler, the GLM through its vectorised square
                // loss and the committee through the model's closure: every column quantity must be identical, and the
                // committee's loss (r - y)^2 / 2 is exactly half the GLM's.
                let net =
                    {
                        Student = Linear
                        V = [| 1.0 |]
                        Teacher = Linear
                        VTeacher = [| 1.0 |]
                    }

                let committee =
                    { DmftProblem.twoLayer net 0.3 with
                        Alpha = 1.5
                        Tau = 0.8
                        Ridge = 0.05
                        NoiseVar = 0.2
                        Dt = 0.1
                        Steps = 25
                    }

                let glm =
                    { committee with
                        Model = Glm(GlmLoss.Square, GlmTeacher.Linear)
                    }

                let s =
                    { DmftSettings.defaults with
                        Samples = 2000
                        Replicas = 2
                        Strategy = ForwardSweep
                    }

                let a = Dmft.solve s committee
                let b = Dmft.solve s glm
                Expect.equal a.Q[0, 0].Mean b.Q[0, 0].Mean "q"
                Expect.equal a.M[0, 0].Mean b.M[0, 0].Mean "m"
                Expect.equal a.Correlation.Data b.Correlation.Data "C"
                Expect.equal a.Response.Data b.Response.Data "R"
                Expect.equal a.NoiseCovariance.Data b.NoiseCovariance.Data "Sigma_u"
                Expect.equal (a.TrainLoss.Mean |> Array.map (fun x -> 2.0 * x)) b.TrainLoss.Mean "train loss"
            }

            test "Dmft.sweepMemory is within 5% of the bytes the forward sweep allocates (m = 1, 2, 3)" {
                // Oracle: the runtime's own count of the bytes allocated on this thread. With MaxParallelism 1 the
                // sweep runs on the calling thread, and its arrays (chunks, columns, Gaussian path) are all allocated
                // there; what the estimate leaves out is the per-step garbage (a few rows of kernels) and object headers,
                // ~1-2% here. 3000 samples: eleven full chunks and a padded one.
                let problems =
                    [
                        "GLM logistic",
                        { DmftProblem.glm GlmLoss.Logistic GlmTeacher.Sign with
                            Steps = 30
                        }
                        "m = 2 tanh", twoLayerOf Activation.tanh Activation.tanh 2 2 30
                        "m = 3 erf", twoLayerOf Erf Erf 3 1 30
                    ]

                for name, p in problems do
                    let s =
                        { DmftSettings.defaults with
                            MaxParallelism = 1
                        }

                    let model = RowModel.create p.Model
                    DmftSweep.forwardSweep s p model 0 300 0 ignore |> ignore
                    let before = GC.GetAllocatedBytesForCurrentThread()
                    let _, _, reached, _ = DmftSweep.forwardSweep s p model 0 3000 0 ignore
                    let allocated = float (GC.GetAllocatedBytesForCurrentThread() - before)
                    Expect.equal reached (p.Steps + 1) (name + ": completed")
                    let ratio = Dmft.sweepMemory 3000 p / allocated

                    Expect.isTrue
                        (ratio > 0.95 && ratio < 1.05)
                        (sprintf
                            "%s: estimate %.0f bytes, allocated %.0f (ratio %.3f)"
                            name
                            (Dmft.sweepMemory 3000 p)
                            allocated
                            ratio)
            }

            test "a linear committee with |v| = 1 follows the exact least-squares closure (m = 2, 3, 4)" {
                // For psi = id the prediction is (sum_a v_a theta_a) . x, and theta_eff = sum_a v_a theta_a moves by
                // |v|^2 times the GLM gradient (noise included), plus the ridge: with |v| = 1 it is the GLM square loss
                // with q0 |v|^2 = q0. So v^T C v, v^T M and twice the train loss are the GLM's, given without Monte Carlo
                // by the exact moment closure (spec 4.1, an independent code path). Every block of R, R_g, Sigma_u is
                // full (v has no zero entry). Tolerance: 4.5 standard errors (bounded by sum |v_a v_b| SE(Q_ab)) plus
                // 1% for the Monte Carlo sampler's finite-N bias (spec 3.4: 0.1-0.5% at N = 40000).
                for m in [ 2; 3; 4 ] do
                    let v = Array.init m (fun a -> (if a % 2 = 0 then 1.0 else -1.0) * float (a + 1))
                    let norm = sqrt (Array.sumBy (fun x -> x * x) v)
                    let v = v |> Array.map (fun x -> x / norm)

                    let net =
                        {
                            Student = Linear
                            V = v
                            Teacher = Linear
                            VTeacher = [| 1.0 |]
                        }

                    let p =
                        { DmftProblem.twoLayer net 0.3 with
                            Alpha = 2.0
                            Tau = 1.0
                            Ridge = 0.02
                            NoiseVar = 0.1
                            Dt = 0.1
                            Steps = 30
                        }

                    let th =
                        Dmft.solve
                            { DmftSettings.defaults with
                                Samples = 5000
                                Replicas = 4
                                Strategy = ForwardSweep
                            }
                            p

                    let ex =
                        Dmft.solve
                            exact
                            { p with
                                Model = Glm(GlmLoss.Square, GlmTeacher.Linear)
                                Q0 = Array2D.create 1 1 0.3
                            }

                    for k in [ 10; 20; 30 ] do
                        let mutable q = 0.0
                        let mutable se = 0.0

                        for a in 0 .. m - 1 do
                            for b in 0 .. m - 1 do
                                q <- q + v[a] * v[b] * th.Q[a, b].Mean[k]
                                se <- se + abs (v[a] * v[b]) * th.Q[a, b].StdErr[k]

                        let mo = Array.init m (fun a -> v[a] * th.M[a, 0].Mean[k]) |> Array.sum
                        let mse = Array.init m (fun a -> abs v[a] * th.M[a, 0].StdErr[k]) |> Array.sum
                        let at = sprintf "m = %d, t = %g" m th.T[k]

                        Expect.isTrue
                            (within 4.5 0.01 q se ex.Q[0, 0].Mean[k] 0.0)
                            (sprintf "%s: v^T C v %g +- %g, exact q %g" at q se ex.Q[0, 0].Mean[k])

                        Expect.isTrue
                            (within 4.5 0.01 mo mse ex.M[0, 0].Mean[k] 0.0)
                            (sprintf "%s: v^T M %g +- %g, exact m %g" at mo mse ex.M[0, 0].Mean[k])

                        Expect.isTrue
                            (within
                                4.5
                                0.01
                                (2.0 * th.TrainLoss.Mean[k])
                                (2.0 * th.TrainLoss.StdErr[k])
                                ex.TrainLoss.Mean[k]
                                0.0)
                            (sprintf
                                "%s: 2 x train loss %g +- %g, exact %g"
                                at
                                (2.0 * th.TrainLoss.Mean[k])
                                (2.0 * th.TrainLoss.StdErr[k])
                                ex.TrainLoss.Mean[k])
            }
        ]
