namespace StatPhysFs.Sde

open System
open StatPhysFs

/// A finite data set of per-sample losses f_i, i < n, on parameters x in R^d (sme-smf.md section 1: x is the
/// parameter, theta_i the data point). F = (1/n) sum f_i.
type FiniteSumProblem =
    {
        Name: string
        /// Parameter dimension d.
        Dim: int
        /// Number of data points n.
        Samples: int
        /// Gradient i x out: writes grad f_i(x) into out (length d).
        Gradient: int -> float[] -> float[] -> unit
        /// Loss i x: f_i(x).
        Loss: int -> float[] -> float
        /// Hessian-vector product of F: x v out. None: central differences of the full gradient with
        /// eps = 1e-5 (1 + |x|)/|v| (relative error ~1e-10 for smooth gradients).
        HessianVector: (float[] -> float[] -> float[] -> unit) option
    }

[<RequireQualifiedAccess>]
module FiniteSumProblem =
    let private dot (a: float[]) (b: float[]) = Blas.dotArr a b

    /// f_i(x) = (a_i.x - y_i)^2/2 + ridge |x|^2/2, with the exact Hessian-vector product.
    [<CompiledName("LeastSquares")>]
    let leastSquares (ridge: float) (a: float[][]) (y: float[]) =
        Check.that "a" (a.Length > 0 && a.Length = y.Length) "a and y need the same positive number of rows."
        let d = a[0].Length
        Check.that "a" (a |> Array.forall (fun r -> r.Length = d)) "every row of a needs the same length d."
        Check.nonNegative "ridge" ridge
        let n = a.Length

        {
            Name = "least squares"
            Dim = d
            Samples = n
            Gradient =
                fun i x out ->
                    let r = dot a[i] x - y[i]

                    for j in 0 .. d - 1 do
                        out[j] <- a[i][j] * r + ridge * x[j]
            Loss =
                fun i x ->
                    let r = dot a[i] x - y[i]
                    0.5 * r * r + 0.5 * ridge * dot x x
            HessianVector =
                Some(fun _ v out ->
                    for j in 0 .. d - 1 do
                        out[j] <- ridge * v[j]

                    for i in 0 .. n - 1 do
                        let c = dot a[i] v / float n

                        for j in 0 .. d - 1 do
                            out[j] <- out[j] + c * a[i][j])
        }

    /// Logistic regression f_i(x) = log(1 + e^{-c_i . x}) + ridge_i |x|^2/2, c_i = label_i a_i (per-sample ridge
    /// as in sme-smf.md V1), with the exact Hessian-vector product.
    [<CompiledName("Logistic")>]
    let logistic (ridge: float[]) (c: float[][]) =
        Check.that "c" (c.Length > 0 && c.Length = ridge.Length) "c and ridge need the same positive length."
        let d = c[0].Length
        let n = c.Length
        let sigmoid z = 1.0 / (1.0 + exp (-z))

        {
            Name = "logistic"
            Dim = d
            Samples = n
            Gradient =
                fun i x out ->
                    let s = sigmoid (-(dot c[i] x))

                    for j in 0 .. d - 1 do
                        out[j] <- -s * c[i][j] + ridge[i] * x[j]
            Loss =
                fun i x ->
                    let z = dot c[i] x

                    let l =
                        if z > 0.0 then
                            Math.Log(1.0 + exp (-z))
                        else
                            -z + Math.Log(1.0 + exp z)

                    l + 0.5 * ridge[i] * dot x x
            HessianVector =
                Some(fun x v out ->
                    Array.Clear out

                    for i in 0 .. n - 1 do
                        let s = sigmoid (dot c[i] x)
                        let w = s * (1.0 - s) * dot c[i] v / float n

                        for j in 0 .. d - 1 do
                            out[j] <- out[j] + w * c[i][j] + ridge[i] * v[j] / float n)
        }

    /// The two-layer teacher-student network of online-sgd.md on a finite data set: parameters x = the K x N
    /// first-layer weights W (row-major), fixed readout v, per-sample loss f_i = (sum_k v_k g(w_k.x_i/sqrt N) - y_i)^2/2,
    /// with the exact gradient and the exact Hessian-vector product (g, g', g'' of the activation).
    [<CompiledName("TwoLayer")>]
    let twoLayer (activation: Gaussian.Activation) (v: float[]) (inputs: float[][]) (labels: float[]) =
        Check.that
            "inputs"
            (inputs.Length > 0 && inputs.Length = labels.Length)
            "inputs and labels need the same positive length."

        let k = v.Length
        let nIn = inputs[0].Length
        let n = inputs.Length
        let sq = sqrt (float nIn)

        let pre (x: float[]) (i: int) =
            Array.init k (fun a -> (Blas.dot (ReadOnlySpan(x, a * nIn, nIn)) (ReadOnlySpan inputs[i])) / sq)

        let err (lam: float[]) (i: int) =
            (Array.map2 (fun va l -> va * Gaussian.Activation.value activation l) v lam
             |> Array.sum)
            - labels[i]

        {
            Name = "two-layer network"
            Dim = k * nIn
            Samples = n
            Gradient =
                fun i x out ->
                    let lam = pre x i
                    let e = err lam i

                    for a in 0 .. k - 1 do
                        let c = e * v[a] * Gaussian.Activation.derivative activation lam[a] / sq

                        for j in 0 .. nIn - 1 do
                            out[a * nIn + j] <- c * inputs[i][j]
            Loss =
                fun i x ->
                    let e = err (pre x i) i
                    0.5 * e * e
            HessianVector =
                Some(fun x dv out ->
                    Array.Clear out

                    for i in 0 .. n - 1 do
                        let lam = pre x i
                        let e = err lam i
                        // Directional derivative of each pre-activation along dv.
                        let dl = pre dv i
                        let gp = lam |> Array.map (Gaussian.Activation.derivative activation)

                        let dOut =
                            Array.fold2 (fun acc (va: float) (g, d) -> acc + va * g * d) 0.0 v (Array.zip gp dl)

                        for a in 0 .. k - 1 do
                            let c =
                                (v[a] * gp[a] * dOut
                                 + e * v[a] * Gaussian.Activation.secondDerivative activation lam[a] * dl[a])
                                / sq
                                / float n

                            for j in 0 .. nIn - 1 do
                                out[a * nIn + j] <- out[a * nIn + j] + c * inputs[i][j])
        }

    /// Any problem from per-sample gradients (and losses); Hessian-vector products by finite differences.
    [<CompiledName("Custom")>]
    let custom
        (name: string)
        (dim: int)
        (samples: int)
        (gradient: int -> float[] -> float[] -> unit)
        (loss: int -> float[] -> float)
        =
        Check.positiveInt "dim" dim
        Check.positiveInt "samples" samples

        {
            Name = name
            Dim = dim
            Samples = samples
            Gradient = gradient
            Loss = loss
            HessianVector = None
        }

    /// grad F(x) into out (scratch: a buffer of length d).
    [<CompiledName("FullGradient")>]
    let fullGradient (p: FiniteSumProblem) (x: float[]) (scratch: float[]) (out: float[]) =
        Array.Clear out

        for i in 0 .. p.Samples - 1 do
            p.Gradient i x scratch

            for j in 0 .. p.Dim - 1 do
                out[j] <- out[j] + scratch[j]

        for j in 0 .. p.Dim - 1 do
            out[j] <- out[j] / float p.Samples

    /// (grad^2 F)(x) v, exact when the problem provides it, else central differences.
    [<CompiledName("HessianVector")>]
    let hessianVector (p: FiniteSumProblem) (x: float[]) (v: float[]) (out: float[]) =
        match p.HessianVector with
        | Some h -> h x v out
        | None ->
            let nv = sqrt (dot v v)

            if nv = 0.0 then
                Array.Clear out
            else
                let eps = 1e-5 * (1.0 + sqrt (dot x x)) / nv
                let xp = Array.init p.Dim (fun j -> x[j] + eps * v[j])
                let xm = Array.init p.Dim (fun j -> x[j] - eps * v[j])
                let gp = Array.zeroCreate p.Dim
                let gm = Array.zeroCreate p.Dim
                let s = Array.zeroCreate p.Dim
                fullGradient p xp s gp
                fullGradient p xm s gm

                for j in 0 .. p.Dim - 1 do
                    out[j] <- (gp[j] - gm[j]) / (2.0 * eps)

/// C#-shaped constructors (the module above compiles as FiniteSumProblemModule).
type FiniteSumProblem with
    static member LeastSquares(ridge: float, a: float[][], y: float[]) = FiniteSumProblem.leastSquares ridge a y
    static member Logistic(ridge: float[], c: float[][]) = FiniteSumProblem.logistic ridge c

    static member TwoLayer(activation: Gaussian.Activation, v: float[], inputs: float[][], labels: float[]) =
        FiniteSumProblem.twoLayer activation v inputs labels

    static member Custom
        (name: string, dim: int, samples: int, gradient: Action<int, float[], float[]>, loss: Func<int, float[], float>)
        =
        FiniteSumProblem.custom name dim samples (fun i x o -> gradient.Invoke(i, x, o)) (fun i x -> loss.Invoke(i, x))
