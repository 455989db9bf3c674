module StatPhysFs.Cli.Program

open System
open StatPhysFs.Cli.Args

let usage =
    """statphys: high-dimensional theory of SGD learning dynamics, checked against simulation.

commands:
  statphys demo [--out DIR]              the showcase: theory against simulation, data and figures in DIR
  statphys online linear [options]       online SGD on linear regression (statphys online linear --help)
  statphys online committee [options]    two-layer teacher-student networks, K x M (statphys online committee --help)
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
