namespace StatPhysFs

#nowarn "9" // the ziggurat tables are pinned for the AVX2 gathers

open System
open System.Runtime.Intrinsics
open System.Runtime.Intrinsics.X86
open Microsoft.FSharp.NativeInterop

/// Standard normals for long vectors, eight at a time (the online simulators' inputs x ~ N(0, I_d)): eight
/// xoshiro256** streams advanced together (one Vector512 register, or two Vector256), and the ziggurat of `Rng.NextNormal` whose fast
/// path (97.2% of draws: a table look-up, one comparison, one product) runs on all eight lanes at once. The eight
/// streams are cut from the parent generator by jumps of 2^128 (lanes 0..7 start 1..8 jumps ahead), so they never
/// overlap each other nor the parent, which keeps drawing from where it was. A draw that misses the fast path is
/// finished (tail, or the wedge test with one exp, and on rejection a fresh `NextNormal`) with the parent's numbers,
/// in the order of the draws.
///
/// Same law as `Rng.FillNormal` (the same ziggurat; the abscissa has 52 random bits and a random sign instead of 53
/// bits on [-1, 1)), a different stream. The fast path is exact arithmetic (bit operations, a comparison, a product),
/// so the numbers do not depend on the SIMD hardware; they depend only on the parent's state and the lengths asked
/// for: each `Fill` uses whole groups of eight draws and drops the surplus of its last group.
[<Sealed>]
type NormalBlock(parent: Rng) =
    static let mask127 = Vector256.Create 127UL
    static let signBit = Vector256.Create 0x8000000000000000UL
    static let oneBits = Vector256.Create 0x3FF0000000000000UL
    static let one = Vector256.Create 1.0
    // Pinned copies of the tables for the gathers (x has 129 entries, ratio 128: indices are 0..127).
    static let xTab = GC.AllocateArray<float>(128, true)
    static let ratioTab = GC.AllocateArray<float>(128, true)
    // The density at the layer edges, exp(-x_i^2/2), i = 0..128: the wedge test then needs one exp, not two.
    static let density = Array.init 129 (fun i -> exp (-0.5 * Ziggurat.x[i] * Ziggurat.x[i]))

    static do
        Array.blit Ziggurat.x 0 xTab 0 128
        Array.blit Ziggurat.ratio 0 ratioTab 0 128

    /// Groups with a fast-path miss are queued (position, accept bits, the lanes' bits and abscissae) and finished
    /// after the vector loop, in order, so the loop itself never calls out; the slow path draws only from the parent,
    /// so the order of the queue is all that fixes the numbers.
    static let queueGroups = 256

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

    let v4 (o: int) =
        Vector256.Create(lanes[o], lanes[o + 1], lanes[o + 2], lanes[o + 3])

    // State word j of lanes 0-3 (a) and 4-7 (b).
    let mutable a0 = v4 0
    let mutable a1 = v4 8
    let mutable a2 = v4 16
    let mutable a3 = v4 24
    let mutable b0 = v4 4
    let mutable b1 = v4 12
    let mutable b2 = v4 20
    let mutable b3 = v4 28
    let spare: float[] = Array.zeroCreate 8
    let missAt: int[] = Array.zeroCreate queueGroups
    let missOk: uint32[] = Array.zeroCreate queueGroups
    let missBits: uint64[] = Array.zeroCreate (8 * queueGroups)
    let missU: float[] = Array.zeroCreate (8 * queueGroups)
    let mutable misses = 0

    static let gather (table: float[]) (p: nativeptr<float>) (idx: Vector256<uint64>) =
        if Avx2.IsSupported then
            Avx2.GatherVector256(p, idx.AsInt64(), 8uy)
        else
            Vector256.Create(
                table[int (idx.GetElement 0)],
                table[int (idx.GetElement 1)],
                table[int (idx.GetElement 2)],
                table[int (idx.GetElement 3)]
            )

    /// The ziggurat after a fast-path miss in layer i at abscissa u (`bits`: the draw; u = +-|u| by bit 7), on the
    /// parent's numbers: the base layer's tail beyond r, or the wedge test (a uniform height within the layer below
    /// the density), and on rejection a fresh `NextNormal` (a rejection loop's output is independent of its
    /// rejected tries, so this is the same law as looping).
    member private _.Slow(bits: uint64, m: float) =
        let i = int (bits &&& 127UL)
        let u = if bits &&& 0x80UL <> 0UL then -m else m

        if i = 0 then
            let mutable t = 0.0
            let mutable y = 0.0
            let mutable accepted = false

            while not accepted do
                t <- log (parent.NextOpenDouble()) / Ziggurat.r
                y <- log (parent.NextOpenDouble())
                accepted <- -2.0 * y >= t * t

            if u < 0.0 then t - Ziggurat.r else Ziggurat.r - t
        else
            let xx = u * Ziggurat.x[i]

            if density[i + 1] + parent.NextDouble() * (density[i] - density[i + 1]) < exp (-0.5 * xx * xx) then
                xx
            else
                parent.NextNormal()

    /// Whether the lanes run as one Vector512 (default: where AVX-512 is there); tests switch it off to check that
    /// both forms give the same numbers.
    member val internal Vector512 = Vector512.IsHardwareAccelerated with get, set

    /// Finishes the queued misses in order (positions relative to `target`).
    member private this.Drain(target: Span<float>) =
        for c in 0 .. misses - 1 do
            // The missed lanes in increasing order, one iteration each (a test per lane mispredicts too often).
            let mutable missed = ~~~missOk[c] &&& 255u

            while missed <> 0u do
                let l = System.Numerics.BitOperations.TrailingZeroCount missed
                target[missAt[c] + l] <- this.Slow(missBits[8 * c + l], missU[8 * c + l])
                missed <- missed &&& (missed - 1u)

        misses <- 0

    /// The last, partial group: drawn into `spare`, finished at once, its surplus dropped.
    member private this.Tail(target: Span<float>, j: int) =
        if j < target.Length then
            this.Groups(Span spare)
            spare.AsSpan(0, target.Length - j).CopyTo(target.Slice j)

    /// Fills `target` with standard normals: ceil(length/8) groups of eight draws, lane l of group g at 8g + l.
    member this.Fill(target: Span<float>) =
        let full = target.Length / 8 * 8
        this.Groups(target.Slice(0, full))
        this.Tail(target, full)

    /// Whole groups (target.Length a multiple of 8), in chunks of at most `queueGroups` groups: the vector loop of a
    /// chunk has no calls (its state stays in registers), the misses it queued are finished after it.
    member internal this.Groups(target: Span<float>) =
        let mutable o = 0

        while o < target.Length do
            let chunk = target.Slice(o, min (8 * queueGroups) (target.Length - o))

            if this.Vector512 then
                this.Groups512 chunk
            else
                this.Groups256 chunk

            this.Drain chunk
            o <- o + chunk.Length

    /// The eight lanes in one Vector512 (AVX-512 hardware): half the instructions of `Groups256`, the same numbers.
    member internal this.Groups512(target: Span<float>) =
        let xs = xTab
        let rs = ratioTab
        use px = fixed xs
        use pr = fixed rs
        let n = target.Length
        let mutable s0 = Vector512.Create(a0, b0)
        let mutable s1 = Vector512.Create(a1, b1)
        let mutable s2 = Vector512.Create(a2, b2)
        let mutable s3 = Vector512.Create(a3, b3)
        let mask = Vector512.Create 127UL
        let sign = Vector512.Create 0x8000000000000000UL
        let ones = Vector512.Create 0x3FF0000000000000UL
        let one = Vector512.Create 1.0
        let mutable j = 0

        while j < n do
            // xoshiro256** on all lanes: result = rotl(s1 * 5, 7) * 9, then the state update.
            let m5 = Vector512.ShiftLeft(s1, 2) + s1
            let rl = Vector512.ShiftLeft(m5, 7) ||| Vector512.ShiftRightLogical(m5, 57)
            let r = Vector512.ShiftLeft(rl, 3) + rl
            let tt = Vector512.ShiftLeft(s1, 17)
            s2 <- s2 ^^^ s0
            s3 <- s3 ^^^ s1
            s1 <- s1 ^^^ s2
            s0 <- s0 ^^^ s3
            s2 <- s2 ^^^ tt
            s3 <- Vector512.ShiftLeft(s3, 45) ||| Vector512.ShiftRightLogical(s3, 19)
            // Layer: bits 0-6; sign: bit 7; abscissa |u| in [0, 1): bits 12-63 as a mantissa.
            let i = r &&& mask
            let m = (Vector512.ShiftRightLogical(r, 12) ||| ones).AsDouble() - one
            let lo = i.GetLower()
            let hi = i.GetUpper()
            let ratio = (gather rs pr lo).ToVector512Unsafe().WithUpper(gather rs pr hi)
            let xi = (gather xs px lo).ToVector512Unsafe().WithUpper(gather xs px hi)
            let ok = uint32 (Vector512.ExtractMostSignificantBits(Vector512.LessThan(m, ratio)))
            let z = ((m * xi).AsUInt64() ^^^ (Vector512.ShiftLeft(r, 56) &&& sign)).AsDouble()
            z.CopyTo(target.Slice(j, 8))

            if ok <> 255u then
                missAt[misses] <- j
                missOk[misses] <- ok
                r.CopyTo(Span(missBits, 8 * misses, 8))
                m.CopyTo(Span(missU, 8 * misses, 8))
                misses <- misses + 1

            j <- j + 8

        a0 <- s0.GetLower()
        a1 <- s1.GetLower()
        a2 <- s2.GetLower()
        a3 <- s3.GetLower()
        b0 <- s0.GetUpper()
        b1 <- s1.GetUpper()
        b2 <- s2.GetUpper()
        b3 <- s3.GetUpper()

    /// Lanes 0-3 and 4-7 in two Vector256 (AVX2 hardware, or software elsewhere).
    member internal this.Groups256(target: Span<float>) =
        let xs = xTab
        let rs = ratioTab
        use px = fixed xs
        use pr = fixed rs
        let mask127 = mask127
        let signBit = signBit
        let oneBits = oneBits
        let one = one
        let n = target.Length
        let mutable s0 = a0
        let mutable s1 = a1
        let mutable s2 = a2
        let mutable s3 = a3
        let mutable t0 = b0
        let mutable t1 = b1
        let mutable t2 = b2
        let mutable t3 = b3
        let mutable j = 0

        while j < n do
            let m5 = Vector256.ShiftLeft(s1, 2) + s1
            let rl = Vector256.ShiftLeft(m5, 7) ||| Vector256.ShiftRightLogical(m5, 57)
            let ra = Vector256.ShiftLeft(rl, 3) + rl
            let tt = Vector256.ShiftLeft(s1, 17)
            s2 <- s2 ^^^ s0
            s3 <- s3 ^^^ s1
            s1 <- s1 ^^^ s2
            s0 <- s0 ^^^ s3
            s2 <- s2 ^^^ tt
            s3 <- Vector256.ShiftLeft(s3, 45) ||| Vector256.ShiftRightLogical(s3, 19)
            let m5 = Vector256.ShiftLeft(t1, 2) + t1
            let rl = Vector256.ShiftLeft(m5, 7) ||| Vector256.ShiftRightLogical(m5, 57)
            let rb = Vector256.ShiftLeft(rl, 3) + rl
            let tt = Vector256.ShiftLeft(t1, 17)
            t2 <- t2 ^^^ t0
            t3 <- t3 ^^^ t1
            t1 <- t1 ^^^ t2
            t0 <- t0 ^^^ t3
            t2 <- t2 ^^^ tt
            t3 <- Vector256.ShiftLeft(t3, 45) ||| Vector256.ShiftRightLogical(t3, 19)
            let ia = ra &&& mask127
            let ma = (Vector256.ShiftRightLogical(ra, 12) ||| oneBits).AsDouble() - one
            let okA = Vector256.ExtractMostSignificantBits(Vector256.LessThan(ma, gather rs pr ia))
            let za = ((ma * gather xs px ia).AsUInt64() ^^^ (Vector256.ShiftLeft(ra, 56) &&& signBit)).AsDouble()
            let ib = rb &&& mask127
            let mb = (Vector256.ShiftRightLogical(rb, 12) ||| oneBits).AsDouble() - one
            let okB = Vector256.ExtractMostSignificantBits(Vector256.LessThan(mb, gather rs pr ib))
            let zb = ((mb * gather xs px ib).AsUInt64() ^^^ (Vector256.ShiftLeft(rb, 56) &&& signBit)).AsDouble()
            za.CopyTo(target.Slice(j, 4))
            zb.CopyTo(target.Slice(j + 4, 4))
            let ok = okA ||| (okB <<< 4)

            if ok <> 255u then
                missAt[misses] <- j
                missOk[misses] <- ok
                ra.CopyTo(Span(missBits, 8 * misses, 4))
                rb.CopyTo(Span(missBits, 8 * misses + 4, 4))
                ma.CopyTo(Span(missU, 8 * misses, 4))
                mb.CopyTo(Span(missU, 8 * misses + 4, 4))
                misses <- misses + 1

            j <- j + 8

        a0 <- s0
        a1 <- s1
        a2 <- s2
        a3 <- s3
        b0 <- t0
        b1 <- t1
        b2 <- t2
        b3 <- t3
