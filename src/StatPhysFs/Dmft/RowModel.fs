namespace StatPhysFs.Dmft

open System
open StatPhysFs
open StatPhysFs.Gaussian

/// The per-sample pieces every solver and simulator shares: the label, the loss derivative l (length m) and its
/// Jacobian (m x m, row-major), and the reported loss. Buffers are caller-owned, so the hot loops do not allocate.
type RowModel =
    {
        Width: int
        TeacherWidth: int
        /// y from the teacher field w* (length m*) and the label noise eps.
        Label: float[] -> float -> float
        /// Eval r y l jac: writes l(r; y) and its Jacobian, returns the reported loss.
        Eval: float[] -> float -> float[] -> float[] -> float
        /// The reported loss at r (no derivatives).
        Loss: float[] -> float -> float
    }

[<RequireQualifiedAccess>]
module RowModel =
    let private logistic (r: float) (y: float) (l: float[]) (jac: float[]) =
        let z = y * r
        // sigma(-z) = 1/(1 + e^z) and the loss, written to stay finite for any z; one exponential e^{-|z|} serves
        // both (the same numbers as evaluating it per term: the DMFT sampler calls this N K times).
        if z > 0.0 then
            let e = exp (-z)
            let sMinus = e / (1.0 + e)
            l[0] <- -y * sMinus
            jac[0] <- y * y * sMinus * (1.0 - sMinus)
            Math.Log(1.0 + e)
        else
            let e = exp z
            let sMinus = 1.0 / (1.0 + e)
            l[0] <- -y * sMinus
            jac[0] <- y * y * sMinus * (1.0 - sMinus)
            -z + Math.Log(1.0 + e)

    let private glmLoss (loss: GlmLoss) : float -> float -> float[] -> float[] -> float =
        match loss with
        | GlmLoss.Square ->
            fun r y l jac ->
                l[0] <- r - y
                jac[0] <- 1.0
                (r - y) * (r - y)
        | GlmLoss.Logistic -> logistic
        | GlmLoss.Hinge ->
            fun r y l jac ->
                let margin = 1.0 - y * r
                l[0] <- if margin > 0.0 then -y else 0.0
                jac[0] <- 0.0
                max 0.0 margin
        | GlmLoss.Custom(_, value, d1, d2) ->
            fun r y l jac ->
                l[0] <- d1 r y
                jac[0] <- d2 r y
                value r y

    /// The compiled model of a problem.
    [<CompiledName("Create")>]
    let create (model: DmftModel) =
        match model with
        | Glm(loss, teacher) ->
            let label =
                match teacher with
                | GlmTeacher.Linear -> fun (ws: float[]) eps -> ws[0] + eps
                | GlmTeacher.Sign -> fun ws eps -> if ws[0] + eps >= 0.0 then 1.0 else -1.0
                | GlmTeacher.Custom(_, phi) -> fun ws eps -> phi ws[0] eps

            let ev = glmLoss loss

            {
                Width = 1
                TeacherWidth = 1
                Label = label
                Eval = fun r y l jac -> ev r[0] y l jac
                Loss = fun r y -> ev r[0] y (Array.zeroCreate 1) (Array.zeroCreate 1)
            }
        | TwoLayer net ->
            let m = net.V.Length
            let ms = net.VTeacher.Length

            let label (ws: float[]) eps =
                let mutable y = eps

                for b in 0 .. ms - 1 do
                    y <- y + net.VTeacher[b] * Activation.value net.Teacher ws[b]

                y

            let output (r: float[]) =
                let mutable f = 0.0

                for a in 0 .. m - 1 do
                    f <- f + net.V[a] * Activation.value net.Student r[a]

                f

            let eval (r: float[]) (y: float) (l: float[]) (jac: float[]) =
                let err = output r - y
                // l_a = err v_a psi'(r_a), so J_ab = v_a psi'_a v_b psi'_b + [a = b] err v_a psi''(r_a). Each
                // d_a = v_a psi'(r_a) is evaluated once and parked on the diagonal of jac (m + 2m activation calls
                // per sample instead of m^2 + 3m: the DMFT sampler calls this N K times).
                for a in 0 .. m - 1 do
                    let da = net.V[a] * Activation.derivative net.Student r[a]
                    l[a] <- err * da
                    jac[a * m + a] <- da

                for a in 0 .. m - 1 do
                    for b in 0 .. m - 1 do
                        if b <> a then
                            jac[a * m + b] <- jac[a * m + a] * jac[b * m + b]

                for a in 0 .. m - 1 do
                    let da = jac[a * m + a]
                    jac[a * m + a] <- da * da + err * net.V[a] * Activation.secondDerivative net.Student r[a]

                0.5 * err * err

            {
                Width = m
                TeacherWidth = ms
                Label = label
                Eval = eval
                Loss =
                    fun r y ->
                        let e = output r - y
                        0.5 * e * e
            }
