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
  statphys help                          this text (statphys COMMAND --help: the command's options and defaults)
  statphys --version                     the version
global options (any command):
  --max-memory SIZE   refuse runs estimated above SIZE (e.g. 8G; default 75% of physical memory)
  --max-time SECONDS  refuse runs whose estimated work exceeds SECONDS (default 3600)
  --name=value is accepted wherever --name value is; an option a command does not declare is refused.
exit codes: 0 done (the document's meta.status says completed, diverged, cancelled), 2 bad input or a request
over budget, 1 internal failure, 130 cancelled (Ctrl-C, SIGTERM) before a document could be written; every error is
one line on standard error."""

/// The version of this program (the assembly's, from Directory.Build.props).
let version () =
    let v = Reflection.Assembly.GetExecutingAssembly().GetName().Version
    $"%d{v.Major}.%d{v.Minor}.%d{v.Build}"

/// The declaration of the command named by the leading words, if any (for --help).
let private declaration (words: string list) =
    match words with
    | "demo" :: _ -> Some Options.demo
    | "online" :: "linear" :: _ -> Some Options.onlineLinear
    | "online" :: "committee" :: _ -> Some Options.onlineCommittee
    | "dmft" :: "glm" :: _ -> Some Options.dmftGlm
    | "dmft" :: "committee" :: _ -> Some Options.dmftCommittee
    | "simulate" :: ("sgf" | "sgd" as kind) :: _ -> Some(Options.simulate kind)
    | "sde" :: "weak-order" :: _ -> Some Options.sdeWeakOrder
    | "sde" :: _ -> Some Options.sde
    | "sweep" :: "run" :: _ -> Some Options.sweepRun
    | "sweep" :: "merge" :: _ -> Some Options.sweepMerge
    | "sweep" :: "plot" :: _ -> Some Options.sweepPlot
    | "sweep" :: "slurm" :: _ -> Some Options.sweepSlurm
    | _ -> None

let private isHelp (a: string) = a = "--help" || a = "-h"

let dispatch (ctx: Validate.Context) (argv: string list) =
    match argv with
    | []
    | [ "help" ]
    | [ "--help" ]
    | [ "-h" ] ->
        printfn $"%s{usage}"
        0
    | [ "--version" ] ->
        printfn $"statphys %s{(version ())}"
        0
    | _ when List.exists isHelp argv && (declaration argv).IsSome ->
        printfn $"%s{(Args.help (declaration argv).Value)}"
        0
    | "demo" :: rest -> Demo.main ctx rest
    | "online" :: "linear" :: rest -> OnlineLinearCommand.main ctx rest
    | "online" :: "committee" :: rest -> CommitteeCommand.main ctx rest
    | "dmft" :: "glm" :: rest -> DmftCommand.mainGlm ctx rest
    | "dmft" :: "committee" :: rest -> DmftCommand.mainCommittee ctx rest
    | "dmft" :: _ -> raise (UsageError "statphys dmft needs a model: glm or committee")
    | "simulate" :: ("sgf" | "sgd" as kind) :: rest -> DmftCommand.mainSimulate ctx kind rest
    | "simulate" :: _ -> raise (UsageError "statphys simulate needs a process: sgf or sgd")
    | "sde" :: rest -> SdeCommand.main ctx rest
    | [ "sweep" ]
    | [ "sweep"; "--help" ]
    | [ "sweep"; "-h" ] ->
        printfn $"%s{SweepCommand.usage}"
        0
    | "sweep" :: rest -> SweepCommand.main ctx rest
    | "online" :: _ -> raise (UsageError "statphys online needs a model: linear or committee")
    | cmd :: _ -> raise (UsageError($"unknown command '%s{cmd}'"))

/// The command words before the options, for the output checks.
let private commandWords (argv: string list) =
    argv
    |> List.takeWhile (fun (a: string) -> not (a.StartsWith "--"))
    |> List.truncate 2

/// One line for an exception that is not the user's fault: no stack trace ever reaches the user.
let private internalError (what: string) (msg: string) =
    eprintfn $"statphys: %s{what}: %s{(msg.Replace('\n', ' ').Replace('\r', ' '))}"
    1

/// Map an exception to one line on standard error and an exit code: 2 for bad input, 1 for an internal failure.
let rec report (e: exn) =
    match e with
    | UsageError msg ->
        // One line: the message names the option (an unknown one lists the command's options; COMMAND --help has
        // their defaults).
        eprintfn $"statphys: %s{(msg.Replace('\n', ' ').Replace('\r', ' '))}"
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
        eprintfn $"statphys: invalid argument: %s{(e.Message.Replace('\n', ' '))}"
        2
    | :? FormatException as e ->
        eprintfn $"statphys: invalid input: %s{e.Message}"
        2
    | :? Text.Json.JsonException as e ->
        eprintfn $"statphys: invalid JSON: %s{e.Message}"
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
    | e -> internalError ($"internal error (%s{(e.GetType().Name)})") e.Message

/// The whole command line with the given cancellation source (`main` wires Ctrl-C and SIGTERM to it; tests cancel it
/// themselves): global options, output checks before any work, the command; never throws.
let runWith (source: Threading.CancellationTokenSource) (argv: string list) =
    try
        // Budgets are per invocation: they travel in the context, never in a global.
        let budget, argv = Validate.Budget.takeGlobal argv
        let words = commandWords argv

        let ctx: Validate.Context =
            {
                Budget = budget
                Token = source.Token
            }

        if not (List.exists isHelp argv) then
            Validate.outputs words argv

        dispatch ctx argv
    with e ->
        report e

/// The whole command line, with a fresh cancellation source that no signal reaches (in-process callers).
let run (argv: string list) =
    use source = new Threading.CancellationTokenSource()
    runWith source argv

[<EntryPoint>]
let main argv =
    // The very first thing: from here on Ctrl-C and SIGTERM cancel the command (exit 130, or an ODE document with
    // status cancelled; a sweep keeps its finished points), however early they come; installed after the argument
    // checks, they left a window in which a signal killed the process (exit 143 for SIGTERM). Only the runtime's own
    // start-up and the modules' top-level values (constant text and option tables) still run before this line.
    use source = new Threading.CancellationTokenSource()
    use _interrupt = Interrupt.install source
    runWith source (List.ofArray argv)
