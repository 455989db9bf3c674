/// `statphys sweep run|merge|plot|slurm`: grids of runs of any command, in-process, resumable, sharded for Slurm.
module StatPhysFs.Cli.SweepCommand

open System
open System.Diagnostics
open System.Globalization
open System.IO
open System.Text.Json
open System.Threading
open StatPhysFs.Sweep

let usage =
    """usage: statphys sweep run SPEC.json --out DIR [--parallel P] [--shard I/N] [--force]
       statphys sweep merge DIR --out TABLE.csv|TABLE.json [--no-wall-time]
       statphys sweep plot TABLE.csv|TABLE.json --x AXIS [--y AXIS] --z COLUMN --out FIG.png|FIG.svg
                           [--where AXIS=VALUE]... [--log-z]
       statphys sweep slurm SPEC.json --out DIR --tasks N [--cpus-per-task 1] [--time HH:MM:SS] [--partition P]
                            [--force] [--submit [--wait [--table TABLE.csv]]]
  (statphys sweep run|merge|plot|slurm --help: the options of each.)
  SPEC.json: {"command": "dmft glm", "fixed": {"exact": true, "t-end": 5},
              "axes": {"alpha": {"from": 0.25, "to": 4, "points": 9, "spacing": "log"}, "tau": [0, 0.5, 1]},
              "combine": "product"|"zip", "record": ["test_loss"], "at": [1, 5]}
  Flags as on the command line without dashes, true for a switch. Each point runs the command in this process;
  its row: the axis values, status (completed|diverged|failed), divergence_time, each recorded series at the final
  time and at each "at" time (column NAME@T), wall_time_s. Points already in DIR are skipped (resume); a different
  spec into an old DIR is refused unless --force. --parallel defaults to the number of cores for Monte-Carlo-free
  points and to 1 for points that simulate (they use every core themselves). Without --shard, the Slurm array
  variables SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT choose the shard when set.
  `run` ends with the line "sweep: C computed, S skipped, F failed" on standard error."""

/// A sweepable command: its name, the options it takes (valued and switches, from its declaration) and its entry
/// function.
type Sweepable =
    {
        Name: string
        Valued: string list
        Switches: string list
        Main: Validate.Context -> string list -> int
        /// Runs Monte Carlo (simulation) for these parameters: it parallelises itself.
        MonteCarlo: Map<string, ParamValue> -> bool
    }

let private has (p: Map<string, ParamValue>) name = p.TryFind name = Some(Switch true)

/// The value of the valued option `name`, or a usage error with `message` when it is missing.
let private required (a: Args.Parsed) name (message: string) =
    match a.Values.TryFind name with
    | Some v -> v
    | None -> raise (Args.UsageError message)

/// A command's entry: the option names come from its declaration `options`.
let private sweepable name options main monteCarlo =
    {
        Name = name
        Valued = Args.valuedNames options
        Switches = Args.switchNames options
        Main = main
        MonteCarlo = monteCarlo
    }

let commands: Sweepable list =
    [
        sweepable "online linear" Options.onlineLinear OnlineLinearCommand.main (fun p -> has p "simulate")
        sweepable "online committee" Options.onlineCommittee CommitteeCommand.main (fun p -> has p "simulate")
        sweepable "dmft glm" Options.dmftGlm DmftCommand.mainGlm (fun p ->
            not (has p "exact") || has p "simulate" || has p "sgd")
        sweepable "dmft committee" Options.dmftCommittee DmftCommand.mainCommittee (fun _ -> true)
        sweepable "simulate sgf" (Options.simulate "sgf") (fun ctx -> DmftCommand.mainSimulate ctx "sgf") (fun _ ->
            true)
        sweepable "simulate sgd" (Options.simulate "sgd") (fun ctx -> DmftCommand.mainSimulate ctx "sgd") (fun _ ->
            true)
        sweepable "sde" Options.sde SdeCommand.main (fun _ -> true)
        sweepable
            "sde weak-order"
            Options.sdeWeakOrder
            (fun ctx args -> SdeCommand.main ctx ("weak-order" :: args))
            (fun _ -> false)
    ]

/// Flags the sweep sets itself or that make no sense per point.
let private reserved =
    [
        "out", "the sweep sets each point's output"
        "plot", "plot the merged table with sweep plot"
    ]

let private fail (message: string) : 'a = raise (SpecError message)

/// The command of a spec, and a check of every flag against the options that command declares.
let resolve (spec: SweepSpec) : Sweepable =
    let cmd =
        match commands |> List.tryFind (fun c -> c.Name = spec.Command) with
        | Some c -> c
        | None ->
            fail
                $"""command: unknown command '%s{spec.Command}' (sweepable: %s{(commands |> List.map (fun c -> c.Name) |> String.concat ", ")})"""

    let check (field: string) (name: string) (v: ParamValue) =
        match List.tryFind (fst >> (=) name) reserved with
        | Some(_, why) -> fail $"%s{field}: --%s{name} is not allowed in a sweep (%s{why})"
        | None -> ()

        if List.contains name cmd.Switches then
            match v with
            | Switch _ -> ()
            | _ -> fail $"%s{field}: --%s{name} is a switch of '%s{cmd.Name}': give true or false"
        elif List.contains name cmd.Valued then
            match v with
            | Switch _ -> fail $"%s{field}: --%s{name} of '%s{cmd.Name}' takes a value, not true/false"
            | _ -> ()
        else
            fail
                $"""%s{field}: '%s{cmd.Name}' takes no option --%s{name} (valid: %s{(cmd.Valued @ cmd.Switches
                                                                                     |> List.filter (fun n -> not (List.exists (fst >> (=) n) reserved))
                                                                                     |> String.concat ", ")})"""

    for k, v in spec.Fixed do
        check ("fixed." + k) k v

    for a in spec.Axes do
        for v in a.Values do
            check ("axes." + a.Name) a.Name v

    cmd

/// The command-line tokens of a point's parameters.
let arguments (parameters: (string * ParamValue) list) =
    [
        for k, v in parameters do
            match v with
            | Switch true -> yield "--" + k
            | Switch false -> ()
            | v ->
                yield "--" + k
                yield ParamValue.text v
    ]

let private invariant (t: float) =
    t.ToString("R", CultureInfo.InvariantCulture)

/// Linear interpolation of (t, y) at time a; NaN outside the grid (or where y is missing).
let interpolate (t: float[]) (y: float[]) (a: float) =
    if t.Length = 0 || a < t[0] || a > t[t.Length - 1] then
        nan
    else
        let k = Array.findIndexBack (fun s -> s <= a) t

        if t[k] = a || k = t.Length - 1 then
            y[k]
        else
            let f = (a - t[k]) / (t[k + 1] - t[k])
            y[k] + f * (y[k + 1] - y[k])

/// One row of a run's JSON document: status, divergence time, the recorded series at the end and at `at`.
let summarise (record: string list) (at: float list) (json: string) : PointResult =
    use doc = JsonDocument.Parse json
    let root = doc.RootElement

    let floats (e: JsonElement) =
        [|
            for x in e.EnumerateArray() ->
                if x.ValueKind = JsonValueKind.Number then
                    x.GetDouble()
                else
                    nan
        |]

    let t = floats (root.GetProperty "t")

    let series =
        [
            for p in root.GetProperty("series").EnumerateObject() -> p.Name, floats p.Value
        ]

    let meta =
        match root.TryGetProperty "meta" with
        | true, m -> Some m
        | _ -> None

    let metaPath (path: string) =
        meta
        |> Option.bind (fun m ->
            path.Split '.'
            |> Array.fold
                (fun (e: JsonElement option) (part: string) ->
                    e
                    |> Option.bind (fun e ->
                        match e.ValueKind with
                        | JsonValueKind.Object ->
                            match e.TryGetProperty part with
                            | true, x -> Some x
                            | _ -> None
                        | _ -> None))
                (Some m))

    let metaString name =
        match metaPath name with
        | Some e when e.ValueKind = JsonValueKind.String -> Some(e.GetString())
        | _ -> None

    let metaNumber name =
        match metaPath name with
        | Some e when e.ValueKind = JsonValueKind.Number -> Some(e.GetDouble())
        | _ -> None

    let names = if record.IsEmpty then List.map fst series else record
    let diverged = metaString "status" = Some "diverged"

    let values =
        [
            for name in names do
                match List.tryFind (fst >> (=) name) series with
                | Some(_, y) ->
                    // A diverged run never reached the final time (its grid may stop at the divergence).
                    let final = if y.Length = 0 || diverged then nan else y[y.Length - 1]
                    yield name, final

                    for a in at do
                        yield $"%s{name}@%s{(invariant a)}", interpolate t y a
                | None ->
                    match metaPath name with
                    | Some e when e.ValueKind = JsonValueKind.Number -> yield name, e.GetDouble()
                    | Some e when e.ValueKind = JsonValueKind.Null -> yield name, nan
                    // A dotted metadata path exists only for some runs (e.g. an analysis that needs a plateau).
                    | None when name.Contains '.' && meta.IsSome -> yield name, nan
                    | _ ->
                        failwith
                            $"""record: the run has no series or metadata number '%s{name}' (series: %s{(series |> List.map fst |> String.concat ", ")})"""
        ]

    let status, divergence, message =
        match metaString "status" with
        | None
        | Some "completed"
        | Some "event" -> Completed, None, None
        | Some "diverged" -> Diverged, metaNumber "divergence_time", metaString "divergence_reason"
        | Some other ->
            Failed,
            None,
            Some(
                $"""run ended with status %s{other}%s{(metaNumber "stopped_at"
                                                       |> Option.map (fun t -> $" at t = %g{t}")
                                                       |> Option.defaultValue "")}"""
            )

    {
        Status = status
        DivergenceTime = divergence
        Message = message
        Values = values
    }

/// Evaluate one point in this process: the command's entry function writes its JSON to a temporary file, which is
/// read back and summarised. Console output is expected to be silenced by the caller (see `silenced`).
let evaluator (ctx: Validate.Context) (spec: SweepSpec) (cmd: Sweepable) (p: Point) : PointResult =
    let tmp =
        Path.Combine(
            Path.GetTempPath(),
            $"""statphys-sweep-%d{Environment.ProcessId}-%s{(Guid.NewGuid().ToString "N")}.json"""
        )

    let extra =
        // Kernels are large and never summarised into a row.
        if List.contains "no-kernels" cmd.Switches then
            [ "--no-kernels" ]
        else
            []

    let args = arguments p.Parameters @ extra @ [ "--out"; tmp ]

    try
        try
            let rc = cmd.Main ctx args

            if rc <> 0 then
                PointResult.failed ($"%s{cmd.Name} exited with code %d{rc}")
            else
                summarise spec.Record spec.At (File.ReadAllText tmp)
        with
        | Args.UsageError m -> PointResult.failed m
        | :? ArgumentException as e -> PointResult.failed e.Message
    finally
        if File.Exists tmp then
            File.Delete tmp

/// Run `f` with the process's console output discarded (commands print progress and notes); `f` receives the
/// real standard error for the sweep's own messages.
let silenced (f: IO.TextWriter -> 'a) =
    let out, err = Console.Out, Console.Error

    Console.SetOut IO.TextWriter.Null
    Console.SetError IO.TextWriter.Null

    try
        f err
    finally
        Console.SetOut out
        Console.SetError err

let readSpec (path: string) =
    if not (File.Exists path) then
        fail $"spec: no such file '%s{path}'"

    Spec.parse (File.ReadAllText path)

/// The shard: --shard, else the Slurm array variables, else 0/1.
let shardOf (a: Args.Parsed) =
    match Args.tryValue a "shard" with
    | Some s -> Shard.parse "shard" s
    | None ->
        match
            Environment.GetEnvironmentVariable "SLURM_ARRAY_TASK_ID",
            Environment.GetEnvironmentVariable "SLURM_ARRAY_TASK_COUNT"
        with
        | null, _
        | "", _ -> Shard.all
        | id, count ->
            let lo =
                match Int32.TryParse(Environment.GetEnvironmentVariable "SLURM_ARRAY_TASK_MIN") with
                | true, m -> m
                | _ -> 0

            match Int32.TryParse id with
            | true, i -> Shard.parse "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT" ($"%d{(i - lo)}/%s{count}")
            | _ -> fail $"SLURM_ARRAY_TASK_ID: not an integer: '%s{id}'"

let private positional (name: string) (argv: string list) =
    match argv with
    | p :: rest when not (p.StartsWith "--") -> p, rest
    | _ -> raise (Args.UsageError($"sweep needs %s{name} as its first argument"))

let private runCmd (ctx: Validate.Context) (argv: string list) =
    let specPath, rest = positional "SPEC.json" argv
    let a = Args.parse Options.sweepRun rest

    let dir = required a "out" "sweep run needs --out DIR"

    let spec = readSpec specPath
    let cmd = resolve spec
    let shard = shardOf a
    let pts = Spec.points spec
    let monteCarlo = pts.Length > 0 && cmd.MonteCarlo(Map.ofList pts[0].Parameters)

    let parallel =
        match Args.tryValue a "parallel" with
        | Some _ -> Args.int a "parallel"
        | None -> if monteCarlo then 1 else Environment.ProcessorCount

    if parallel < 1 || parallel > 4096 then
        fail $"parallel: must lie in [1, 4096], got %d{parallel}"

    let interactive = not Console.IsErrorRedirected

    let summary =
        silenced (fun err ->
            let progress (pr: RunProgress) =
                if interactive then
                    lock err (fun () -> err.Write($"\rsweep: %d{pr.Done}/%d{pr.Total} points   "))

            try
                Sweep.run
                    dir
                    spec
                    {
                        Parallelism = parallel
                        Shard = shard
                        Force = a.Flags.Contains "force"
                    }
                    progress
                    // Ctrl-C or SIGTERM (Slurm's time limit), wired to ctx.Token by `main` from the process's start:
                    // stop starting points, keep the finished ones. The points run to completion.
                    ctx.Token
                    (evaluator
                        { ctx with
                            Token = CancellationToken.None
                        }
                        spec
                        cmd)
            finally
                if interactive then
                    err.WriteLine())

    eprintfn $"sweep: %d{summary.Computed} computed, %d{summary.Skipped} skipped, %d{summary.Failed} failed"
    if summary.Cancelled then 130 else 0

/// "0-3, 7, 9-10" from sorted indices.
let ranges (xs: int list) =
    let rec go acc xs =
        match xs, acc with
        | [], _ -> List.rev acc
        | x :: rest, (lo, hi) :: accRest when x = hi + 1 -> go ((lo, x) :: accRest) rest
        | x :: rest, _ -> go ((x, x) :: acc) rest

    go [] xs
    |> List.map (fun (lo, hi) -> if lo = hi then string lo else $"%d{lo}-%d{hi}")
    |> String.concat ", "

/// Merge DIR into TABLE; false (and a message) when points are missing.
let mergeTo (dir: string) (out: string) (withWallTime: bool) =
    let ext = Path.GetExtension(out).ToLowerInvariant()

    if ext <> ".csv" && ext <> ".json" then
        fail $"out: the table must end in .csv or .json, got '%s{out}'"

    if not (Directory.Exists dir) then
        fail $"dir: no such folder '%s{dir}'"

    match Sweep.merge dir with
    | Error missing ->
        eprintfn $"statphys: sweep merge: %d{missing.Length} points missing in %s{dir}: indices %s{(ranges missing)}"
        false
    | Ok table ->
        let text =
            if ext = ".csv" then
                Sweep.toCsv withWallTime table
            else
                Sweep.toJson withWallTime table

        let full = Path.GetFullPath out
        Directory.CreateDirectory(Path.GetDirectoryName full) |> ignore
        let tmp = full + ".tmp"
        File.WriteAllText(tmp, text)
        File.Move(tmp, full, true)
        true

let private mergeCmd (argv: string list) =
    let dir, rest = positional "DIR" argv
    let a = Args.parse Options.sweepMerge rest

    let out = required a "out" "sweep merge needs --out TABLE.csv|TABLE.json"

    if mergeTo dir out (not (a.Flags.Contains "no-wall-time")) then
        0
    else
        2

let private quote (s: string) = "'" + s.Replace("'", "'\\''") + "'"

/// The program as it runs now, by absolute path: the apphost, or `dotnet` and statphys.dll.
let programCommand () =
    let host = Environment.ProcessPath

    let name = Path.GetFileNameWithoutExtension host

    if name = "dotnet" then
        [ host; Reflection.Assembly.GetEntryAssembly().Location ]
    else
        [ host ]

/// The sbatch job-array script: task k runs `sweep run` on shard k of N.
let slurmScript
    (specPath: string)
    (dir: string)
    (tasks: int)
    (cpus: int)
    (time: string option)
    (partition: string option)
    =
    let dir = Path.GetFullPath dir

    String.concat
        "\n"
        [
            "#!/bin/bash"
            "#SBATCH --job-name=statphys-sweep"
            $"#SBATCH --array=0-%d{(tasks - 1)}"
            "#SBATCH --ntasks=1"
            $"#SBATCH --cpus-per-task=%d{cpus}"
            $"""#SBATCH --output=%s{(Path.Combine(dir, "slurm-%A_%a.out"))}"""
            match time with
            | Some t -> $"#SBATCH --time=%s{t}"
            | None -> ()
            match partition with
            | Some p -> $"#SBATCH --partition=%s{p}"
            | None -> ()
            "# Generated by statphys sweep slurm: each array task runs its shard; rerunning resumes."
            "set -euo pipefail"
            (let program = programCommand () |> List.map quote |> String.concat " "
             let spec = quote (Path.GetFullPath specPath)
             $"exec %s{program} sweep run %s{spec} --out %s{quote dir} --parallel %d{cpus} --shard \"${{SLURM_ARRAY_TASK_ID}}/%d{tasks}\"")
            ""
        ]

let private processOutput (file: string) (args: string list) =
    let psi = ProcessStartInfo(file, args)
    psi.RedirectStandardOutput <- true
    psi.RedirectStandardError <- true
    psi.UseShellExecute <- false

    use p =
        try
            Process.Start psi
        with :? ComponentModel.Win32Exception ->
            raise (InvalidOperationException($"%s{file} not found: run this on a Slurm submit host"))

    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEnd()
    p.WaitForExit()
    p.ExitCode, out.Result, err

let private slurmCmd (argv: string list) =
    let specPath, rest = positional "SPEC.json" argv

    let a = Args.parse Options.sweepSlurm rest

    let dir =
        required a "out" "sweep slurm needs --out DIR (on a file system the nodes share)"

    let tasks =
        match a.Values.TryFind "tasks" with
        | Some _ -> Args.int a "tasks"
        | None -> raise (Args.UsageError "sweep slurm needs --tasks N")

    let cpus = Args.int a "cpus-per-task"

    if tasks < 1 || tasks > 100_000 then
        fail $"tasks: must lie in [1, 100000], got %d{tasks}"

    if cpus < 1 || cpus > 4096 then
        fail $"cpus-per-task: must lie in [1, 4096], got %d{cpus}"

    let time = a.Values.TryFind "time"

    match time with
    | Some t when not (Text.RegularExpressions.Regex.IsMatch(t, @"^(\d+-)?\d{1,2}:\d{2}:\d{2}$")) ->
        fail $"time: must be HH:MM:SS or D-HH:MM:SS, got '%s{t}'"
    | _ -> ()

    let partition = a.Values.TryFind "partition"

    match partition with
    | Some p when not (Text.RegularExpressions.Regex.IsMatch(p, @"^[A-Za-z0-9_.,-]+$")) ->
        fail $"partition: must be a Slurm partition name, got '%s{p}'"
    | _ -> ()

    if a.Flags.Contains "wait" && not (a.Flags.Contains "submit") then
        raise (Args.UsageError "--wait needs --submit")

    let spec = readSpec specPath
    let cmd = resolve spec
    let total = Spec.size spec

    if tasks > total then
        fail $"tasks: %d{tasks} tasks for %d{total} points; use at most %d{total}"

    ignore cmd
    Store.prepare dir spec (a.Flags.Contains "force")
    let specCopy = Path.Combine(Path.GetFullPath dir, "spec.json")
    File.WriteAllText(specCopy, File.ReadAllText specPath)
    let script = Path.Combine(Path.GetFullPath dir, "sweep.sbatch")
    File.WriteAllText(script, slurmScript specCopy dir tasks cpus time partition)

    if not (a.Flags.Contains "submit") then
        printfn $"%s{script}"
        eprintfn $"sweep: wrote %s{script} (%d{tasks} tasks, %d{total} points); submit with: sbatch %s{script}"
        0
    else
        let rc, out, err = processOutput "sbatch" [ "--parsable"; script ]

        if rc <> 0 then
            eprintfn $"statphys: sweep slurm: sbatch failed (exit %d{rc}): %s{(err.Trim())}"
            1
        else
            let job = out.Trim().Split(';')[0]
            printfn $"%s{job}"
            eprintfn $"sweep: submitted job array %s{job} (%d{tasks} tasks, %d{total} points)"

            if not (a.Flags.Contains "wait") then
                0
            else
                // Poll the queue ourselves: sbatch --wait polls at 2 s then 8 s.
                let sw = Stopwatch.StartNew()
                let mutable running = true
                let mutable delay = 200

                while running do
                    Thread.Sleep delay
                    delay <- min 2000 (delay + 100)
                    let rc, out, _ = processOutput "squeue" [ "-h"; "-j"; job; "-o"; "%i" ]
                    running <- rc = 0 && out.Trim() <> ""

                eprintfn $"sweep: job array %s{job} left the queue after %.1f{sw.Elapsed.TotalSeconds} s"

                let table =
                    a.Values.TryFind "table" |> Option.defaultValue (Path.Combine(dir, "table.csv"))

                if mergeTo dir table true then
                    eprintfn $"sweep: merged into %s{table}"
                    0
                else
                    eprintfn $"""statphys: sweep slurm: see the task logs %s{(Path.Combine(dir, "slurm-*.out"))}"""
                    2

let main (ctx: Validate.Context) (argv: string list) =
    try
        match argv with
        | "run" :: rest -> runCmd ctx rest
        | "merge" :: rest -> mergeCmd rest
        | "plot" :: rest -> SweepPlot.main rest
        | "slurm" :: rest -> slurmCmd rest
        | _ ->
            eprintfn $"%s{usage}"
            2
    with
    | SpecError m ->
        eprintfn $"statphys: sweep: %s{m}"
        2
    | Args.UsageError m ->
        eprintfn $"statphys: sweep: %s{m}"
        2
    | :? IOException as e ->
        eprintfn $"statphys: sweep: %s{e.Message}"
        2
