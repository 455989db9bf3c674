namespace StatPhysFs.Dmft

open System
open StatPhysFs
open StatPhysFs.Gaussian

/// Test-side observables of a parameter matrix with overlaps Q = theta^T theta/d (m x m), M = theta^T theta*/d
/// (m x m*) and teacher Gram rho: on a fresh Gaussian input the fields (w, w*) are exactly N(0, [[Q, M], [M^T, rho]]),
/// so these are the same functions of the overlaps for the DMFT and for a finite-d simulation (spec section 2.7).
[<RequireQualifiedAccess>]
module Observables =
    let private normalCdf (x: float) =
        0.5 * MathNet.Numerics.SpecialFunctions.Erfc(-x / sqrt 2.0)

    let private rule1 = lazy (GaussHermite.rule 200)

    let private rule3 = lazy (GaussianRule.tensor 3 24)

    let private ruleFor =
        let cache = Collections.Concurrent.ConcurrentDictionary<int, RuleND>()
        // About 4e4 nodes in any dimension: exact enough for smooth committee integrands.
        fun d -> cache.GetOrAdd(d, fun d -> GaussianRule.tensor d (max 3 (int (40000.0 ** (1.0 / float d)))))

    /// Test classification error of a GLM with a sign teacher: P(sign w != sign(w* + eps)) =
    /// arccos(m / sqrt(q (rho + sigma^2))) / pi.
    [<CompiledName("SignTeacherError")>]
    let signTeacherError (rho: float) (noiseVar: float) (q: float) (m: float) =
        if q <= 0.0 then
            0.5
        else
            let c = m / sqrt (q * (rho + noiseVar)) |> max -1.0 |> min 1.0
            acos c / Math.PI

    /// Test loss of a GLM (mean squared residual for the square loss, E[L] otherwise).
    [<CompiledName("GlmTestLoss")>]
    let glmTestLoss (loss: GlmLoss) (teacher: GlmTeacher) (rho: float) (noiseVar: float) (q: float) (m: float) =
        let model = RowModel.create (Glm(loss, teacher))
        let r = [| 0.0 |]

        match loss, teacher with
        | GlmLoss.Square, GlmTeacher.Linear -> q - 2.0 * m + rho + noiseVar
        | _, GlmTeacher.Sign ->
            // u = w* + eps; given w, u is Gaussian with mean (m/q) w and variance (rho + sigma^2) - m^2/q: one
            // smooth 1-D integral over w with P(u > 0 | w) in closed form.
            let su2 = rho + noiseVar
            let rule = rule1.Value
            let sq = sqrt (max q 0.0)
            let mutable acc = 0.0

            for i in 0 .. rule.Nodes.Length - 1 do
                let w = sq * rule.Nodes[i]

                let pPos =
                    if q <= 0.0 then
                        0.5
                    else
                        let v = su2 - m * m / q

                        if v <= 1e-14 * su2 then
                            (if m * w > 0.0 then 1.0
                             elif m * w < 0.0 then 0.0
                             else 0.5)
                        else
                            normalCdf (m / q * w / sqrt v)

                r[0] <- w

                acc <-
                    acc
                    + rule.Weights[i] * (pPos * model.Loss r 1.0 + (1.0 - pPos) * model.Loss r -1.0)

            acc
        | _ ->
            let cov = array2D [ [ q; m; 0.0 ]; [ m; rho; 0.0 ]; [ 0.0; 0.0; noiseVar ] ]
            let ws = [| 0.0 |]

            GaussianRule.expect rule3.Value [| 0.0; 0.0; 0.0 |] cov (fun x ->
                ws[0] <- x[1]
                r[0] <- x[0]
                model.Loss r (model.Label ws x[2]))

    /// Test loss (f - y)^2/2 of a two-layer network by tensor Gauss-Hermite over the m + m* fields; the label noise
    /// adds sigma^2/2 exactly.
    [<CompiledName("TwoLayerTestLoss")>]
    let twoLayerTestLoss (net: TwoLayerNet) (noiseVar: float) (rho: float[,]) (q: float[,]) (mm: float[,]) =
        let model = RowModel.create (TwoLayer net)
        let m = net.V.Length
        let ms = net.VTeacher.Length
        let d = m + ms

        let cov =
            Array2D.init d d (fun i j ->
                match i < m, j < m with
                | true, true -> q[i, j]
                | true, false -> mm[i, j - m]
                | false, true -> mm[j, i - m]
                | false, false -> rho[i - m, j - m])

        let r = Array.zeroCreate m
        let ws = Array.zeroCreate ms

        let noiseless =
            GaussianRule.expect (ruleFor d) (Array.zeroCreate d) cov (fun x ->
                Array.blit x 0 r 0 m
                Array.blit x m ws 0 ms
                model.Loss r (model.Label ws 0.0))

        noiseless + 0.5 * noiseVar

    /// Test loss of any model given its overlaps.
    [<CompiledName("TestLoss")>]
    let testLoss (p: DmftProblem) (q: float[,]) (mm: float[,]) =
        match p.Model with
        | Glm(loss, teacher) -> glmTestLoss loss teacher p.Rho[0, 0] p.NoiseVar q[0, 0] mm[0, 0]
        | TwoLayer net -> twoLayerTestLoss net p.NoiseVar p.Rho q mm

    /// Test classification error when it is defined (GLM with a sign teacher).
    [<CompiledName("TestError")>]
    let testError (p: DmftProblem) (q: float[,]) (mm: float[,]) =
        match p.Model with
        | Glm(_, GlmTeacher.Sign) -> Some(signTeacherError p.Rho[0, 0] p.NoiseVar q[0, 0] mm[0, 0])
        | _ -> None
