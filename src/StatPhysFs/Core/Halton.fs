namespace StatPhysFs

/// The Halton sequence: point i in dimension d is the radical inverses of i in the first d primes. Low discrepancy,
/// deterministic (common random numbers across calls); randomise it with shifts where an error bar is needed.
[<RequireQualifiedAccess>]
module Halton =
    /// The bases: the first 30 primes (the largest supported dimension is their count).
    let primes =
        [|
            2
            3
            5
            7
            11
            13
            17
            19
            23
            29
            31
            37
            41
            43
            47
            53
            59
            61
            67
            71
            73
            79
            83
            89
            97
            101
            103
            107
            109
            113
        |]

    /// The radical inverse of i >= 0 in base b: the base-b digits of i mirrored about the radix point, in [0, 1).
    [<CompiledName("RadicalInverse")>]
    let radicalInverse (b: int) (i: int) =
        let mutable f = 1.0
        let mutable r = 0.0
        let mutable k = i

        while k > 0 do
            f <- f / float b
            r <- r + f * float (k % b)
            k <- k / b

        r

    /// Point i (i >= 1; point 0 is the origin) of the Halton sequence in dimension d.
    [<CompiledName("Point")>]
    let point (d: int) (i: int) =
        Check.intInRange "dimension" 1 primes.Length d
        Array.init d (fun j -> radicalInverse primes[j] i)
