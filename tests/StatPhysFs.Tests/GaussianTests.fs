module StatPhysFs.Tests.GaussianTests

open System
open Expecto
open FsCheck
open FsCheck.FSharp
open StatPhysFs
open StatPhysFs.Gaussian
open StatPhysFs.Tests.Prop

let private rule1 (r: Rule1D) f =
    Array.fold2 (fun s x w -> s + w * f x) 0.0 r.Nodes r.Weights

/// The rule's value of the monomial z^a against its exact moment, within tol times the size of the summed terms.
let private exactOnMonomial tol (rule: RuleND) (a: int[]) =
    let mono (x: float[]) =
        Array.fold2 (fun p xi ai -> p * xi ** float ai) 1.0 x a

    let est = Array.fold2 (fun s w x -> s + w * mono x) 0.0 rule.Weights rule.Nodes

    let scale =
        Array.fold2 (fun s w x -> s + abs (w * mono x)) 0.0 rule.Weights rule.Nodes

    abs (est - (a |> Array.fold (fun p ai -> p * normalMoment ai) 1.0))
    <= tol * max scale 1e-300

let private zeros d = Array.zeroCreate<float> d

[<Tests>]
let hermite =
    testList
        "Gauss-Hermite"
        [
            // A monomial's rule value against its exact moment, relative to the size of the terms summed (odd moments
            // are zero by cancellation of terms that can be large).
            // Oracle: the normal moments (k-1)!!; the rule is exact to degree 2n-1, so only roundoff remains:
            // 1e-13 of sum_i w_i |x_i|^k (the scale of the terms; odd moments cancel to zero).
            testProp "exact on every monomial up to degree 2n-1, orders 1..100" 100
            <| Prop.forAll (Arb.fromGen (Gen.choose (1, 100))) (fun n ->
                let r = GaussHermite.rule n

                [ 0 .. 2 * n - 1 ]
                |> List.forall (fun k ->
                    let scale = rule1 r (fun x -> abs x ** float k)
                    abs (rule1 r (fun x -> x ** float k) - normalMoment k) <= 1e-13 * scale))

            testCase "weights are positive, sum to one, nodes symmetric (order 100)"
            <| fun () ->
                let r = GaussHermite.rule 100
                Expect.isTrue (r.Weights |> Array.forall (fun w -> w > 0.0)) "positive weights"
                expectClose 1e-15 (Array.sum r.Weights) 1.0 "sum of weights"

                for i in 0..49 do
                    Expect.equal r.Nodes[i] (-r.Nodes[99 - i]) "mirror nodes"

            // Oracle: E[cos Z] = e^{-1/2}, E[e^Z] = e^{1/2} (entire functions: the rule converges spectrally).
            testCase "smooth integrands to machine precision"
            <| fun () ->
                for n in [ 30; 60; 100 ] do
                    let r = GaussHermite.rule n
                    expectClose 1e-15 (rule1 r cos) (exp -0.5) (sprintf "E cos Z, n=%d" n)
                    expectClose 1e-14 (rule1 r exp) (exp 0.5) (sprintf "E exp Z, n=%d" n)

            testCase "order out of range names the parameter"
            <| fun () ->
                let ex = Expect.throwsC (fun () -> GaussHermite.rule 0 |> ignore) id
                Expect.stringContains ex.Message "order" "message names the parameter"
        ]

[<Tests>]
let rules =
    testList
        "multivariate rules"
        [
            testProp "tensor rule exact on monomials of degree <= 2n-1 per variable" 60
            <| Prop.forAll (Arb.fromGen (Gen.zip (Gen.choose (1, 3)) seeds)) (fun (d, s) ->
                let rng = Rng(s, 3)
                let n = 1 + int (rng.NextDouble() * 6.0)
                let a = Array.init d (fun _ -> int (rng.NextDouble() * float (2 * n)))
                exactOnMonomial 1e-13 (GaussianRule.tensor d n) a)

            // Exactness condition of the combination technique with 2i-1 point rules at index i.
            testProp "sparse grid exact on its monomial space (d <= 6, level <= 5)" 80
            <| Prop.forAll (Arb.fromGen (Gen.zip3 (Gen.choose (1, 6)) (Gen.choose (1, 5)) seeds)) (fun (d, level, s) ->
                let rng = Rng(s, 5)
                // Draw per-variable index budgets i_k >= 1 with sum <= d + level - 1, then a monomial inside it.
                let idx = Array.create d 1

                for _ in 1 .. level - 1 do
                    let k = int (rng.NextDouble() * float d)
                    idx[k] <- idx[k] + 1

                let a =
                    idx
                    |> Array.map (fun i -> let top = 4 * i - 3 in int (rng.NextDouble() * float (top + 1)))

                exactOnMonomial 1e-12 (GaussianRule.sparse d level) a)

            // Measured, and honest: on erf I4 with O(1) variances the non-nested Smolyak grid converges, but more slowly
            // per node than the tensor rule (the rotated integrand has strong mixed terms). The test pins convergence.
            testCase "sparse grid converges to the erf I4 closed form as the level grows"
            <| fun () ->
                let c = moderateCov 4 11

                let f (x: float[]) =
                    Activation.derivative Erf x[0]
                    * Activation.derivative Erf x[1]
                    * Activation.value Erf x[2]
                    * Activation.value Erf x[3]

                let closed = CommitteeIntegrals.i4 Erf c

                let err level =
                    abs (GaussianRule.expect (GaussianRule.sparse 4 level) (zeros 4) c f - closed)

                let errs = [| 3; 5; 7; 9 |] |> Array.map err

                for k in 1 .. errs.Length - 1 do
                    Expect.isLessThan errs[k] (0.7 * errs[k - 1]) (sprintf "error decreases with level: %A" errs)

                Expect.isLessThan errs[errs.Length - 1] 1e-4 (sprintf "level 9 error %g" errs[errs.Length - 1])

            testProp "E[x x^T] = C + mu mu^T, including singular covariances" 50
            <| Prop.forAll (Arb.fromGen (Gen.zip3 (Gen.choose (1, 4)) (Gen.choose (1, 4)) seeds)) (fun (d, r, s) ->
                let r = min r d
                let c = randomSingularCov d r s
                let rng = Rng(s, 9)
                let mu = Array.init d (fun _ -> rng.NextNormal())
                let rule = GaussianRule.tensor d 3

                [
                    for i in 0 .. d - 1 do
                        for j in 0 .. d - 1 ->
                            close
                                1e-11
                                (GaussianRule.expect rule mu c (fun x -> x[i] * x[j]))
                                (c[i, j] + mu[i] * mu[j])
                ]
                |> List.forall id)

            // Stein's lemma E[x_i f(x)] = sum_j C_ij E[d_j f(x)], checked with an independent rule on each side.
            testProp "Stein's lemma for a smooth nonlinear f" 40
            <| Prop.forAll (covArb 3) (fun c ->
                let rule = GaussianRule.tensor 3 20
                let g = Activation.value Erf
                let dg = Activation.derivative Erf

                let f (x: float[]) =
                    g x[0] * g (x[1] + 0.5 * x[2]) + x[2] * x[2]

                let grad (x: float[]) j =
                    match j with
                    | 0 -> dg x[0] * g (x[1] + 0.5 * x[2])
                    | 1 -> g x[0] * dg (x[1] + 0.5 * x[2])
                    | _ -> 0.5 * g x[0] * dg (x[1] + 0.5 * x[2]) + 2.0 * x[2]

                [ 0..2 ]
                |> List.forall (fun i ->
                    let lhs = GaussianRule.expect rule (zeros 3) c (fun x -> x[i] * f x)

                    let rhs =
                        [ 0..2 ]
                        |> List.sumBy (fun j -> c[i, j] * GaussianRule.expect rule (zeros 3) c (fun x -> grad x j))

                    close 1e-10 lhs rhs))

            testCase "a covariance that is not PSD is rejected by name"
            <| fun () ->
                let bad = array2D [ [ 1.0; 2.0 ]; [ 2.0; 1.0 ] ]

                let ex =
                    Expect.throwsC
                        (fun () ->
                            GaussianRule.expect (GaussianRule.tensor 2 3) (zeros 2) bad (fun _ -> 1.0)
                            |> ignore)
                        id

                Expect.stringContains ex.Message "cov" "names the covariance"
                Expect.stringContains ex.Message "positive semi-definite" "says what is wrong"
        ]

[<Tests>]
let monteCarlo =
    testList
        "Monte Carlo"
        [
            testCase "estimates carry honest standard errors and are reproducible"
            <| fun () ->
                let c = randomCov 3 5
                let f (x: float[]) = x[0] * x[1] + x[2]
                let a = GaussianMonteCarlo.estimate 42 200_000 (zeros 3) c f
                let b = GaussianMonteCarlo.estimate 42 200_000 (zeros 3) c f
                Expect.equal a b "same seed, same numbers"
                Expect.isLessThan (abs (a.Mean - c[0, 1])) (5.0 * a.StdErr) "within 5 standard errors of the exact C12"
                Expect.isGreaterThan a.StdErr 0.0 "a positive error bar"

            testCase "randomised QMC is unbiased and beats plain MC on a smooth integrand"
            <| fun () ->
                let c = randomCov 2 8

                let f (x: float[]) =
                    Activation.value Erf x[0] * Activation.value Erf x[1]

                let exact = CommitteeIntegrals.i2 Erf c
                let q = GaussianMonteCarlo.estimateQuasi 3 4096 16 (zeros 2) c f
                let m = GaussianMonteCarlo.estimate 3 (4096 * 16) (zeros 2) c f
                Expect.isLessThan (abs (q.Mean - exact)) (5.0 * q.StdErr + 1e-12) "RQMC within 5 standard errors"
                Expect.isLessThan q.StdErr m.StdErr "smaller error bar than MC at equal cost"

            testCase "a cancellation stops MC and RQMC mid-run; uncancelled, the numbers are the plain estimators'"
            <| fun () ->
                let c = randomCov 2 8
                let f (x: float[]) = x[0] * x[1]
                // 2^31 - 1 draws and 16 x 10^8 points run for minutes: cancelled after 100 ms they must end at once.
                for run in
                    [
                        fun ct ->
                            GaussianMonteCarlo.estimateCancellable ct 5 Int32.MaxValue (zeros 2) c f
                            |> ignore
                        fun ct ->
                            GaussianMonteCarlo.estimateQuasiCancellable ct 5 100_000_000 16 (zeros 2) c f
                            |> ignore
                    ] do
                    Expect.isLessThan (secondsToObserveCancel run) 2.0 "stopped within a few thousand draws"

                let none = Threading.CancellationToken.None

                Expect.equal
                    (GaussianMonteCarlo.estimateCancellable none 9 10_000 (zeros 2) c f)
                    (GaussianMonteCarlo.estimate 9 10_000 (zeros 2) c f)
                    "MC"

                Expect.equal
                    (GaussianMonteCarlo.estimateQuasiCancellable none 9 1000 4 (zeros 2) c f)
                    (GaussianMonteCarlo.estimateQuasi 9 1000 4 (zeros 2) c f)
                    "RQMC"
        ]

let private cov2 c11 c12 c22 = array2D [ [ c11; c12 ]; [ c12; c22 ] ]

let private fields = [ Erf; Linear; Relu ]

[<Tests>]
let committee =
    testList
        "committee integrals"
        [
            // Oracle: tensor Gauss-Hermite (order 60/48/24) on the definitions, for variances up to 2. erf integrands are
            // analytic and the rule converges geometrically (measured: 3e-9 at order 20, 8e-11 at 24 for I4), so these
            // tolerances sit above the quadrature error and far below any formula mistake.
            testProp "erf and linear closed forms equal quadrature of the definitions" 25
            <| Prop.forAll (Arb.fromGen seeds) (fun s ->
                let c2 = moderateCov 2 s
                let c3 = moderateCov 3 s
                let c4 = moderateCov 4 s

                [ Erf; Linear ]
                |> List.forall (fun a ->
                    close 1e-10 (CommitteeIntegrals.i2 a c2) (CommitteeIntegrals.genericI2 a 60 c2)
                    && close 1e-10 (CommitteeIntegrals.j2 a c2) (CommitteeIntegrals.genericJ2 a 60 c2)
                    && close 1e-10 (CommitteeIntegrals.i3 a c3) (CommitteeIntegrals.genericI3 a 48 c3)
                    && close 1e-8 (CommitteeIntegrals.i4 a c4) (CommitteeIntegrals.genericI4 a 24 c4)))

            // Oracle: Monte Carlo at 10^6 samples; fixed seeds make the test deterministic. 5 standard errors.
            testCase "every closed form against Monte Carlo (erf, linear, ReLU)"
            <| fun () ->
                let g a x = Activation.value a x
                let dg a x = Activation.derivative a x

                for s in 1..3 do
                    let c2, c3, c4 = randomCov 2 (100 + s), randomCov 3 (200 + s), randomCov 4 (300 + s)

                    for a in fields do
                        let check name closed (est: Estimate) =
                            if abs (closed - est.Mean) > 5.0 * est.StdErr + 1e-12 then
                                failtestf "%s %s: closed %.8g vs MC %.8g +- %.2g" a.Name name closed est.Mean est.StdErr

                        check
                            "I2"
                            (CommitteeIntegrals.i2 a c2)
                            (GaussianMonteCarlo.estimate s 1_000_000 (zeros 2) c2 (fun x -> g a x[0] * g a x[1]))

                        check
                            "J2"
                            (CommitteeIntegrals.j2 a c2)
                            (GaussianMonteCarlo.estimate s 1_000_000 (zeros 2) c2 (fun x -> dg a x[0] * dg a x[1]))

                        check
                            "I3"
                            (CommitteeIntegrals.i3 a c3)
                            (GaussianMonteCarlo.estimate s 1_000_000 (zeros 3) c3 (fun x -> dg a x[0] * x[1] * g a x[2]))

                        if a <> Relu then
                            check
                                "I4"
                                (CommitteeIntegrals.i4 a c4)
                                (GaussianMonteCarlo.estimate s 1_000_000 (zeros 4) c4 (fun x ->
                                    dg a x[0] * dg a x[1] * g a x[2] * g a x[3]))

            // Independent route: Stein's lemma on the linear slot turns I3 into two 2-D integrals.
            testProp "erf I3 equals its Stein reduction C12 E[g''(u) g(w)] + C23 E[g'(u) g'(w)]" 40
            <| Prop.forAll (moderateCovArb 3) (fun c ->
                let g = Activation.value Erf
                let dg = Activation.derivative Erf
                let ddg x = -x * dg x
                let sub = array2D [ [ c[0, 0]; c[0, 2] ]; [ c[0, 2]; c[2, 2] ] ]
                let rule = GaussianRule.tensor 2 60

                let viaStein =
                    c[0, 1] * GaussianRule.expect rule (zeros 2) sub (fun x -> ddg x[0] * g x[1])
                    + c[1, 2] * GaussianRule.expect rule (zeros 2) sub (fun x -> dg x[0] * dg x[1])

                close 1e-10 (CommitteeIntegrals.i3 Erf c) viaStein)

            testProp "symmetries: I2, J2 under u<->v; I4 under u<->v and w<->z" 50
            <| Prop.forAll (Arb.fromGen seeds) (fun s ->
                let c2 = randomCov 2 s
                let c4 = randomCov 4 s

                let perm (p: int[]) (c: float[,]) =
                    Array2D.init (p.Length) (p.Length) (fun i j -> c[p[i], p[j]])

                fields
                |> List.forall (fun a ->
                    close 1e-12 (CommitteeIntegrals.i2 a c2) (CommitteeIntegrals.i2 a (perm [| 1; 0 |] c2))
                    && close 1e-12 (CommitteeIntegrals.j2 a c2) (CommitteeIntegrals.j2 a (perm [| 1; 0 |] c2)))
                && [ Erf; Linear ]
                   |> List.forall (fun a ->
                       close 1e-12 (CommitteeIntegrals.i4 a c4) (CommitteeIntegrals.i4 a (perm [| 1; 0; 2; 3 |] c4))
                       && close
                           1e-12
                           (CommitteeIntegrals.i4 a c4)
                           (CommitteeIntegrals.i4 a (perm [| 0; 1; 3; 2 |] c4))))

            testCase "trap cases of the spec (section 2.6)"
            <| fun () ->
                // relu.relu at u = v with unit variance is E[relu(z)^2] = 1/2 (a peer's formula gives 1/4).
                expectClose 1e-15 (CommitteeIntegrals.i2 Relu (cov2 1.0 1.0 1.0)) 0.5 "relu I2(1,1,1)"
                // erf(x/sqrt2) at unit variances and correlation 1/2 is (2/pi) asin(1/4), not (2/pi) asin(1/2).
                expectClose 1e-15 (CommitteeIntegrals.i2 Erf (cov2 1.0 0.5 1.0)) (2.0 / Math.PI * asin 0.25) "erf I2"

            testCase "singular covariance (u = v) handled by closed form and quadrature alike"
            <| fun () ->
                let q = 0.7
                let c = cov2 q q q

                for a in [ Erf; Linear ] do
                    expectClose
                        1e-10
                        (CommitteeIntegrals.i2 a c)
                        (CommitteeIntegrals.genericI2 a 40 c)
                        (a.Name + " I2 at u = v")
                // E[erf(u/sqrt2)^2] for u ~ N(0, q) is (2/pi) asin(q/(1+q)).
                expectClose 1e-14 (CommitteeIntegrals.i2 Erf c) (2.0 / Math.PI * asin (q / (1.0 + q))) "erf I2 diagonal"

            testCase "generic path serves a custom activation (tanh) consistently with Monte Carlo"
            <| fun () ->
                let c = randomCov 3 77
                let t = Activation.tanh

                let est =
                    GaussianMonteCarlo.estimate 5 1_000_000 (zeros 3) c (fun x ->
                        Activation.derivative t x[0] * x[1] * Activation.value t x[2])

                let v = CommitteeIntegrals.i3 t c
                Expect.isLessThan (abs (v - est.Mean)) (5.0 * est.StdErr) "tanh I3 within 5 standard errors"
        ]

[<Tests>]
let reluI4 =
    testList
        "ReLU I4 (Stein + Plackett)"
        [
            // Exact orthant probabilities: 1/16 (independent), 1/(d+1) = 1/5 (equicorrelation 1/2), and a product of two
            // bivariate orthants for a block-diagonal correlation.
            testCase "4-D orthant probability against exact values"
            <| fun () ->
                let eq r =
                    Array2D.init 4 4 (fun i j -> if i = j then 1.0 else r)

                expectClose 1e-14 (ReluI4.orthant4 (eq 0.0)) (1.0 / 16.0) "independent"
                expectClose 1e-14 (ReluI4.orthant4 (eq 0.5)) 0.2 "equicorrelated 1/2"

                let bd =
                    array2D
                        [
                            [ 1.0; 0.3; 0.0; 0.0 ]
                            [ 0.3; 1.0; 0.0; 0.0 ]
                            [ 0.0; 0.0; 1.0; -0.6 ]
                            [ 0.0; 0.0; -0.6; 1.0 ]
                        ]

                expectClose
                    1e-14
                    (ReluI4.orthant4 bd)
                    (ReluI4.orthant2 0.3 * ReluI4.orthant2 -0.6)
                    "two independent pairs"

            // Oracle: Monte Carlo at 2e6 samples (fixed seeds), 5 standard errors. The old tensor-GH(16) path missed by
            // up to 20% on such covariances (kinks converge algebraically).
            testCase "ReLU I4 against Monte Carlo"
            <| fun () ->
                for s in 1..4 do
                    let c = randomCov 4 (500 + s)

                    let mc =
                        GaussianMonteCarlo.estimate s 2_000_000 (Array.zeroCreate 4) c (fun x ->
                            if x[0] > 0.0 && x[1] > 0.0 && x[2] > 0.0 && x[3] > 0.0 then
                                x[2] * x[3]
                            else
                                0.0)

                    let v = CommitteeIntegrals.i4 Relu c

                    if abs (v - mc.Mean) > 5.0 * mc.StdErr then
                        failtestf "seed %d: I4 %.8g vs MC %.8g +- %.2g" s v mc.Mean mc.StdErr

            // The committee needs singular covariances: u = v on Q's diagonal, and student fields that are also value fields.
            testCase "ReLU I4 on singular covariances (u = v, w = z, u = w, u = v = w) against Monte Carlo"
            <| fun () ->
                let c3 = randomCov 3 5

                for name, idx in
                    [
                        "u=v", [| 0; 0; 1; 2 |]
                        "w=z", [| 0; 1; 2; 2 |]
                        "u=w", [| 0; 1; 0; 2 |]
                        "u=v=w", [| 0; 0; 0; 1 |]
                    ] do
                    let c = Array2D.init 4 4 (fun i j -> c3[idx[i], idx[j]])

                    let mc =
                        GaussianMonteCarlo.estimate 3 2_000_000 (Array.zeroCreate 4) c (fun x ->
                            if x[0] > 0.0 && x[1] > 0.0 && x[2] > 0.0 && x[3] > 0.0 then
                                x[2] * x[3]
                            else
                                0.0)

                    let v = ReluI4.evaluate c

                    if abs (v - mc.Mean) > 5.0 * mc.StdErr then
                        failtestf "%s: I4 %.8g vs MC %.8g +- %.2g" name v mc.Mean mc.StdErr

            testProp "ReLU I4 is symmetric under u <-> v and w <-> z" 50
            <| Prop.forAll (covArb 4) (fun c ->
                let perm (p: int[]) =
                    Array2D.init 4 4 (fun i j -> c[p[i], p[j]])

                let v = ReluI4.evaluate c

                close 1e-12 v (ReluI4.evaluate (perm [| 1; 0; 2; 3 |]))
                && close 1e-12 v (ReluI4.evaluate (perm [| 0; 1; 3; 2 |])))

            testCase "degenerate variances give zero"
            <| fun () ->
                let c = Array2D.init 4 4 (fun i j -> if i = j && i <> 2 then 1.0 else 0.0)
                Expect.equal (ReluI4.evaluate c) 0.0 "relu(w) = 0 when w = 0 almost surely"
        ]
