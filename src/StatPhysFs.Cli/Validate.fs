/// Checks made before any work: output paths, list flags, memory and work budgets, and atomic file writes.
/// Everything here fails with Args.UsageError (exit code 2, one line) so that an impossible request is refused
/// up front instead of crashing after minutes of work.
module StatPhysFs.Cli.Validate

open System
open System.Globalization
open System.IO


/// Write a file atomically: the content goes to a temporary file in the same directory, which is then renamed over
/// the target, so a failure never leaves half a file. The temporary name keeps the extension (plot libraries pick
/// the format from it).
let atomicWrite (path: string) (write: string -> unit) =
    let full = Path.GetFullPath path
    let dir = Path.GetDirectoryName full

    let tmp =
        Path.Combine(dir, $""".%s{(Path.GetFileName full)}.%s{(Guid.NewGuid().ToString "N")}.tmp%s{(Path.GetExtension full)}""")

    try
        write tmp
        File.Move(tmp, full, true)
    with _ ->
        (try
            if File.Exists tmp then
                File.Delete tmp
         with _ ->
             ())

        reraise ()

/// The absolute form of a --flag path; `what` ("file", "directory") names what an empty value should have been.
let private fullPath (flag: string) (what: string) (path: string) =
    if String.IsNullOrWhiteSpace path then
        raise (Args.UsageError($"--%s{flag} needs a %s{what} name, got an empty string"))

    try
        Path.GetFullPath path
    with e ->
        raise (Args.UsageError($"--%s{flag}: invalid path '%s{path}' (%s{e.Message})"))

/// The target of --out/--plot: a known extension, an existing writable directory, not a directory itself.
let outputPath (flag: string) (extensions: string list) (path: string) =
    let full = fullPath flag "file" path

    let ext = Path.GetExtension(full).ToLowerInvariant()

    if not (List.contains ext extensions) then
        raise (
            Args.UsageError(
                $"""--%s{flag} must end in %s{(extensions |> String.concat " or ")}, got '%s{(if ext = "" then path else ext)}'"""
            )
        )

    if Directory.Exists full then
        raise (Args.UsageError($"--%s{flag}: '%s{path}' is a directory; give a file name"))

    let dir = Path.GetDirectoryName full

    if not (Directory.Exists dir) then
        raise (Args.UsageError($"--%s{flag}: directory '%s{dir}' does not exist"))

    // Writable: create and delete a probe file (permissions, read-only mounts, /proc and the like).
    let probe = Path.Combine(dir, $""".statphys-probe-%s{(Guid.NewGuid().ToString "N")}""")

    try
        (use _ = new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose)
         ())
    with e ->
        raise (Args.UsageError($"--%s{flag}: cannot write in directory '%s{dir}' (%s{e.Message})"))

    if File.Exists full && (File.GetAttributes full).HasFlag FileAttributes.ReadOnly then
        raise (Args.UsageError($"--%s{flag}: '%s{path}' exists and is read-only"))

/// The output folder of `demo --out DIR`: an existing writable folder, or a new one in an existing writable parent.
let outputDirectory (flag: string) (path: string) =
    let full = fullPath flag "directory" path

    if File.Exists full then
        raise (Args.UsageError($"--%s{flag}: '%s{path}' is a file; give a directory"))

    let existing =
        if Directory.Exists full then full else Path.GetDirectoryName full

    if isNull existing || not (Directory.Exists existing) then
        raise (Args.UsageError($"--%s{flag}: the parent of '%s{path}' does not exist"))

    let probe =
        Path.Combine(existing, $""".statphys-probe-%s{(Guid.NewGuid().ToString "N")}""")

    try
        (use _ = new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose)
         ())
    with e ->
        raise (Args.UsageError($"--%s{flag}: cannot write in '%s{existing}' (%s{e.Message})"))

/// The values of an option in raw tokens, in both the `--name value` and `--name=value` forms.
let optionValues (name: string) (argv: string list) =
    let key = "--" + name

    let rec go acc args =
        match args with
        | [] -> List.rev acc
        | (a: string) :: v :: rest when a = key -> go (v :: acc) rest
        | a :: rest when a.StartsWith(key + "=") -> go (a.Substring(key.Length + 1) :: acc) rest
        | _ :: rest -> go acc rest

    go [] argv

/// Output targets of a command, checked before the run so that a bad --plot never throws a finished result away.
let outputs (command: string list) (argv: string list) =
    match command with
    | [ "demo" ] -> optionValues "out" argv |> List.iter (outputDirectory "out")
    // A sweep's --out is a folder (run, slurm), a table (merge) or a figure (plot): `statphys sweep` checks its own.
    | "sweep" :: _ -> ()
    | _ ->
        optionValues "out" argv |> List.iter (outputPath "out" [ ".json"; ".csv" ])
        optionValues "plot" argv |> List.iter (outputPath "plot" [ ".svg"; ".png" ])

/// A comma-separated list of finite numbers.
let floatList (flag: string) (s: string) =
    let parts = s.Split(',') |> Array.map (fun v -> v.Trim())

    parts
    |> Array.map (fun v ->
        match Double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture) with
        | true, x when Double.IsFinite x -> x
        | _ -> raise (Args.UsageError($"--%s{flag} needs comma-separated finite numbers, got '%s{v}' in '%s{s}'")))

/// Byte counts for messages.
let bytes (b: float) =
    if b >= 1e12 then $"%.1f{(b / 1e12)} TB"
    elif b >= 1e9 then $"%.1f{(b / 1e9)} GB"
    elif b >= 1e6 then $"%.1f{(b / 1e6)} MB"
    else $"%.0f{(b / 1e3)} kB"

/// Memory and work limits of one invocation: by default 75% of physical memory and one hour of estimated work;
/// `--max-memory SIZE` (bytes, or with K/M/G/T) and `--max-time SECONDS` change them for one run.
type Budget =
    {
        /// Bytes a run may plan to use.
        MaxMemory: float
        /// Seconds of estimated work allowed.
        MaxTime: float
        /// Whether MaxMemory is the default (for the message).
        MemoryIsDefault: bool
    }

/// What a command receives besides its options: the budgets and the token that Ctrl-C / SIGTERM cancel. One per
/// invocation (the tests and the sweep run many commands in one process), so nothing is global.
type Context =
    {
        Budget: Budget
        Token: Threading.CancellationToken
    }

module Budget =
    let physicalMemory () =
        float (GC.GetGCMemoryInfo().TotalAvailableMemoryBytes)

    /// 75% of physical memory, one hour.
    let defaults () =
        {
            MaxMemory = 0.75 * physicalMemory ()
            MaxTime = 3600.0
            MemoryIsDefault = true
        }

    /// Scalar operations per second of one core for these kernels (measured order of magnitude, deliberately
    /// optimistic so that only clearly impossible requests are refused).
    let opsPerSecond = 2e9

    let parseSize (s: string) =
        let s = s.Trim()

        let num, mult =
            if s.Length > 0 then
                match Char.ToUpperInvariant s[s.Length - 1] with
                | 'K' -> s.Substring(0, s.Length - 1), 1e3
                | 'M' -> s.Substring(0, s.Length - 1), 1e6
                | 'G' -> s.Substring(0, s.Length - 1), 1e9
                | 'T' -> s.Substring(0, s.Length - 1), 1e12
                | _ -> s, 1.0
            else
                s, 1.0

        match Double.TryParse(num, NumberStyles.Float, CultureInfo.InvariantCulture) with
        | true, v when Double.IsFinite v && v > 0.0 -> v * mult
        | _ -> raise (Args.UsageError($"--max-memory expects a size such as 8G or 500M, got '%s{s}'"))

    let private parseSeconds (v: string) =
        match Double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture) with
        | true, x when Double.IsFinite x && x > 0.0 -> x
        | _ -> raise (Args.UsageError($"--max-time expects a positive number of seconds, got '%s{v}'"))

    /// Take the global --max-memory / --max-time options out of the tokens (any position, `--name value` or
    /// `--name=value`, at most once each): the budget and the remaining tokens.
    let takeGlobal (argv: string list) =
        let seen = Collections.Generic.HashSet<string>()

        let once name =
            if not (seen.Add name) then
                raise (Args.UsageError($"option --%s{name} given twice"))

        let rec go (b: Budget) acc args =
            match args with
            | [] -> b, List.rev acc
            | "--max-memory" :: v :: rest ->
                once "max-memory"

                go
                    { b with
                        MaxMemory = parseSize v
                        MemoryIsDefault = false
                    }
                    acc
                    rest
            | (a: string) :: rest when a.StartsWith "--max-memory=" -> go b acc ("--max-memory" :: a.Substring 13 :: rest)
            | "--max-time" :: v :: rest ->
                once "max-time"
                go { b with MaxTime = parseSeconds v } acc rest
            | a :: rest when a.StartsWith "--max-time=" -> go b acc ("--max-time" :: a.Substring 11 :: rest)
            | [ "--max-memory" ]
            | [ "--max-time" ] -> raise (Args.UsageError($"option %s{(List.head args)} needs a value"))
            | a :: rest -> go b (a :: acc) rest

        go (defaults ()) [] argv

    /// Refuse a request whose estimated memory (bytes) exceeds the limit, naming the flags that drive it.
    let memory (ctx: Context) (what: string) (estimate: float) (flags: string list) =
        let maxMemory = ctx.Budget.MaxMemory

        if not (estimate <= maxMemory) then
            raise (
                Args.UsageError(
                    $"""budget exceeded: %s{what} needs about %s{(bytes estimate)} of memory, above the limit of %s{(bytes maxMemory)} (%s{(if ctx.Budget.MemoryIsDefault then "75% of physical memory, the default" else "set by --max-memory")}); reduce %s{(flags |> List.map ((+) "--") |> String.concat ", ")} or raise --max-memory"""
                )
            )

    /// Refuse a request whose estimated work (scalar operations) exceeds the time limit, naming the flags.
    let work (ctx: Context) (what: string) (operations: float) (cores: int) (flags: string list) =
        let maxTime = ctx.Budget.MaxTime
        let seconds = operations / (opsPerSecond * float (max 1 cores))

        if not (seconds <= maxTime) then
            raise (
                Args.UsageError(
                    $"""budget exceeded: %s{what} needs about %.3g{operations} operations (~%s{(if seconds > 86400.0 then $"%.3g{(seconds / 86400.0)} days" else $"%.0f{seconds} s")}), above the limit of %.0f{maxTime} s; reduce %s{(flags |> List.map ((+) "--") |> String.concat ", ")} or raise --max-time"""
                )
            )

        seconds

    /// A step count t/h that must fit in an int (the integrators index steps with ints).
    let steps (what: string) (count: float) (flags: string list) =
        if not (Double.IsFinite count) || count > 2e9 then
            raise (
                Args.UsageError(
                    $"""%s{what} would take %.3g{count} steps, more than a run can index (2e9); change %s{(flags |> List.map ((+) "--") |> String.concat ", ")}"""
                )
            )

/// A warning: printed on standard error now and collected for the document's metadata.
let warn (sink: ResizeArray<string>) (msg: string) =
    eprintfn $"statphys: warning: %s{msg}"
    sink.Add msg

module Context =
    /// The default budgets and no cancellation (for embedding and tests).
    let defaults () : Context =
        {
            Budget = Budget.defaults ()
            Token = Threading.CancellationToken.None
        }
