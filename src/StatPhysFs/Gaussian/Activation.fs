namespace StatPhysFs.Gaussian

open System

/// An activation g with its derivative g'. erf means g(x) = erf(x / sqrt 2), whose derivative is
/// sqrt(2/pi) exp(-x^2/2): the Saad-Solla convention used throughout the specs.
[<CustomEquality; NoComparison>]
type Activation =
    | Erf
    | Relu
    | Linear
    /// Any activation given as a function and its derivative; evaluated by quadrature.
    | Custom of name: string * g: (float -> float) * dg: (float -> float)

    member a.Name =
        match a with
        | Erf -> "erf"
        | Relu -> "relu"
        | Linear -> "linear"
        | Custom(n, _, _) -> n

    override a.Equals(o) =
        match o with
        | :? Activation as b ->
            match a, b with
            | Custom(_, g1, d1), Custom(_, g2, d2) -> obj.ReferenceEquals(g1, g2) && obj.ReferenceEquals(d1, d2)
            | _ -> a.Name = b.Name
        | _ -> false

    override a.GetHashCode() = a.Name.GetHashCode()
    override a.ToString() = a.Name

[<RequireQualifiedAccess>]
module Activation =
    let private sqrt2 = sqrt 2.0
    let private sqrt2OverPi = sqrt (2.0 / Math.PI)

    [<CompiledName("Value")>]
    let value (a: Activation) (x: float) =
        match a with
        | Erf -> MathNet.Numerics.SpecialFunctions.Erf(x / sqrt2)
        | Relu -> if x > 0.0 then x else 0.0
        | Linear -> x
        | Custom(_, g, _) -> g x

    [<CompiledName("Derivative")>]
    let derivative (a: Activation) (x: float) =
        match a with
        | Erf -> sqrt2OverPi * exp (-x * x / 2.0)
        | Relu -> if x > 0.0 then 1.0 else 0.0
        | Linear -> 1.0
        | Custom(_, _, dg) -> dg x

    /// g''(x): closed forms for erf, ReLU (0 almost everywhere) and linear; a central difference of g' for custom
    /// activations (error ~1e-10 for smooth g').
    [<CompiledName("SecondDerivative")>]
    let secondDerivative (a: Activation) (x: float) =
        match a with
        | Erf -> -x * sqrt2OverPi * exp (-x * x / 2.0)
        | Relu
        | Linear -> 0.0
        | Custom(_, _, dg) ->
            let h = 1e-5 * max 1.0 (abs x)
            (dg (x + h) - dg (x - h)) / (2.0 * h)

    [<CompiledName("Tanh")>]
    let tanh = Custom("tanh", Math.Tanh, (fun x -> let t = Math.Tanh x in 1.0 - t * t))

    [<CompiledName("Sigmoid")>]
    let sigmoid =
        Custom("sigmoid", (fun x -> 1.0 / (1.0 + exp (-x))), (fun x -> let s = 1.0 / (1.0 + exp (-x)) in s * (1.0 - s)))

    [<CompiledName("OfName")>]
    let ofName (name: string) =
        match name.ToLowerInvariant() with
        | "erf" -> Erf
        | "relu" -> Relu
        | "linear" -> Linear
        | "tanh" -> tanh
        | "sigmoid" -> sigmoid
        | _ ->
            raise (
                ArgumentException(
                    $"unknown activation '%s{name}'; valid: erf, relu, linear, tanh, sigmoid.",
                    "activation"
                )
            )

/// The module's functions as members of the type, so C# reaches them without the compiled `ActivationModule` name.
type Activation with
    /// g(x).
    member a.Evaluate(x: float) = Activation.value a x

    /// g'(x).
    member a.Derivative(x: float) = Activation.derivative a x

    /// tanh (integrals by quadrature).
    static member Tanh = Activation.tanh

    /// The logistic sigmoid (integrals by quadrature).
    static member Sigmoid = Activation.sigmoid
