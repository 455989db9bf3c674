namespace StatPhysFs.Dmft

/// The Monte-Carlo-free row side for an affine l (square loss, linear teacher, m = 1): every second moment of the
/// row process closes (dmft-sgf.md section 5.3). With b_k = w_k - y, f_k = Delta - sqrt(tau delta Delta) xi_k
/// (E f = Delta, E f^2 = Delta^2 + tau delta Delta, f_k independent of everything before step k) and
/// l_k = b_k - delta^{-1} sum_{j<k} R(k,j) l_j f_j:
///   Zb(k,l) = E[b_k l_l]      = Cbb(k,l) - (Delta/delta) sum_{j<l} R(l,j) Zb(k,j)
///   X(k,l)  = E[l_k l_l f_l]  = Delta Zb(k,l) - delta^{-1} sum_{j<k} R(k,j) S(j,l)        (l < k)
///   P(k,l)  = E[l_k l_l]      = Zb(k,l) - delta^{-1} sum_{j<k} R(k,j) E[l_l l_j f_j]     (l <= k)
///   S(k,l)  = E[g_k g_l]      = Delta X(k,l) (l < k),  E f^2 P(k,k) (l = k)
/// where E[l_l l_j f_j] = Delta P(l,j) for j >= l and X(l,j) for j < l; the responses E[D(k,l)] and E[l_k w*] obey
/// the same linear recursions with f replaced by its mean.
type internal ExactClosure(p: DmftProblem, columns: Columns) =
    let n = p.Steps + 1
    let dt = p.Dt
    let delta = p.Alpha
    let f2 = dt * dt + p.Tau * delta * dt
    let rho = p.Rho[0, 0]
    let zb = Array2D.zeroCreate<float> n n
    let x = Array2D.zeroCreate<float> n n
    let pp = Array2D.zeroCreate<float> n n
    let s = Array2D.zeroCreate<float> n n
    let ed = Array2D.zeroCreate<float> n n
    let wst = Array.zeroCreate<float> n

    let cAt k l = columns.C[columns.Index k l]
    let rAt k j = columns.R[columns.Index k j]
    let mAt k = columns.M[k]

    /// Row statistics at step k; sets the kernels of row k in `columns` and returns the train loss E[l_k^2].
    member _.Step(k: int) =
        for l in 0..k do
            let mutable v = cAt k l - mAt k - mAt l + rho + p.NoiseVar

            for j in 0 .. l - 1 do
                v <- v - dt / delta * rAt l j * zb[k, j]

            zb[k, l] <- v

        for l in 0 .. k - 1 do
            let mutable v = dt * zb[k, l]

            for j in 0 .. k - 1 do
                v <- v - rAt k j * s[j, l] / delta

            x[k, l] <- v

        for l in 0..k do
            let mutable v = zb[k, l]

            for j in 0 .. k - 1 do
                let e = if j >= l then dt * pp[j, l] else x[l, j]
                v <- v - rAt k j * e / delta

            pp[k, l] <- v
            pp[l, k] <- v

        for l in 0 .. k - 1 do
            s[k, l] <- dt * x[k, l]
            s[l, k] <- s[k, l]

        s[k, k] <- f2 * pp[k, k]

        let mutable w = mAt k - rho

        for j in 0 .. k - 1 do
            w <- w - dt / delta * rAt k j * wst[j]

        wst[k] <- w
        ed[k, k] <- 1.0

        for l in 0 .. k - 1 do
            let mutable v = 0.0

            for j in l .. k - 1 do
                v <- v - dt / delta * rAt k j * ed[j, l]

            ed[k, l] <- v

        for l in 0..k do
            columns.Rg[columns.Index k l] <- dt * ed[k, l]
            columns.Su[columns.Index k l] <- s[k, l] / delta

        columns.SetMu(k, [| w |])
        pp[k, k]
