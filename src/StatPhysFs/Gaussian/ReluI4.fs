namespace StatPhysFs.Gaussian

open System
open StatPhysFs

/// ReLU's I4 = E[theta(u) theta(v) relu(w) relu(z)] = E[w z 1{u, v, w, z > 0}], which has no elementary closed form
/// (spec 2.4). Stein's lemma on w reduces it to 2-D orthant probabilities (closed form) and one 4-D orthant
/// probability; Plackett's identity dP/d rho_ij = phi2(0, 0; rho_ij) P2(rest | x_i = x_j = 0) turns the latter into
/// a 1-D integral of closed forms along R(s) = I + s (R - I), done by Gauss-Legendre. Deterministic and smooth.
[<RequireQualifiedAccess>]
module ReluI4 =
    let private clip x = max -1.0 (min 1.0 x)

    /// P(X > 0) for a centred bivariate Gaussian with correlation r.
    let orthant2 (r: float) = 0.25 + asin (clip r) / (2.0 * Math.PI)

    let private legendre =
        lazy
            (let n = 48
             let jac = Array2D.zeroCreate n n

             for k in 1 .. n - 1 do
                 let b = float k / sqrt (4.0 * float k * float k - 1.0)
                 jac[k, k - 1] <- b
                 jac[k - 1, k] <- b

             let evd =
                 (Linalg.ofArray2D jac).Evd(MathNet.Numerics.LinearAlgebra.Symmetricity.Symmetric)
             // Nodes on [-1, 1] and weights 2 v0^2, mapped to [0, 1].
             Array.init n (fun i ->
                 let x = evd.EigenValues[i].Real
                 let v = evd.EigenVectors[0, i]
                 0.5 * (x + 1.0), v * v))

    // The six pairs (i, j) of Plackett's identity, each with the two remaining indices (k, l).
    let private pairs =
        [| 0, 1, 2, 3; 0, 2, 1, 3; 0, 3, 1, 2; 1, 2, 0, 3; 1, 3, 0, 2; 2, 3, 0, 1 |]

    /// P(X > 0) for a centred 4-D Gaussian with correlation matrix r (unit diagonal).
    let orthant4 (r: float[,]) =
        let nodes = legendre.Value
        let mutable total = 1.0 / 16.0

        for q in 0 .. nodes.Length - 1 do
            let s, w = nodes[q]
            let mutable deriv = 0.0

            for p in 0..5 do
                let i, j, k, l = pairs[p]
                let rho = r[i, j]

                if rho <> 0.0 then
                    let rs = s * rho
                    let det = 1.0 - rs * rs
                    // Covariance of (x_k, x_l) given x_i = x_j = 0, under R(s) = I + s (R - I).
                    let rki, rkj, rli, rlj = s * r[k, i], s * r[k, j], s * r[l, i], s * r[l, j]
                    let ckk = 1.0 - (rki * rki - 2.0 * rs * rki * rkj + rkj * rkj) / det
                    let cll = 1.0 - (rli * rli - 2.0 * rs * rli * rlj + rlj * rlj) / det
                    let ckl = s * r[k, l] - (rki * rli - rs * (rki * rlj + rkj * rli) + rkj * rlj) / det

                    let rc =
                        if ckk > 0.0 && cll > 0.0 then
                            ckl / sqrt (ckk * cll)
                        else
                            0.0

                    deriv <- deriv + rho / (2.0 * Math.PI * sqrt det) * orthant2 rc

            total <- total + w * deriv

        total

    /// P(X > 0) for a centred 3-D Gaussian with correlations r12, r13, r23.
    let orthant3 r12 r13 r23 =
        0.125 + (asin (clip r12) + asin (clip r13) + asin (clip r23)) / (4.0 * Math.PI)

    /// P(x_b > 0 for all b) for a centred Gaussian with covariance c over the listed (distinct, non-degenerate) indices.
    let private orthant (c: float[,]) (b: int list) =
        let corr i j = c[i, j] / sqrt (c[i, i] * c[j, j])

        match b with
        | [] -> 1.0
        | [ _ ] -> 0.5
        | [ i; j ] -> orthant2 (corr i j)
        | [ i; j; k ] -> orthant3 (corr i j) (corr i k) (corr j k)
        | [ i; j; k; l ] ->
            let idx = [| i; j; k; l |]
            orthant4 (Array2D.init 4 4 (fun x y -> if x = y then 1.0 else clip (corr idx[x] idx[y])))
        | _ -> invalidArg "b" "orthant probabilities are implemented up to dimension 4."

    /// c conditioned on x_k = 0 (centred, so the conditional mean stays zero): the Schur complement.
    let private condition (c: float[,]) (k: int) =
        let n = Array2D.length1 c

        Array2D.init n n (fun a b ->
            if a = k || b = k then
                0.0
            else
                c[a, b] - c[a, k] * c[k, b] / c[k, k])

    /// E[prod_{a in A} x_a 1{x_b > 0, b in B}] for a centred Gaussian with covariance c (A a multiset, B a set).
    /// Variables identical to another (correlation 1) are merged, since indicators are idempotent; opposite ones
    /// (correlation -1) make the indicator product vanish, as does a variable of zero variance in B (theta(0) = 0).
    /// Then Stein's lemma on one linear factor: E[x_a G] = sum_k c_ak E[d_k G], where d_k of an indicator is a delta
    /// that conditions on x_k = 0. Ends in orthant probabilities.
    let rec truncatedMoment (c: float[,]) (a: int list) (b: int list) : float =
        let tiny i = c[i, i] <= 1e-14

        if b |> List.exists tiny then
            0.0
        elif a |> List.exists tiny then
            0.0
        else
            let corr i j = c[i, j] / sqrt (c[i, i] * c[j, j])
            // Merge duplicates in B; detect opposite pairs.
            let rec dedupe (acc: int list) rest =
                match rest with
                | [] -> Some(List.rev acc)
                | x :: tail ->
                    if acc |> List.exists (fun y -> corr x y < -1.0 + 1e-12) then
                        None
                    elif acc |> List.exists (fun y -> corr x y > 1.0 - 1e-12) then
                        dedupe acc tail
                    else
                        dedupe (x :: acc) tail

            match dedupe [] b with
            | None -> 0.0
            | Some b ->
                match a with
                | [] -> orthant c b
                | x :: rest ->
                    let mutable acc = 0.0
                    // Derivative of the remaining linear factors.
                    for i in 0 .. rest.Length - 1 do
                        let y = rest[i]

                        if c[x, y] <> 0.0 then
                            acc <- acc + c[x, y] * truncatedMoment c (List.removeAt i rest) b
                    // Delta terms of the indicators (vanish when x_k is also a linear factor).
                    for k in b do
                        if c[x, k] <> 0.0 && not (List.contains k rest) then
                            let ck = condition c k

                            acc <-
                                acc
                                + c[x, k] / sqrt (2.0 * Math.PI * c[k, k])
                                  * truncatedMoment ck rest (List.filter ((<>) k) b)

                    acc

    /// I4 for ReLU on the 4x4 covariance of (u, v, w, z): E[w z 1{u, v, w, z > 0}]. Handles singular covariances
    /// (u = v on the diagonal of Q, a student field that is also a value field) exactly.
    [<CompiledName("Evaluate")>]
    let evaluate (c: float[,]) =
        truncatedMoment c [ 2; 3 ] [ 0; 1; 2; 3 ]
