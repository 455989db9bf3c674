namespace StatPhysFs.Sweep

open System
open System.IO
open System.Text
open System.Text.Json

/// How a point ended: its run completed, diverged (a result, with the divergence time), or failed (no result).
type PointStatus =
    | Completed
    | Diverged
    | Failed

/// What the evaluator of a point returns: the command's result summarised into named numbers.
type PointResult =
    {
        Status: PointStatus
        DivergenceTime: float option
        Message: string option
        /// Named values (e.g. "m", "m@5"); NaN for a value that does not exist (after a divergence).
        Values: (string * float) list
    }

/// One stored row: the point and its result.
type Row =
    {
        Index: int
        Key: string
        Coordinates: (string * ParamValue) list
        Result: PointResult
        WallTimeSeconds: float
    }

[<RequireQualifiedAccess>]
module PointResult =
    let failed (message: string) =
        {
            Status = Failed
            DivergenceTime = None
            Message = Some message
            Values = []
        }

    let statusText (s: PointStatus) =
        match s with
        | Completed -> "completed"
        | Diverged -> "diverged"
        | Failed -> "failed"

/// The output folder of a sweep: `sweep.json` (the spec and its fingerprint) and one `points-I-of-N.jsonl` per
/// shard, one JSON object a line, appended and flushed to disk per point.
[<RequireQualifiedAccess>]
module Store =
    let manifestName = "sweep.json"

    let private num (w: Utf8JsonWriter) (x: float) =
        if Double.IsFinite x then
            w.WriteNumberValue x
        else
            w.WriteNullValue()

    /// A row as one line of JSON (no newline inside).
    let rowToJson (r: Row) =
        use ms = new MemoryStream()

        (use w =
            new Utf8JsonWriter(
                ms,
                JsonWriterOptions(Encoder = Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping)
            )

         w.WriteStartObject()
         w.WriteNumber("index", r.Index)
         w.WriteString("key", r.Key)
         w.WriteStartObject "axes"

         for k, v in r.Coordinates do
             w.WritePropertyName k

             match v with
             | Number x -> w.WriteNumberValue x
             | Text s -> w.WriteStringValue s
             | Switch b -> w.WriteBooleanValue b

         w.WriteEndObject()
         w.WriteString("status", PointResult.statusText r.Result.Status)
         w.WritePropertyName "divergence_time"
         num w (r.Result.DivergenceTime |> Option.defaultValue nan)

         match r.Result.Message with
         | Some m -> w.WriteString("message", m)
         | None -> w.WriteNull "message"

         w.WriteStartObject "values"

         for k, x in r.Result.Values do
             w.WritePropertyName k
             num w x

         w.WriteEndObject()
         w.WriteNumber("wall_time_s", r.WallTimeSeconds)
         w.WriteEndObject())

        Encoding.UTF8.GetString(ms.ToArray())

    let private numOf (e: JsonElement) =
        if e.ValueKind = JsonValueKind.Number then
            e.GetDouble()
        else
            nan

    /// Parse a stored line; raises on a malformed one.
    let rowOfJson (line: string) : Row =
        use doc = JsonDocument.Parse line
        let o = doc.RootElement

        let status =
            match o.GetProperty("status").GetString() with
            | "completed" -> Completed
            | "diverged" -> Diverged
            | "failed" -> Failed
            | s -> failwith $"unknown status '%s{s}'"

        {
            Index = o.GetProperty("index").GetInt32()
            Key = o.GetProperty("key").GetString()
            Coordinates =
                [
                    for p in o.GetProperty("axes").EnumerateObject() ->
                        p.Name,
                        match p.Value.ValueKind with
                        | JsonValueKind.Number -> Number(p.Value.GetDouble())
                        | JsonValueKind.True -> Switch true
                        | JsonValueKind.False -> Switch false
                        | _ -> Text(p.Value.GetString())
                ]
            Result =
                {
                    Status = status
                    DivergenceTime =
                        (let d = o.GetProperty "divergence_time"

                         if d.ValueKind = JsonValueKind.Number then
                             Some(d.GetDouble())
                         else
                             None)
                    Message =
                        (let m = o.GetProperty "message"

                         if m.ValueKind = JsonValueKind.String then
                             Some(m.GetString())
                         else
                             None)
                    Values = [ for p in o.GetProperty("values").EnumerateObject() -> p.Name, numOf p.Value ]
                }
            WallTimeSeconds = numOf (o.GetProperty "wall_time_s")
        }

    let shardFile (dir: string) (s: Shard) =
        Path.Combine(dir, $"points-%d{s.Index}-of-%d{s.Count}.jsonl")

    /// The rows of one shard file. A last line without its newline is a write torn by a crash: ignored.
    /// Any other malformed line is corruption and an error naming file and line.
    let readFile (path: string) : Row list =
        let text =
            use fs =
                new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite ||| FileShare.Delete)

            use r = new StreamReader(fs, Encoding.UTF8)
            r.ReadToEnd()

        let lines = text.Split '\n'
        // Split leaves "" after a final newline, or the torn fragment when the last write did not finish.
        let complete = lines[.. lines.Length - 2]

        [
            for i, line in Array.indexed complete do
                if not (String.IsNullOrWhiteSpace line) then
                    let row =
                        try
                            rowOfJson line
                        with e ->
                            raise (
                                InvalidDataException($"%s{path}:%d{(i + 1)}: corrupt sweep record (%s{e.Message})")
                            )

                    yield row
        ]

    /// Every stored row of every shard in the folder (first occurrence of a key wins; equal keys, equal results).
    let readAll (dir: string) : Row list =
        if not (Directory.Exists dir) then
            []
        else
            let seen = Collections.Generic.HashSet<string>()

            [
                for f in Directory.GetFiles(dir, "points-*.jsonl") |> Array.sort do
                    for r in readFile f do
                        if seen.Add r.Key then
                            yield r
            ]

    /// The manifest: the spec in canonical form and its fingerprint.
    let manifestJson (spec: SweepSpec) =
        use doc = JsonDocument.Parse(Spec.toJson spec)
        use ms = new MemoryStream()

        (use w = new Utf8JsonWriter(ms, JsonWriterOptions(Indented = true))
         w.WriteStartObject()
         w.WriteString("format", "statphys-sweep/1")
         w.WriteString("spec_hash", Spec.hash spec)
         w.WriteString("library_version", Spec.libraryVersion)
         w.WriteNumber("points", Spec.size spec)
         w.WritePropertyName "spec"
         doc.RootElement.WriteTo w
         w.WriteEndObject())

        Encoding.UTF8.GetString(ms.ToArray())

    /// The spec stored in a folder, with its fingerprint; None when the folder has no manifest.
    let readManifest (dir: string) : (SweepSpec * string) option =
        let path = Path.Combine(dir, manifestName)

        if not (File.Exists path) then
            None
        else
            use doc = JsonDocument.Parse(File.ReadAllText path)
            let spec = Spec.parse (doc.RootElement.GetProperty("spec").GetRawText())
            Some(spec, doc.RootElement.GetProperty("spec_hash").GetString())

    /// Make `dir` the store of `spec`: write the manifest if absent (atomically, so concurrent shards agree),
    /// refuse a folder holding a different sweep unless `force` (which rewrites the manifest; stored points whose
    /// key the new spec shares are kept, the others are ignored by merge).
    let prepare (dir: string) (spec: SweepSpec) (force: bool) =
        let hash = Spec.hash spec
        let manifest = manifestJson spec
        Directory.CreateDirectory dir |> ignore
        let path = Path.Combine(dir, manifestName)

        let tmp =
            path + $""".%d{Environment.ProcessId}.%s{(Guid.NewGuid().ToString "N")}.tmp"""

        File.WriteAllText(tmp, manifest)

        try
            if force then
                File.Move(tmp, path, true)
            else
                try
                    File.Move(tmp, path, false)
                with :? IOException when File.Exists path ->
                    match readManifest dir with
                    | Some(_, h) when h = hash -> ()
                    | _ ->
                        raise (
                            SpecError(
                                $"out: %s{dir} holds a different sweep (another spec or library version); use a new folder or --force"
                            )
                        )
        finally
            if File.Exists tmp then
                File.Delete tmp

    /// The appending writer of one shard: holds the file exclusively (a second run of the same shard fails fast),
    /// cuts a torn last line, writes one line per row and flushes it to disk.
    type ShardWriter(path: string) =
        let fs =
            try
                new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read)
            with :? IOException as e ->
                raise (IOException($"%s{path} is in use by another run of this shard (%s{e.Message})", e))

        do
            // Cut back to just after the last newline: the bytes after it are a torn record.
            let len = fs.Length
            let mutable cut = len
            let buf = Array.zeroCreate<byte> 1

            let mutable searching = len > 0L

            while searching do
                fs.Position <- cut - 1L
                fs.ReadExactly(buf, 0, 1)

                if buf[0] = byte '\n' then
                    searching <- false
                else
                    cut <- cut - 1L
                    searching <- cut > 0L

            if cut <> len then
                fs.SetLength cut

            fs.Position <- cut

        let gate = obj ()
        let sinceSync = Diagnostics.Stopwatch.StartNew()

        /// Each row reaches the operating system at once (a killed process loses nothing); the disk itself is
        /// synced at most once a second and at the end (an fsync per point costs more than a fast point).
        member _.Append(r: Row) =
            let bytes = Encoding.UTF8.GetBytes(rowToJson r + "\n")

            lock gate (fun () ->
                fs.Write(bytes, 0, bytes.Length)
                let sync = sinceSync.Elapsed.TotalSeconds >= 1.0
                fs.Flush sync

                if sync then
                    sinceSync.Restart())

        interface IDisposable with
            member _.Dispose() =
                lock gate (fun () ->
                    fs.Flush true
                    fs.Dispose())
