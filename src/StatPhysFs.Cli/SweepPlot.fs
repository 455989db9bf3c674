/// `statphys sweep plot`: a merged sweep table as curves (one axis) or a heat map with a colour bar (two axes).
module StatPhysFs.Cli.SweepPlot

open System
open System.Globalization
open System.IO
open System.Text
open System.Text.Json
open ScottPlot
open StatPhysFs.Sweep

/// A merged table read back: column names, rows as text cells, and each axis with its spacing.
type LoadedTable =
    {
        Columns: string list
        Rows: Map<string, string> list
        Axes: (string * Spacing) list
    }

let private fail (message: string) : 'a =
    raise (SpecError message)

/// RFC 4180 fields of one CSV line.
let csvFields (line: string) =
    let fields = Collections.Generic.List<string>()
    let sb = StringBuilder()
    let mutable quoted = false
    let mutable i = 0

    while i < line.Length do
        let c = line[i]

        if quoted then
            if c = '"' && i + 1 < line.Length && line[i + 1] = '"' then
                sb.Append '"' |> ignore
                i <- i + 1
            elif c = '"' then
                quoted <- false
            else
                sb.Append c |> ignore
        elif c = '"' then
            quoted <- true
        elif c = ',' then
            fields.Add(sb.ToString())
            sb.Clear() |> ignore
        else
            sb.Append c |> ignore

        i <- i + 1

    fields.Add(sb.ToString())
    List.ofSeq fields

let private spacingOf (s: string) = if s = "log" then Log else Linear

let load (path: string) : LoadedTable =
    if not (File.Exists path) then
        fail $"table: no such file '%s{path}'"

    match Path.GetExtension(path).ToLowerInvariant() with
    | ".csv" ->
        let lines = File.ReadAllLines path |> Array.filter (fun l -> l <> "")

        let header =
            lines
            |> Array.tryFind (fun l -> l.StartsWith "# sweep:")
            |> Option.defaultWith (fun () -> fail $"table: %s{path} is not a merged sweep table (no '# sweep:' line)")

        let axes =
            let i = header.IndexOf "axes="

            header.Substring(i + 5).Split(',', StringSplitOptions.RemoveEmptyEntries)
            |> Array.map (fun s ->
                match s.Split ':' with
                | [| n; sp |] -> n.Trim(), spacingOf (sp.Trim())
                | _ -> s.Trim(), Linear)
            |> List.ofArray

        let data = lines |> Array.filter (fun l -> not (l.StartsWith "#"))
        let cols = csvFields data[0]

        {
            Columns = cols
            Rows = [ for l in data[1..] -> List.zip cols (csvFields l) |> Map.ofList ]
            Axes = axes
        }
    | ".json" ->
        use doc = JsonDocument.Parse(File.ReadAllText path)
        let root = doc.RootElement

        let axes =
            [
                for p in root.GetProperty("spec").GetProperty("axes").EnumerateObject() ->
                    p.Name,
                    match p.Value.TryGetProperty "spacing" with
                    | true, s -> spacingOf (s.GetString())
                    | _ -> Linear
            ]

        let cols =
            [ for c in root.GetProperty("columns").EnumerateArray() -> c.GetString() ]

        let cell (e: JsonElement) =
            match e.ValueKind with
            | JsonValueKind.Number -> e.GetDouble().ToString("R", CultureInfo.InvariantCulture)
            | JsonValueKind.String -> e.GetString()
            | JsonValueKind.True -> "true"
            | JsonValueKind.False -> "false"
            | _ -> ""

        {
            Columns = cols
            Rows =
                [
                    for r in root.GetProperty("rows").EnumerateArray() ->
                        [ for p in r.EnumerateObject() -> p.Name, cell p.Value ] |> Map.ofList
                ]
            Axes = axes
        }
    | ext -> fail $"table: must end in .csv or .json, got '%s{ext}'"

let private number (s: string) =
    match Double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture) with
    | true, x -> x
    | _ -> nan

let private fontFamily () = StatPhysFs.Reporting.Figure.fontFamily.Value

/// Axis coordinate of a value: log10 on a log-spaced axis.
let private coord (spacing: Spacing) (x: float) = if spacing = Log then log10 x else x

/// Decade ticks (10^k, minors at 2..9, and 2x, 5x labelled over a short range) on a log10-coordinate axis spanning
/// [lo, hi]: the same ticks as every other figure of the library.
let private logTicks (lo: float) (hi: float) (axis: IAxis) =
    axis.TickGenerator <- StatPhysFs.Reporting.Figure.logTicks lo hi

let plot
    (t: LoadedTable)
    (x: string)
    (y: string option)
    (z: string)
    (logZ: bool)
    (where: (string * string) list)
    (out: string)
    =
    let axisNames = t.Axes |> List.map fst

    let checkAxis (field: string) (name: string) =
        if not (List.contains name axisNames) then
            fail $"""%s{field}: '%s{name}' is not an axis of the table (axes: %s{(String.concat ", " axisNames)})"""

    checkAxis "x" x
    y |> Option.iter (checkAxis "y")

    if y = Some x then
        fail "y: must differ from --x"

    if not (List.contains z t.Columns) then
        fail $"""z: no column '%s{z}' (columns: %s{(String.concat ", " t.Columns)})"""

    if List.contains z axisNames then
        fail $"z: '%s{z}' is an axis; choose a result column"

    for k, _ in where do
        checkAxis "where" k

    let rows =
        t.Rows
        |> List.filter (fun r ->
            where
            |> List.forall (fun (k, v) ->
                let cell = r[k]
                cell = v || (let a, b = number cell, number v in Double.IsFinite a && a = b)))

    if rows.IsEmpty then
        fail "where: no row of the table matches"

    let spacing name =
        t.Axes |> List.find (fst >> (=) name) |> snd

    let xs (r: Map<string, string>) = number r[x]

    if rows |> List.exists (fun r -> not (Double.IsFinite(xs r))) then
        fail $"x: axis '%s{x}' has non-numeric values"

    use plt = new Plot()
    fontFamily () |> Option.iter (fun f -> plt.Font.Set f |> ignore)
    let sx = spacing x

    let status (r: Map<string, string>) =
        r.TryFind "status" |> Option.defaultValue "completed"

    let zOf (r: Map<string, string>) =
        let v = number r[z]
        if logZ then (if v > 0.0 then log10 v else nan) else v

    let zLabel = if logZ then "log10 " + z else z
    let others = axisNames |> List.filter (fun a -> a <> x && Some a <> y)

    let markBad (points: (float * float * string) list) =
        for kind, shape, color in
            [
                "diverged", MarkerShape.OpenCircle, Colors.Black
                "failed", MarkerShape.Eks, Colors.Red
            ] do
            let ps = points |> List.filter (fun (_, _, s) -> s = kind)

            if not ps.IsEmpty then
                let m =
                    plt.Add.Markers(
                        ps |> List.map (fun (a, _, _) -> a) |> Array.ofList,
                        ps |> List.map (fun (_, b, _) -> b) |> Array.ofList,
                        shape,
                        9.0f,
                        color
                    )

                m.LegendText <- kind

    match y with
    | None ->
        let groups =
            rows
            |> List.groupBy (fun r -> others |> List.map (fun a -> a + "=" + r[a]) |> String.concat ", ")

        let palette = Palettes.Category10()
        let finiteZ = rows |> List.map zOf |> List.filter Double.IsFinite
        let floor = if finiteZ.IsEmpty then 0.0 else List.min finiteZ

        for k, (label, g) in List.indexed groups do
            let g = g |> List.sortBy xs
            let ok = g |> List.filter (fun r -> Double.IsFinite(zOf r))

            if not ok.IsEmpty then
                let s =
                    plt.Add.Scatter(ok |> List.map (xs >> coord sx) |> Array.ofList, ok |> List.map zOf |> Array.ofList)

                s.LegendText <- (if label = "" then z else label)
                s.Color <- palette.GetColor k
                s.LineWidth <- 2.0f
                s.MarkerSize <- 4.0f

        markBad
            [
                for r in rows do
                    let s = status r

                    if s <> "completed" then
                        let v = zOf r
                        yield coord sx (xs r), (if Double.IsFinite v then v else floor), s
            ]

        plt.YLabel zLabel
    | Some yName ->
        if rows |> List.exists (fun r -> not (Double.IsFinite(number r[yName]))) then
            fail $"y: axis '%s{yName}' has non-numeric values"

        for a in others do
            let n = rows |> List.map (fun r -> r[a]) |> List.distinct |> List.length

            if n > 1 then
                fail $"where: the heat map needs the other axes fixed; '%s{a}' has %d{n} values (add --where %s{a}=VALUE)"

        let sy = spacing yName

        let xv =
            rows |> List.map (xs >> coord sx) |> List.distinct |> List.sort |> Array.ofList

        let yv =
            rows
            |> List.map (fun r -> coord sy (number r[yName]))
            |> List.distinct
            |> List.sort
            |> Array.ofList

        /// Cell edges in plot coordinates, the position of a value, and whether the values were uneven (then the
        /// cells are drawn equal and the ticks name the values).
        let edges (v: float[]) =
            if v.Length = 1 then
                v[0] - 0.5, v[0] + 0.5, id, false
            else
                let h = (v[v.Length - 1] - v[0]) / float (v.Length - 1)

                let uniform =
                    v
                    |> Array.pairwise
                    |> Array.forall (fun (a, b) -> abs (b - a - h) <= 1e-6 * abs h)

                if uniform then
                    v[0] - h / 2.0, v[v.Length - 1] + h / 2.0, id, false
                else
                    -0.5, float v.Length - 0.5, (fun c -> float (Array.findIndex ((=) c) v)), true

        let x0, x1, xPos, xUneven = edges xv
        let y0, y1, yPos, yUneven = edges yv
        let grid = Array2D.create yv.Length xv.Length nan

        for r in rows do
            let i = Array.IndexOf(xv, coord sx (xs r))
            let j = Array.IndexOf(yv, coord sy (number r[yName]))
            // Row 0 of a heat map is drawn at the top.
            grid[yv.Length - 1 - j, i] <- zOf r

        let hm = plt.Add.Heatmap grid
        hm.Rectangle <- CoordinateRect(x0, x1, y0, y1)
        hm.NaNCellColor <- Colors.LightGray
        let cb = plt.Add.ColorBar hm
        cb.Label <- zLabel

        markBad
            [
                for r in rows do
                    let s = status r

                    if s <> "completed" then
                        yield xPos (coord sx (xs r)), yPos (coord sy (number r[yName])), s
            ]

        let valueTicks (axis: IAxis) (v: float[]) (spacing: Spacing) (uneven: bool) =
            let labels =
                v
                |> Array.map (fun c ->
                    (if spacing = Log then 10.0 ** c else c).ToString("g3", CultureInfo.InvariantCulture))

            // Uneven axes are drawn as equal cells at positions 0, 1, ...; even ones at their own coordinates.
            let positions = if uneven then Array.init v.Length float else v
            axis.TickGenerator <- TickGenerators.NumericManual(positions, labels)

        // A linear axis with a handful of values (e.g. K = 2, 3) is labelled at its values, not at fractions.
        if yUneven || (sy <> Log && yv.Length <= 12) then
            valueTicks plt.Axes.Left yv sy yUneven
        elif sy = Log then
            logTicks y0 y1 plt.Axes.Left

        if xUneven || (sx <> Log && xv.Length <= 12) then
            valueTicks plt.Axes.Bottom xv sx xUneven
        elif sx = Log then
            logTicks x0 x1 plt.Axes.Bottom

        plt.Axes.SetLimits(x0, x1, y0, y1)
        plt.YLabel(if sy = Log then yName + " (log scale)" else yName)

    if y.IsNone && sx = Log then
        let cs = rows |> List.map (fun r -> coord sx (xs r)) |> List.filter Double.IsFinite
        logTicks (List.min cs) (List.max cs) plt.Axes.Bottom

    plt.XLabel(if sx = Log then x + " (log scale)" else x)

    let title =
        (match y with
         | Some yy -> $"%s{zLabel} over (%s{x}, %s{yy})"
         | None -> $"%s{zLabel} against %s{x}")
        + (if where.IsEmpty then
               ""
           else
               "  ["
               + (where |> List.map (fun (k, v) -> k + "=" + v) |> String.concat ", ")
               + "]")

    plt.Title title
    plt.ShowLegend(Alignment.UpperRight) |> ignore
    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath out)) |> ignore

    match Path.GetExtension(out).ToLowerInvariant() with
    | ".png" -> plt.SavePng(out, 900, 640) |> ignore
    | ".svg" -> plt.SaveSvg(out, 900, 640) |> ignore
    | ext -> fail $"out: the figure must end in .png or .svg, got '%s{ext}'"

let main (argv: string list) =
    let table, rest =
        match argv with
        | p :: rest when not (p.StartsWith "--") -> p, rest
        | _ -> raise (Args.UsageError "sweep plot needs TABLE.csv|TABLE.json as its first argument")

    // --where may repeat: pull those out before the strict parser.
    let rec split (acc: (string * string) list) (xs: string list) (keep: string list) =
        match xs with
        | "--where" :: (kv: string) :: rest ->
            match kv.Split('=', 2) with
            | [| k; v |] when k <> "" -> split ((k, v) :: acc) rest keep
            | _ -> fail $"where: expected AXIS=VALUE, got '%s{kv}'"
        | "--where" :: [] -> fail "where: expected AXIS=VALUE"
        | x :: rest -> split acc rest (x :: keep)
        | [] -> List.rev acc, List.rev keep

    let where, rest = split [] rest []
    let a = Args.parse StatPhysFs.Cli.Options.sweepPlot rest

    let need name =
        match a.Values.TryFind name with
        | Some v -> v
        | None -> raise (Args.UsageError($"sweep plot needs --%s{name}"))

    let out = need "out"

    match Path.GetExtension(out).ToLowerInvariant() with
    | ".png"
    | ".svg" -> ()
    | ext -> fail $"out: the figure must end in .png or .svg, got '%s{ext}'"

    plot (load table) (need "x") (a.Values.TryFind "y") (need "z") (a.Flags.Contains "log-z") where out
    0
