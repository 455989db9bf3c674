/// Micro-benchmarks of the kernels the whole-process benchmarks (bench/StatPhysFs.Benchmarks) are made of: the erf I4
/// pair sum, the committee right-hand side, a DMFT forward sweep and an online committee simulator step. Run in
/// process (no generated project, so no package restore at run time), with the memory diagnoser.
module StatPhysFs.Micro.Kernels

open System.Threading
open BenchmarkDotNet.Attributes
open StatPhysFs
open StatPhysFs.Gaussian
open StatPhysFs.Models
open StatPhysFs.Simulation

/// sum_{r<=u} a_r a_u I4(i, l, r, u) over n = K + M fields for one block of `ErfKernels.Lanes` (i, l) pairs:
/// Lanes * n (n + 1) / 2 I4 terms per call (divide the time by that for ns per term).
[<MemoryDiagnoser>]
type ErfI4 () =
    let mutable c: float[] = [||]
    let mutable a: float[] = [||]
    let mutable s: float[] = [||]
    let mutable b4: float[] = [||]
    let mutable pi: int[] = [||]
    let mutable pl: int[] = [||]
    let mutable np = 0

    /// Fields n = K + M.
    [<Params(4, 20, 100)>]
    member val Fields = 4 with get, set

    [<GlobalSetup>]
    member this.Setup() =
        let n = this.Fields
        np <- ErfKernels.padded n
        let rng = Rng(7, 0)
        c <- Array.zeroCreate (np * np)

        for i in 0 .. n - 1 do
            for j in 0 .. n - 1 do
                c[i * np + j] <- (if i = j then 1.0 else 0.2 + 0.1 * rng.NextDouble())

        for i in 0 .. n - 1 do
            for j in 0 .. i - 1 do
                c[i * np + j] <- c[j * np + i]

        a <- Array.init np (fun r -> if r < n then 1.0 / float n else 0.0)
        s <- Array.zeroCreate (ErfKernels.blockScratch n)
        b4 <- Array.zeroCreate ErfKernels.Lanes
        // The first pairs i <= l in packing order.
        let pairs =
            [| for i in 0 .. n - 1 do
                   for l in i .. n - 1 -> i, l |]
            |> Array.truncate ErfKernels.Lanes

        pi <- Array.map fst pairs
        pl <- Array.map snd pairs

    [<Benchmark>]
    member this.PairBlock() =
        ErfKernels.pairBlock c np this.Fields a pi pl 0 s b4

/// One right-hand side of the erf committee ODE at the spec's initial state (K = M), on one thread (Threads = 1) or
/// always forked over the cores (Threads = 2): where the second pays is where `ParallelThreshold` belongs.
[<MemoryDiagnoser>]
type CommitteeRhs () =
    let mutable f: Ode.Rhs = fun _ _ _ -> ()
    let mutable y: float[] = [||]
    let mutable dy: float[] = [||]

    [<Params(2, 5, 10, 20, 50)>]
    member val K = 2 with get, set

    [<Params(1, 2)>]
    member val Threads = 1 with get, set

    [<GlobalSetup>]
    member this.Setup() =
        let p = Committee.create this.K this.K
        let s0 = CommitteeInitialState.spec this.K this.K

        let quad =
            { CommitteeQuadrature.defaults with
                ParallelThreshold = (if this.Threads = 1 then System.Int32.MaxValue else 0)
            }

        let prob = Committee.odeProblem quad (Committee.problem p s0 1.0)
        f <- prob.Rhs
        y <- Array.copy prob.Y0
        dy <- Array.zeroCreate y.Length

    [<Benchmark>]
    member _.Evaluate() = f 0.0 y dy

/// The DMFT forward sweep of logistic regression (alpha 2, tau 1, rho 4): 20 steps x 2000 samples, one replica.
[<MemoryDiagnoser>]
type DmftSweep () =
    let problem =
        { Dmft.DmftProblem.glm Dmft.GlmLoss.Logistic Dmft.GlmTeacher.Sign with
            Alpha = 2.0
            Tau = 1.0
            Ridge = 0.05
            NoiseVar = 0.0
            Steps = 20
        }
        |> Dmft.DmftProblem.withRho 4.0

    let settings =
        { Dmft.DmftSettings.defaults with
            Samples = 2000
            Replicas = 1
            Strategy = Dmft.ForwardSweep
        }

    [<Benchmark>]
    member _.Steps20Samples2000() = Dmft.Dmft.solve settings problem

/// SGD steps of the online committee simulator (erf, K = M, one seed, one core): 1000 steps per invocation, so
/// the run's set-up (initial weights, Gram-Schmidt) adds under 2% per step. Reported time is per step.
[<MemoryDiagnoser>]
type CommitteeSimulator () =
    [<Params(1_000, 10_000, 100_000)>]
    member val Dim = 10_000 with get, set

    [<Params(2, 10)>]
    member val K = 2 with get, set

    [<Benchmark(OperationsPerInvoke = 1000)>]
    member this.Step() =
        let d = this.Dim
        let problem =
            Committee.problem (Committee.create this.K this.K) (CommitteeInitialState.spec this.K this.K) (1000.0 / float d)

        let o =
            { SimulationOptions.defaults with
                Dim = d
                Seeds = 1
                MaxParallelism = 1
            }
        // t = steps / d: 1000 steps.
        OnlineCommitteeSim.simulate o { Committee.defaultSettings with SaveAt = [| 0.0; 1000.0 / float d |] } problem

/// STREAM-like bandwidth over n doubles per array (SIMD, unrolled, no bounds checks in the hot loop): Copy moves 16n
/// bytes (read b, write a), Triad 24n (read b, c, write a), Read2 16n (dot product with four accumulators: reads
/// only). n = 1e4 puts 240 KB in flight (the L2 regime of the simulator at d = 1e4), n = 1e7 240 MB (DRAM).
type Bandwidth () =
    let mutable a: float[] = [||]
    let mutable b: float[] = [||]
    let mutable c: float[] = [||]

    [<Params(10_000, 100_000, 1_000_000, 10_000_000)>]
    member val N = 10_000 with get, set

    [<GlobalSetup>]
    member this.Setup() =
        a <- Array.create this.N 1.0
        b <- Array.create this.N 2.0
        c <- Array.create this.N 3.0

    [<Benchmark>]
    member _.Copy() = System.Array.Copy(b, a, b.Length)

    [<Benchmark>]
    member _.Triad() = Bandwidth.Triad(a, b, c, 3.0)

    [<Benchmark>]
    member _.Read2() = Bandwidth.Read2(b, c)

    static member Triad(a: float[], b: float[], c: float[], s: float) =
        let n = a.Length
        let w = System.Numerics.Vector<float>.Count
        let vs = System.Numerics.Vector<float>(s)
        let ra = System.Runtime.InteropServices.MemoryMarshal.Cast<float, System.Numerics.Vector<float>>(System.Span a)
        let rb = System.Runtime.InteropServices.MemoryMarshal.Cast<float, System.Numerics.Vector<float>>(System.ReadOnlySpan b)
        let rc = System.Runtime.InteropServices.MemoryMarshal.Cast<float, System.Numerics.Vector<float>>(System.ReadOnlySpan c)

        for i in 0 .. ra.Length - 1 do
            ra[i] <- rb[i] + vs * rc[i]

        for i in ra.Length * w .. n - 1 do
            a[i] <- b[i] + s * c[i]

    static member Read2(b: float[], c: float[]) =
        let rb = System.Runtime.InteropServices.MemoryMarshal.Cast<float, System.Numerics.Vector<float>>(System.ReadOnlySpan b)
        let rc = System.Runtime.InteropServices.MemoryMarshal.Cast<float, System.Numerics.Vector<float>>(System.ReadOnlySpan c)
        let mutable s0 = System.Numerics.Vector<float>.Zero
        let mutable s1 = s0
        let mutable s2 = s0
        let mutable s3 = s0
        let mutable i = 0

        while i + 4 <= rb.Length do
            s0 <- s0 + rb[i] * rc[i]
            s1 <- s1 + rb[i + 1] * rc[i + 1]
            s2 <- s2 + rb[i + 2] * rc[i + 2]
            s3 <- s3 + rb[i + 3] * rc[i + 3]
            i <- i + 4

        System.Numerics.Vector.Sum(s0 + s1 + s2 + s3)

/// Standard normals, 1e4 per call (time per draw): the scalar ziggurat of `Rng` and the eight-lane SIMD Box-Muller of
/// `NormalBlock` (what the simulators draw); d times the latter is the step's RNG term.
[<MemoryDiagnoser>]
type NormalDraws () =
    let rng = Rng(3, 1)
    let block = NormalBlock(Rng(3, 2))
    let x: float[] = Array.zeroCreate 10_000

    [<Benchmark(OperationsPerInvoke = 10_000)>]
    member _.RngFillNormal() = rng.FillNormal(System.Span x)

    [<Benchmark(OperationsPerInvoke = 10_000)>]
    member _.NormalBlockFill() = block.Fill(System.Span x)
