namespace StatPhysFs

open System

/// Tables of the 128-layer ziggurat for the standard normal (Marsaglia & Tsang 2000, in Doornik's 2005 ZIGNOR
/// form, which draws the layer and the abscissa from separate random bits).
module internal Ziggurat =
    let r = 3.442619855899
    let v = 9.91256303526217e-3

    /// The layer edges of an n-layer ziggurat with base edge r and layer area v: x[0] = v/f(r) (the base layer's
    /// pseudo-width), x[1] = r, x[i] = f^-1(v/x[i-1] + f(x[i-1])), x[n] = 0, with f(x) = exp(-x^2/2).
    let edges (n: int) (r: float) (v: float) =
        let x = Array.zeroCreate (n + 1)
        let mutable f = exp (-0.5 * r * r)
        x[0] <- v / f
        x[1] <- r

        for i in 2 .. n - 1 do
            x[i] <- sqrt (-2.0 * log (v / x[i - 1] + f))
            f <- exp (-0.5 * x[i] * x[i])

        x

    /// x[i]: layer edges, x[128] = 0; ratio[i] = x[i+1]/x[i].
    let x, ratio =
        let x = edges 128 r v
        x, Array.init 128 (fun i -> x[i + 1] / x[i])

/// xoshiro256** with SplitMix64 seeding. We own the generator (rather than System.Random) so that a seed gives the
/// same numbers on every .NET version and every thread count: each independent stream is derived from
/// (seed, stream index), never from the thread that happens to run it.
[<Sealed>]
type Rng(seed: uint64, stream: uint64) =
    let mutable s0 = 0UL
    let mutable s1 = 0UL
    let mutable s2 = 0UL
    let mutable s3 = 0UL

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

    /// Uniform on the open interval (0, 1), for logarithms.
    member this.NextOpenDouble() =
        (float (this.NextUInt64() >>> 11) + 0.5) * (1.0 / 9007199254740992.0)

    /// Standard normal by the ziggurat: one 64-bit draw gives the layer (low 7 bits) and a signed abscissa (top 53
    /// bits); 97.2% of draws return from the first comparison (98.8% of tries are accepted in all), which is why it
    /// beats the polar method ~3x.
    member this.NextNormal() =
        let mutable result = nan
        let mutable go = true

        while go do
            let bits = this.NextUInt64()
            let i = int (bits &&& 127UL)
            let u = 2.0 * (float (bits >>> 11) * (1.0 / 9007199254740992.0)) - 1.0

            if abs u < Ziggurat.ratio[i] then
                result <- u * Ziggurat.x[i]
                go <- false
            elif i = 0 then
                // The base layer's tail beyond r (Marsaglia's exponential rejection).
                let mutable t = 0.0
                let mutable y = 0.0
                let mutable accepted = false

                while not accepted do
                    t <- log (this.NextOpenDouble()) / Ziggurat.r
                    y <- log (this.NextOpenDouble())
                    accepted <- -2.0 * y >= t * t

                result <- if u < 0.0 then t - Ziggurat.r else Ziggurat.r - t
                go <- false
            else
                let xx = u * Ziggurat.x[i]
                let f0 = exp (-0.5 * (Ziggurat.x[i] * Ziggurat.x[i] - xx * xx))
                let f1 = exp (-0.5 * (Ziggurat.x[i + 1] * Ziggurat.x[i + 1] - xx * xx))

                if f1 + this.NextDouble() * (f0 - f1) < 1.0 then
                    result <- xx
                    go <- false

        result

    member this.FillNormal(target: Span<float>) =
        for i in 0 .. target.Length - 1 do
            target[i] <- this.NextNormal()

    /// The generator's 256-bit state (s0, s1, s2, s3).
    member internal _.State
        with get () = struct (s0, s1, s2, s3)
        and set (struct (a, b, c, d): struct (uint64 * uint64 * uint64 * uint64)) =
            s0 <- a
            s1 <- b
            s2 <- c
            s3 <- d

    /// Advances the state by 2^128 draws (the reference jump polynomial of xoshiro256**), so that streams cut from
    /// one generator by successive jumps never overlap.
    member internal this.Jump() =
        let jump =
            [|
                0x180ec6d33cfd0abaUL
                0xd5a61266f0c9392cUL
                0xa9582618e03fc9aaUL
                0x39abdc4529b1661cUL
            |]

        let mutable a = 0UL
        let mutable b = 0UL
        let mutable c = 0UL
        let mutable d = 0UL

        for j in jump do
            for bit in 0..63 do
                if j &&& (1UL <<< bit) <> 0UL then
                    a <- a ^^^ s0
                    b <- b ^^^ s1
                    c <- c ^^^ s2
                    d <- d ^^^ s3

                this.NextUInt64() |> ignore

        s0 <- a
        s1 <- b
        s2 <- c
        s3 <- d
