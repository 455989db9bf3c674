/// The output document shared by every command: parameters, time grid, named series, metadata; as JSON or CSV.
module StatPhysFs.Cli.Output

open System
open System.IO
open System.Text
open System.Text.Json
open System.Globalization
open StatPhysFs

/// A JSON value for parameters and metadata.
type Value =
    | Num of float
    | Int of int
    | Str of string
    | Bool of bool
    | Null
    | Arr of Value list
    | Obj of (string * Value) list

type Document =
    {
        Parameters: (string * Value) list
        T: float[]
        /// Ordered series; NaN entries are written as null (e.g. after a divergence).
        Series: (string * float[]) list
        /// Two-time kernels K[i][j] on the grid T (JSON only, under "kernels"; omitted when empty).
        Kernels: (string * float[,]) list
        Meta: (string * Value) list
    }

/// How an integration ended, as metadata entries.
let status (s: RunStatus) =
    match s with
    | RunStatus.Completed -> [ "status", Str "completed" ]
    | RunStatus.Diverged(t, why) ->
        [
            "status", Str "diverged"
            "divergence_time", Num t
            "divergence_reason", Str why
        ]
    | RunStatus.TerminatedByEvent(n, t) -> [ "status", Str "event"; "event", Str n; "event_time", Num t ]
    | RunStatus.BudgetExceeded(t, why) -> [ "status", Str "budget-exceeded"; "stopped_at", Num t; "reason", Str why ]
    | RunStatus.Cancelled t -> [ "status", Str "cancelled"; "stopped_at", Num t ]

/// The early-stopping entry: the lowest interior minimum of eg(t), or null when eg(t) has none on the run.
let earlyStopping (found: (float * float) option) =
    [
        "early_stopping",
        match found with
        | Some(t, eg) -> Obj [ "time", Num t; "eg", Num eg ]
        | None -> Null
    ]

/// The simulation's settings, divergences and wall time, as one metadata entry.
let simulation (o: StatPhysFs.Simulation.SimulationOptions) (divergences: (int * float) list) (wallSeconds: float) =
    [
        "simulation",
        Obj
            [
                "dim", Int o.Dim
                "seeds", Int o.Seeds
                "seed", Int o.Seed
                "divergences", Arr(divergences |> List.map (fun (run, t) -> Obj [ "run", Int run; "time", Num t ]))
                "wall_time_s", Num wallSeconds
            ]
    ]

let rec private writeValue (w: Utf8JsonWriter) (v: Value) =
    match v with
    | Num x when Double.IsFinite x -> w.WriteNumberValue x
    | Num _ -> w.WriteNullValue()
    | Int i -> w.WriteNumberValue i
    | Str s -> w.WriteStringValue s
    | Bool b -> w.WriteBooleanValue b
    | Null -> w.WriteNullValue()
    | Arr xs ->
        w.WriteStartArray()
        xs |> List.iter (writeValue w)
        w.WriteEndArray()
    | Obj kvs ->
        w.WriteStartObject()

        for k, x in kvs do
            w.WritePropertyName k
            writeValue w x

        w.WriteEndObject()

let private writeArray (w: Utf8JsonWriter) (xs: float[]) =
    w.WriteStartArray()

    for x in xs do
        if Double.IsFinite x then
            w.WriteNumberValue x
        else
            w.WriteNullValue()

    w.WriteEndArray()

/// The name of the abscissa column: "t", unless the metadata names another under "axis_name" (e.g. "eta" for the
/// weak-order table, whose abscissa is the learning rate).
let axisName (d: Document) =
    match d.Meta |> List.tryFind (fst >> (=) "axis_name") with
    | Some(_, Str n) -> n
    | _ -> "t"

let toJson (d: Document) =
    use ms = new MemoryStream()

    (use w =
        new Utf8JsonWriter(
            ms,
            JsonWriterOptions(
                Indented = true,
                Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping
            )
        )

     w.WriteStartObject()
     w.WritePropertyName "parameters"
     writeValue w (Obj d.Parameters)
     w.WritePropertyName(axisName d)
     writeArray w d.T
     w.WritePropertyName "series"
     w.WriteStartObject()

     for name, xs in d.Series do
         w.WritePropertyName name
         writeArray w xs

     w.WriteEndObject()

     if not d.Kernels.IsEmpty then
         w.WritePropertyName "kernels"
         w.WriteStartObject()

         for name, k in d.Kernels do
             w.WritePropertyName name
             w.WriteStartArray()

             for i in 0 .. Array2D.length1 k - 1 do
                 writeArray w (Array.init (Array2D.length2 k) (fun j -> k[i, j]))

             w.WriteEndArray()

         w.WriteEndObject()

     w.WritePropertyName "meta"
     writeValue w (Obj d.Meta)
     w.WriteEndObject())

    Encoding.UTF8.GetString(ms.ToArray())

/// One row per time; parameters and metadata go in leading '#' comment lines.
let toCsv (d: Document) =
    let sb = StringBuilder()

    let num (x: float) =
        if Double.IsFinite x then
            x.ToString("R", CultureInfo.InvariantCulture)
        else
            ""

    let flat kvs =
        kvs
        |> List.map (fun (k, v) ->
            $"""%s{k}=%s{(match v with | Num x -> num x | Int i -> string i | Str s -> s | Bool b -> string b | _ -> "...")}""")
        |> String.concat " "

    sb.AppendLine("# parameters: " + flat d.Parameters) |> ignore

    // The run's status (completed, diverged with time and reason, ...) and its warnings: a CSV reader that sees
    // only the numbers must still learn that the run did not complete.
    let statusKeys =
        [
            "status"
            "divergence_time"
            "divergence_reason"
            "event"
            "event_time"
            "stopped_at"
        ]

    let statusEntries = d.Meta |> List.filter (fun (k, _) -> List.contains k statusKeys)

    sb.AppendLine(
        "# status: "
        + (if statusEntries.IsEmpty then
               "status=completed"
           else
               flat statusEntries)
    )
    |> ignore

    match d.Meta |> List.tryFind (fst >> (=) "warnings") with
    | Some(_, Arr ws) ->
        for w in ws do
            match w with
            | Str text -> sb.AppendLine("# warning: " + text) |> ignore
            | _ -> ()
    | _ -> ()

    sb.AppendLine(axisName d + "," + (d.Series |> List.map fst |> String.concat ","))
    |> ignore

    for i in 0 .. d.T.Length - 1 do
        sb.Append(num d.T[i]) |> ignore

        for _, xs in d.Series do
            sb.Append(',').Append(num xs[i]) |> ignore

        sb.AppendLine() |> ignore

    sb.ToString()

/// Write by extension (.json or .csv); None prints JSON to standard output.
let write (path: string option) (d: Document) =
    match path with
    | None -> Console.Out.Write(toJson d + "\n")
    | Some p ->
        let dir = Path.GetDirectoryName(Path.GetFullPath p)
        Directory.CreateDirectory dir |> ignore

        let text =
            match Path.GetExtension(p).ToLowerInvariant() with
            | ".json" -> toJson d
            | ".csv" -> toCsv d
            | ext -> raise (Args.UsageError($"--out must end in .json or .csv, got '%s{ext}'"))

        Validate.atomicWrite p (fun tmp -> File.WriteAllText(tmp, text))

/// Warnings as a metadata entry (omitted when there are none).
let warnings (ws: string seq) =
    let ws = List.ofSeq ws

    if ws.IsEmpty then
        []
    else
        [ "warnings", Arr(ws |> List.map Str) ]
