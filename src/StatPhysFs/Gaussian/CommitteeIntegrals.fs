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
    /// A constant: callers that want another order pass it (`i2With` ..., or the committee's settings).
    [<Literal>]
    let DefaultOrder = 24

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
            ($"%s{name} needs a %d{n}x%d{n} covariance.")

    /// I2 = E[g(u) g(v)] for the 2x2 covariance c; `order` is the Gauss-Hermite order of the generic path.
    [<CompiledName("I2WithOrder")>]
    let i2With (order: int) (a: Activation) (c: float[,]) =
        checkSize "I2" 2 c

        match a with
        | Erf -> erfI2 c[0, 0] c[0, 1] c[1, 1]
        | Linear -> c[0, 1]
        | Relu -> reluI2 c[0, 0] c[0, 1] c[1, 1]
        | Custom _ -> genericI2 a order c

    /// I2 at the default order.
    [<CompiledName("I2")>]
    let i2 (a: Activation) (c: float[,]) = i2With DefaultOrder a c

    /// J2 = E[g'(u) g'(v)] for the 2x2 covariance c.
    [<CompiledName("J2WithOrder")>]
    let j2With (order: int) (a: Activation) (c: float[,]) =
        checkSize "J2" 2 c

        match a with
        | Erf -> erfJ2 c[0, 0] c[0, 1] c[1, 1]
        | Linear -> 1.0
        | Relu -> reluJ2 c[0, 0] c[0, 1] c[1, 1]
        | Custom _ -> genericJ2 a order c

    [<CompiledName("J2")>]
    let j2 (a: Activation) (c: float[,]) = j2With DefaultOrder a c

    /// I3 = E[g'(u) v g(w)] for the 3x3 covariance c of (u, v, w).
    [<CompiledName("I3WithOrder")>]
    let i3With (order: int) (a: Activation) (c: float[,]) =
        checkSize "I3" 3 c

        match a with
        | Erf -> erfI3 c[0, 0] c[0, 1] c[0, 2] c[1, 1] c[1, 2] c[2, 2]
        | Linear -> c[1, 2]
        | Relu -> reluI3 c[0, 0] c[0, 1] c[0, 2] c[1, 1] c[1, 2] c[2, 2]
        | Custom _ -> genericI3 a order c

    [<CompiledName("I3")>]
    let i3 (a: Activation) (c: float[,]) = i3With DefaultOrder a c

    /// I4 = E[g'(u) g'(v) g(w) g(z)] for the 4x4 covariance c of (u, v, w, z). ReLU's has no elementary closed form:
    /// `ReluI4` reduces it to closed forms and one 1-D Gauss-Legendre quadrature (~1e-12). The generic path caps
    /// the order at 16 (16^4 nodes).
    [<CompiledName("I4WithOrder")>]
    let i4With (order: int) (a: Activation) (c: float[,]) =
        checkSize "I4" 4 c

        match a with
        | Erf -> erfI4 c[0, 0] c[0, 1] c[0, 2] c[0, 3] c[1, 1] c[1, 2] c[1, 3] c[2, 2] c[2, 3] c[3, 3]
        | Linear -> c[2, 3]
        | Relu -> ReluI4.evaluate c
        | Custom _ -> genericI4 a (min order 16) c

    [<CompiledName("I4")>]
    let i4 (a: Activation) (c: float[,]) = i4With DefaultOrder a c

/// Vectorised kernels of the erf committee right-hand side (the O(K^2 (K+M)^2) I4 sum dominates its cost).
[<RequireQualifiedAccess>]
module ErfKernels =
    open System.Runtime.Intrinsics

    // fdlibm / musl asin coefficients: asin(x) = x + x R(x^2) on |x| < 1/2 and pi/2 - 2 (s + s R(s^2)),
    // s = sqrt((1 - |x|)/2), above (the one-branch form of fdlibm's |x| >= 0.975 case: a few ulp, not 1).
    let private pS0 = Vector256.Create 1.66666666666666657415e-01
    let private pS1 = Vector256.Create -3.25565818622400915405e-01
    let private pS2 = Vector256.Create 2.01212532134862925881e-01
    let private pS3 = Vector256.Create -4.00555345006794114027e-02
    let private pS4 = Vector256.Create 7.91534994289814532176e-04
    let private pS5 = Vector256.Create 3.47933107596021167570e-05
    let private qS1 = Vector256.Create -2.40339491173441421878e+00
    let private qS2 = Vector256.Create 2.02094576023350569471e+00
    let private qS3 = Vector256.Create -6.88283971605453293030e-01
    let private qS4 = Vector256.Create 7.70381505559019352791e-02
    let private pio2Hi = Vector256.Create 1.57079632679489655800e+00
    let private pio2Lo = Vector256.Create 6.12323399573676603587e-17
    let private half = Vector256.Create 0.5
    let private one = Vector256.Create 1.0
    let private two = Vector256.Create 2.0
    let private minusOne = Vector256.Create -1.0

    /// asin on four lanes, arguments clipped to [-1, 1]; within a few ulp of Math.Asin (tested).
    let asin4 (x: Vector256<float>) =
        let x = Vector256.Min(one, Vector256.Max(minusOne, x))
        let ax = Vector256.Abs x
        let big = Vector256.GreaterThanOrEqual(ax, half)
        let t = Vector256.ConditionalSelect(big, (one - ax) * half, ax * ax)
        let p = t * (pS0 + t * (pS1 + t * (pS2 + t * (pS3 + t * (pS4 + t * pS5)))))
        let q = one + t * (qS1 + t * (qS2 + t * (qS3 + t * qS4)))
        let r = p / q
        let s = Vector256.Sqrt t
        let bigResult = pio2Hi - (two * (s + s * r) - pio2Lo)
        let smallResult = ax + ax * r
        let m = Vector256.ConditionalSelect(big, bigResult, smallResult)
        // Put back the sign of x.
        Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256<float>.Zero), -m, m)

    /// The padded length: n rounded up to a multiple of 4 (padding lanes carry zero weight).
    let padded n = (n + 3) &&& ~~~3

    /// sum_{r,u} a_r a_u I4(i, l, r, u) for erf over the n fields, with `c` the covariance row-major with row stride
    /// `np` = `padded n` (zero in the padding) and `a` the output weights (zero in the padding). `s` is scratch of
    /// length np. The sum runs over r <= u (I4 is symmetric in its last two fields) with per-pair invariants hoisted:
    /// l4, and l1(r) = l2(r) with 1/sqrt of it, so each term costs 3 fused multiply-adds and one vector asin.
    let pairSum (c: float[]) (np: int) (n: int) (a: float[]) (s: float[]) (i: int) (l: int) =
        let ri = i * np
        let rl = l * np
        let ai = 1.0 + c[ri + i]
        let bl = 1.0 + c[rl + l]
        let c12 = c[ri + l]
        let l4 = ai * bl - c12 * c12

        for r in 0 .. n - 1 do
            let x = c[ri + r]
            let y = c[rl + r]
            let l1 = l4 * (1.0 + c[r * np + r]) - y * y * ai - x * x * bl + 2.0 * c12 * x * y
            s[r] <- 1.0 / sqrt (max l1 0.0)

        for r in n .. np - 1 do
            s[r] <- 0.0

        let vl4 = Vector256.Create l4
        let mutable total = 0.0

        for r in 0 .. n - 1 do
            let xr = c[ri + r]
            let yr = c[rl + r]
            // l0(r, u) = l4 c_ru + alpha y_u + beta x_u
            let alpha = Vector256.Create(c12 * xr - ai * yr)
            let beta = Vector256.Create(c12 * yr - bl * xr)
            let sr = Vector256.Create s[r]
            let rr = r * np
            let u0 = r &&& ~~~3
            // First block: lanes below r weigh 0, the diagonal 1, above 2.
            let w0 =
                Vector256.Create(
                    (if u0 < r then 0.0 elif u0 = r then a[u0] else 2.0 * a[u0]),
                    (if u0 + 1 < r then 0.0 elif u0 + 1 = r then a[u0 + 1] else 2.0 * a[u0 + 1]),
                    (if u0 + 2 < r then 0.0 elif u0 + 2 = r then a[u0 + 2] else 2.0 * a[u0 + 2]),
                    (if u0 + 3 < r then 0.0 elif u0 + 3 = r then a[u0 + 3] else 2.0 * a[u0 + 3])
                )

            let inline term (u: int) =
                let cru = Vector256.Create(c, rr + u)
                let xu = Vector256.Create(c, ri + u)
                let yu = Vector256.Create(c, rl + u)
                let su = Vector256.Create(s, u)
                let l0 = vl4 * cru + alpha * yu + beta * xu
                asin4 (l0 * sr * su)

            let mutable acc = w0 * term u0
            let mutable u = u0 + 4

            while u < np do
                acc <- acc + two * Vector256.Create(a, u) * term u
                u <- u + 4

            total <- total + a[r] * Vector256.Sum acc

        4.0 / (Math.PI * Math.PI) / sqrt (max l4 0.0) * total
