namespace StatPhysFs

open System
open System.Numerics

/// The few vector kernels the simulators need, SIMD and allocation-free.
[<RequireQualifiedAccess>]
module Blas =
    let dot (x: ReadOnlySpan<float>) (y: ReadOnlySpan<float>) =
        let n = x.Length
        let w = Vector<float>.Count
        let mutable acc = Vector<float>.Zero
        let mutable i = 0

        while i <= n - w do
            acc <- acc + Vector<float>(x.Slice(i, w)) * Vector<float>(y.Slice(i, w))
            i <- i + w

        let mutable s = Vector.Dot(acc, Vector<float>.One)

        while i < n do
            s <- s + x[i] * y[i]
            i <- i + 1

        s

    /// y <- a*x + b*y
    let axpby (a: float) (x: ReadOnlySpan<float>) (b: float) (y: Span<float>) =
        let n = x.Length
        let w = Vector<float>.Count
        let va = Vector<float>(a)
        let vb = Vector<float>(b)
        let mutable i = 0

        while i <= n - w do
            let r = va * Vector<float>(x.Slice(i, w)) + vb * Vector<float>(y.Slice(i, w))
            r.CopyTo(y.Slice(i, w))
            i <- i + w

        while i < n do
            y[i] <- a * x[i] + b * y[i]
            i <- i + 1

    let dotArr (x: float[]) (y: float[]) = dot (ReadOnlySpan x) (ReadOnlySpan y)
