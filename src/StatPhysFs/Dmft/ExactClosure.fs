namespace StatPhysFs.Dmft

open System
open StatPhysFs

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
type internal ExactClosure(p: DmftProblem, columns: Columns, ct: Threading.CancellationToken) =
    let n = p.Steps + 1
    let dt = p.Dt
    let delta = p.Alpha
    let f2 = dt * dt + p.Tau * delta * dt
    let rho = p.Rho[0, 0]
    // Flat n x n arrays, row-major; P and S are kept symmetric so that every sum below runs along a row. 160 MB at
    // 2000 steps: set up under the token (a cancellation stops them within 1 MB of zeroing).
    let zb = Cancellable.zeroed ct (n * n)
    let x = Cancellable.zeroed ct (n * n)
    let pp = Cancellable.zeroed ct (n * n)
    let s = Cancellable.zeroed ct (n * n)
    let ed = Cancellable.zeroed ct (n * n)
    let acc = Array.zeroCreate<float> n
    let wst = Array.zeroCreate<float> n
    let r = columns.R
    let row i = i * n

    let dot (a: float[]) ao (b: float[]) bo len =
        Blas.dot (ReadOnlySpan(a, ao, len)) (ReadOnlySpan(b, bo, len))

    /// Row statistics at step k; sets the kernels of row k in `columns` and returns the train loss E[l_k^2].
    member _.Step(k: int) =
        let c = columns.C
        let mv = columns.M
        let rk = row k

        for l in 0..k do
            zb[rk + l] <-
                c[rk + l] - mv[k] - mv[l] + rho + p.NoiseVar
                - dt / delta * dot r (row l) zb rk l

        for l in 0 .. k - 1 do
            x[rk + l] <- dt * zb[rk + l] - dot r rk s (row l) k / delta

        for l in 0..k do
            // sum_{j<k} R(k,j) E[l_l l_j f_j]: X(l, j) for j < l, Delta P(l, j) for l <= j < k.
            let v =
                zb[rk + l]
                - (dot r rk x (row l) l + dt * dot r (rk + l) pp (row l + l) (k - l)) / delta

            pp[rk + l] <- v
            pp[row l + k] <- v

        for l in 0 .. k - 1 do
            s[rk + l] <- dt * x[rk + l]
            s[row l + k] <- s[rk + l]

        s[rk + k] <- f2 * pp[rk + k]
        wst[k] <- mv[k] - rho - dt / delta * dot r rk wst 0 k
        // E[D(k, l)] = -(Delta/delta) sum_{j=l}^{k-1} R(k, j) E[D(j, l)], accumulated row by row.
        Array.Clear(acc, 0, k)

        for j in 0 .. k - 1 do
            Blas.axpby r[rk + j] (ReadOnlySpan(ed, row j, j + 1)) 1.0 (Span(acc, 0, j + 1))

        for l in 0 .. k - 1 do
            ed[rk + l] <- -dt / delta * acc[l]

        ed[rk + k] <- 1.0

        for l in 0..k do
            columns.Rg[columns.Index k l] <- dt * ed[rk + l]
            columns.Su[columns.Index k l] <- s[rk + l] / delta

        columns.SetMu(k, [| wst[k] |])
        pp[rk + k]
