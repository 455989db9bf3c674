namespace StatPhysFs

open System

/// xoshiro256** with SplitMix64 seeding. We own the generator (rather than System.Random) so that a seed gives the
/// same numbers on every .NET version and every thread count: each independent stream is derived from
/// (seed, stream index), never from the thread that happens to run it.
[<Sealed>]
type Rng(seed: uint64, stream: uint64) =
    let mutable s0 = 0UL
    let mutable s1 = 0UL
    let mutable s2 = 0UL
    let mutable s3 = 0UL
    let mutable spare = 0.0
    let mutable hasSpare = false

    do
        let mutable z = seed ^^^ (stream * 0xD1B54A32D192ED03UL) ^^^ 0x9E3779B97F4A7C15UL

        let next () =
            z <- z + 0x9E3779B97F4A7C15UL
            let mutable x = z
            x <- (x ^^^ (x >>> 30)) * 0xBF58476D1CE4E5B9UL
            x <- (x ^^^ (x >>> 27)) * 0x94D049BB133111EBUL
            x ^^^ (x >>> 31)

        s0 <- next ()
        s1 <- next ()
        s2 <- next ()
        s3 <- next ()

    new(seed: int) = Rng(uint64 (int64 seed), 0UL)
    new(seed: int, stream: int) = Rng(uint64 (int64 seed), uint64 (int64 stream) + 1UL)

    member _.NextUInt64() =
        let result = System.Numerics.BitOperations.RotateLeft(s1 * 5UL, 7) * 9UL
        let t = s1 <<< 17
        s2 <- s2 ^^^ s0
        s3 <- s3 ^^^ s1
        s1 <- s1 ^^^ s2
        s0 <- s0 ^^^ s3
        s2 <- s2 ^^^ t
        s3 <- System.Numerics.BitOperations.RotateLeft(s3, 45)
        result

    /// Uniform on [0, 1) with 53 random bits.
    member this.NextDouble() =
        float (this.NextUInt64() >>> 11) * (1.0 / 9007199254740992.0)

    /// Standard normal by Marsaglia's polar method.
    member this.NextNormal() =
        if hasSpare then
            hasSpare <- false
            spare
        else
            let mutable u = 0.0
            let mutable v = 0.0
            let mutable s = 2.0

            while s >= 1.0 || s = 0.0 do
                u <- 2.0 * this.NextDouble() - 1.0
                v <- 2.0 * this.NextDouble() - 1.0
                s <- u * u + v * v

            let f = Math.Sqrt(-2.0 * Math.Log s / s)
            spare <- v * f
            hasSpare <- true
            u * f

    member this.FillNormal(target: Span<float>) =
        for i in 0 .. target.Length - 1 do
            target[i] <- this.NextNormal()
