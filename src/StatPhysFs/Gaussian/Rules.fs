namespace StatPhysFs.Gaussian

open System
open System.Collections.Generic
open StatPhysFs

/// A quadrature rule for a d-dimensional standard normal: E[f(Z)] ~ sum_k Weights[k] f(Nodes[k]).
/// Sparse-grid weights can be negative.
type RuleND =
    {
        Dimension: int
        Nodes: float[][]
        Weights: float[]
    }

/// Multivariate Gaussian expectations E[f(X)], X ~ N(mean, cov), by deterministic rules.
[<RequireQualifiedAccess>]
module GaussianRule =
    let private cache =
        System.Collections.Concurrent.ConcurrentDictionary<int, Rule1D>()

    let rule1D n = cache.GetOrAdd(n, GaussHermite.rule)

    /// Tensor product of n-point Gauss-Hermite rules in d dimensions: n^d nodes, exact for polynomials of degree
    /// <= 2n-1 in each variable.
    [<CompiledName("Tensor")>]
    let tensor (d: int) (n: int) : RuleND =
        Check.intInRange "dimension" 1 12 d
        Check.intInRange "order" 1 2000 n
        let total = pown (int64 n) d

        Check.that
            "order"
            (total <= 50_000_000L)
            ($"a tensor rule with %d{n}^%d{d} nodes is too large; use a sparse grid.")

        let r = rule1D n
        let count = int total
        let nodes = Array.init count (fun _ -> Array.zeroCreate d)
        let weights = Array.create count 1.0

        for k in 0 .. count - 1 do
            let mutable rem = k

            for j in 0 .. d - 1 do
                let i = rem % n
                rem <- rem / n
                nodes[k][j] <- r.Nodes[i]
                weights[k] <- weights[k] * r.Weights[i]

        {
            Dimension = d
            Nodes = nodes
            Weights = weights
        }

    /// Number of points of the 1-D rule used at Smolyak level i (i >= 1): 2i - 1, exact to degree 4i - 3.
    let sparsePoints (i: int) = 2 * i - 1

    /// Smolyak sparse grid of the given level (level 1 = one node) in d dimensions, built by the combination
    /// technique on Gauss-Hermite rules with 2i-1 points at index i. It integrates exactly every monomial
    /// z^a with sum_k max(1, ceil((a_k + 3) / 4)) <= d + level - 1. Coincident nodes are merged.
    [<CompiledName("Sparse")>]
    let sparse (d: int) (level: int) : RuleND =
        Check.intInRange "dimension" 1 12 d
        Check.intInRange "level" 1 12 level
        let q = d + level - 1

        let acc =
            Dictionary<
                struct (int64 * int64 * int64 * int64 * int64 * int64 * int64 * int64 * int64 * int64 * int64 * int64),
                int
             >()

        let nodes = ResizeArray<float[]>()
        let weights = ResizeArray<float>()

        let key (x: float[]) =
            let k j =
                if j < x.Length then int64 (Math.Round(x[j] * 1e10)) else 0L

            struct (k 0, k 1, k 2, k 3, k 4, k 5, k 6, k 7, k 8, k 9, k 10, k 11)

        let binom n k =
            if k < 0 || k > n then
                0.0
            else
                Seq.fold (fun s j -> s * float (n - k + j) / float j) 1.0 (seq { 1..k })

        // Enumerate multi-indices i >= 1 with q - d + 1 <= |i| <= q.
        let idx = Array.create d 1

        let rec visit j sum =
            if j = d then
                if sum >= q - d + 1 && sum <= q then
                    let coef = (if (q - sum) % 2 = 0 then 1.0 else -1.0) * binom (d - 1) (q - sum)
                    let rules = idx |> Array.map (fun i -> rule1D (sparsePoints i))
                    let sizes = rules |> Array.map (fun r -> r.Nodes.Length)
                    let count = Array.fold (*) 1 sizes

                    for k in 0 .. count - 1 do
                        let x = Array.zeroCreate d
                        let mutable w = coef
                        let mutable rem = k

                        for jj in 0 .. d - 1 do
                            let ii = rem % sizes[jj]
                            rem <- rem / sizes[jj]
                            x[jj] <- rules[jj].Nodes[ii]
                            w <- w * rules[jj].Weights[ii]

                        let kk = key x

                        match acc.TryGetValue kk with
                        | true, pos -> weights[pos] <- weights[pos] + w
                        | _ ->
                            acc[kk] <- nodes.Count
                            nodes.Add x
                            weights.Add w
            else
                let room = q - sum - (d - j - 1)

                for i in 1..room do
                    idx[j] <- i
                    visit (j + 1) (sum + i)

        visit 0 0

        let keep =
            [|
                for k in 0 .. nodes.Count - 1 do
                    if weights[k] <> 0.0 then
                        k
            |]

        {
            Dimension = d
            Nodes = keep |> Array.map (fun k -> nodes[k])
            Weights = keep |> Array.map (fun k -> weights[k])
        }

    let private checkMeanCov (mean: float[]) (cov: float[,]) =
        Check.that
            "mean"
            (mean.Length = Array2D.length1 cov)
            ($"mean has length %d{mean.Length} but cov is %d{(Array2D.length1 cov)}x%d{(Array2D.length2 cov)}.")

    /// E[f(X)] for X ~ N(mean, cov) using a standard-normal rule and a PSD factor L (L L^T = cov), so singular
    /// covariances are fine. f receives a buffer it must not keep.
    [<CompiledName("Expect")>]
    let expect (rule: RuleND) (mean: float[]) (cov: float[,]) (f: float[] -> float) =
        checkMeanCov mean cov
        let d = mean.Length

        Check.that
            "rule"
            (rule.Dimension = d)
            ($"rule has dimension %d{rule.Dimension} but the Gaussian has %d{d}.")

        let l = Linalg.psdFactor "cov" cov
        let x = Array.zeroCreate d
        let mutable s = 0.0

        for k in 0 .. rule.Weights.Length - 1 do
            let z = rule.Nodes[k]

            for i in 0 .. d - 1 do
                let mutable v = mean[i]

                for j in 0 .. d - 1 do
                    v <- v + l[i, j] * z[j]

                x[i] <- v

            s <- s + rule.Weights[k] * f x

        s
