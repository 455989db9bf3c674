namespace StatPhysFs.Sweep

open System
open System.Globalization
open System.Security.Cryptography
open System.Text
open System.Text.Json

/// A malformed sweep spec or shard: the message names the offending field (e.g. "axes.alpha.points: ...").
exception SpecError of string

/// One parameter value as on the command line: a number, a word, or a switch (true: given, false: absent).
type ParamValue =
    | Number of float
    | Text of string
    | Switch of bool

/// How an axis was laid out; a log-spaced axis is drawn on a log scale.
type Spacing =
    | Linear
    | Log

type Axis =
    {
        Name: string
        Values: ParamValue[]
        Spacing: Spacing
    }

/// Product: every combination (first axis slowest). Zip: the k-th value of every axis together (equal lengths).
type Combine =
    | Product
    | Zip

/// A sweep as a value: a base command with fixed flags, the axes, and what to record of each run.
type SweepSpec =
    {
        Command: string
        Fixed: (string * ParamValue) list
        Axes: Axis list
        Combine: Combine
        /// Series (or dotted metadata paths) to record; empty: every series of the run.
        Record: string list
        /// Times at which each recorded series is also reported (linear interpolation on the run's time grid).
        At: float list
    }

/// One point of the grid: a stable index (position in the grid) and a stable key (hash of what it computes).
type Point =
    {
        Index: int
        Key: string
        /// The axis values of this point, in axis order.
        Coordinates: (string * ParamValue) list
        /// Fixed flags then axis values: the full resolved parameter set.
        Parameters: (string * ParamValue) list
    }

/// Shard I of N (I zero-based): the points whose index is I modulo N (round robin, so cost spreads evenly).
type Shard = { Index: int; Count: int }

[<RequireQualifiedAccess>]
module ParamValue =
    /// The canonical text of a value: round-trip numbers, invariant culture.
    let text (v: ParamValue) =
        match v with
        | Number x -> x.ToString("R", CultureInfo.InvariantCulture)
        | Text s -> s
        | Switch b -> if b then "true" else "false"

    let tryNumber (v: ParamValue) =
        match v with
        | Number x -> Some x
        | _ -> None

[<RequireQualifiedAccess>]
module Shard =
    let all = { Index = 0; Count = 1 }

    /// Parse "I/N" with 0 <= I < N.
    let parse (field: string) (s: string) =
        let fail () =
            raise (SpecError($"%s{field}: expected I/N with 0 <= I < N (I zero-based), got '%s{s}'"))

        match s.Split '/' with
        | [| i; n |] ->
            match
                Int32.TryParse(i.Trim(), NumberStyles.None, CultureInfo.InvariantCulture),
                Int32.TryParse(n.Trim(), NumberStyles.None, CultureInfo.InvariantCulture)
            with
            | (true, i), (true, n) when n >= 1 && i >= 0 && i < n -> { Index = i; Count = n }
            | _ -> fail ()
        | _ -> fail ()

    let contains (s: Shard) (pointIndex: int) = pointIndex % s.Count = s.Index

/// C#-shaped entries (no `ShardModule` in C#).
type Shard with
    /// The whole sweep: shard 0 of 1.
    static member All = Shard.all
    /// Parse "I/N" with 0 <= I < N; `field` names the input in the error.
    static member Parse(field: string, text: string) = Shard.parse field text

[<RequireQualifiedAccess>]
module Spec =
    /// The library version that goes into every point's key: a new version recomputes rather than mixes results.
    let libraryVersion =
        let asm = typeof<Shard>.Assembly

        match
            asm.GetCustomAttributes(typeof<Reflection.AssemblyInformationalVersionAttribute>, false)
            |> Array.tryHead
        with
        | Some(:? Reflection.AssemblyInformationalVersionAttribute as a) -> a.InformationalVersion
        | _ -> string (asm.GetName().Version)

    let private fail (message: string) : 'a =
        raise (SpecError message)

    /// n points from `lo` to `hi`; both endpoints exact. Log spacing is uniform in log.
    let spaced (field: string) (spacing: Spacing) (lo: float) (hi: float) (n: int) =
        if n < 1 then
            fail $"%s{field}.points: must be >= 1, got %d{n}"

        if not (Double.IsFinite lo && Double.IsFinite hi) then
            fail $"%s{field}: from and to must be finite numbers"

        if n = 1 && lo <> hi then
            fail $"%s{field}.points: 1 point needs from = to (got %g{lo} and %g{hi})"

        match spacing with
        | Log when not (lo > 0.0 && hi > 0.0) ->
            fail $"%s{field}: log spacing needs from > 0 and to > 0 (got %g{lo}, %g{hi})"
        | _ -> ()

        Array.init n (fun k ->
            if k = 0 then
                lo
            elif k = n - 1 then
                hi
            else
                let f = float k / float (n - 1)

                match spacing with
                | Linear -> lo + f * (hi - lo)
                | Log -> exp (log lo + f * (log hi - log lo)))

    let private valueOf (field: string) (e: JsonElement) =
        match e.ValueKind with
        | JsonValueKind.Number ->
            let x = e.GetDouble()

            if not (Double.IsFinite x) then
                fail $"%s{field}: must be a finite number"

            Number x
        | JsonValueKind.String -> Text(e.GetString())
        | JsonValueKind.True -> Switch true
        | JsonValueKind.False -> Switch false
        | k -> fail $"%s{field}: expected a number, a string or true/false, got %O{k}"

    let private checkName (field: string) (name: string) =
        if String.IsNullOrWhiteSpace name || name.StartsWith "-" || name.Contains " " then
            fail $"%s{field}: flag names are written without dashes or spaces, got '%s{name}'"

    let private axisOf (name: string) (e: JsonElement) =
        let field = "axes." + name
        checkName field name

        let listed (arr: JsonElement) (spacing: Spacing) =
            let vs =
                [|
                    for i, x in Seq.indexed (arr.EnumerateArray()) -> valueOf ($"%s{field}[%d{i}]") x
                |]

            if vs.Length = 0 then
                fail $"%s{field}: empty axis"

            if spacing = Log then
                for i, v in Array.indexed vs do
                    match v with
                    | Number x when x > 0.0 -> ()
                    | _ -> fail $"%s{field}[%d{i}]: a log axis needs positive numbers"

            {
                Name = name
                Values = vs
                Spacing = spacing
            }

        let spacingOf (o: JsonElement) =
            match o.TryGetProperty "spacing" with
            | true, s when s.ValueKind = JsonValueKind.String ->
                match s.GetString() with
                | "linear" -> Linear
                | "log" -> Log
                | other -> fail $"%s{field}.spacing: must be linear or log, got '%s{other}'"
            | true, _ -> fail $"%s{field}.spacing: must be the string linear or log"
            | _ -> Linear

        match e.ValueKind with
        | JsonValueKind.Array -> listed e Linear
        | JsonValueKind.Object ->
            for p in e.EnumerateObject() do
                if not (List.contains p.Name [ "from"; "to"; "points"; "spacing"; "values" ]) then
                    fail $"%s{field}.%s{p.Name}: unknown field (valid: from, to, points, spacing, values)"

            let spacing = spacingOf e

            match e.TryGetProperty "values" with
            | true, arr when arr.ValueKind = JsonValueKind.Array -> listed arr spacing
            | true, _ -> fail $"%s{field}.values: must be an array"
            | _ ->
                let num (k: string) =
                    match e.TryGetProperty k with
                    | true, x when x.ValueKind = JsonValueKind.Number -> x.GetDouble()
                    | true, _ -> fail $"%s{field}.%s{k}: must be a number"
                    | _ -> fail $"%s{field}.%s{k}: missing (an axis is a list or {{from, to, points, spacing}})"

                let lo, hi, n = num "from", num "to", num "points"

                if n <> Math.Floor n || n < 1.0 || n > 1e7 then
                    fail $"%s{field}.points: must be an integer >= 1, got %g{n}"

                {
                    Name = name
                    Values = spaced field spacing lo hi (int n) |> Array.map Number
                    Spacing = spacing
                }
        | _ -> fail $"%s{field}: must be a list of values or {{from, to, points, spacing}}"

    /// Check a spec's shape: at least one axis, no empty axis, zip axes of equal length, no axis also fixed.
    let validate (s: SweepSpec) =
        if String.IsNullOrWhiteSpace s.Command then
            fail "command: missing"

        if s.Axes.IsEmpty then
            fail "axes: a sweep needs at least one axis"

        for a in s.Axes do
            if a.Values.Length = 0 then
                fail $"axes.%s{a.Name}: empty axis"

            if s.Fixed |> List.exists (fst >> (=) a.Name) then
                fail $"axes.%s{a.Name}: also given in fixed"

        match s.Axes |> List.countBy (fun a -> a.Name) |> List.tryFind (snd >> (<) 1) with
        | Some(n, _) -> fail $"axes.%s{n}: given twice"
        | None -> ()

        match s.Fixed |> List.countBy fst |> List.tryFind (snd >> (<) 1) with
        | Some(n, _) -> fail $"fixed.%s{n}: given twice"
        | None -> ()

        if s.Combine = Zip then
            let n0 = s.Axes.Head.Values.Length

            for a in s.Axes do
                if a.Values.Length <> n0 then
                    fail $"axes.%s{a.Name}: zip needs axes of equal length (%s{s.Axes.Head.Name} has %d{n0} values, %s{a.Name} has %d{a.Values.Length})"

        for i, t in List.indexed s.At do
            if not (Double.IsFinite t) then
                fail $"at[%d{i}]: must be a finite number"

        for i, r in List.indexed s.Record do
            if String.IsNullOrWhiteSpace r then
                fail $"record[%d{i}]: empty name"

        s

    /// Parse the spec file format: {"command", "fixed", "axes", "combine": "product"|"zip", "record", "at"}.
    let parse (json: string) : SweepSpec =
        let doc =
            try
                JsonDocument.Parse(json, JsonDocumentOptions(CommentHandling = JsonCommentHandling.Skip))
            with :? JsonException as e ->
                fail $"spec: not valid JSON (%s{e.Message})"

        use doc = doc
        let root = doc.RootElement

        if root.ValueKind <> JsonValueKind.Object then
            fail "spec: must be a JSON object"

        for p in root.EnumerateObject() do
            if
                not (List.contains p.Name [ "command"; "fixed"; "axes"; "combine"; "zip"; "record"; "at"; "comment" ])
            then
                fail $"%s{p.Name}: unknown field (valid: command, fixed, axes, combine, record, at, comment)"

        let command =
            match root.TryGetProperty "command" with
            | true, c when c.ValueKind = JsonValueKind.String -> c.GetString().Trim()
            | true, _ -> fail "command: must be a string such as \"dmft glm\""
            | _ -> fail "command: missing"

        let fixedFlags =
            match root.TryGetProperty "fixed" with
            | true, f when f.ValueKind = JsonValueKind.Object ->
                [
                    for p in f.EnumerateObject() ->
                        checkName ("fixed." + p.Name) p.Name
                        p.Name, valueOf ("fixed." + p.Name) p.Value
                ]
            | true, _ -> fail "fixed: must be an object of flag: value"
            | _ -> []

        let axes =
            match root.TryGetProperty "axes" with
            | true, a when a.ValueKind = JsonValueKind.Object ->
                [ for p in a.EnumerateObject() -> axisOf p.Name p.Value ]
            | true, _ -> fail "axes: must be an object of name: axis"
            | _ -> fail "axes: missing"

        let combine =
            match root.TryGetProperty "combine", root.TryGetProperty "zip" with
            | (true, c), _ when c.ValueKind = JsonValueKind.String ->
                match c.GetString() with
                | "product" -> Product
                | "zip" -> Zip
                | other -> fail $"combine: must be product or zip, got '%s{other}'"
            | (true, _), _ -> fail "combine: must be the string product or zip"
            | _, (true, z) when z.ValueKind = JsonValueKind.True -> Zip
            | _, (true, z) when z.ValueKind = JsonValueKind.False -> Product
            | _, (true, _) -> fail "zip: must be true or false"
            | _ -> Product

        let strings (name: string) =
            match root.TryGetProperty name with
            | true, a when a.ValueKind = JsonValueKind.Array ->
                [
                    for i, x in Seq.indexed (a.EnumerateArray()) ->
                        if x.ValueKind = JsonValueKind.String then
                            x.GetString()
                        else
                            fail $"%s{name}[%d{i}]: must be a string"
                ]
            | true, _ -> fail $"%s{name}: must be a list of series names"
            | _ -> []

        let at =
            match root.TryGetProperty "at" with
            | true, a when a.ValueKind = JsonValueKind.Array ->
                [
                    for i, x in Seq.indexed (a.EnumerateArray()) ->
                        if x.ValueKind = JsonValueKind.Number then
                            x.GetDouble()
                        else
                            fail $"at[%d{i}]: must be a number"
                ]
            | true, _ -> fail "at: must be a list of times"
            | _ -> []

        validate
            {
                Command = command
                Fixed = fixedFlags
                Axes = axes
                Combine = combine
                Record = strings "record"
                At = at
            }

    let private writeValue (w: Utf8JsonWriter) (v: ParamValue) =
        match v with
        | Number x -> w.WriteNumberValue x
        | Text s -> w.WriteStringValue s
        | Switch b -> w.WriteBooleanValue b

    /// The spec in its file format, axes written as explicit values (so a round trip is exact).
    let toJson (s: SweepSpec) =
        use ms = new IO.MemoryStream()

        (use w = new Utf8JsonWriter(ms, JsonWriterOptions(Indented = true))
         w.WriteStartObject()
         w.WriteString("command", s.Command)
         w.WriteStartObject "fixed"

         for k, v in s.Fixed do
             w.WritePropertyName k
             writeValue w v

         w.WriteEndObject()
         w.WriteStartObject "axes"

         for a in s.Axes do
             w.WriteStartObject a.Name
             w.WriteStartArray "values"
             a.Values |> Array.iter (writeValue w)
             w.WriteEndArray()
             w.WriteString("spacing", (if a.Spacing = Log then "log" else "linear"))
             w.WriteEndObject()

         w.WriteEndObject()
         w.WriteString("combine", (if s.Combine = Zip then "zip" else "product"))
         w.WriteStartArray "record"
         s.Record |> List.iter w.WriteStringValue
         w.WriteEndArray()
         w.WriteStartArray "at"
         s.At |> List.iter w.WriteNumberValue
         w.WriteEndArray()
         w.WriteEndObject())

        Encoding.UTF8.GetString(ms.ToArray())

    let private sha (text: string) =
        SHA256.HashData(Encoding.UTF8.GetBytes text)
        |> Array.take 12
        |> Array.map (fun b -> b.ToString "x2")
        |> String.concat ""

    /// The stable key of a resolved point: library version, command, parameters sorted by name, record and at.
    let key (s: SweepSpec) (parameters: (string * ParamValue) list) =
        let sb = StringBuilder()

        sb.Append("statphys-sweep/1\n").Append(libraryVersion).Append('\n').Append(s.Command).Append('\n')
        |> ignore

        for k, v in parameters |> List.sortWith (fun (a, _) (b, _) -> String.CompareOrdinal(a, b)) do
            sb.Append(k).Append('=').Append(ParamValue.text v).Append('\n') |> ignore

        sb.Append("record=").Append(String.Join(",", s.Record)).Append('\n') |> ignore

        sb
            .Append("at=")
            .Append(String.Join(",", s.At |> List.map (fun t -> t.ToString("R", CultureInfo.InvariantCulture))))
        |> ignore

        sha (sb.ToString())

    /// Number of points of the grid.
    let size (s: SweepSpec) =
        match s.Combine with
        | Zip -> s.Axes.Head.Values.Length
        | Product ->
            let n = s.Axes |> List.fold (fun n a -> n * int64 a.Values.Length) 1L

            if n > 100_000_000L then
                fail $"axes: the grid has %d{n} points, more than 100000000"

            int n

    /// Every point, in index order. Product: the last axis varies fastest.
    let points (s: SweepSpec) : Point[] =
        let axes = List.toArray s.Axes
        let total = size s

        Array.init total (fun idx ->
            let coords =
                match s.Combine with
                | Zip -> [ for a in axes -> a.Name, a.Values[idx] ]
                | Product ->
                    let pos = Array.zeroCreate axes.Length
                    let mutable r = idx

                    for k in axes.Length - 1 .. -1 .. 0 do
                        pos[k] <- r % axes[k].Values.Length
                        r <- r / axes[k].Values.Length

                    [ for k in 0 .. axes.Length - 1 -> axes[k].Name, axes[k].Values[pos[k]] ]

            let parameters = s.Fixed @ coords

            {
                Index = idx
                Key = key s parameters
                Coordinates = coords
                Parameters = parameters
            })

    /// A fingerprint of the whole sweep: the hash of every point's key in order (version, grid and recording).
    let hash (s: SweepSpec) =
        points s |> Array.map (fun p -> p.Key) |> String.concat "\n" |> sha
