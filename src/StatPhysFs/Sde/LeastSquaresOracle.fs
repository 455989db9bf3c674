namespace StatPhysFs.Sde

open System
open StatPhysFs

/// First and second moments of an m-point motion at the horizon: z stacks the m points (length m d); Mean = E z,
/// Second = E z z^T.
type PointMoments =
    {
        Points: int
        Dim: int
        Mean: float[]
        Second: float[,]
    }

    /// tr E[x_j x_j^T].
    member s.TraceSecond(j: int) =
        Seq.sum (seq { for a in 0 .. s.Dim - 1 -> s.Second[j * s.Dim + a, j * s.Dim + a] })

    /// tr E[(x_j - x_l)(x_j - x_l)^T], the two-point contraction statistic.
    member s.TwoPoint(j: int, l: int) =
        Seq.sum (
            seq {
                for a in 0 .. s.Dim - 1 ->
                    let p, q = j * s.Dim + a, l * s.Dim + a
                    s.Second[p, p] - 2.0 * s.Second[p, q] + s.Second[q, q]
            }
        )

/// Exact oracles for least squares on a finite data set, f_i = (a_i.x - y_i)^2/2 + ridge |x|^2/2 (sme-smf.md
/// section 6.2): SGD's exact moment recursion (batch 1, with replacement) and the moment ODE of GF, SME1 and the
/// SMF of order 1 or 2, solved by the matrix exponential. Both are for the m-point motion (one shared sample
/// sequence / one shared data-indexed noise), so two-point statistics are exact too.
[<RequireQualifiedAccess>]
module LeastSquaresOracle =
    type private Setup =
        {
            D: int
            N: int
            /// A~_i = a_i a_i^T + ridge I.
            At: float[,][]
            /// a_i y_i.
            Ay: float[][]
            H: float[,]
            Bbar: float[]
        }

    let private setup (ridge: float) (a: float[][]) (y: float[]) =
        let n = a.Length
        let d = a[0].Length

        let at =
            a
            |> Array.map (fun r -> Array2D.init d d (fun p q -> r[p] * r[q] + (if p = q then ridge else 0.0)))

        let ay = Array.init n (fun i -> a[i] |> Array.map (fun v -> v * y[i]))

        {
            D = d
            N = n
            At = at
            Ay = ay
            H = Array2D.init d d (fun p q -> (at |> Array.sumBy (fun m -> m[p, q])) / float n)
            Bbar = Array.init d (fun p -> (ay |> Array.sumBy (fun v -> v[p])) / float n)
        }

    let private stack (m: int) (v: float[]) =
        Array.init (m * v.Length) (fun k -> v[k % v.Length])

    let private blockDiag (m: int) (b: float[,]) =
        let d = Array2D.length1 b
        Array2D.init (m * d) (m * d) (fun p q -> if p / d = q / d then b[p % d, q % d] else 0.0)

    let private initial (x0: float[][]) =
        let z = Array.concat x0
        z, Array2D.init z.Length z.Length (fun p q -> z[p] * z[q])

    /// `sgd` with a cancellation token, seen at every step (a step is O(n (m d)^3); a small eta means millions of
    /// steps): OperationCanceledException when `ct` is cancelled.
    [<CompiledName("SgdCancellable")>]
    let sgdCancellable
        (ct: System.Threading.CancellationToken)
        (ridge: float)
        (a: float[][])
        (y: float[])
        (eta: float)
        (horizon: float)
        (x0: float[][])
        =
        let st = setup ridge a y
        let mp = x0.Length
        let md = mp * st.D
        let k = Steps.count "horizon" horizon "eta" eta
        let mutable mean, second = initial x0
        // T_i = I - eta A^_i, e_i = eta (a_i y_i stacked).
        let ts =
            st.At
            |> Array.map (fun ai ->
                Array2D.init md md (fun p q -> (if p = q then 1.0 else 0.0) - eta * (blockDiag mp ai)[p, q]))

        let es = st.Ay |> Array.map (fun v -> stack mp v |> Array.map (fun x -> eta * x))
        let tsM = ts |> Array.map Linalg.ofArray2D

        for _ in 1..k do
            ct.ThrowIfCancellationRequested()
            let sM = Linalg.ofArray2D second
            let newMean = Array.zeroCreate md
            let mutable newS = MathNet.Numerics.LinearAlgebra.Matrix<float>.Build.Dense(md, md)

            for i in 0 .. st.N - 1 do
                let t = tsM[i]
                let tm = t * MathNet.Numerics.LinearAlgebra.Vector<float>.Build.DenseOfArray mean
                let e = MathNet.Numerics.LinearAlgebra.Vector<float>.Build.DenseOfArray es[i]

                for p in 0 .. md - 1 do
                    newMean[p] <- newMean[p] + (tm[p] + e[p]) / float st.N

                newS <-
                    newS
                    + (t * sM * t.Transpose()
                       + tm.OuterProduct e
                       + e.OuterProduct tm
                       + e.OuterProduct e)
                      / float st.N

            mean <- newMean
            second <- newS.ToArray()

        {
            Points = mp
            Dim = st.D
            Mean = mean
            Second = second
        }

    /// SGD (batch 1, with replacement) from every point in x0 with the same samples: the exact recursion of the mean
    /// and second moment of z over floor(horizon/eta) steps.
    [<CompiledName("Sgd")>]
    let sgd (ridge: float) (a: float[][]) (y: float[]) (eta: float) (horizon: float) (x0: float[][]) =
        sgdCancellable System.Threading.CancellationToken.None ridge a y eta horizon x0

    /// The model as an affine SDE on the stacked points: dz = (A z + c) dt + sqrt(eta/n) sum_i (B_i z + e_i) d beta_i.
    let private affine (model: SdeModel) (ridge: float) (a: float[][]) (y: float[]) (eta: float) (x0: float[][]) =
        let st = setup ridge a y
        let mp = x0.Length
        let d = st.D
        let md = mp * d

        let order, noise =
            match model with
            | GradientFlow -> 1, false
            | Sme(o, _) ->
                Check.that "x0" (mp = 1) "the SME's multi-point moments do not close; use one point."
                o, true
            | Smf o -> o, true
            | SmfPerBlock _ ->
                invalidArg "model" "the per-block SMF is a particle-system diagnostic, not a least-squares model."

        // Drift z' = A z + c; with order 2, A = -(I + eta/2 H) H and c = (I + eta/2 H) b.
        let hM = Linalg.ofArray2D st.H
        let idD = MathNet.Numerics.LinearAlgebra.Matrix<float>.Build.DenseIdentity d
        let pre = if order = 2 then idD + hM * (eta / 2.0) else idD
        let a1 = (-(pre * hM)).ToArray()

        let c1 =
            (pre * MathNet.Numerics.LinearAlgebra.Vector<float>.Build.DenseOfArray st.Bbar).ToArray()

        let aZ = blockDiag mp a1
        let cZ = stack mp c1
        // Noise columns (B_i z + e_i) with B_i = blockdiag(H - A~_i), e_i = -(b - a_i y_i) stacked.
        let bs =
            st.At
            |> Array.map (fun ai -> blockDiag mp (Array2D.init d d (fun p q -> st.H[p, q] - ai[p, q])))

        let es =
            st.Ay
            |> Array.map (fun v -> stack mp (Array.init d (fun p -> -(st.Bbar[p] - v[p]))))

        st, md, aZ, cZ, bs, es, noise

    /// d/dt of (m, S) under the affine SDE, as the noise part: (eta/n) sum_i (B_i S B_i^T + B_i m e_i^T + e_i m^T B_i^T
    /// + e_i e_i^T), returned as a matrix (the caller scales it).
    let private noiseSecond (bs: float[,][]) (es: float[][]) (m: float[]) (s: float[,]) =
        let md = m.Length
        let out = Array2D.zeroCreate md md

        for i in 0 .. bs.Length - 1 do
            let b = Linalg.ofArray2D bs[i]
            let bsb = (b * Linalg.ofArray2D s * b.Transpose()).ToArray()

            let bm =
                (b * MathNet.Numerics.LinearAlgebra.Vector<float>.Build.DenseOfArray m).ToArray()

            let e = es[i]

            for p in 0 .. md - 1 do
                for q in 0 .. md - 1 do
                    out[p, q] <- out[p, q] + bsb[p, q] + bm[p] * e[q] + e[p] * bm[q] + e[p] * e[q]

        out

    /// The exact moments of a time-stepping scheme applied to the model's affine SDE (step h = eta/subSteps over
    /// floor(T/eta) eta): EulerMaruyama z' = (I + hA) z + h c + sqrt(eta h/n) sum_i (B_i z + e_i) xi_i; HeunDrift with
    /// drift map I + hA + h^2 A^2/2 (and h c + h^2 A c/2) and noise multiplied by I + hA/2; EulerRichardson
    /// 2 EM(h/2) - EM(h). The deterministic reference for the schemes' own time-stepping error (spec V3).
    [<CompiledName("SchemeMoments")>]
    let schemeMoments
        (scheme: SdeScheme)
        (subSteps: int)
        (model: SdeModel)
        (ridge: float)
        (a: float[][])
        (y: float[])
        (eta: float)
        (horizon: float)
        (x0: float[][])
        =
        let st, md, aZ, cZ, bs, es, noise = affine model ridge a y eta x0
        let k = Steps.count "horizon" horizon "eta" eta
        let build = MathNet.Numerics.LinearAlgebra.Matrix<float>.Build
        let vb = MathNet.Numerics.LinearAlgebra.Vector<float>.Build
        let aM = Linalg.ofArray2D aZ
        let idM = build.DenseIdentity md
        let cV = vb.DenseOfArray cZ

        let run (heun: bool) (h: float) (steps: int) =
            let f =
                if heun then
                    idM + aM * h + aM * aM * (h * h / 2.0)
                else
                    idM + aM * h

            let fc = if heun then cV * h + aM * cV * (h * h / 2.0) else cV * h
            let kM = if heun then idM + aM * (h / 2.0) else idM
            let s2 = if noise then eta * h / float st.N else 0.0
            let z0, sz0 = initial x0
            let mutable m = vb.DenseOfArray z0
            let mutable sM = build.DenseOfArray sz0

            for _ in 1..steps do
                let nz = build.DenseOfArray(noiseSecond bs es (m.ToArray()) (sM.ToArray())) * s2
                let fm = f * m

                sM <-
                    f * sM * f.Transpose()
                    + fm.OuterProduct fc
                    + fc.OuterProduct fm
                    + fc.OuterProduct fc
                    + kM * nz * kM.Transpose()

                m <- fm + fc

            m.ToArray(), sM.ToArray()

        let h = eta / float subSteps
        let n = k * subSteps

        let mean, second =
            match scheme with
            | EulerMaruyama -> run false h n
            | HeunDrift -> run true h n
            | EulerRichardson ->
                let m1, s1 = run false h n
                let m2, s2 = run false (h / 2.0) (2 * n)

                Array.map2 (Richardson.extrapolate 1) m1 m2,
                Array2D.init md md (fun p q -> Richardson.extrapolate 1 s1[p, q] s2[p, q])

        {
            Points = x0.Length
            Dim = st.D
            Mean = mean
            Second = second
        }

    /// The moment ODE of a diffusion model from every point in x0 (common data-indexed noise), at the horizon, by the
    /// matrix exponential of its generator on (m, vec S, 1). GradientFlow: no noise; Sme(1, _) and Smf 1 share the
    /// one-point law (the SME's two-point cross-diffusion is not affine, so only one point is accepted for Sme);
    /// Smf 2 adds -(eta/2) H grad F to the drift.
    [<CompiledName("Moments")>]
    let moments
        (model: SdeModel)
        (ridge: float)
        (a: float[][])
        (y: float[])
        (eta: float)
        (horizon: float)
        (x0: float[][])
        =
        let st, md, aZ, cZ, bs, es, noise = affine model ridge a y eta x0
        let mp = x0.Length
        let d = st.D
        let dim = md + md * md + 1
        let one = dim - 1
        let sIx p q = md + p * md + q
        let l = Array2D.zeroCreate dim dim

        for p in 0 .. md - 1 do
            for q in 0 .. md - 1 do
                l[p, q] <- aZ[p, q]

            l[p, one] <- cZ[p]

        for p in 0 .. md - 1 do
            for q in 0 .. md - 1 do
                let row = sIx p q

                for r in 0 .. md - 1 do
                    l[row, sIx r q] <- l[row, sIx r q] + aZ[p, r]
                    l[row, sIx p r] <- l[row, sIx p r] + aZ[q, r]

                l[row, q] <- l[row, q] + cZ[p]
                l[row, p] <- l[row, p] + cZ[q]

                if noise then
                    let w = eta / float st.N

                    for i in 0 .. st.N - 1 do
                        let b = bs[i]
                        let e = es[i]

                        for r in 0 .. md - 1 do
                            if b[p, r] <> 0.0 then
                                for s in 0 .. md - 1 do
                                    l[row, sIx r s] <- l[row, sIx r s] + w * b[p, r] * b[q, s]

                            l[row, r] <- l[row, r] + w * (b[p, r] * e[q] + e[p] * b[q, r])

                        l[row, one] <- l[row, one] + w * e[p] * e[q]

        let k = Steps.count "horizon" horizon "eta" eta
        let t = float k * eta
        let prop = Linalg.expm (Array2D.map (fun v -> v * t) l)
        let z0, s0 = initial x0

        let v0 =
            Array.init dim (fun i ->
                if i < md then z0[i]
                elif i = one then 1.0
                else s0[(i - md) / md, (i - md) % md])

        let v =
            Array.init dim (fun i -> Seq.sum (seq { for j in 0 .. dim - 1 -> prop[i, j] * v0[j] }))

        {
            Points = mp
            Dim = d
            Mean = v[0 .. md - 1]
            Second = Array2D.init md md (fun p q -> v[sIx p q])
        }

    /// Stationary covariance P of x - x* (sme-smf.md section 6.2, g_i = A_i x* - b_i): SGD solves
    /// P = (1/n) sum (I - eta A_i) P (I - eta A_i) + (eta^2/n) sum g_i g_i^T, the SMF of the given order solves
    /// M P + P M - eta [(1/n) sum A_i P A_i - H P H] = (eta/n) sum g_i g_i^T (M = H or (I + eta H/2) H). Both by
    /// vectorisation; None when SGD is not mean-square stable (spectral radius of (1/n) sum T_i (x) T_i >= 1).
    [<CompiledName("StationaryCovariance")>]
    let stationaryCovariance (model: SdeModel option) (ridge: float) (a: float[][]) (y: float[]) (eta: float) =
        let st = setup ridge a y
        let d = st.D
        let dd = d * d
        let hM = Linalg.ofArray2D st.H

        let xStar =
            hM.Solve(MathNet.Numerics.LinearAlgebra.Vector<float>.Build.DenseOfArray st.Bbar)

        let gs =
            Array.init st.N (fun i ->
                (Linalg.ofArray2D st.At[i] * xStar).ToArray()
                |> Array.mapi (fun p v -> v - st.Ay[i][p]))

        let kron (x: float[,]) (z: float[,]) =
            Array2D.init dd dd (fun r c -> x[r / d, c / d] * z[r % d, c % d])

        let rhs scale =
            Array.init dd (fun r -> scale * (gs |> Array.sumBy (fun g -> g[r / d] * g[r % d])) / float st.N)

        let eye = Array2D.init d d (fun p q -> if p = q then 1.0 else 0.0)

        let solve (op: float[,]) (b: float[]) =
            let x =
                (Linalg.ofArray2D op).Solve(MathNet.Numerics.LinearAlgebra.Vector<float>.Build.DenseOfArray b)

            Some(Array2D.init d d (fun p q -> x[p * d + q]))

        match model with
        | None ->
            let sumKron =
                st.At
                |> Array.map (fun ai -> let t = Array2D.init d d (fun p q -> eye[p, q] - eta * ai[p, q]) in kron t t)
                |> Array.reduce (fun x z -> Array2D.init dd dd (fun r c -> x[r, c] + z[r, c]))
                |> Array2D.map (fun v -> v / float st.N)

            let rho =
                (Linalg.ofArray2D sumKron).Evd().EigenValues
                |> Seq.map (fun z -> z.Magnitude)
                |> Seq.max

            if rho >= 1.0 then
                None
            else
                solve (Array2D.init dd dd (fun r c -> (if r = c then 1.0 else 0.0) - sumKron[r, c])) (rhs (eta * eta))
        | Some m ->
            let order =
                match m with
                | Smf o
                | Sme(o, _) -> o
                | _ -> invalidArg "model" "stationary covariances exist for the SME and SMF (GF has none)."

            let mm =
                if order = 2 then
                    (hM + hM * hM * (eta / 2.0)).ToArray()
                else
                    st.H

            let avgAA =
                st.At
                |> Array.map (fun ai -> kron ai ai)
                |> Array.reduce (fun x z -> Array2D.init dd dd (fun r c -> x[r, c] + z[r, c]))

            let op =
                Array2D.init dd dd (fun r c ->
                    (kron mm eye)[r, c] + (kron eye mm)[r, c]
                    - eta * (avgAA[r, c] / float st.N - (kron st.H st.H)[r, c]))

            solve op (rhs eta)
