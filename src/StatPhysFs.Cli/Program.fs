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
  statphys help                          this text
global options (any command):
  --max-memory SIZE   refuse runs estimated above SIZE (e.g. 8G; default 75% of physical memory)
  --max-time SECONDS  refuse runs whose estimated work exceeds SECONDS (default 3600)
  --name=value is accepted wherever --name value is.
exit codes: 0 done (the document's meta.status says completed, diverged, cancelled), 2 bad input or a request
over budget, 1 internal failure, 130 cancelled (Ctrl-C, SIGTERM) before a document could be written; every error is
one line on standard error."""

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

/// The command words before the options, for the output checks.
let private commandWords (argv: string list) =
    argv |> List.takeWhile (fun (a: string) -> not (a.StartsWith "--")) |> List.truncate 2

/// One line for an exception that is not the user's fault: no stack trace ever reaches the user.
let private internalError (what: string) (msg: string) =
    eprintfn "statphys: %s: %s" what (msg.Replace('\n', ' ').Replace('\r', ' '))
    1

/// Map an exception to one line on standard error and an exit code: 2 for bad input, 1 for an internal failure.
let rec report (e: exn) =
    match e with
    | UsageError msg ->
        eprintfn "statphys: %s" msg
        eprintfn "run 'statphys help' for usage"
        2
    | :? AggregateException as a ->
        // Parallel loops wrap the real failure: report the first inner one.
        let inner = a.Flatten().InnerExceptions

        if inner.Count > 0 then
            report inner[0]
        else
            internalError "internal error" a.Message
    | :? ArgumentException as e ->
        // Parameter validation from the library: it names the parameter and its valid range.
        eprintfn "statphys: invalid argument: %s" (e.Message.Replace('\n', ' '))
        2
    | :? FormatException as e ->
        eprintfn "statphys: invalid input: %s" e.Message
        2
    | :? Text.Json.JsonException as e ->
        eprintfn "statphys: invalid JSON: %s" e.Message
        2
    | :? OutOfMemoryException ->
        internalError
            "out of memory"
            "the run needs more memory than the machine has; reduce its size (grid points, samples, dimension) or lower --max-memory to have it refused up front"
    | :? UnauthorizedAccessException as e -> internalError "cannot write" e.Message
    | :? IO.IOException as e -> internalError "input/output error" e.Message
    | :? OperationCanceledException ->
        // Ctrl-C or SIGTERM: files are written atomically, so nothing half-written is left behind.
        eprintfn "statphys: cancelled (Ctrl-C or SIGTERM); no output was written"
        130
    | :? OverflowException as e -> internalError "arithmetic overflow" e.Message
    | e when e.GetType().Name = "NonConvergenceException" -> internalError "a numerical algorithm failed" e.Message
    | e -> internalError (sprintf "internal error (%s)" (e.GetType().Name)) e.Message

/// The whole command line: global options, output checks before any work, the command; never throws.
let run (argv: string list) =
    try
        // Budgets are per invocation (the fuzz tests call `run` many times in one process).
        Validate.Budget.maxMemory <- 0.75 * Validate.Budget.physicalMemory ()
        Validate.Budget.maxTime <- 3600.0
        let argv = Validate.Budget.takeGlobal argv
        let words = commandWords argv

        if not (List.contains "--help" argv) then
            Validate.outputs words argv

        // A sweep handles Ctrl-C itself (it keeps its finished points); every other command stops and says cancelled.
        use _interrupt =
            match words with
            | "sweep" :: _ -> { new IDisposable with member _.Dispose() = () }
            | _ -> Interrupt.install ()

        dispatch argv
    with e ->
        report e

[<EntryPoint>]
let main argv =
    run (List.ofArray argv)
