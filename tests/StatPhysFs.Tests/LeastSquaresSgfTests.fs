module StatPhysFs.Tests.LeastSquaresSgfTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open StatPhysFs
open StatPhysFs.Ode
open StatPhysFs.Dmft
open StatPhysFs.Models
open StatPhysFs.Tests.Prop

let private ls = LeastSquaresProblem.defaults

/// The recursion exact for Euler-Maruyama with step dt, `steps` steps, over the 400-node law.
let private discrete dt steps (p: LeastSquaresProblem) =
    LeastSquaresSgf.solve LeastSquaresSettings.defaults { p with Dt = dt; Steps = steps }

/// The continuous-time Volterra equation by the trapezoid on t_k = k dt.
let private continuous dt steps (p: LeastSquaresProblem) =
    LeastSquaresSgf.solve
        { LeastSquaresSettings.defaults with
            Scheme = Continuous
        }
        { p with Dt = dt; Steps = steps }

/// alpha in [0.3, 5] away from 1 (where limits need care), from a seed.
let private alphaOf (seed: int) =
    let r = Rng(seed, 5)
    let a = 0.3 + 4.7 * r.NextDouble()
    if abs (a - 1.0) < 0.1 then a + 0.3 else a

[<Tests>]
let marchenkoPastur =
    testList
        "Marchenko-Pastur law"
        [
            // Oracle: the moments of MP with mean 1 and ratio c: int s = 1, int s^2 = 1 + c, int s^3 = 1 + 3c + c^2.
            testProp "mass 1 and moments 1, 1 + c, 1 + 3c + c^2 to 1e-13, atom included" 100
            <| Prop.forAll (Arb.fromGen seeds) (fun seed ->
                let a = alphaOf seed
                let c = 1.0 / a
                let law = MarchenkoPastur.ofAlpha a

                let mom k =
                    law |> MarchenkoPastur.expect (fun s -> s ** float k)

                close 1e-13 (mom 0) 1.0
                && close 1e-13 (mom 1) 1.0
                && close 1e-13 (mom 2) (1.0 + c)
                && close 1e-12 (mom 3) (1.0 + 3.0 * c + c * c))

            // Oracle: the Stieltjes closed form against direct quadrature of 1/(s + lambda), and its derivative
            // against quadrature of 1/(s + lambda)^2.
            testProp "Stieltjes transform and derivative equal quadrature over the law (1e-12)" 100
            <| Prop.forAll (Arb.fromGen seeds) (fun seed ->
                let a = alphaOf seed
                let l = 0.02 + 2.0 * Rng(seed, 6).NextDouble()
                let law = MarchenkoPastur.ofAlpha a
                let m = law |> MarchenkoPastur.expect (fun s -> 1.0 / (s + l))
                let m' = law |> MarchenkoPastur.expect (fun s -> 1.0 / ((s + l) * (s + l)))

                close 1e-12 (MarchenkoPastur.stieltjes a -l) m
                && close 1e-11 (MarchenkoPastur.stieltjesDerivative a -l) m')

            test "the density integrates to the band mass (adaptive quadrature, independent of the law's nodes)" {
                for a in [ 0.5; 2.0; 4.0 ] do
                    let lo, hi = MarchenkoPastur.edges a

                    let mass =
                        MathNet.Numerics.Integration.DoubleExponentialTransformation.Integrate(
                            (fun s -> MarchenkoPastur.density a s),
                            lo,
                            hi,
                            1e-12
                        )

                    expectClose 1e-9 mass (min 1.0 a) (sprintf "band mass at alpha = %g" a)
            }
        ]

[<Tests>]
let gradientFlow =
    testList
        "least squares: gradient flow (tau = 0)"
        [
            // Oracle: the closed-form t -> infinity limits of spec section 4.2 (V2) against the quadrature of
            // a_inf(s) = 1/(s + lambda) over the law.
            testProp "t -> infinity limits: closed forms equal quadrature (1e-10)" 60
            <| Prop.forAll (Arb.fromGen seeds) (fun seed ->
                let r = Rng(seed, 7)
                let a = alphaOf seed
                let l = if seed % 2 = 0 then 0.0 else 0.05 + r.NextDouble()

                let p =
                    { ls with
                        Alpha = a
                        Ridge = l
                        Rho = 0.5 + r.NextDouble()
                        NoiseVar = r.NextDouble()
                    }

                let e1, l1 = LeastSquaresSgf.gradientFlowLimitClosedForm p
                let e2, l2, _ = LeastSquaresSgf.gradientFlowLimit (MarchenkoPastur.ofAlpha a) p
                close 1e-10 e1 e2 && close 1e-10 l1 l2)

            // Oracle independent of the spectral formulas: the ridge minimiser theta = (X^T X/alpha + lambda)^{-1}
            // X^T y/alpha of finite data sets (d = 300, X_ij ~ N(0, 1/d), |theta*|^2/d = rho exactly), its train loss
            // (1/n)|X theta - y|^2 and error |theta - theta*|^2/d averaged over 8 data sets. Tolerance 4 standard errors
            // plus 2% for the O(1/d) finite-size bias. This is the check of the ridge > 0 train loss, which the
            // quadrature (gradientFlowLimit) and the Stieltjes closed form share only through the law.
            test "ridge > 0: the t -> infinity limits equal the ridge minimiser of finite data sets (d = 300, 8 sets)" {
                for (a, l) in [ 2.0, 0.3; 0.5, 0.2 ] do
                    let p =
                        { ls with
                            Alpha = a
                            Ridge = l
                            Rho = 1.3
                            NoiseVar = 0.4
                        }

                    let eInf, lInf = LeastSquaresSgf.gradientFlowLimitClosedForm p
                    let eQ, lQ, _ = LeastSquaresSgf.gradientFlowLimit (MarchenkoPastur.ofAlpha a) p
                    expectClose 1e-10 eQ eInf (sprintf "e_inf quadrature = closed form at alpha=%g" a)
                    expectClose 1e-10 lQ lInf (sprintf "L_inf quadrature = closed form at alpha=%g" a)
                    let d = 300
                    let n = int (Math.Round(a * float d))

                    let runs =
                        Array.init 8 (fun seed ->
                            let rng = Rng(seed + 1, 17)
                            let mb = MathNet.Numerics.LinearAlgebra.Matrix<float>.Build
                            let vb = MathNet.Numerics.LinearAlgebra.Vector<float>.Build
                            let x = mb.Dense(n, d, fun _ _ -> rng.NextNormal() / sqrt (float d))
                            let star = vb.Dense(d, fun _ -> rng.NextNormal())
                            let star = star * sqrt (p.Rho * float d) / star.L2Norm()
                            let y = x * star + vb.Dense(n, fun _ -> sqrt p.NoiseVar * rng.NextNormal())
                            let h = x.TransposeThisAndMultiply x / a + l * mb.DenseIdentity d
                            let theta = h.Solve(x.TransposeThisAndMultiply y / a)
                            let r = x * theta - y
                            r.DotProduct r / float n, (theta - star).DotProduct(theta - star) / float d)

                    for name, values, formula in
                        [ "train loss", Array.map fst runs, lInf; "e", Array.map snd runs, eInf ] do
                        let est = Stats.estimate values

                        Expect.isLessThan
                            (abs (est.Mean - formula))
                            (4.0 * est.StdErr + 0.02 * formula)
                            (sprintf "%s at alpha=%g lambda=%g: d=300 %g +- %g, formula %g" name a l est.Mean est.StdErr formula)
            }

            test "the gradient-flow curves approach their limits at large t, with the early-stopping dip at alpha = 2" {
                let law = MarchenkoPastur.ofAlpha 2.0
                let p = { ls with Alpha = 2.0; Tau = 0.0 }
                let eInf, lInf = LeastSquaresSgf.gradientFlowLimitClosedForm p
                let e, l, m = LeastSquaresSgf.gradientFlow law p 400.0
                expectClose 1e-9 e eInf "e(400) = e_inf"
                expectClose 1e-9 l lInf "L(400) = L_inf"
                expectClose 1e-9 m p.Rho "m(400) = rho"
                // Early stopping (spec V1): e(t) dips below e_inf at intermediate t.
                let eMin =
                    [ 0.5..0.25..20.0 ]
                    |> List.map (fun t -> let e, _, _ = LeastSquaresSgf.gradientFlow law p t in e)
                    |> List.min

                Expect.isLessThan eMin (eInf - 0.01) "an early-stopping minimum below e_inf"
                // Over-parameterised: L_tr -> 0.
                let _, lOver, _ =
                    LeastSquaresSgf.gradientFlow (MarchenkoPastur.ofAlpha 0.5) { p with Alpha = 0.5 } 2000.0

                Expect.isLessThan lOver 1e-6 "L_tr -> 0 for alpha < 1"
            }

            test "alpha = 1: e(t)/sqrt t rises toward 2(2 - sqrt 2)/sqrt pi sigma^2 over decades" {
                // Oracle: spec section 4.2. Convergence is slow, so we test the trend: the ratio increases over
                // t = 1e2 .. 1e5 and is within 1% of the constant at t = 1e5 (measured 0.950, 0.979, 0.993, 0.998
                // with a law of 4000 nodes to resolve e^{-st} near s = 0; at t = 10 it is still 1.015, above).
                let law = MarchenkoPastur.create 4000 1.0
                let p = { ls with Alpha = 1.0; Tau = 0.0 }
                let c = 2.0 * (2.0 - sqrt 2.0) / sqrt Math.PI * p.NoiseVar

                let ratios =
                    [ 1e2; 1e3; 1e4; 1e5 ]
                    |> List.map (fun t -> let e, _, _ = LeastSquaresSgf.gradientFlow law p t in e / sqrt t / c)

                Expect.isTrue
                    (ratios |> List.pairwise |> List.forall (fun (a, b) -> b > a))
                    (sprintf "increasing: %A" ratios)

                Expect.isLessThan (abs (List.last ratios - 1.0)) 0.01 (sprintf "close to the asymptote: %A" ratios)
            }

            test "the Euler-Maruyama recursion converges to the continuous closed form at rate O(dt)" {
                let law = MarchenkoPastur.ofAlpha 2.0

                let p =
                    { ls with
                        Alpha = 2.0
                        Tau = 0.0
                        Ridge = 0.1
                    }

                let exact, _, _ = LeastSquaresSgf.gradientFlow law p 2.0

                let err dt =
                    let c = discrete dt (int (Math.Round(2.0 / dt))) p
                    abs (c.E[c.E.Length - 1] - exact)

                let ratio = err 0.02 / err 0.01
                Expect.isTrue (ratio > 1.8 && ratio < 2.2) (sprintf "error ratio for dt halved = %g (want 2)" ratio)
            }
        ]

[<Tests>]
let sgf =
    testList
        "least squares: multi-pass SGF (Volterra)"
        [
            test "the trapezoidal continuous Volterra converges at O(dt^2) to the dt -> 0 limit of the discrete one" {
                // Oracle: the discrete recursion is exact for Euler-Maruyama, whose weak error is O(dt); Richardson
                // 2 v(dt) - v(2dt) at dt = 0.0025 removes it. The continuous solver must approach the same value
                // with errors shrinking 4x per halving.
                let law = MarchenkoPastur.ofAlpha 2.0
                let p = { ls with Alpha = 2.0; Tau = 1.0 }

                let at dt f =
                    let c = f dt (int (Math.Round(2.0 / dt))) p in c.E[c.E.Length - 1]

                let rich =
                    2.0 * at 0.00125 discrete - at 0.0025 discrete

                let e1 = abs (at 0.1 continuous - rich)
                let e2 = abs (at 0.05 continuous - rich)
                Expect.isTrue (e1 / e2 > 3.3 && e1 / e2 < 4.7) (sprintf "error ratio %g (want 4), e1 = %g" (e1 / e2) e1)

                Expect.isLessThan
                    e2
                    1e-3
                    "continuous at dt = 0.05 within 1e-3 of the extrapolated limit (measured 6.2e-4)"
            }

            testProp "tau_c: 2 for ridge 0 at every alpha, within [2, 2(1 + lambda)], tending to 2(1 + lambda)" 60
            <| Prop.forAll (Arb.fromGen seeds) (fun seed ->
                let a = alphaOf seed
                let l = 2.0 * Rng(seed, 8).NextDouble()
                let tc0 = LeastSquaresSgf.criticalTau (MarchenkoPastur.ofAlpha a) 0.0
                let tc = LeastSquaresSgf.criticalTau (MarchenkoPastur.ofAlpha a) l
                let tcBig = LeastSquaresSgf.criticalTau (MarchenkoPastur.ofAlpha 1e6) l

                close 1e-12 tc0 2.0
                && tc >= 2.0 - 1e-12
                && tc <= 2.0 * (1.0 + l) + 1e-12
                && close 2e-3 tcBig (2.0 * (1.0 + l)))

            test "below tau_c a long run settles to the stationary formulas; above it diverges with a time" {
                for (a, l) in [ 2.0, 0.0; 0.5, 0.1; 4.0, 0.1 ] do
                    let law = MarchenkoPastur.ofAlpha a
                    let tc = LeastSquaresSgf.criticalTau law l

                    let p =
                        { ls with
                            Alpha = a
                            Ridge = l
                            Tau = 0.8 * tc
                        }

                    let eInf, lInf = (LeastSquaresSgf.stationary law p).Value
                    // Near tau_c the trapezoid's O(dt^2) error is amplified (0.7% at dt = 0.05, tau = 0.8 tau_c,
                    // alpha = 2, measured); Richardson (4 v(dt/2) - v(dt))/3 on t = 600 removes it to ~1e-5.
                    let at dt =
                        let c = continuous dt (int (Math.Round(600.0 / dt))) p
                        Expect.equal c.Status Completed "completed"
                        c.E[c.E.Length - 1], c.TrainLoss[c.E.Length - 1]

                    let (e1, l1), (e2, l2) = at 0.05, at 0.025
                    expectClose 5e-4 ((4.0 * e2 - e1) / 3.0) eInf (sprintf "e_inf at alpha=%g lambda=%g" a l)
                    expectClose 5e-4 ((4.0 * l2 - l1) / 3.0) lInf (sprintf "L_inf at alpha=%g lambda=%g" a l)
                    let above = discrete 0.05 20000 { p with Tau = 1.1 * tc }

                    match above.Status with
                    | Diverged(t, _) -> Expect.isGreaterThan t 0.0 "diverged at a positive time"
                    | s -> failtestf "expected divergence above tau_c, got %A" s

                // alpha > 1, lambda = 0 closed form of spec 4.4.
                let p = { ls with Alpha = 2.0; Tau = 1.0 }
                let e, l = (LeastSquaresSgf.stationary (MarchenkoPastur.ofAlpha 2.0) p).Value
                let lc = p.NoiseVar * 0.5 / 0.5
                expectClose 1e-10 l lc "L_inf = sigma^2 (1 - 1/delta)/(1 - tau/2)"
                expectClose 1e-10 e (p.NoiseVar + 0.5 * lc) "e_inf = sigma^2/(delta - 1) + tau L_inf / 2"
            }

            test "over-parameterised (alpha < 1, lambda = 0): e_inf is the min-norm value for every tau < 2" {
                let a = 0.5
                let law = MarchenkoPastur.ofAlpha a
                let target = ls.Rho * (1.0 - a) + ls.NoiseVar * a / (1.0 - a)

                for tau in [ 0.5; 1.0; 1.5 ] do
                    let c = continuous 0.05 8000 { ls with Alpha = a; Tau = tau }
                    expectClose 3e-3 c.E[c.E.Length - 1] target (sprintf "tau = %g" tau)
                    Expect.isLessThan c.TrainLoss[c.E.Length - 1] 1e-3 "L_tr -> 0"
            }

            test "online limit: alpha -> infinity at fixed t is the online ODE with eta = tau on the clock t' = t/tau" {
                // Oracle: OnlineLinear.closedForm (online-sgd.md section 4.1), m = rho(1 - e^{-tau t'}) etc. The
                // gap must shrink with alpha (~1/alpha) and be small at alpha = 1000.
                let tau = 0.5
                let tEnd = 4.0

                let gap alpha =
                    let c =
                        continuous 0.01 400 { ls with Alpha = alpha; Tau = tau }

                    let on =
                        OnlineLinear.closedForm
                            { OnlineLinear.defaults with
                                Rho = ls.Rho
                                NoiseVar = ls.NoiseVar
                                Lr = tau
                                Ridge = 0.0
                                Batch = 1
                                M0 = 0.0
                                Q0 = 0.0
                            }
                            (tEnd / tau)

                    max (abs (c.M[400] - on.M)) (abs (c.Q[400] - on.Q))

                let g10, g200, g1000 = gap 10.0, gap 200.0, gap 1000.0
                Expect.isTrue (g10 > g200 && g200 > g1000) (sprintf "gap shrinks: %g %g %g" g10 g200 g1000)
                Expect.isLessThan g1000 3e-3 "alpha = 1000 within 3e-3"
            }

            test "bad input names the parameter" {
                Expect.throwsT<ArgumentOutOfRangeException>
                    (fun () ->
                        discrete 0.1 10 { ls with Tau = -1.0 }
                        |> ignore)
                    "negative tau"

                let ex =
                    Expect.throwsC (fun () -> MarchenkoPastur.ofAlpha 0.0 |> ignore) (fun e -> e.Message)

                Expect.stringContains ex "alpha" "names alpha"
            }
        ]
