namespace StatPhysFs.Gaussian

open System
open System.Runtime.Intrinsics
open StatPhysFs

#nowarn "9" // ErfKernels: native pointers into pinned arrays, so the hot loops load vectors without bounds checks

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

/// The vector operations the erf kernels use, one overload per vector type, resolved at compile time (the kernels
/// are written once, generically, and instantiated for Vector256 and Vector512).
[<AbstractClass; Sealed>]
type SimdOps =
    static member inline Splat(_: Vector256<float>, x: float) = Vector256.Create x
    static member inline Splat(_: Vector512<float>, x: float) = Vector512.Create x
    static member inline Load(_: Vector256<float>, p: nativeptr<float>) = Vector256.Load p
    static member inline Load(_: Vector512<float>, p: nativeptr<float>) = Vector512.Load p
    static member inline Store(v: Vector256<float>, p: nativeptr<float>) = Vector256.Store(v, p)
    static member inline Store(v: Vector512<float>, p: nativeptr<float>) = Vector512.Store(v, p)

    static member inline Fma(a: Vector256<float>, b: Vector256<float>, c: Vector256<float>) =
        Vector256.FusedMultiplyAdd(a, b, c)

    static member inline Fma(a: Vector512<float>, b: Vector512<float>, c: Vector512<float>) =
        Vector512.FusedMultiplyAdd(a, b, c)

    static member inline Min(a: Vector256<float>, b: Vector256<float>) = Vector256.Min(a, b)
    static member inline Min(a: Vector512<float>, b: Vector512<float>) = Vector512.Min(a, b)
    static member inline Max(a: Vector256<float>, b: Vector256<float>) = Vector256.Max(a, b)
    static member inline Max(a: Vector512<float>, b: Vector512<float>) = Vector512.Max(a, b)
    static member inline Abs(a: Vector256<float>) = Vector256.Abs a
    static member inline Abs(a: Vector512<float>) = Vector512.Abs a
    static member inline Sqrt(a: Vector256<float>) = Vector256.Sqrt a
    static member inline Sqrt(a: Vector512<float>) = Vector512.Sqrt a
    static member inline Ge(a: Vector256<float>, b: Vector256<float>) = Vector256.GreaterThanOrEqual(a, b)
    static member inline Ge(a: Vector512<float>, b: Vector512<float>) = Vector512.GreaterThanOrEqual(a, b)
    static member inline Lt(a: Vector256<float>, b: Vector256<float>) = Vector256.LessThan(a, b)
    static member inline Lt(a: Vector512<float>, b: Vector512<float>) = Vector512.LessThan(a, b)
    static member inline AllLt(a: Vector256<float>, b: Vector256<float>) = Vector256.LessThanAll(a, b)
    static member inline AllLt(a: Vector512<float>, b: Vector512<float>) = Vector512.LessThanAll(a, b)

    static member inline Select(m: Vector256<float>, a: Vector256<float>, b: Vector256<float>) =
        Vector256.ConditionalSelect(m, a, b)

    static member inline Select(m: Vector512<float>, a: Vector512<float>, b: Vector512<float>) =
        Vector512.ConditionalSelect(m, a, b)

/// Vectorised kernels of the erf committee right-hand side (the O(K^2 (K+M)^2) I4 sum dominates its cost). The
/// lanes of a vector are (i, l) pairs: each lane runs the same operations in the same order on its own pair, so a
/// pair's sum does not depend on which block, thread or vector width (4 or 8 lanes) computes it.
[<RequireQualifiedAccess>]
module ErfKernels =
    open System.Runtime.CompilerServices
    open Microsoft.FSharp.NativeInterop

    // The SimdOps overload for the vector type ^V (the witness-type pattern of statically resolved members).
    let inline private splatW (_: ^O) (w: ^V) (x: float) : ^V =
        ((^O or ^V): (static member Splat: ^V * float -> ^V) (w, x))

    let inline private loadW (_: ^O) (w: ^V) (p: nativeptr<float>) : ^V =
        ((^O or ^V): (static member Load: ^V * nativeptr<float> -> ^V) (w, p))

    let inline private storeW (_: ^O) (v: ^V) (p: nativeptr<float>) : unit =
        ((^O or ^V): (static member Store: ^V * nativeptr<float> -> unit) (v, p))

    let inline private fmaW (_: ^O) (a: ^V) (b: ^V) (c: ^V) : ^V =
        ((^O or ^V): (static member Fma: ^V * ^V * ^V -> ^V) (a, b, c))

    let inline private minW (_: ^O) (a: ^V) (b: ^V) : ^V = ((^O or ^V): (static member Min: ^V * ^V -> ^V) (a, b))
    let inline private maxW (_: ^O) (a: ^V) (b: ^V) : ^V = ((^O or ^V): (static member Max: ^V * ^V -> ^V) (a, b))
    let inline private absW (_: ^O) (a: ^V) : ^V = ((^O or ^V): (static member Abs: ^V -> ^V) a)
    let inline private sqrtW (_: ^O) (a: ^V) : ^V = ((^O or ^V): (static member Sqrt: ^V -> ^V) a)
    let inline private geW (_: ^O) (a: ^V) (b: ^V) : ^V = ((^O or ^V): (static member Ge: ^V * ^V -> ^V) (a, b))
    let inline private ltW (_: ^O) (a: ^V) (b: ^V) : ^V = ((^O or ^V): (static member Lt: ^V * ^V -> ^V) (a, b))

    let inline private allLtW (_: ^O) (a: ^V) (b: ^V) : bool =
        ((^O or ^V): (static member AllLt: ^V * ^V -> bool) (a, b))

    let inline private selectW (_: ^O) (m: ^V) (a: ^V) (b: ^V) : ^V =
        ((^O or ^V): (static member Select: ^V * ^V * ^V -> ^V) (m, a, b))

    let inline private ops () = Unchecked.defaultof<SimdOps>
    let inline private splat w x = splatW (ops ()) w x
    let inline private load w p = loadW (ops ()) w p
    let inline private store v p = storeW (ops ()) v p
    let inline private fma a b c = fmaW (ops ()) a b c
    let inline private vmin a b = minW (ops ()) a b
    let inline private vmax a b = maxW (ops ()) a b
    let inline private vabs a = absW (ops ()) a
    let inline private vsqrt a = sqrtW (ops ()) a
    let inline private vge a b = geW (ops ()) a b
    let inline private vlt a b = ltW (ops ()) a b
    let inline private allLt a b = allLtW (ops ()) a b
    let inline private select m a b = selectW (ops ()) m a b

    // fdlibm / musl asin: asin(x) = x + x R(x^2) on |x| < 1/2 and pi/2 - 2 (s + s R(s^2)), s = sqrt((1 - |x|)/2),
    // above (the one-branch form of fdlibm's |x| >= 0.975 case: a few ulp, not 1), R = P/Q. Constants are written
    // in place so the JIT embeds them (a module-level vector is a static field read behind a class-init check).
    // `w` is any vector of the type (a witness).
    let inline private ratio (w: ^V) (t: ^V) : ^V =
        let c x = splat w x

        let p =
            t
            * fma
                t
                (fma
                    t
                    (fma
                        t
                        (fma t (fma t (c 3.47933107596021167570e-05) (c 7.91534994289814532176e-04)) (c -4.00555345006794114027e-02))
                        (c 2.01212532134862925881e-01))
                    (c -3.25565818622400915405e-01))
                (c 1.66666666666666657415e-01)

        let q =
            fma
                t
                (fma t (fma t (fma t (c 7.70381505559019352791e-02) (c -6.88283971605453293030e-01)) (c 2.02094576023350569471e+00)) (c -2.40339491173441421878e+00))
                (c 1.0)

        p / q

    /// asin on every lane, arguments clipped to [-1, 1]; within a few ulp of Math.Asin (tested).
    let inline private asinFull (w: ^V) (x: ^V) : ^V =
        let c v = splat w v
        let x = vmin (c 1.0) (vmax (c -1.0) x)
        let ax = vabs x
        let big = vge ax (c 0.5)
        let t = select big ((c 1.0 - ax) * c 0.5) (ax * ax)
        let r = ratio w t
        let s = vsqrt t
        // pi/2 = pio2Hi + pio2Lo.
        let bigResult = c 1.57079632679489655800e+00 - (c 2.0 * fma s r s - c 6.12323399573676603587e-17)
        let m = select big bigResult (fma ax r ax)
        // Put back the sign of x.
        select (vlt x (c 0.0)) (-m) m

    /// asinFull when every lane lies in (-1/2, 1/2): x + x R(x^2), odd, no square root (the same numbers there).
    let inline private asinSmall (w: ^V) (x: ^V) : ^V = fma x (ratio w (x * x)) x

    /// asin on four lanes (the Vector256 instance of the kernels' asin), clipped to [-1, 1].
    let asin4 (x: Vector256<float>) = asinFull x x

    /// asin on eight lanes (the Vector512 instance).
    let asin8 (x: Vector512<float>) = asinFull x x

    /// Pairs per block: 8 where 512-bit vectors run in hardware, else 4.
    let Lanes = if Vector512.IsHardwareAccelerated then 8 else 4

    /// The padded row stride: n rounded up to a multiple of 8 (padding entries are zero).
    let padded n = (n + 7) &&& ~~~7

    /// Scratch floats `pairBlock` needs for n fields (at either width).
    let blockScratch (n: int) = (3 * n + 3) * 8

    // The body of pairBlock for the vector type of the witness w (lanes = its length). Pointers into pinned arrays;
    // the public wrapper checks every index first.
    let inline private pairBlockOf
        (w: ^V)
        (lanes: int)
        (pc: nativeptr<float>)
        (np: int)
        (n: int)
        (pa: nativeptr<float>)
        (px: nativeptr<float>)
        (py: nativeptr<float>)
        (pr: nativeptr<float>)
        (pk: nativeptr<float>)
        (out: nativeptr<float>)
        =
        let c v = splat w v
        let one = c 1.0
        let zero = c 0.0
        let ai = load w pk
        let bl = load w (NativePtr.add pk lanes)
        let c12 = load w (NativePtr.add pk (2 * lanes))
        let l4 = ai * bl - c12 * c12
        let twoC12 = c12 + c12

        for u in 0 .. n - 1 do
            let xu = load w (NativePtr.add px (u * lanes))
            let yu = load w (NativePtr.add py (u * lanes))
            let cuu = c (NativePtr.get pc (u * (np + 1)))
            // l1 = l4 (1 + c_uu) - y^2 ai - x^2 bl + 2 c12 x y
            let l1 = l4 * (one + cuu) - yu * yu * ai - xu * xu * bl + twoC12 * xu * yu
            store (one / vsqrt (vmax l1 zero)) (NativePtr.add pr (u * lanes))

        let mutable acc = zero

        for r in 0 .. n - 1 do
            let xr = load w (NativePtr.add px (r * lanes))
            let yr = load w (NativePtr.add py (r * lanes))
            let sr = load w (NativePtr.add pr (r * lanes))
            let alpha = c12 * xr - ai * yr
            let beta = c12 * yr - bl * xr
            let ar = NativePtr.get pa r
            let row = NativePtr.add pc (r * np)
            let ar2 = ar + ar

            // u = r is the diagonal term (weight a_r^2, argument 1 - l4 / l1(r)); the loop's weight is 2 a_r a_u
            // above it. One loop keeps a single copy of the inlined asin pair (the kernel is JIT-compiled per process).
            for u in r .. n - 1 do
                let xu = load w (NativePtr.add px (u * lanes))
                let yu = load w (NativePtr.add py (u * lanes))
                let su = load w (NativePtr.add pr (u * lanes))
                let l0 = fma beta xu (fma alpha yu (l4 * c (NativePtr.get row u)))
                let arg = l0 * sr * su
                // Most off-diagonal conditional correlations are below 1/2: skip the square root there.
                let asinArg =
                    if allLt (vabs arg) (c 0.5) then
                        asinSmall w arg
                    else
                        asinFull w arg

                acc <- fma (c ((if u = r then ar else ar2) * NativePtr.get pa u)) asinArg acc

        store (c (4.0 / (Math.PI * Math.PI)) / vsqrt (vmax l4 zero) * acc) out

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private pairBlock8 pc np n pa px py pr pk out =
        pairBlockOf Vector512<float>.Zero 8 pc np n pa px py pr pk out

    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let private pairBlock4 pc np n pa px py pr pk out =
        pairBlockOf Vector256<float>.Zero 4 pc np n pa px py pr pk out

    /// b4[q] = sum_{r,u} a_r a_u I4(pi[q], pl[q], r, u) for erf, for the pairs q = q0 .. q0 + Lanes - 1 (one per lane),
    /// over the n fields. `c` is the covariance row-major with row stride np >= n, `a` the output weights. I4 is
    /// symmetric in its last two fields, so the sum runs over r <= u (off-diagonal terms twice). Per pair, l4 and
    /// l1(r) = l2(r) with 1/sqrt of it are hoisted, and l0(r, u) = l4 c_ru + alpha_r y_u + beta_r x_u with
    /// x = c[i, .], y = c[l, .]: each term is 3 fused multiply-adds, 2 products and one asin. `scratch` holds
    /// `blockScratch n` floats (x, y and 1/sqrt l1 by field, lane-minor).
    ///
    /// `lanes` (4 or 8) picks the vector width: `pairBlock` uses `Lanes`; the other width gives the same numbers
    /// (tested), only slower.
    let pairBlockWith
        (lanes: int)
        (c: float[])
        (np: int)
        (n: int)
        (a: float[])
        (pi: int[])
        (pl: int[])
        (q0: int)
        (scratch: float[])
        (b4: float[])
        =
        if lanes <> 4 && lanes <> 8 then
            invalidArg "lanes" "lanes must be 4 or 8."

        if q0 < 0 || q0 + lanes > pi.Length || q0 + lanes > pl.Length || q0 + lanes > b4.Length then
            invalidArg "q0" "the block must lie inside the pair arrays."

        if c.Length < n * np || np < n || a.Length < n || scratch.Length < blockScratch n then
            invalidArg "c" "the covariance, weights or scratch are too short."

        for q in q0 .. q0 + lanes - 1 do
            if pi[q] < 0 || pi[q] >= n || pl[q] < 0 || pl[q] >= n then
                invalidArg "pi" "pair indices must lie in [0, n)."

        // Lane-minor copies: x[u] = c[i, u], y[u] = c[l, u], then the pair constants (1 + c_ii, 1 + c_ll, c_il).
        let oy = n * lanes
        let os = 2 * n * lanes
        let oc = 3 * n * lanes

        for q in 0 .. lanes - 1 do
            let ri = pi[q0 + q] * np
            let rl = pl[q0 + q] * np

            for u in 0 .. n - 1 do
                scratch[u * lanes + q] <- c[ri + u]
                scratch[oy + u * lanes + q] <- c[rl + u]

            scratch[oc + q] <- 1.0 + c[ri + pi[q0 + q]]
            scratch[oc + lanes + q] <- 1.0 + c[rl + pl[q0 + q]]
            scratch[oc + 2 * lanes + q] <- c[ri + pl[q0 + q]]

        use pc = fixed c
        use pa = fixed a
        use ps = fixed scratch
        use pb = fixed b4
        let px = ps
        let py = NativePtr.add ps oy
        let pr = NativePtr.add ps os
        let pk = NativePtr.add ps oc
        let out = NativePtr.add pb q0

        if lanes = 8 then
            pairBlock8 pc np n pa px py pr pk out
        else
            pairBlock4 pc np n pa px py pr pk out

    /// `pairBlockWith Lanes`: the widest vectors the hardware runs.
    let pairBlock c np n a pi pl q0 scratch b4 =
        pairBlockWith Lanes c np n a pi pl q0 scratch b4

    /// The I3 sums of the first k fields: a3[i * np + q] = sum_r a_r I3(i, q, r) for erf, q < n, with
    /// I3(i, q, r) = (2/pi) (c_qr - c_iq c_ir / d_i) / sqrt(d_i d_r - c_ir^2), d = 1 + diag c. With
    /// w_r = a_r / sqrt(.) the sum over r is two dot products; the one over c_qr runs four q at a time. `c` is the
    /// covariance with row stride np (a multiple of 4, zero in the padding), `w` scratch of length np.
    [<MethodImpl(MethodImplOptions.AggressiveOptimization)>]
    let i3Rows (c: float[]) (np: int) (n: int) (k: int) (a: float[]) (w: float[]) (a3: float[]) =
        if np % 4 <> 0 || np < n || k > n || c.Length < n * np || a.Length < n || w.Length < np || a3.Length < k * np then
            invalidArg "np" "inconsistent sizes."

        use pc = fixed c
        use pw = fixed w
        use pa3 = fixed a3

        for i in 0 .. k - 1 do
            let ri = i * np
            let di = 1.0 + c[ri + i]
            let mutable wi = 0.0

            for r in 0 .. n - 1 do
                let cir = c[ri + r]
                let wr = a[r] / sqrt (max (di * (1.0 + c[r * np + r]) - cir * cir) 0.0)
                w[r] <- wr
                wi <- wi + wr * cir

            let row = NativePtr.add pa3 ri
            let mutable q = 0

            while q < np do
                Vector256.Store(Vector256<float>.Zero, NativePtr.add row q)
                q <- q + 4

            for r in 0 .. n - 1 do
                let wr = Vector256.Create(NativePtr.get pw r)
                let cr = NativePtr.add pc (r * np)
                let mutable q = 0

                while q < np do
                    let dst = NativePtr.add row q
                    Vector256.Store(Vector256.FusedMultiplyAdd(wr, Vector256.Load(NativePtr.add cr q), Vector256.Load dst), dst)
                    q <- q + 4

            for q in 0 .. n - 1 do
                a3[ri + q] <- 2.0 / Math.PI * (a3[ri + q] - c[ri + q] / di * wi)
