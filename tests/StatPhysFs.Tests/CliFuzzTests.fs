/// Fuzzing the command line in-process: generated argument lists (valid flags with hostile values, unknown and
/// duplicated flags, bad files and output paths) must end in exit code 0 or 2 with one clean line on error (1 only
/// for an internal failure, also one clean line), never a stack trace, never NaN or null in a completed result,
/// and in bounded time.
module StatPhysFs.Tests.CliFuzzTests

open System
open System.Diagnostics
open System.IO
open System.Text.Json
open Expecto
open FsCheck
open FsCheck.FSharp
open StatPhysFs.Tests.Prop

/// Command words, the options the command declares, and base options that keep every case small and fast.
let private commands =
    [
        [ "online"; "linear" ],
        [ "rho"; "noise-var"; "lr"; "ridge"; "batch"; "m0"; "q0"; "t-end"; "points"; "grid"; "solver"; "rtol"; "dt"
          "dim"; "seeds"; "seed"; "out"; "plot"; "divergence-bound"; "simulate"; "progress" ],
        [ "t-end", "2"; "points", "5" ]
        [ "online"; "committee" ],
        [ "K"; "M"; "student"; "teacher"; "lr"; "lr2"; "noise-var"; "ridge"; "batch"; "momentum"; "schedule"
          "schedule-c"; "init"; "seed"; "t-end"; "points"; "grid"; "rtol"; "dim"; "seeds"; "out"; "plot"; "simulate"
          "normalised" ],
        [ "t-end", "3"; "points", "4"; "dim", "40"; "seeds", "2"; "rtol", "1e-6" ]
        [ "dmft"; "glm" ],
        [ "loss"; "teacher"; "rho"; "alpha"; "tau"; "ridge"; "noise-var"; "dt"; "t-end"; "q0"; "mc-samples"; "replicas"
          "seed"; "strategy"; "iterations"; "dim"; "seeds"; "batch"; "sampling"; "out"; "plot"; "exact"; "continuous"
          "extrapolate"; "simulate"; "sgd"; "no-kernels" ],
        [ "mc-samples", "100"; "t-end", "0.6"; "dt", "0.2"; "dim", "40"; "seeds", "2"; "replicas", "2" ]
        [ "dmft"; "committee" ],
        [ "student"; "teacher"; "v"; "v-teacher"; "alpha"; "tau"; "ridge"; "dt"; "t-end"; "q0"; "mc-samples"; "out" ],
        [ "mc-samples", "100"; "t-end", "0.4"; "dt", "0.2"; "replicas", "2" ]
        [ "simulate"; "sgf" ],
        [ "model"; "alpha"; "tau"; "dt"; "t-end"; "dim"; "seeds"; "out" ],
        [ "t-end", "0.6"; "dt", "0.2"; "dim", "40"; "seeds", "2" ]
        [ "simulate"; "sgd" ],
        [ "model"; "alpha"; "tau"; "dt"; "t-end"; "dim"; "seeds"; "batch"; "sampling"; "out" ],
        [ "t-end", "0.6"; "dt", "0.2"; "dim", "40"; "seeds", "2" ]
        [ "sde" ],
        [ "problem"; "params"; "n"; "ridge"; "width"; "model"; "scheme"; "substeps"; "lr"; "t-end"; "batch"
          "sampling"; "inits"; "paths"; "seed"; "out"; "divergence-bound" ],
        [ "paths", "64"; "width", "8" ]
        [ "sde"; "weak-order" ], [ "lrs"; "t-end"; "ridge"; "params"; "n"; "out"; "plot" ], [ "t-end", "0.5" ]
    ]

/// Bad files and output places, made once per run in a temporary folder.
let private scratch =
    lazy
        (let dir = Path.Combine(Path.GetTempPath(), "statphys-fuzz-" + string (Process.GetCurrentProcess().Id))
         Directory.CreateDirectory dir |> ignore
         File.WriteAllText(Path.Combine(dir, "empty.json"), "")
         File.WriteAllText(Path.Combine(dir, "garbage.json"), "{\"Q\": [[1, 0], [0")
         File.WriteAllText(Path.Combine(dir, "shape.json"), "{\"Q\": [[1,0,0],[0,1,0],[0,0,1]], \"R\": [[0,0],[0,0]]}")
         File.WriteAllText(Path.Combine(dir, "types.json"), "{\"Q\": \"x\", \"R\": [[null, 1], [true, 2]]}")
         File.WriteAllText(Path.Combine(dir, "good.json"), "{\"Q\": [[0.3, 0], [0, 0.3]], \"R\": [[0.01, 0], [0, 0.01]]}")
         dir)

/// Hostile and ordinary values for any option.
let private values () =
    let d = scratch.Value

    [
        "-1"; "0"; "1"; "2"; "0.5"; "3"; "10"; "1e308"; "-1e308"; "1e-300"; "nan"; "NaN"; "inf"; "-inf"; "abc"; ""
        "2147483648"; "-2147483649"; "1e9"; "0.1,0.1,0.1"; "1,2"; ","; "0.2,0.1"; "erf"; "relu"; "tanh"; "square"
        "logistic"; "sign"; "smf2"; "sgd"; "em"; "heun"; "rk4"; "euler"; "log"; "without"; "inverse"; "fixed-point"
        "small"; "random"; "informed"
        Path.Combine(d, "out.json"); Path.Combine(d, "out.csv"); Path.Combine(d, "fig.svg"); Path.Combine(d, "x.txt")
        Path.Combine(d, "missing", "out.json"); "/proc/x.json"; "/proc/x.svg"; d
        Path.Combine(d, "empty.json"); Path.Combine(d, "garbage.json"); Path.Combine(d, "shape.json")
        Path.Combine(d, "types.json"); Path.Combine(d, "good.json"); Path.Combine(d, "nosuch.json")
    ]

/// One generated command line: a command, 0-4 of its options (or unknown ones) with values from the hostile list,
/// occasionally a duplicate or the --name=value form, on top of base options that keep the case fast.
let private genArgs =
    gen {
        let! cmdIndex = Gen.choose (0, commands.Length - 1)
        let words, opts, baseOpts = commands[cmdIndex]
        let vals = values ()
        let! count = Gen.choose (0, 4)

        let! picks =
            Gen.listOfLength
                count
                (gen {
                    let! unknown = Gen.frequency [ 9, Gen.constant false; 1, Gen.constant true ]
                    let! name = Gen.elements (if unknown then [ "bogus"; "K2"; "-"; "out2" ] else opts)
                    let! v =
                        Gen.frequency
                            [
                                3, Gen.elements vals
                                2, Gen.elements [ "0.1"; "0.2"; "0.5"; "1"; "2"; "3"; "4"; "0.3"; "0.05"; "1e-4" ]
                            ]

                    let! form = Gen.choose (0, 9)
                    let! valueless = Gen.frequency [ 9, Gen.constant false; 1, Gen.constant true ]
                    return name, v, form, valueless
                })

        let! duplicate = Gen.frequency [ 9, Gen.constant false; 1, Gen.constant true ]

        let picks =
            if duplicate && not picks.IsEmpty then picks @ [ List.head picks ] else picks

        let chosen = picks |> List.map (fun (n, _, _, _) -> n) |> Set.ofList

        let baseArgs =
            baseOpts
            |> List.filter (fun (n, _) -> not (chosen.Contains n))
            |> List.collect (fun (n, v) -> [ "--" + n; v ])

        let fuzzed =
            picks
            |> List.collect (fun (n, v, form, valueless) ->
                if valueless then [ "--" + n ]
                elif form = 0 then [ sprintf "--%s=%s" n v ]
                else [ "--" + n; v ])

        // A work budget of a few seconds: anything larger must be refused up front (exit 2), not run.
        return words @ baseArgs @ fuzzed @ [ "--max-time"; "4" ]
    }

type Outcome =
    | CleanError
    | SaneResult
    | Crash of string
    | Hang of float
    | SilentWrong of string

/// Run one command line in-process with captured standard output and error, and classify the outcome.
let runWith (source: Threading.CancellationTokenSource) (argv: string list) =
    let out = new StringWriter()
    let err = new StringWriter()
    let oldOut, oldErr = Console.Out, Console.Error
    Console.SetOut out
    Console.SetError err
    let sw = Stopwatch.StartNew()

    let code =
        try
            try
                Some(StatPhysFs.Cli.Program.runWith source argv)
            with e ->
                err.WriteLine(sprintf "UNHANDLED %s" (e.ToString()))
                None
        finally
            Console.SetOut oldOut
            Console.SetError oldErr

    let seconds = sw.Elapsed.TotalSeconds
    let stderr = err.ToString()
    let stdout = out.ToString()

    let traced =
        stderr.Contains "   at " || stderr.Contains "UNHANDLED" || stderr.Contains "Unhandled exception"

    if not (isNull (Environment.GetEnvironmentVariable "STATPHYS_FUZZ_VERBOSE")) then
        let first =
            stderr.Split('\n') |> Array.tryFind (fun l -> l.StartsWith "statphys: " && not (l.Contains "warning"))

        eprintfn "FUZZ rc=%A %.2fs %s => %s" code seconds (String.concat " " argv) (defaultArg first "")

    let outcome =
        match code with
        | None -> Crash stderr
        | Some _ when traced -> Crash stderr
        | Some _ when seconds > 30.0 -> Hang seconds
        | Some 2
        | Some 1 ->
            let lines =
                stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                |> Array.filter (fun l -> l.StartsWith "statphys: " && not (l.Contains "warning:"))

            if lines.Length >= 1 then CleanError else Crash("no one-line message: " + stderr)
        | Some 0 ->
            // The document: from --out when it names a JSON file, else standard output.
            let outFile =
                argv
                |> List.pairwise
                |> List.tryPick (fun (a, b) -> if a = "--out" then Some b else None)
                |> Option.orElse (argv |> List.tryPick (fun a -> if a.StartsWith "--out=" then Some(a.Substring 6) else None))

            let json =
                match outFile with
                | Some f when f.EndsWith ".json" && File.Exists f -> Some(File.ReadAllText f)
                | Some f when File.Exists f -> None
                | Some f -> Some "" // --out given, exit 0, but no file: wrong
                | None -> if stdout.TrimStart().StartsWith "{" then Some stdout else None

            match json with
            | None -> SaneResult
            | Some "" -> SilentWrong "exit 0 but the --out file is missing"
            | Some text ->
                try
                    use doc = JsonDocument.Parse text
                    let root = doc.RootElement
                    let meta = root.GetProperty "meta"

                    let status =
                        match meta.TryGetProperty "status" with
                        | true, s -> s.GetString()
                        | _ -> "completed"

                    let series = root.GetProperty "series"

                    let bad =
                        series.EnumerateObject()
                        |> Seq.tryFind (fun p ->
                            p.Value.EnumerateArray() |> Seq.exists (fun v -> v.ValueKind <> JsonValueKind.Number))

                    match status, bad with
                    | "completed", Some p -> SilentWrong(sprintf "status completed but series %s holds null" p.Name)
                    | _ -> SaneResult
                with e ->
                    SilentWrong("unreadable JSON: " + e.Message)
        | Some c -> Crash(sprintf "exit code %d" c)

    outcome, code, seconds

let run (argv: string list) =
    use source = new Threading.CancellationTokenSource()
    runWith source argv

/// Counters for the report table.
type Tally() =
    member val Tried = 0 with get, set
    member val Clean = 0 with get, set
    member val Sane = 0 with get, set
    member val Crashes = ResizeArray<string * string>()
    member val Hangs = ResizeArray<string * float>()
    member val Wrong = ResizeArray<string * string>()

    member t.Add(argv: string list, o: Outcome) =
        t.Tried <- t.Tried + 1
        let line = String.concat " " argv

        match o with
        | CleanError -> t.Clean <- t.Clean + 1
        | SaneResult -> t.Sane <- t.Sane + 1
        | Crash s -> t.Crashes.Add(line, s)
        | Hang s -> t.Hangs.Add(line, s)
        | SilentWrong s -> t.Wrong.Add(line, s)

    member t.Table =
        sprintf
            "CLI fuzz: tried %d, clean errors %d, sane results %d, crashes %d, hangs %d, silent wrong %d"
            t.Tried
            t.Clean
            t.Sane
            t.Crashes.Count
            t.Hangs.Count
            t.Wrong.Count

/// Hand-written cases from the issue: each must be a clean error or a result that says what happened.
let issueCases =
    [
        [ "sde"; "--t-end"; "1e9" ]
        [ "sde"; "--lr"; "10" ]
        [ "sde"; "--lr"; "2"; "--t-end"; "1" ]
        [ "sde"; "--lr"; "3"; "--t-end"; "30"; "--model"; "smf2"; "--paths"; "100" ]
        [ "sde"; "weak-order"; "--t-end"; "-1" ]
        [ "sde"; "weak-order"; "--ridge"; "-10" ]
        [ "sde"; "weak-order"; "--lrs"; "0.1,0.1,0.1" ]
        [ "sde"; "weak-order"; "--lrs"; "abc" ]
        [ "online"; "linear"; "--rtol"; "10" ]
        [ "online"; "linear"; "--rtol"; "1e-300" ]
        [ "online"; "linear"; "--solver"; "rk4"; "--dt"; "10" ]
        [ "online"; "committee"; "--lr"; "1e308"; "--t-end"; "5" ]
        [ "sde"; "--problem"; "logistic"; "--ridge"; "-5" ]
        [ "simulate"; "sgd"; "--tau"; "0" ]
        [ "online"; "linear"; "--out"; "/nonexistent-dir/x.json" ]
        [ "online"; "linear"; "--out"; "/proc/x.json" ]
        [ "dmft"; "glm"; "--t-end"; "1000"; "--dt"; "0.01" ]
        [ "dmft"; "glm"; "--mc-samples"; "10000000" ]
        [ "online"; "committee"; "--K"; "200" ]
        [ "sde"; "--paths"; "100000000" ]
        [ "sde"; "--lr"; "1e-9" ]
    ]

/// Cases for the CI property; STATPHYS_FUZZ_CASES raises it for a longer local campaign.
let private fuzzCases () =
    match Environment.GetEnvironmentVariable "STATPHYS_FUZZ_CASES" with
    | null -> 400
    | v ->
        match Int32.TryParse v with
        | true, n when n > 0 -> n
        | _ -> 400

[<Tests>]
let tests =
    testSequenced
    <| testList
        "CliFuzz"
        [
            testCase "the issue's cases: clean errors or honest results, no crash, hang or silent wrong result"
            <| fun () ->
                let t = Tally()

                for argv in issueCases do
                    let o, _, _ = run argv
                    t.Add(argv, o)

                let problems =
                    [ for l, s in t.Crashes -> "crash: " + l + " -> " + s ]
                    @ [ for l, s in t.Hangs -> sprintf "hang: %s (%.0f s)" l s ]
                    @ [ for l, s in t.Wrong -> "wrong: " + l + " -> " + s ]

                Expect.isEmpty problems (t.Table + "\n" + String.concat "\n" problems)

            testCase "committee above eta_max without --analysis: the growing norms are a warning, not a silent completion"
            <| fun () ->
                // The oracle is the analysis itself (the Jacobian pencil's eta_max), asked for separately.
                let analysed = Path.Combine(Path.GetTempPath(), sprintf "statphys-etamax-%d.json" Environment.ProcessId)
                let _ = run [ "online"; "committee"; "--lr"; "10"; "--t-end"; "50"; "--points"; "6"; "--analysis"; "--out"; analysed ]
                use doc = JsonDocument.Parse(File.ReadAllText analysed)
                let etaMax = doc.RootElement.GetProperty("meta").GetProperty("analysis").GetProperty("eta_max").GetDouble()
                Expect.isLessThan etaMax 10.0 "eta_max of the K = M = 2 erf committee is below the learning rate 10"
                Expect.isGreaterThan etaMax 0.5 "and above 0.5"

                let warned (lr: string) =
                    let out = Path.Combine(Path.GetTempPath(), sprintf "statphys-lr%s-%d.json" lr Environment.ProcessId)
                    let o, _, _ = run [ "online"; "committee"; "--lr"; lr; "--t-end"; "50"; "--points"; "6"; "--out"; out ]
                    Expect.equal o SaneResult "a completed run"
                    use d = JsonDocument.Parse(File.ReadAllText out)

                    match d.RootElement.GetProperty("meta").TryGetProperty "warnings" with
                    | true, ws -> ws.EnumerateArray() |> Seq.exists (fun w -> w.GetString().Contains "grow without bound")
                    | _ -> false

                Expect.isTrue (warned "10") "--lr 10 (above eta_max) warns that the norms grow"
                Expect.isFalse (warned "0.5") "--lr 0.5 (below eta_max) does not"

            testCase "Ctrl-C during an ODE command: it stops within a second and says cancelled, keeping what it computed"
            <| fun () ->
                let out = Path.Combine(Path.GetTempPath(), sprintf "statphys-cancel-%d.json" Environment.ProcessId)
                // K = M = 8 to t = 1e5 takes minutes; cancel it after half a second, as Ctrl-C would.
                use source = new Threading.CancellationTokenSource()

                let work =
                    Threading.Tasks.Task.Run(fun () ->
                        runWith source [ "online"; "committee"; "--K"; "8"; "--M"; "8"; "--t-end"; "100000"; "--out"; out ])

                Threading.Thread.Sleep 500
                let sw = Stopwatch.StartNew()
                source.Cancel()
                Expect.isTrue (work.Wait(TimeSpan.FromSeconds 10.0)) "the command stops after the cancel"
                let o, code, _ = work.Result
                Expect.isLessThan sw.Elapsed.TotalSeconds 5.0 "promptly (the solver checks the token every step)"
                Expect.equal code (Some 0) "the ODE keeps its partial solution: exit 0"
                Expect.equal o SaneResult "a sane document"
                use d = JsonDocument.Parse(File.ReadAllText out)
                let meta = d.RootElement.GetProperty "meta"
                Expect.equal (meta.GetProperty("status").GetString()) "cancelled" "status cancelled"
                Expect.isLessThan (meta.GetProperty("stopped_at").GetDouble()) 100000.0 "stopped before t-end"

            testCase "generated command lines: exit 0 or 2, one clean line, no null in a completed result, bounded time"
            <| fun () ->
                let t = Tally()
                let n = fuzzCases ()
                let total = Stopwatch.StartNew()

                let property =
                    Prop.forAll (Arb.fromGen genArgs) (fun argv ->
                        let o, _, _ = run argv
                        t.Add(argv, o)

                        match o with
                        | CleanError
                        | SaneResult -> true
                        | Crash s -> failwithf "crash on %s: %s" (String.concat " " argv) s
                        | Hang s -> failwithf "hang (%.0f s) on %s" s (String.concat " " argv)
                        | SilentWrong s -> failwithf "silent wrong result on %s: %s" (String.concat " " argv) s)

                Check.One(
                    Config.QuickThrowOnFailure.WithMaxTest(n).WithReplay(
                        Some
                            {
                                Rnd = Rnd(0x5EEDUL, 0x9E3779B97F4A7C15UL)
                                Size = None
                            }
                    ),
                    property
                )

                eprintfn "%s (%.0f s)" t.Table total.Elapsed.TotalSeconds
                Expect.equal t.Tried n "every case ran"
        ]

/// Standard output, standard error and the exit code of one in-process command line.
let private capture (argv: string list) =
    let out = new StringWriter()
    let err = new StringWriter()
    let oldOut, oldErr = Console.Out, Console.Error
    Console.SetOut out
    Console.SetError err

    let code =
        try
            StatPhysFs.Cli.Program.run argv
        finally
            Console.SetOut oldOut
            Console.SetError oldErr

    code, out.ToString(), err.ToString()

/// The error lines a refused command line printed (warnings excluded).
let private errorLines (err: string) =
    err.Split('\n', StringSplitOptions.RemoveEmptyEntries)
    |> Array.filter (fun l -> not (l.Contains "warning:"))

/// The declarative parser's contract (issue 8): each command accepts exactly its own options, refuses unknown and
/// repeated ones with exit code 2 and one line, reads --name=value, and its generated help shows its own defaults.
/// The expected values come from the issue and the spec (the committee DMFT's defaults), not from the declarations.
[<Tests>]
let parserTests =
    testSequenced
    <| testList
        "CliParser"
        [
            testCase "options of another command are refused: exit 2, one line naming the option"
            <| fun () ->
                for argv, option in
                    [
                        [ "dmft"; "committee"; "--loss"; "square" ], "--loss"
                        [ "dmft"; "glm"; "--v"; "1,1" ], "--v"
                        [ "simulate"; "sgf"; "--mc-samples"; "100" ], "--mc-samples"
                        [ "simulate"; "sgf"; "--batch"; "2" ], "--batch"
                        [ "sde"; "--lrs"; "0.1,0.05" ], "--lrs"
                        [ "sde"; "weak-order"; "--paths"; "10" ], "--paths"
                        [ "online"; "linear"; "--K"; "2" ], "--K"
                        // The renamed flags are gone (no deprecated aliases).
                        [ "dmft"; "glm"; "--samples"; "100" ], "--samples"
                        [ "sde"; "--eta"; "0.1" ], "--eta"
                        [ "sde"; "--horizon"; "1" ], "--horizon"
                        [ "sde"; "--dim"; "3" ], "--dim"
                        [ "sde"; "--points"; "2" ], "--points"
                        [ "sde"; "weak-order"; "--etas"; "0.1,0.05" ], "--etas"
                    ]
                    do
                    let code, out, err = capture argv
                    let lines = errorLines err
                    Expect.equal code 2 (sprintf "%A: exit code 2" argv)
                    Expect.equal lines.Length 1 (sprintf "%A: one line on standard error, got %A" argv lines)
                    Expect.stringContains lines[0] option (sprintf "%A: the line names the option" argv)
                    Expect.equal out "" (sprintf "%A: nothing on standard output" argv)

            testCase "a repeated option and a value of the wrong kind are refused with one line"
            <| fun () ->
                for argv, text in
                    [
                        [ "online"; "linear"; "--lr"; "0.5"; "--lr=0.4" ], "--lr given twice"
                        [ "online"; "linear"; "--simulate"; "--simulate" ], "--simulate given twice"
                        [ "online"; "linear"; "--max-time"; "5"; "--max-time"; "6" ], "--max-time given twice"
                        [ "online"; "linear"; "--points"; "2.5" ], "--points expects an integer"
                        [ "online"; "linear"; "--lr"; "nan" ], "--lr expects a finite number"
                        [ "online"; "linear"; "--grid"; "cubic" ], "--grid must be one of linear|log"
                        [ "online"; "linear"; "--lr" ], "--lr"
                    ]
                    do
                    let code, _, err = capture argv
                    let lines = errorLines err
                    Expect.equal code 2 (sprintf "%A: exit code 2" argv)
                    Expect.equal lines.Length 1 (sprintf "%A: one line, got %A" argv lines)
                    Expect.stringContains lines[0] text (sprintf "%A" argv)

            testCase "--name=value reads as --name value"
            <| fun () ->
                let doc (argv: string list) =
                    let code, out, _ = capture argv
                    Expect.equal code 0 (sprintf "%A runs" argv)
                    use d = JsonDocument.Parse out
                    d.RootElement.GetProperty("parameters").GetProperty("lr").GetDouble()

                let common = [ "online"; "linear"; "--t-end"; "1"; "--points"; "3" ]
                Expect.equal (doc (common @ [ "--lr=0.25" ])) 0.25 "--lr=0.25"
                Expect.equal (doc (common @ [ "--lr"; "0.25" ])) 0.25 "--lr 0.25"

            testCase "dmft committee --help shows the committee defaults, not the GLM ones"
            <| fun () ->
                let code, out, _ = capture [ "dmft"; "committee"; "--help" ]
                Expect.equal code 0 "help exits 0"

                let line (flag: string) =
                    out.Split('\n') |> Array.find (fun l -> l.TrimStart().StartsWith(flag + " "))

                // The committee defaults of the issue: dt 0.2, ridge 0.01, noise-var 0.01, q0 0.25.
                Expect.stringContains (line "--dt") "[default: 0.2]" "dt"
                Expect.stringContains (line "--ridge") "[default: 0.01]" "ridge"
                Expect.stringContains (line "--noise-var") "[default: 0.01]" "noise-var"
                Expect.stringContains (line "--q0") "[default: 0.25]" "q0"
                Expect.isFalse (out.Contains "--loss") "no GLM option in the committee's help"

                let _, glm, _ = capture [ "dmft"; "glm"; "--help" ]
                let glmLine = glm.Split('\n') |> Array.find (fun l -> l.TrimStart().StartsWith "--dt ")
                Expect.stringContains glmLine "[default: 0.1]" "the GLM's own dt"

            testCase "the help's defaults are the ones the command uses (a run without the option writes them)"
            <| fun () ->
                // online linear: the documented defaults of the model (rho 1, noise 0.1, lr 0.5, q0 0.1).
                let code, out, _ = capture [ "online"; "linear"; "--t-end"; "1"; "--points"; "3" ]
                Expect.equal code 0 "runs"
                use d = JsonDocument.Parse out
                let p = d.RootElement.GetProperty "parameters"
                Expect.equal (p.GetProperty("lr").GetDouble()) 0.5 "lr"
                Expect.equal (p.GetProperty("noise_var").GetDouble()) 0.1 "noise_var"
                Expect.equal (p.GetProperty("q0").GetDouble()) 0.1 "q0"

            testCase "--version prints the assembly's version"
            <| fun () ->
                let code, out, _ = capture [ "--version" ]
                Expect.equal code 0 "exit 0"
                let v = typeof<StatPhysFs.Cli.Validate.Budget>.Assembly.GetName().Version
                Expect.equal (out.Trim()) (sprintf "statphys %d.%d.%d" v.Major v.Minor v.Build) "statphys X.Y.Z"
                Expect.isTrue (v.Major > 0 || v.Minor > 0) "a real version, not 0.0.0"
        ]

