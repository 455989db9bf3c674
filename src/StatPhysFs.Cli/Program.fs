module StatPhysFs.Cli.Program

open System
open StatPhysFs.Cli.Args

let usage =
    """statphys: high-dimensional theory of SGD learning dynamics, checked against simulation.

commands:
  statphys demo [--out DIR]              the showcase: theory against simulation, data and figures in DIR
  statphys online linear [options]       online SGD on linear regression (statphys online linear --help)
  statphys online committee [options]    two-layer teacher-student networks, K x M (statphys online committee --help)
  statphys dmft glm [options]            multi-pass SGD on a GLM: DMFT of the SGF (statphys dmft glm --help)
  statphys dmft committee [options]      multi-pass SGD on a two-layer network: DMFT (k x k kernels)
  statphys simulate sgf|sgd [options]    the finite-d SGF or real mini-batch SGD on n = alpha d samples
  statphys sde [options]                 SGD against its SME / SMF at small learning rate (statphys sde --help)
  statphys sde weak-order [options]      weak-order slopes of GF, SME, SMF on exact oracles, with a log-log plot
  statphys sweep run|merge|plot|slurm    grids of any command: resumable, parallel, Slurm arrays (statphys sweep)
  statphys help                          this text"""

let dispatch (argv: string list) =
    match argv with
    | []
    | [ "help" ]
    | [ "--help" ]
    | [ "-h" ] ->
        printfn "%s" usage
        0
    | "demo" :: rest when List.contains "--help" rest ->
        printfn "%s" Demo.usage
        0
    | "demo" :: rest -> Demo.main rest
    | "online" :: "linear" :: rest when List.contains "--help" rest ->
        printfn "%s" OnlineLinearCommand.usage
        0
    | "online" :: "linear" :: rest -> OnlineLinearCommand.main rest
    | "online" :: "committee" :: rest when List.contains "--help" rest ->
        printfn "%s" CommitteeCommand.usage
        0
    | "online" :: "committee" :: rest -> CommitteeCommand.main rest
    | "dmft" :: "glm" :: rest when List.contains "--help" rest ->
        printfn "%s" DmftCommand.usageGlm
        0
    | "dmft" :: "glm" :: rest -> DmftCommand.mainGlm rest
    | "dmft" :: "committee" :: rest when List.contains "--help" rest ->
        printfn "%s" DmftCommand.usageCommittee
        0
    | "dmft" :: "committee" :: rest -> DmftCommand.mainCommittee rest
    | "dmft" :: _ -> raise (UsageError "statphys dmft needs a model: glm or committee")
    | "simulate" :: kind :: rest when List.contains "--help" rest && (kind = "sgf" || kind = "sgd") ->
        printfn "%s" DmftCommand.usageSimulate
        0
    | "simulate" :: ("sgf" | "sgd" as kind) :: rest -> DmftCommand.mainSimulate kind rest
    | "simulate" :: _ -> raise (UsageError "statphys simulate needs a process: sgf or sgd")
    | "sde" :: rest when List.contains "--help" rest ->
        printfn "%s" SdeCommand.usage
        0
    | "sde" :: rest -> SdeCommand.main rest
    | "sweep" :: rest -> SweepCommand.main rest
    | "online" :: _ -> raise (UsageError "statphys online needs a model: linear or committee")
    | cmd :: _ -> raise (UsageError(sprintf "unknown command '%s'" cmd))

[<EntryPoint>]
let main argv =
    try
        dispatch (List.ofArray argv)
    with
    | UsageError msg ->
        eprintfn "statphys: %s" msg
        eprintfn "run 'statphys help' for usage"
        2
    | :? ArgumentException as e ->
        // Parameter validation from the library: it names the parameter and its valid range.
        eprintfn "statphys: invalid argument: %s" e.Message
        2
