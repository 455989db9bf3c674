namespace StatPhysFs.Sweep

open System
open System.Diagnostics
open System.Globalization
open System.IO
open System.Text
open System.Text.Json
open System.Threading

type RunOptions =
    {
        /// Points evaluated at once (>= 1). Results do not depend on it: each point is computed on its own.
        Parallelism: int
        Shard: Shard
        /// Accept a folder holding another sweep (see Store.prepare).
        Force: bool
    }

/// Progress of a run: points of this shard finished so far (stored before plus computed now) and the total.
type RunProgress =
    {
        Done: int
        Total: int
        Last: Row option
    }

type RunSummary =
    {
        Computed: int
        Skipped: int
        Failed: int
        Cancelled: bool
    }

/// The merged table: the spec and one row per point, in index order.
type Table = { Spec: SweepSpec; Rows: Row[] }

[<RequireQualifiedAccess>]
module Sweep =
    let defaultOptions =
        {
            Parallelism = Environment.ProcessorCount
            Shard = Shard.all
            Force = false
        }

    /// Run the points of `options.Shard` not yet in `dir`, `options.Parallelism` at a time, appending each finished
    /// point to the shard's file. An evaluator exception makes that point Failed (with the message); the sweep goes
    /// on. Cancellation stops starting points; finished ones are kept, so a rerun resumes.
    let run
        (dir: string)
        (spec: SweepSpec)
        (options: RunOptions)
        (progress: RunProgress -> unit)
        (ct: CancellationToken)
        (evaluate: Point -> PointResult)
        : RunSummary =
        if options.Parallelism < 1 then
            raise (SpecError($"parallel: must be >= 1, got %d{options.Parallelism}"))

        if
            options.Shard.Count < 1
            || options.Shard.Index < 0
            || options.Shard.Index >= options.Shard.Count
        then
            raise (
                SpecError(
                    $"shard: must be I/N with 0 <= I < N, got %d{options.Shard.Index}/%d{options.Shard.Count}"
                )
            )

        Spec.validate spec |> ignore
        let all = Spec.points spec
        Store.prepare dir spec options.Force
        let mine = all |> Array.filter (fun p -> Shard.contains options.Shard p.Index)

        let present =
            Store.readAll dir |> List.map (fun r -> r.Key) |> Collections.Generic.HashSet

        let todo = mine |> Array.filter (fun p -> not (present.Contains p.Key))
        let skipped = mine.Length - todo.Length
        use writer = new Store.ShardWriter(Store.shardFile dir options.Shard)
        let mutable computed = 0
        let mutable failed = 0
        let gate = obj ()

        progress
            {
                Done = skipped
                Total = mine.Length
                Last = None
            }

        let one (p: Point) =
            let sw = Stopwatch.StartNew()

            let result =
                try
                    Some(evaluate p)
                with
                | :? OperationCanceledException when ct.IsCancellationRequested -> None
                | e ->
                    let e =
                        if isNull e.InnerException || not (e :? AggregateException) then
                            e
                        else
                            e.InnerException

                    Some(PointResult.failed e.Message)

            match result with
            | None -> ()
            | Some r ->
                let row =
                    {
                        Index = p.Index
                        Key = p.Key
                        Coordinates = p.Coordinates
                        Result = r
                        WallTimeSeconds = sw.Elapsed.TotalSeconds
                    }

                writer.Append row

                let snapshot =
                    lock gate (fun () ->
                        if r.Status = Failed then
                            failed <- failed + 1
                        else
                            computed <- computed + 1

                        skipped + computed + failed)

                progress
                    {
                        Done = snapshot
                        Total = mine.Length
                        Last = Some row
                    }

        // Points are claimed one at a time in index order (a long point holds up no other); the calling thread
        // evaluates points itself, so a cancellation never waits for a pool thread that has not started.
        let cancelled =
            try
                StatPhysFs.Chunked.forEach options.Parallelism ct todo.Length (fun i -> one todo[i])
                false
            with :? OperationCanceledException when ct.IsCancellationRequested ->
                true

        {
            Computed = computed
            Skipped = skipped
            Failed = failed
            Cancelled = cancelled
        }

    /// Join every shard of `dir` into one table in index order. Error: the indices with no stored point.
    let merge (dir: string) : Result<Table, int list> =
        let spec =
            match Store.readManifest dir with
            | Some(s, _) -> s
            | None -> raise (SpecError($"dir: %s{dir} holds no sweep (no %s{Store.manifestName})"))

        let byKey = Store.readAll dir |> List.map (fun r -> r.Key, r) |> dict
        let pts = Spec.points spec

        let missing =
            [
                for p in pts do
                    if not (byKey.ContainsKey p.Key) then
                        p.Index
            ]

        if not missing.IsEmpty then
            Error missing
        else
            Ok
                {
                    Spec = spec
                    Rows = pts |> Array.map (fun p -> { byKey[p.Key] with Index = p.Index })
                }

    /// The value columns of a table, in order of first appearance.
    let valueColumns (t: Table) =
        let seen = Collections.Generic.List<string>()

        for r in t.Rows do
            for k, _ in r.Result.Values do
                if not (seen.Contains k) then
                    seen.Add k

        List.ofSeq seen

    /// All columns: index, axes, status, divergence_time, values, wall_time_s (unless omitted), message.
    let columns (withWallTime: bool) (t: Table) =
        [ "index" ]
        @ (t.Spec.Axes |> List.map (fun a -> a.Name))
        @ [ "status"; "divergence_time" ]
        @ valueColumns t
        @ (if withWallTime then [ "wall_time_s" ] else [])
        @ [ "message" ]

    let private numText (x: float) =
        if Double.IsFinite x then
            x.ToString("R", CultureInfo.InvariantCulture)
        else
            ""

    let private csvField (s: string) =
        if s.IndexOfAny [| ','; '"'; '\n'; '\r' |] >= 0 then
            "\"" + s.Replace("\"", "\"\"") + "\""
        else
            s

    /// CSV with a leading comment line naming the command and the axes with their spacing (read by the plotter).
    let toCsv (withWallTime: bool) (t: Table) =
        let sb = StringBuilder()

        sb
            .Append("# sweep: command=")
            .Append(t.Spec.Command)
            .Append("; axes=")
            .Append(
                t.Spec.Axes
                |> List.map (fun a -> a.Name + ":" + (if a.Spacing = Log then "log" else "linear"))
                |> String.concat ","
            )
            .Append('\n')
        |> ignore

        let vcols = valueColumns t

        sb.Append(String.Join(",", columns withWallTime t |> List.map csvField)).Append('\n')
        |> ignore

        for r in t.Rows do
            let vals = dict r.Result.Values

            let fields =
                [
                    string r.Index
                    yield! r.Coordinates |> List.map (snd >> ParamValue.text)
                    PointResult.statusText r.Result.Status
                    numText (r.Result.DivergenceTime |> Option.defaultValue nan)
                    yield! vcols |> List.map (fun c -> if vals.ContainsKey c then numText vals[c] else "")
                    if withWallTime then
                        numText r.WallTimeSeconds
                    r.Result.Message |> Option.defaultValue ""
                ]

            sb.Append(String.Join(",", fields |> List.map csvField)).Append('\n') |> ignore

        sb.ToString()

    /// JSON: {"spec": ..., "columns": [...], "rows": [{column: value}]}; missing numbers are null.
    let toJson (withWallTime: bool) (t: Table) =
        use specDoc = JsonDocument.Parse(Spec.toJson t.Spec)
        use ms = new MemoryStream()
        let vcols = valueColumns t

        (use w = new Utf8JsonWriter(ms, JsonWriterOptions(Indented = true))

         let num (name: string) (x: float) =
             if Double.IsFinite x then
                 w.WriteNumber(name, x)
             else
                 w.WriteNull name

         w.WriteStartObject()
         w.WritePropertyName "spec"
         specDoc.RootElement.WriteTo w
         w.WriteStartArray "columns"
         columns withWallTime t |> List.iter w.WriteStringValue
         w.WriteEndArray()
         w.WriteStartArray "rows"

         for r in t.Rows do
             let vals = dict r.Result.Values
             w.WriteStartObject()
             w.WriteNumber("index", r.Index)

             for k, v in r.Coordinates do
                 match v with
                 | Number x -> w.WriteNumber(k, x)
                 | Text s -> w.WriteString(k, s)
                 | Switch b -> w.WriteBoolean(k, b)

             w.WriteString("status", PointResult.statusText r.Result.Status)
             num "divergence_time" (r.Result.DivergenceTime |> Option.defaultValue nan)

             for c in vcols do
                 num c (if vals.ContainsKey c then vals[c] else nan)

             if withWallTime then
                 w.WriteNumber("wall_time_s", r.WallTimeSeconds)

             match r.Result.Message with
             | Some m -> w.WriteString("message", m)
             | None -> w.WriteNull "message"

             w.WriteEndObject()

         w.WriteEndArray()
         w.WriteEndObject())

        Encoding.UTF8.GetString(ms.ToArray())
