namespace StatPhysFs.Gaussian

open System
open StatPhysFs

/// The committee-machine Gaussian integrals over centred jointly Gaussian (u, v, w, z) with covariance C:
///   I2 = E[g(u) g(v)],  J2 = E[g'(u) g'(v)],  I3 = E[g'(u) v g(w)] (the middle variable enters linearly),
///   I4 = E[g'(u) g'(v) g(w) g(z)].
/// Convention: g = erf(x/sqrt 2) and I2 = (2/pi) asin(.) (Saad-Solla / nn2pp). Some peers use half of that I2.
/// Closed forms are used where they exist (erf: all four; linear: all four; ReLU: I2, J2, I3, and I4 reduced to a
/// 1-D quadrature of closed forms by `ReluI4`); everything else goes through tensor Gauss-Hermite on the PSD
/// factor of C (`generic*`).
[<RequireQualifiedAccess>]
module CommitteeIntegrals =
    let private clip x = max -1.0 (min 1.0 x)
    let private pos x = max x 0.0

    // ---------- erf ----------
    let erfI2 c11 c12 c22 =
        2.0 / Math.PI * asin (clip (c12 / sqrt ((1.0 + c11) * (1.0 + c22))))

    let erfJ2 c11 c12 c22 =
        2.0 / Math.PI / sqrt (pos ((1.0 + c11) * (1.0 + c22) - c12 * c12))

    let erfI3 c11 c12 c13 c22 c23 c33 =
        ignore c22
        let l3 = pos ((1.0 + c11) * (1.0 + c33) - c13 * c13)
        2.0 / Math.PI * (c23 * (1.0 + c11) - c12 * c13) / ((1.0 + c11) * sqrt l3)

    let erfI4 c11 c12 c13 c14 c22 c23 c24 c33 c34 c44 =
        let l4 = (1.0 + c11) * (1.0 + c22) - c12 * c12

        let l0 =
            l4 * c34 - c23 * c24 * (1.0 + c11) - c13 * c14 * (1.0 + c22)
            + c12 * c13 * c24
            + c12 * c14 * c23

        let l1 =
            l4 * (1.0 + c33) - c23 * c23 * (1.0 + c11) - c13 * c13 * (1.0 + c22)
            + 2.0 * c12 * c13 * c23

        let l2 =
            l4 * (1.0 + c44) - c24 * c24 * (1.0 + c11) - c14 * c14 * (1.0 + c22)
            + 2.0 * c12 * c14 * c24

        4.0 / (Math.PI * Math.PI) / sqrt (pos l4)
        * asin (clip (l0 / sqrt (pos (l1 * l2))))

    // ---------- ReLU ----------
    let reluI2 c11 c12 c22 =
        let p = c11 * c22

        if p <= 0.0 then
            0.0
        else
            let c = clip (c12 / sqrt p)
            (sqrt (pos (p - c12 * c12)) + c12 * (Math.PI / 2.0 + asin c)) / (2.0 * Math.PI)

    let reluJ2 c11 c12 c22 =
        let p = c11 * c22

        if p <= 0.0 then
            0.0 // a frozen field sits at the kink: theta(0) = 0
        else
            0.25 + asin (clip (c12 / sqrt p)) / (2.0 * Math.PI)

    let reluI3 c11 c12 c13 c22 c23 c33 =
        ignore c22

        if c11 <= 0.0 then
            0.0
        elif c33 <= 0.0 then
            0.0 // w = 0 almost surely, so relu(w) = 0
        else
            let c = clip (c13 / sqrt (c11 * c33))

            c12 * sqrt (pos (c11 * c33 - c13 * c13)) / (2.0 * Math.PI * c11)
            + c23 * (0.25 + asin c / (2.0 * Math.PI))

    // ---------- generic (tensor Gauss-Hermite) ----------
    /// Quadrature order per dimension for the generic path: accurate to ~1e-12 for smooth (analytic)
    /// activations; kinks converge only algebraically (use Monte Carlo error bars or a closed form there).
    let mutable defaultOrder = 24

    let private zeros n = Array.zeroCreate<float> n

    let genericI2 (a: Activation) order (c: float[,]) =
        GaussianRule.expect (GaussianRule.tensor 2 order) (zeros 2) c (fun x ->
            Activation.value a x[0] * Activation.value a x[1])

    let genericJ2 (a: Activation) order (c: float[,]) =
        GaussianRule.expect (GaussianRule.tensor 2 order) (zeros 2) c (fun x ->
            Activation.derivative a x[0] * Activation.derivative a x[1])

    let genericI3 (a: Activation) order (c: float[,]) =
        GaussianRule.expect (GaussianRule.tensor 3 order) (zeros 3) c (fun x ->
            Activation.derivative a x[0] * x[1] * Activation.value a x[2])

    let genericI4 (a: Activation) order (c: float[,]) =
        GaussianRule.expect (GaussianRule.tensor 4 order) (zeros 4) c (fun x ->
            Activation.derivative a x[0]
            * Activation.derivative a x[1]
            * Activation.value a x[2]
            * Activation.value a x[3])

    let private checkSize name n (c: float[,]) =
        Check.that
            name
            (Array2D.length1 c = n && Array2D.length2 c = n)
            (sprintf "%s needs a %dx%d covariance." name n n)

    /// I2 = E[g(u) g(v)] for the 2x2 covariance c.
    [<CompiledName("I2")>]
    let i2 (a: Activation) (c: float[,]) =
        checkSize "I2" 2 c

        match a with
        | Erf -> erfI2 c[0, 0] c[0, 1] c[1, 1]
        | Linear -> c[0, 1]
        | Relu -> reluI2 c[0, 0] c[0, 1] c[1, 1]
        | Custom _ -> genericI2 a defaultOrder c

    /// J2 = E[g'(u) g'(v)] for the 2x2 covariance c.
    [<CompiledName("J2")>]
    let j2 (a: Activation) (c: float[,]) =
        checkSize "J2" 2 c

        match a with
        | Erf -> erfJ2 c[0, 0] c[0, 1] c[1, 1]
        | Linear -> 1.0
        | Relu -> reluJ2 c[0, 0] c[0, 1] c[1, 1]
        | Custom _ -> genericJ2 a defaultOrder c

    /// I3 = E[g'(u) v g(w)] for the 3x3 covariance c of (u, v, w).
    [<CompiledName("I3")>]
    let i3 (a: Activation) (c: float[,]) =
        checkSize "I3" 3 c

        match a with
        | Erf -> erfI3 c[0, 0] c[0, 1] c[0, 2] c[1, 1] c[1, 2] c[2, 2]
        | Linear -> c[1, 2]
        | Relu -> reluI3 c[0, 0] c[0, 1] c[0, 2] c[1, 1] c[1, 2] c[2, 2]
        | Custom _ -> genericI3 a defaultOrder c

    /// I4 = E[g'(u) g'(v) g(w) g(z)] for the 4x4 covariance c of (u, v, w, z). ReLU's has no elementary closed form:
    /// `ReluI4` reduces it to closed forms and one 1-D Gauss-Legendre quadrature (~1e-12).
    [<CompiledName("I4")>]
    let i4 (a: Activation) (c: float[,]) =
        checkSize "I4" 4 c

        match a with
        | Erf -> erfI4 c[0, 0] c[0, 1] c[0, 2] c[0, 3] c[1, 1] c[1, 2] c[1, 3] c[2, 2] c[2, 3] c[3, 3]
        | Linear -> c[2, 3]
        | Relu -> ReluI4.evaluate c
        | Custom _ -> genericI4 a (min defaultOrder 16) c
