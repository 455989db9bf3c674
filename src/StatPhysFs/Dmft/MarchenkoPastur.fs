namespace StatPhysFs.Dmft

open System
open StatPhysFs

/// The Marchenko-Pastur law nu of H = X^T X / alpha (X_ij of variance 1/d, n = alpha d samples), as a discrete
/// quadrature: ratio c = 1/alpha, mean 1, band [(1 - sqrt c)^2, (1 + sqrt c)^2], and an atom of mass 1 - alpha at
/// s = 0 when alpha < 1 (dmft-sgf.md section 4.1).
type MarchenkoPastur =
    {
        /// Sample ratio alpha = n/d (delta in the spec).
        Alpha: float
        /// Quadrature nodes s_i (the atom, when present, is the node s = 0).
        Nodes: float[]
        /// Weights summing to 1.
        Weights: float[]
    }

[<RequireQualifiedAccess>]
module MarchenkoPastur =
    /// Band edges (s-, s+).
    [<CompiledName("Edges")>]
    let edges (alpha: float) =
        Check.positive "alpha" alpha
        let c = 1.0 / alpha
        (1.0 - sqrt c) ** 2.0, (1.0 + sqrt c) ** 2.0

    /// The density of the continuous part, sqrt((s+ - s)(s - s-)) / (2 pi c s), zero outside the band.
    [<CompiledName("Density")>]
    let density (alpha: float) (s: float) =
        let lo, hi = edges alpha
        let c = 1.0 / alpha

        if s <= lo || s >= hi then
            0.0
        else
            sqrt ((hi - s) * (s - lo)) / (2.0 * Math.PI * c * s)

    /// The law with `nodes` points on the band. With s = a + b cos(phi) (a = 1 + c, b = 2 sqrt c) the band integral
    /// becomes int_0^pi f(s) b^2 sin^2(phi) / (2 pi c s) dphi, an even periodic analytic integrand, so the midpoint
    /// rule converges geometrically and the square-root edges cost nothing (even at alpha = 1, where s- = 0:
    /// sin^2(phi)/s stays bounded there).
    [<CompiledName("Create")>]
    let create (nodes: int) (alpha: float) =
        Check.positive "alpha" alpha
        Check.intInRange "nodes" 8 1_000_000 nodes
        let c = 1.0 / alpha
        let a = 1.0 + c
        let b = 2.0 * sqrt c
        let h = Math.PI / float nodes

        let band =
            Array.init nodes (fun i ->
                let phi = (float i + 0.5) * h
                let s = a + b * cos phi
                let sp = sin phi
                s, h * b * b * sp * sp / (2.0 * Math.PI * c * s))

        // With raw weights the rule is exact for int s^j d nu, j >= 1 (the 1/s cancels: a trigonometric polynomial)
        // but the mass int sin^2/s converges slowly when alpha is near 1 (s- -> 0). Rescaling the weights would break
        // the exactness for j >= 1, so the mass defect goes into a node at s = 0, which touches nothing else: the
        // rule is then exact for every polynomial of degree < ~2 nodes (the atom of alpha < 1 already sits there).
        let defect = min 1.0 alpha - (band |> Array.sumBy snd)
        let atom = (if alpha < 1.0 then 1.0 - alpha else 0.0) + defect

        let all =
            if alpha < 1.0 || abs defect > 1e-16 then
                Array.append [| 0.0, atom |] band
            else
                band

        {
            Alpha = alpha
            Nodes = all |> Array.map fst
            Weights = all |> Array.map snd
        }

    /// The default law: 400 band nodes, enough for 1e-14 on smooth integrands and e^{-2 s t} up to t ~ 1e3.
    [<CompiledName("OfAlpha")>]
    let ofAlpha (alpha: float) = create 400 alpha

    /// int f(s) d nu(s).
    [<CompiledName("Expect")>]
    let expect (f: float -> float) (law: MarchenkoPastur) =
        let mutable acc = 0.0

        for i in 0 .. law.Nodes.Length - 1 do
            acc <- acc + law.Weights[i] * f law.Nodes[i]

        acc

    /// Stieltjes transform m(z) = int d nu(s)/(s - z) for real z < 0 (closed form, atom included):
    /// m(z) = [(1 - c - z) - sqrt((1 - c - z)^2 - 4 c z)] / (2 c z).
    [<CompiledName("Stieltjes")>]
    let stieltjes (alpha: float) (z: float) =
        Check.positive "alpha" alpha
        Check.that "z" (z < 0.0) ($"z must be < 0 (got %g{z})")
        let c = 1.0 / alpha
        let u = 1.0 - c - z
        (u - sqrt (u * u - 4.0 * c * z)) / (2.0 * c * z)

    /// dm/dz from the quadratic c z m^2 - (1 - c - z) m + 1 = 0 that m satisfies.
    [<CompiledName("StieltjesDerivative")>]
    let stieltjesDerivative (alpha: float) (z: float) =
        let m = stieltjes alpha z
        let c = 1.0 / alpha
        -(c * m * m + m) / (2.0 * c * z * m - (1.0 - c - z))

/// The law's constructors as static members, so that C# reaches them on the type itself (no `...Module` name).
type MarchenkoPastur with
    /// The default law of MarchenkoPastur.ofAlpha (400 band nodes).
    static member OfAlpha(alpha: float) = MarchenkoPastur.ofAlpha alpha

    /// A law with `nodes` band nodes (MarchenkoPastur.create).
    static member Create(nodes: int, alpha: float) = MarchenkoPastur.create nodes alpha
