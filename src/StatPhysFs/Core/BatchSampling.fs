namespace StatPhysFs

/// How real mini-batch SGD draws its batches (the finite-sum SDE flows and the multi-pass simulator share it).
type BatchSampling =
    /// B independent uniform indices per step.
    | WithReplacement
    /// Epochs of a fresh random permutation cut into consecutive batches.
    | WithoutReplacement
