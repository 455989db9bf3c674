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

/// 100 SGD steps of the online committee simulator (K = M = 2 erf, d = 1e4, one seed, one core).
[<MemoryDiagnoser>]
type CommitteeSimulator () =
    let problem =
        Committee.problem (Committee.create 2 2) (CommitteeInitialState.spec 2 2) 0.01

    let o =
        { SimulationOptions.defaults with
            Dim = 10_000
            Seeds = 1
            MaxParallelism = 1
        }

    [<Benchmark(OperationsPerInvoke = 100)>]
    member _.Step() =
        // t = steps / d: t = 0.01 is 100 steps at d = 1e4.
        OnlineCommitteeSim.simulate o { Committee.defaultSettings with SaveAt = [| 0.0; 0.01 |] } problem
