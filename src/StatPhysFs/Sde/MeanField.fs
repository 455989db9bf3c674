namespace StatPhysFs.Sde

open System
open StatPhysFs

/// Mean-field two-layer networks (sme-smf.md section 4): N particles x^j = (a, w, c), unit Phi(x; z) = a tanh(w z + c),
/// output yhat(z) = (1/N) sum_j Phi(x^j; z), square loss (y - yhat)^2/2 on n data points. Mean-field SGD moves every
/// particle with step eta on the same sample: x^j += eta (y - yhat(z)) grad Phi(x^j; z).
type MeanFieldData =
    {
        Inputs: float[]
        Labels: float[]
        /// Number of particles N.
        Width: int
    }

[<RequireQualifiedAccess>]
module MeanField =
    let private unitGrad (x: float[]) (j: int) (z: float) (out: float[]) (scale: float) =
        let a, w, c = x[3 * j], x[3 * j + 1], x[3 * j + 2]
        let t = Math.Tanh(w * z + c)
        let dt = 1.0 - t * t
        out[3 * j] <- scale * t
        out[3 * j + 1] <- scale * a * dt * z
        out[3 * j + 2] <- scale * a * dt

    /// yhat(z) for the stacked particles x (length 3N).
    [<CompiledName("Output")>]
    let output (x: float[]) (z: float) =
        let n = x.Length / 3
        let mutable s = 0.0

        for j in 0 .. n - 1 do
            s <- s + x[3 * j] * Math.Tanh(x[3 * j + 1] * z + x[3 * j + 2])

        s / float n

    /// Training risk (1/2n) sum_i (y_i - yhat(z_i))^2.
    [<CompiledName("Risk")>]
    let risk (data: MeanFieldData) (x: float[]) =
        (Array.map2 (fun z y -> let e = y - output x z in 0.5 * e * e) data.Inputs data.Labels
         |> Array.sum)
        / float data.Inputs.Length

    /// The N-particle system as a finite-sum problem on R^{3N}: f_i(X) = (N/2)(y_i - yhat(z_i))^2, so that
    /// X - eta grad f_i(X) is mean-field SGD on sample i, and the SMF of this problem is the N-particle
    /// distribution-dependent SMF with noise common to all particles (the second-order drift's Lions term comes
    /// out of the finite-difference Hessian-vector product of the full field).
    [<CompiledName("Problem")>]
    let problem (data: MeanFieldData) =
        Check.that
            "inputs"
            (data.Inputs.Length > 0 && data.Inputs.Length = data.Labels.Length)
            "inputs and labels need the same positive length."

        Check.positiveInt "width" data.Width
        let n = data.Width

        FiniteSumProblem.custom
            "mean-field two-layer tanh"
            (3 * n)
            data.Inputs.Length
            (fun i x out ->
                let err = data.Labels[i] - output x data.Inputs[i]

                for j in 0 .. n - 1 do
                    unitGrad x j data.Inputs[i] out -err)
            (fun i x ->
                let e = data.Labels[i] - output x data.Inputs[i]
                0.5 * float n * e * e)

    /// The V4 fixture: a teacher of two tanh units on n = 8 inputs in [-2, 2], and N particles drawn once from the
    /// seed (a, w ~ N(0, 1), c ~ N(0, 1/4)). Statistics are then over the data order only.
    [<CompiledName("Fixture")>]
    let fixture (width: int) (seed: int) =
        let inputs = Array.init 8 (fun i -> -2.0 + 4.0 * float i / 7.0)

        let teacher z =
            1.2 * Math.Tanh(1.5 * z - 0.3) - 0.8 * Math.Tanh(0.7 * z + 0.5)

        let rng = Rng(seed, 31)

        let x0 =
            Array.init (3 * width) (fun k ->
                if k % 3 = 2 then
                    0.5 * rng.NextNormal()
                else
                    rng.NextNormal())

        {
            Inputs = inputs
            Labels = inputs |> Array.map teacher
            Width = width
        },
        x0
