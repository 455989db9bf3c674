namespace StatPhysFs

/// How mini-batch SGD draws its samples.
type BatchSampling =
    /// B independent uniform indices per step.
    | WithReplacement
    /// Epochs of a fresh random permutation cut into consecutive batches.
    | WithoutReplacement

/// Sample indices in [0, n) drawn from `rng` one at a time, as SGD consumes them (a batch is B consecutive draws).
/// Without replacement, each epoch is a fresh Fisher-Yates permutation, drawn when the previous one is used up.
type BatchSampler(sampling: BatchSampling, n: int, rng: Rng) =
    do Check.positiveInt "n (samples)" n
    let perm = Array.init n id
    let mutable cursor = n

    /// The next sample index.
    member _.Next() =
        match sampling with
        | WithReplacement -> int (rng.NextDouble() * float n) |> min (n - 1)
        | WithoutReplacement ->
            if cursor >= n then
                // Fisher-Yates: a fresh epoch.
                for i in n - 1 .. -1 .. 1 do
                    let j = int (rng.NextDouble() * float (i + 1)) |> min i
                    let t = perm[i]
                    perm[i] <- perm[j]
                    perm[j] <- t

                cursor <- 0

            cursor <- cursor + 1
            perm[cursor - 1]
