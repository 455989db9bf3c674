namespace StatPhysFs

#nowarn "9" // the ziggurat tables are pinned for the AVX2 gathers

open System
open System.Runtime.Intrinsics
open System.Runtime.Intrinsics.X86
open Microsoft.FSharp.NativeInterop

/// Tables of the 256-layer ziggurat for the standard normal, in the ZIGNOR form (layer and abscissa from separate
/// bits). With separate bits the rectangle test accepts sum_i x[i+1]/x[i] / 256 = 98.51% of draws (128 layers:
/// 97.24%), so twice as many layers halve the draws that leave the vector loop.
module internal Ziggurat256 =
    /// r solves the closing condition x[255] (1 - exp(-x[255]^2/2)) = v with v = r f(r) + int_r^inf f, the area of
    /// every layer (f(x) = exp(-x^2/2)); both to 16 digits (scipy brentq on the recursion below).
    let r = 3.6541528853610092
    let v = 0.004928673233974648

    /// x[i]: layer edges (x[0] = v/f(r), the base layer's pseudo-width; x[256] = 0).
    let x = Ziggurat.edges 256 r v

/// Standard normals for long vectors, eight at a time (the online simulators' inputs x ~ N(0, I_d)): eight
/// xoshiro256** streams advanced together (one Vector512 register, or two Vector256), and a 256-layer ziggurat whose
/// fast path (98.5% of draws: a table look-up, one comparison, one product) runs on all eight lanes at once. The
/// eight streams are cut from the parent generator by jumps of 2^128 (lanes 0..7 start 1..8 jumps ahead), so they
/// never overlap each other nor the parent, which keeps drawing from where it was.
///
/// A draw that misses the fast path (1.5%) is queued; after each chunk of 2048 draws the queue is finished eight at a
/// time: the base layer's misses go to the tail (beyond r), the others to the wedge test, whose uniform heights come
/// from a ninth stream (9 jumps ahead) and whose density is `Vector256.Exp`; a wedge rejection (0.67% of draws) is
/// replaced by the parent's `NextNormal` (a rejection loop's output is independent of its rejected tries, so this is
/// the same law as looping). Each draw is a sign bit, a layer of 8 bits and a 52-bit abscissa.
///
/// The fast path is exact arithmetic (bit operations, a comparison, a product), so it does not depend on the SIMD
/// hardware. The wedge test's exp may differ in its last bit between instruction sets, which can change a draw only
/// when the test lands within an ulp of its boundary (about 1e-16 per draw). The numbers depend only on the parent's
/// state and the lengths asked for: each `Fill` uses whole groups of eight draws and drops the surplus of its last
/// group.
[<Sealed>]
type NormalBlock(parent: Rng) =
    static let mask255 = Vector256.Create 255UL
    static let signBit = Vector256.Create 0x8000000000000000UL
    static let oneBits = Vector256.Create 0x3FF0000000000000UL
    static let one = Vector256.Create 1.0
    // Pinned copies of the tables for the gathers; density[i] = exp(-x[i]^2/2), i = 0..256.
    static let xTab = GC.AllocateArray<float>(256, true)
    static let ratioTab = GC.AllocateArray<float>(256, true)
    static let densityTab = GC.AllocateArray<float>(257, true)

    /// The address of a pinned array (pinned object heap: it never moves, so no `fixed` is needed; a `fixed` made
    /// the JIT store the lanes' state to the stack at every update).
    static let address (a: 'T[]) : nativeptr<'T> =
        NativePtr.ofVoidPtr (
            System.Runtime.CompilerServices.Unsafe.AsPointer(
                &System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference a
            )
        )

    static let px0 = address xTab
    static let pr0 = address ratioTab
    static let pd0 = address densityTab

    static do
        let x = Ziggurat256.x

        for i in 0..255 do
            xTab[i] <- x[i]
            ratioTab[i] <- x[i + 1] / x[i]

        for i in 0..256 do
            densityTab[i] <- exp (-0.5 * x[i] * x[i])

    /// Draws per chunk: the vector loop of a chunk has no calls (its state stays in registers); the misses it queued
    /// (1.5% of draws on average) are finished after it.
    static let chunkDraws = 2048

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

    // The wedge tests' heights, one per miss in order (so that they do not depend on how the misses are batched):
    // a ninth stream, 9 jumps ahead of the parent.
    let heights =
        let saved = parent.State

        for _ in 1..9 do
            parent.Jump()

        let h = Rng(0UL, 0UL)
        h.State <- parent.State
        parent.State <- saved
        h

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
    // The misses of the current chunk, in order: position, the draw's bits, its abscissa |u|. Eight slots of slack,
    // so that a vector of eight can always be stored or loaded whole.
    let qPos: int64[] = GC.AllocateArray<int64>(chunkDraws + 8, true)
    let qBits: uint64[] = GC.AllocateArray<uint64>(chunkDraws + 8, true)
    let qU: float[] = GC.AllocateArray<float>(chunkDraws + 8, true)
    let groupBits: uint64[] = Array.zeroCreate 8
    let groupU: float[] = Array.zeroCreate 8
    let groupX: float[] = Array.zeroCreate 8
    let mutable queued = 0

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

    /// One xoshiro256** step of lanes 0-3 (s) or 4-7: the outputs; the state is updated in place.
    static member inline private Step
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

    /// The base layer's tail beyond r (Marsaglia's exponential rejection) on the parent's numbers, with the sign of
    /// the draw.
    member private _.Tail(negative: bool) =
        let r = Ziggurat256.r
        let mutable t = 0.0
        let mutable y = 0.0
        let mutable accepted = false

        while not accepted do
            t <- log (parent.NextOpenDouble()) / r
            y <- log (parent.NextOpenDouble())
            accepted <- -2.0 * y >= t * t

        if negative then t - r else r - t

    /// Finishes the queued misses of a chunk (positions relative to `target`), eight at a time: the wedge test
    /// f(x[i+1]) + h (f(x[i]) - f(x[i+1])) < f(u x[i]) with heights h from `heights`, then, in queue order, the base
    /// layer's tail or a fresh parent draw where the test did not accept. Each miss takes one height and each
    /// rejection the parent's next numbers, in the order of the draws, so that no batching shows in the numbers.
    member private this.Drain(target: Span<float>) =
        let xs = xTab
        let ds = densityTab
        let px = px0
        let pd = pd0
        let mutable q = 0

        while q < queued do
            let n = min 8 (queued - q)

            for l in 0 .. n - 1 do
                groupU[l] <- heights.NextDouble()

            let mutable accept = 0u

            for half in 0..1 do
                let o = q + 4 * half
                let bits = Vector256.Create(qBits[o], qBits[o + 1], qBits[o + 2], qBits[o + 3])
                let u = Vector256.Create(qU[o], qU[o + 1], qU[o + 2], qU[o + 3])

                let height =
                    Vector256.Create(groupU[4 * half], groupU[4 * half + 1], groupU[4 * half + 2], groupU[4 * half + 3])

                let i = bits &&& mask255

                let xx =
                    ((u * gather xs px i).AsUInt64() ^^^ (Vector256.ShiftLeft(bits, 55) &&& signBit)).AsDouble()

                let hi = gather ds pd i
                let lo = gather ds pd (i + Vector256<uint64>.One)
                let f = Vector256.Exp(Vector256.Create -0.5 * xx * xx)

                let ok =
                    Vector256.LessThan(lo + height * (hi - lo), f)
                    &&& Vector256.GreaterThan(i, Vector256<uint64>.Zero).AsDouble()

                accept <- accept ||| (Vector256.ExtractMostSignificantBits ok <<< (4 * half))
                xx.CopyTo(Span(groupX, 4 * half, 4))

            for l in 0 .. n - 1 do
                let bits = qBits[q + l]

                target[int qPos[q + l]] <-
                    if accept &&& (1u <<< l) <> 0u then
                        groupX[l]
                    elif bits &&& 255UL = 0UL then
                        this.Tail(bits &&& 0x100UL <> 0UL)
                    else
                        parent.NextNormal()

            q <- q + 8

        queued <- 0

    /// The last, partial group: drawn into `spare`, finished at once, its surplus dropped.
    member private this.Last(target: Span<float>, j: int) =
        if j < target.Length then
            this.Groups(Span spare)
            spare.AsSpan(0, target.Length - j).CopyTo(target.Slice j)

    /// Fills `target` with standard normals: ceil(length/8) groups of eight draws, lane l of group g at 8g + l.
    member this.Fill(target: Span<float>) =
        let full = target.Length / 8 * 8
        this.Groups(target.Slice(0, full))
        this.Last(target, full)

    /// Whole groups (target.Length a multiple of 8), in chunks of at most `chunkDraws` draws, each finished by
    /// `Finish` before the next.
    member internal this.Groups(target: Span<float>) =
        let mutable o = 0

        while o < target.Length do
            let chunk = target.Slice(o, min chunkDraws (target.Length - o))

            if this.Vector512 then
                this.Groups512 chunk
            else
                this.Groups256 chunk

            if queued > 0 then
                this.Drain chunk

            o <- o + chunk.Length

    /// The eight lanes in one Vector512 (AVX-512 hardware): half the instructions of `Groups256`, the same numbers.
    member internal this.Groups512(target: Span<float>) =
        let xs = xTab
        let rs = ratioTab
        let px = px0
        let pr = pr0
        let n = target.Length
        let mutable s0 = Vector512.Create(a0, b0)
        let mutable s1 = Vector512.Create(a1, b1)
        let mutable s2 = Vector512.Create(a2, b2)
        let mutable s3 = Vector512.Create(a3, b3)
        let mask = Vector512.Create 255UL
        let sign = Vector512.Create 0x8000000000000000UL
        let ones = Vector512.Create 0x3FF0000000000000UL
        let one = Vector512.Create 1.0
        let laneIndex = Vector512.Create(0L, 1L, 2L, 3L, 4L, 5L, 6L, 7L)
        let pb = address qBits
        let pu = address qU
        let pq = address qPos
        let mutable nq = queued
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
            // Layer: bits 0-7; sign: bit 8; abscissa |u| in [0, 1): bits 12-63 as a mantissa.
            let i = r &&& mask
            let m = (Vector512.ShiftRightLogical(r, 12) ||| ones).AsDouble() - one
            let lo = i.GetLower()
            let hi = i.GetUpper()
            let ratio = (gather rs pr lo).ToVector512Unsafe().WithUpper(gather rs pr hi)
            let xi = (gather xs px lo).ToVector512Unsafe().WithUpper(gather xs px hi)
            let ok = uint32 (Vector512.ExtractMostSignificantBits(Vector512.LessThan(m, ratio)))
            let z = ((m * xi).AsUInt64() ^^^ (Vector512.ShiftLeft(r, 55) &&& sign)).AsDouble()
            z.CopyTo(target.Slice(j, 8))

            if ok <> 255u then
                // Compressed into the queue in lane order (in registers, then stored whole: the slack takes the
                // surplus). No call and no `fixed` in this loop: either made the JIT keep the lanes' state on the
                // stack.
                let miss = Vector512.OnesComplement(Vector512.LessThan(m, ratio))
                let missBits = miss.AsUInt64()
                Avx512F.Compress(Vector512<uint64>.Zero, missBits, r).Store(NativePtr.add pb nq)
                Avx512F.Compress(Vector512<float>.Zero, miss, m).Store(NativePtr.add pu nq)

                Avx512F
                    .Compress(Vector512<int64>.Zero, missBits.AsInt64(), laneIndex + Vector512.Create(int64 j))
                    .Store(NativePtr.add pq nq)

                nq <- nq + System.Numerics.BitOperations.PopCount(~~~ok &&& 255u)

            j <- j + 8

        queued <- nq
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
        let px = px0
        let pr = pr0
        let mask255 = mask255
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
        let mutable nq = queued
        let mutable j = 0

        while j < n do
            let ra = NormalBlock.Step(&s0, &s1, &s2, &s3)
            let rb = NormalBlock.Step(&t0, &t1, &t2, &t3)
            let ia = ra &&& mask255
            let ma = (Vector256.ShiftRightLogical(ra, 12) ||| oneBits).AsDouble() - one

            let okA =
                Vector256.ExtractMostSignificantBits(Vector256.LessThan(ma, gather rs pr ia))

            let za =
                ((ma * gather xs px ia).AsUInt64() ^^^ (Vector256.ShiftLeft(ra, 55) &&& signBit)).AsDouble()

            let ib = rb &&& mask255
            let mb = (Vector256.ShiftRightLogical(rb, 12) ||| oneBits).AsDouble() - one

            let okB =
                Vector256.ExtractMostSignificantBits(Vector256.LessThan(mb, gather rs pr ib))

            let zb =
                ((mb * gather xs px ib).AsUInt64() ^^^ (Vector256.ShiftLeft(rb, 55) &&& signBit)).AsDouble()

            za.CopyTo(target.Slice(j, 4))
            zb.CopyTo(target.Slice(j + 4, 4))
            let ok = okA ||| (okB <<< 4)

            if ok <> 255u then
                ra.CopyTo(Span(groupBits, 0, 4))
                rb.CopyTo(Span(groupBits, 4, 4))
                ma.CopyTo(Span(groupU, 0, 4))
                mb.CopyTo(Span(groupU, 4, 4))
                let mutable missed = ~~~ok &&& 255u

                while missed <> 0u do
                    let l = System.Numerics.BitOperations.TrailingZeroCount missed
                    qPos[nq] <- int64 (j + l)
                    qBits[nq] <- groupBits[l]
                    qU[nq] <- groupU[l]
                    nq <- nq + 1
                    missed <- missed &&& (missed - 1u)

            j <- j + 8

        queued <- nq
        a0 <- s0
        a1 <- s1
        a2 <- s2
        a3 <- s3
        b0 <- t0
        b1 <- t1
        b2 <- t2
        b3 <- t3
