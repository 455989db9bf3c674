module StatPhysFs.Micro.Program

open BenchmarkDotNet.Configs
open BenchmarkDotNet.Jobs
open BenchmarkDotNet.Running
open BenchmarkDotNet.Toolchains.InProcess.Emit

/// `./build.sh bench micro [BenchmarkDotNet args]`, e.g. `--filter *ErfI4*`. In process and short by default, so a
/// whole run takes minutes, not an hour; pass `--job default` for the long statistics.
[<EntryPoint>]
let main argv =
    let config =
        DefaultConfig.Instance
            .AddJob(Job.ShortRun.WithToolchain(InProcessEmitToolchain.Instance))
            .WithOptions(ConfigOptions.DisableOptimizationsValidator)

    let args = if argv.Length = 0 then [| "--filter"; "*" |] else argv
    BenchmarkSwitcher.FromAssembly(typeof<Kernels.ErfI4>.Assembly).Run(args, config) |> ignore
    0
