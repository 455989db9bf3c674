namespace StatPhysFs

open System
open System.Runtime.Intrinsics
open System.Runtime.Intrinsics.X86

/// The Box-Muller transform of eight pairs of 64-bit words at once, with its own log and sin/cos: branch-free, no
/// table look-ups but one in-register permute, so that the whole draw stays in vector registers (a ziggurat needs a
/// gather per table, and .NET has no 512-bit gather). Every operation is IEEE-exact elementwise (add, multiply,
/// fused multiply-add, divide, square root, conversions, bit operations), so the numbers are the same bit for bit on
/// any hardware; the Vector256 form below is the same sequence of operations.
///
/// - u1 = 2 - [1, 2) from the top 52 bits of `ra`: u1 in [2^-52, 1], so |z| <= sqrt(104 ln 2) = 8.49
///   (P(|Z| > 8.49) = 2e-17).
/// - ln u1: fdlibm's e_log (k, m in [sqrt(2)/2, sqrt(2)), s = f/(2+f), the degree-14 minimax polynomial in s), under
///   one ulp; relative accuracy also near u1 = 1, where the radius is small.
/// - theta = 2 pi u2 with u2 from `rb`: the octant o from its top 3 bits, phi = (pi/4)(f - 1/2) in [-pi/8, pi/8) from
///   the next 52 (f in [0, 1)); sin and cos of phi by fdlibm's k_sin/k_cos polynomials (made for |phi| <= pi/4), then
///   rotated by the octant's centre (o + 1/2) pi/4.
[<RequireQualifiedAccess>]
module internal BoxMuller =
    // cos and sin of pi/8, correctly rounded: the octant centres' (cos, sin) are these up to order and sign.
    [<Literal>]
    let C8 = 0.9238795325112867

    [<Literal>]
    let S8 = 0.3826834323650898

    [<Literal>]
    let QuarterPi = 0.7853981633974483

    [<Literal>]
    let Sqrt2 = 1.4142135623730951

    // fdlibm e_log.c: ln 2 in two parts, and the coefficients of R(z) in s = f/(2+f).
    [<Literal>]
    let Ln2Hi = 6.93147180369123816490e-01

    [<Literal>]
    let Ln2Lo = 1.90821492927058770002e-10

    [<Literal>]
    let Lg1 = 6.666666666666735130e-01

    [<Literal>]
    let Lg2 = 3.999999999940941908e-01

    [<Literal>]
    let Lg3 = 2.857142874366239149e-01

    [<Literal>]
    let Lg4 = 2.222219843214978396e-01

    [<Literal>]
    let Lg5 = 1.818357216161805012e-01

    [<Literal>]
    let Lg6 = 1.531383769920937332e-01

    [<Literal>]
    let Lg7 = 1.479819860511658591e-01

    // fdlibm k_sin.c and k_cos.c.
    [<Literal>]
    let S1 = -1.66666666666666324348e-01

    [<Literal>]
    let S2 = 8.33333333332248946124e-03

    [<Literal>]
    let S3 = -1.98412698298579493134e-04

    [<Literal>]
    let S4 = 2.75573137070700676789e-06

    [<Literal>]
    let S5 = -2.50507602534068634195e-08

    [<Literal>]
    let S6 = 1.58969099521155010221e-10

    [<Literal>]
    let C1 = 4.16666666666666019037e-02

    [<Literal>]
    let C2 = -1.38888888888741095749e-03

    [<Literal>]
    let C3 = 2.48015872894767294178e-05

    [<Literal>]
    let C4 = -2.75573143513906633035e-07

    [<Literal>]
    let C5 = 2.08757232129817482790e-09

    [<Literal>]
    let C6 = -1.13596475577881948265e-11

    /// z0 = r cos theta and z1 = r sin theta on 8 lanes.
    let inline pair512 (ra: Vector512<uint64>) (rb: Vector512<uint64>) =
        let inline c (x: float) = Vector512.Create x
        let inline fma (a: Vector512<float>) b d = Vector512.FusedMultiplyAdd(a, b, d)
        let ones = Vector512.Create 0x3FF0000000000000UL
        let one = c 1.0
        let half = c 0.5
        // ln u1
        let u1 = c 2.0 - (Vector512.ShiftRightLogical(ra, 12) ||| ones).AsDouble()
        let bits = u1.AsUInt64()
        let m0 = ((bits &&& Vector512.Create 0x000FFFFFFFFFFFFFUL) ||| ones).AsDouble()
        let big = Vector512.GreaterThan(m0, c Sqrt2)
        let m = Vector512.ConditionalSelect(big, m0 * half, m0)
        // k = exponent - 1023 (+1 where m was halved), as a double by the 2^52 trick (exact, and the same everywhere).
        let e = Vector512.ShiftRightLogical(bits, 52) - big.AsUInt64()

        let k =
            ((e ||| Vector512.Create 0x4330000000000000UL).AsDouble() - c 4503599627370496.0)
            - c 1023.0

        let f = m - one
        let s = f / (c 2.0 + f)
        let z = s * s
        let w = z * z
        let t1 = w * fma w (fma w (c Lg6) (c Lg4)) (c Lg2)
        let t2 = z * fma w (fma w (fma w (c Lg7) (c Lg5)) (c Lg3)) (c Lg1)
        let hfsq = half * f * f
        let ln = k * c Ln2Hi - ((hfsq - (s * (hfsq + (t2 + t1)) + k * c Ln2Lo)) - f)
        let radius = Vector512.Sqrt(c -2.0 * ln)
        // cos and sin of theta
        let octant = Vector512.ShiftRightLogical(rb, 61).AsInt64()

        let frac =
            (Vector512.ShiftRightLogical(Vector512.ShiftLeft(rb, 3), 12) ||| ones).AsDouble()
            - one

        let phi = (frac - half) * c QuarterPi
        let p2 = phi * phi

        let sinPoly =
            fma p2 (fma p2 (fma p2 (fma p2 (fma p2 (c S6) (c S5)) (c S4)) (c S3)) (c S2)) (c S1)

        let sinPhi = fma (p2 * phi) sinPoly phi

        let cosPoly =
            fma p2 (fma p2 (fma p2 (fma p2 (fma p2 (c C6) (c C5)) (c C4)) (c C3)) (c C2)) (c C1)

        let cosPhi = fma (p2 * p2) cosPoly (one - half * p2)

        let co =
            Avx512F.PermuteVar8x64(Vector512.Create(C8, S8, -S8, -C8, -C8, -S8, S8, C8), octant)

        let so =
            Avx512F.PermuteVar8x64(Vector512.Create(S8, C8, C8, S8, -S8, -C8, -C8, -S8), octant)

        struct (radius * (co * cosPhi - so * sinPhi), radius * (so * cosPhi + co * sinPhi))

    /// z0 = r cos theta and z1 = r sin theta on 4 lanes.
    let inline pair256 (ra: Vector256<uint64>) (rb: Vector256<uint64>) =
        let inline c (x: float) = Vector256.Create x
        let inline fma (a: Vector256<float>) b d = Vector256.FusedMultiplyAdd(a, b, d)
        let ones = Vector256.Create 0x3FF0000000000000UL
        let one = c 1.0
        let half = c 0.5
        // ln u1
        let u1 = c 2.0 - (Vector256.ShiftRightLogical(ra, 12) ||| ones).AsDouble()
        let bits = u1.AsUInt64()
        let m0 = ((bits &&& Vector256.Create 0x000FFFFFFFFFFFFFUL) ||| ones).AsDouble()
        let big = Vector256.GreaterThan(m0, c Sqrt2)
        let m = Vector256.ConditionalSelect(big, m0 * half, m0)
        // k = exponent - 1023 (+1 where m was halved), as a double by the 2^52 trick (exact, and the same everywhere).
        let e = Vector256.ShiftRightLogical(bits, 52) - big.AsUInt64()

        let k =
            ((e ||| Vector256.Create 0x4330000000000000UL).AsDouble() - c 4503599627370496.0)
            - c 1023.0

        let f = m - one
        let s = f / (c 2.0 + f)
        let z = s * s
        let w = z * z
        let t1 = w * fma w (fma w (c Lg6) (c Lg4)) (c Lg2)
        let t2 = z * fma w (fma w (fma w (c Lg7) (c Lg5)) (c Lg3)) (c Lg1)
        let hfsq = half * f * f
        let ln = k * c Ln2Hi - ((hfsq - (s * (hfsq + (t2 + t1)) + k * c Ln2Lo)) - f)
        let radius = Vector256.Sqrt(c -2.0 * ln)
        // cos and sin of theta
        let frac =
            (Vector256.ShiftRightLogical(Vector256.ShiftLeft(rb, 3), 12) ||| ones).AsDouble()
            - one

        let phi = (frac - half) * c QuarterPi
        let p2 = phi * phi

        let sinPoly =
            fma p2 (fma p2 (fma p2 (fma p2 (fma p2 (c S6) (c S5)) (c S4)) (c S3)) (c S2)) (c S1)

        let sinPhi = fma (p2 * phi) sinPoly phi

        let cosPoly =
            fma p2 (fma p2 (fma p2 (fma p2 (fma p2 (c C6) (c C5)) (c C4)) (c C3)) (c C2)) (c C1)

        let cosPhi = fma (p2 * p2) cosPoly (one - half * p2)
        // The same table by its symmetry (AVX2 has no variable 64-bit permute): the magnitudes swap in octants
        // 1, 2, 5, 6; cos is negative in 2-5, sin in 4-7.
        let o = Vector256.ShiftRightLogical(rb, 61)

        let swap =
            Vector256
                .Equals((o ^^^ Vector256.ShiftRightLogical(o, 1)) &&& Vector256<uint64>.One, Vector256<uint64>.One)
                .AsDouble()

        let cSign =
            Vector256.ShiftLeft(Vector256.ShiftRightLogical(o ^^^ Vector256.ShiftRightLogical(o, 1), 1), 63)

        let sSign = Vector256.ShiftLeft(Vector256.ShiftRightLogical(o, 2), 63)

        let co =
            (Vector256.ConditionalSelect(swap, c S8, c C8).AsUInt64() ||| cSign).AsDouble()

        let so =
            (Vector256.ConditionalSelect(swap, c C8, c S8).AsUInt64() ||| sSign).AsDouble()

        struct (radius * (co * cosPhi - so * sinPhi), radius * (so * cosPhi + co * sinPhi))

    /// One pair from two words by the 512-bit kernel (`vector512`, AVX-512 only) or the 256-bit one: for tests, which
    /// cannot inline the kernels across assemblies.
    let pair (vector512: bool) (ra: uint64) (rb: uint64) =
        if vector512 then
            let struct (a, b) = pair512 (Vector512.Create ra) (Vector512.Create rb)
            struct (a.GetElement 0, b.GetElement 0)
        else
            let struct (a, b) = pair256 (Vector256.Create ra) (Vector256.Create rb)
            struct (a.GetElement 0, b.GetElement 0)

/// Standard normals for long vectors, sixteen at a time (the online simulators' inputs x ~ N(0, I_d)): eight
/// xoshiro256** streams advanced together (one Vector512 register, or two Vector256) and the Box-Muller transform
/// (`BoxMuller`) on all eight lanes. A group of sixteen draws takes two words of every lane, the first for the radius
/// and the second for the angle: lane l gives draws 16g + l (r cos theta) and 16g + 8 + l (r sin theta) of group g.
/// The eight streams are cut from the parent generator by jumps of 2^128 (lanes 0..7 start 1..8 jumps ahead), so they
/// never overlap each other nor the parent, which keeps drawing from where it was.
///
/// No draw leaves the vector registers (the 256-layer ziggurat this replaced sent 1.5% of its draws through a scalar
/// slow path and needed four table gathers per eight draws), and the numbers are the same bit for bit on any hardware.
/// They depend only on the parent's state and the lengths asked for: each `Fill` uses whole groups of sixteen draws and
/// drops the surplus of its last group.
[<Sealed>]
type NormalBlock(parent: Rng) =
    let lanes =
        let saved = parent.State
        let s = Array.zeroCreate<uint64> 32

        for l in 0..7 do
            parent.Jump()
            let struct (a, b, c, d) = parent.State
            s[l] <- a
            s[8 + l] <- b
            s[16 + l] <- c
            s[24 + l] <- d

        parent.State <- saved
        s

    // State word j of the eight lanes.
    let mutable w0 = Vector512.Create<uint64>(ReadOnlySpan(lanes, 0, 8))
    let mutable w1 = Vector512.Create<uint64>(ReadOnlySpan(lanes, 8, 8))
    let mutable w2 = Vector512.Create<uint64>(ReadOnlySpan(lanes, 16, 8))
    let mutable w3 = Vector512.Create<uint64>(ReadOnlySpan(lanes, 24, 8))
    let spare: float[] = Array.zeroCreate 16

    /// One xoshiro256** step of eight lanes: the outputs rotl(s1 * 5, 7) * 9; the state is updated in place. The
    /// state update written out (s1 ^= s2 ^ s0, s0 ^= s3 ^ s1, s2 ^= s0 ^ (s1 << 17), s3 = rotl(s3 ^ s1, 45), all from
    /// the old words) takes three-way XORs and rotates, 11 instructions where the textbook sequence takes 16.
    static member inline private Step512
        (
            s0: byref<Vector512<uint64>>,
            s1: byref<Vector512<uint64>>,
            s2: byref<Vector512<uint64>>,
            s3: byref<Vector512<uint64>>
        ) =
        let m5 = Vector512.ShiftLeft(s1, 2) + s1
        let rl = Avx512F.RotateLeft(m5, 7uy)
        let r = Vector512.ShiftLeft(rl, 3) + rl
        let a, b, c, d = s0, s1, s2, s3
        // 0x96: the truth table of x ^ y ^ z.
        s0 <- Avx512F.TernaryLogic(a, d, b, 0x96uy)
        s1 <- Avx512F.TernaryLogic(b, c, a, 0x96uy)
        s2 <- Avx512F.TernaryLogic(c, a, Vector512.ShiftLeft(b, 17), 0x96uy)
        s3 <- Avx512F.RotateLeft(d ^^^ b, 45uy)
        r

    /// The same step on four lanes.
    static member inline private Step256
        (
            s0: byref<Vector256<uint64>>,
            s1: byref<Vector256<uint64>>,
            s2: byref<Vector256<uint64>>,
            s3: byref<Vector256<uint64>>
        ) =
        let m5 = Vector256.ShiftLeft(s1, 2) + s1
        let rl = Vector256.ShiftLeft(m5, 7) ||| Vector256.ShiftRightLogical(m5, 57)
        let r = Vector256.ShiftLeft(rl, 3) + rl
        let tt = Vector256.ShiftLeft(s1, 17)
        s2 <- s2 ^^^ s0
        s3 <- s3 ^^^ s1
        s1 <- s1 ^^^ s2
        s0 <- s0 ^^^ s3
        s2 <- s2 ^^^ tt
        s3 <- Vector256.ShiftLeft(s3, 45) ||| Vector256.ShiftRightLogical(s3, 19)
        r

    /// Whether the lanes run as one Vector512 (default: where AVX-512 is there); tests switch it off to check that
    /// both forms give the same numbers.
    member val internal Vector512 = Vector512.IsHardwareAccelerated with get, set

    /// Fills `target` with standard normals: ceil(length/16) groups of sixteen draws.
    member this.Fill(target: Span<float>) =
        let full = target.Length / 16 * 16
        this.Groups(target.Slice(0, full))

        if full < target.Length then
            this.Groups(Span spare)
            spare.AsSpan(0, target.Length - full).CopyTo(target.Slice full)

    /// Whole groups (target.Length a multiple of 16).
    member internal this.Groups(target: Span<float>) =
        if this.Vector512 then
            this.Groups512 target
        else
            this.Groups256 target

    member private _.Groups512(target: Span<float>) =
        let mutable s0 = w0
        let mutable s1 = w1
        let mutable s2 = w2
        let mutable s3 = w3
        let mutable j = 0

        while j < target.Length do
            let ra = NormalBlock.Step512(&s0, &s1, &s2, &s3)
            let rb = NormalBlock.Step512(&s0, &s1, &s2, &s3)
            let struct (z0, z1) = BoxMuller.pair512 ra rb
            z0.CopyTo(target.Slice(j, 8))
            z1.CopyTo(target.Slice(j + 8, 8))
            j <- j + 16

        w0 <- s0
        w1 <- s1
        w2 <- s2
        w3 <- s3

    /// Lanes 0-3 and 4-7 in two Vector256 (AVX2 hardware, or software elsewhere).
    member private _.Groups256(target: Span<float>) =
        let mutable s0 = w0.GetLower()
        let mutable s1 = w1.GetLower()
        let mutable s2 = w2.GetLower()
        let mutable s3 = w3.GetLower()
        let mutable t0 = w0.GetUpper()
        let mutable t1 = w1.GetUpper()
        let mutable t2 = w2.GetUpper()
        let mutable t3 = w3.GetUpper()
        let mutable j = 0

        while j < target.Length do
            let ra = NormalBlock.Step256(&s0, &s1, &s2, &s3)
            let rb = NormalBlock.Step256(&s0, &s1, &s2, &s3)
            let ra' = NormalBlock.Step256(&t0, &t1, &t2, &t3)
            let rb' = NormalBlock.Step256(&t0, &t1, &t2, &t3)
            let struct (z0, z1) = BoxMuller.pair256 ra rb
            let struct (z0', z1') = BoxMuller.pair256 ra' rb'
            z0.CopyTo(target.Slice(j, 4))
            z0'.CopyTo(target.Slice(j + 4, 4))
            z1.CopyTo(target.Slice(j + 8, 4))
            z1'.CopyTo(target.Slice(j + 12, 4))
            j <- j + 16

        w0 <- Vector512.Create(s0, t0)
        w1 <- Vector512.Create(s1, t1)
        w2 <- Vector512.Create(s2, t2)
        w3 <- Vector512.Create(s3, t3)
