/// Figures with ScottPlot (PNG or SVG by extension), drawn the way a paper draws them: theory as lines, simulations
/// as markers with standard-error bars, Monte Carlo estimates of a theory (DMFT) as a line inside its standard-error
/// band; real log axes (decade ticks 10^k, minor ticks at 2..9) where values span decades; the legend outside the
/// data; a caption line with the parameters under the title.
module StatPhysFs.Cli.Plot

open System
open System.IO
open ScottPlot

/// How a curve is drawn.
type Style =
    /// Theory: a line, no markers.
    | Line
    /// A simulation: markers with standard-error bars (Err), no line.
    | Markers
    /// A Monte Carlo estimate of a theory: a line inside the band mean +- Err.
    | Band
    /// Deterministic values at a few abscissae (e.g. exact weak errors at a few eta): markers joined by a line.
    | LineMarkers
    /// A reference guide (e.g. a slope): thin grey dashed line.
    | Reference
    /// A limit the other curves approach: a wide translucent line, drawn under them so that a curve on top of it
    /// stays visible.
    | Wide

type Curve =
    {
        Label: string
        X: float[]
        Y: float[]
        /// Standard errors (Markers: error bars; Band: the band); None draws none.
        Err: float[] option
        Style: Style
    }

/// Axis scale. Auto: log10 when every finite value is positive and max/min >= 20 (well over a decade).
type Scale =
    | Linear
    | Log
    | Auto

type Figure =
    {
        Title: string
        /// One line under the title: the parameters of the run ("" for none).
        Caption: string
        XLabel: string
        YLabel: string
        XScale: Scale
        YScale: Scale
        Curves: Curve list
    }

/// The registered TrueType font (SkiaSharp on Linux sees no system fonts): one place, in the reporting library.
/// A function, not a module-level value: the program initialises every file's values at start-up, and this one
/// would load the reporting library (and with it the plotting stack) for every command, plot or not.
let private fontFamily () =
    StatPhysFs.Reporting.Figure.fontFamily

let private curve style label (x: float[]) (y: float[]) err =
    {
        Label = label
        X = x
        Y = y
        Err = err
        Style = style
    }

/// Theory: a line.
let line label x y = curve Line label x y None

/// A simulation: markers with standard-error bars.
let points label x y (err: float[]) = curve Markers label x y (Some err)

/// A Monte Carlo estimate of a theory: a line with its standard-error band.
let band label x y (err: float[]) = curve Band label x y (Some err)

/// Exact values at a few abscissae: markers joined by a line.
let lineMarkers label x y = curve LineMarkers label x y None

/// A reference guide (grey dashed).
let reference label x y = curve Reference label x y None

/// A limiting curve under the others (wide, translucent).
let wide label x y = curve Wide label x y None

/// "10^k" with Unicode superscripts (DejaVu Sans has them).
let private powerOfTen (k: int) =
    let sup =
        function
        | '-' -> '\u207B'
        | '0' -> '\u2070'
        | '1' -> '\u00B9'
        | '2' -> '\u00B2'
        | '3' -> '\u00B3'
        | c -> char (0x2070 + int c - int '0')

    "10" + String(string k |> Seq.map sup |> Array.ofSeq)

/// Ticks of a log10 axis showing [lo, hi] (in log10 units): decades 10^k (every few decades over a wide range),
/// minor ticks at m 10^k, m = 2..9; over less than about a decade, labelled ticks at 1, 2, 5 x 10^k too.
let private logTicks (lo: float) (hi: float) =
    let gen = TickGenerators.NumericManual()
    let k0, k1 = int (Math.Floor lo), int (Math.Ceiling hi)
    let inside v = v >= lo - 1e-9 && v <= hi + 1e-9
    let decades = [ k0..k1 ] |> List.filter (fun k -> inside (float k))
    let step = max 1 (int (Math.Ceiling(float decades.Length / 8.0)))

    // Over less than about two decades, label 1, 2, 5 x 10^k; as plain numbers when they are short (10^-4..10^4),
    // else as m x 10^k, so that one axis never mixes the two notations.
    let narrow = decades.Length < 3
    let plain = k0 >= -4 && k1 <= 4

    let label (m: int) (k: int) =
        if narrow && plain then
            (float m * Math.Pow(10.0, float k)).ToString("0.####", Globalization.CultureInfo.InvariantCulture)
        elif m = 1 then
            powerOfTen k
        else
            $"%d{m}×%s{(powerOfTen k)}"

    for k in decades do
        if k % step = 0 then
            gen.AddMajor(float k, label 1 k)

    if narrow then
        for k in k0..k1 do
            for m in [ 2; 5 ] do
                let v = float k + log10 (float m)

                if inside v then
                    gen.AddMajor(v, label m k)

    if step = 1 then
        for k in k0..k1 do
            for m in 2..9 do
                let v = float k + log10 (float m)

                if inside v then
                    gen.AddMinor v

    gen

let private positiveFinite (v: float) = Double.IsFinite v && v > 0.0

/// Resolve Auto: log when every finite value is positive and max/min >= 20.
let private resolve (scale: Scale) (values: float seq) =
    match scale with
    | Linear -> false
    | Log -> true
    | Auto ->
        let v = values |> Seq.filter Double.IsFinite |> Array.ofSeq

        v.Length > 0
        && Array.forall (fun x -> x > 0.0) v
        && Array.max v / Array.min v >= 20.0

/// Draw a figure; the file type follows the extension (.png or .svg).
let render (path: string) (fig: Figure) =
    use plt = new Plot()
    (fontFamily ()).Value |> Option.iter (fun f -> plt.Font.Set(f) |> ignore)
    let palette = ScottPlot.Palettes.Category10()

    let logX = resolve fig.XScale (fig.Curves |> Seq.collect (fun c -> c.X))
    let logY = resolve fig.YScale (fig.Curves |> Seq.collect (fun c -> c.Y))
    let tx v = if logX then log10 v else v
    let ty v = if logY then log10 v else v

    let okX v =
        Double.IsFinite v && (not logX || v > 0.0)

    let okY v =
        Double.IsFinite v && (not logY || v > 0.0)

    // Distinct dash patterns for lines and shapes for markers, so that coinciding series stay visible.
    let patterns =
        [|
            LinePattern.Solid
            LinePattern.Dashed
            LinePattern.Dotted
            LinePattern.DenselyDashed
        |]

    let shapes =
        [|
            MarkerShape.FilledCircle
            MarkerShape.OpenSquare
            MarkerShape.FilledTriangleUp
            MarkerShape.OpenDiamond
            MarkerShape.FilledSquare
            MarkerShape.OpenCircle
            MarkerShape.FilledTriangleDown
        |]

    let mutable nLines = 0
    let mutable nMarkers = 0
    let mutable nColours = 0
    let xsSeen = Collections.Generic.List<float>()
    let ysSeen = Collections.Generic.List<float>()

    let ordered =
        (fig.Curves |> List.filter (fun c -> c.Style = Wide))
        @ (fig.Curves |> List.filter (fun c -> c.Style <> Wide))

    for c in ordered do
        let keep =
            [|
                for i in 0 .. c.X.Length - 1 do
                    if okX c.X[i] && okY c.Y[i] then
                        i
            |]

        // Markers on a dense grid would merge into a thick band: draw at most about 80 of them (display only).
        let keep =
            match c.Style with
            | Markers when keep.Length > 80 ->
                let stride = int (Math.Ceiling(float keep.Length / 80.0))

                keep
                |> Array.indexed
                |> Array.filter (fun (j, _) -> j % stride = 0)
                |> Array.map snd
            | _ -> keep

        if keep.Length > 0 then
            let xs = keep |> Array.map (fun i -> tx c.X[i])
            let ys = keep |> Array.map (fun i -> ty c.Y[i])
            xsSeen.AddRange xs

            let colour =
                match c.Style with
                | Reference -> Colors.Gray
                | _ ->
                    nColours <- nColours + 1
                    palette.GetColor(nColours - 1)

            // Lower and upper ends of +- err, in plot units (log: the lower end clipped at y/1000).
            let lower, upper =
                match c.Err with
                | Some err ->
                    keep
                    |> Array.map (fun i ->
                        let y, e = c.Y[i], (if Double.IsFinite err[i] then err[i] else 0.0)
                        if logY then log10 (max (y - e) (y * 1e-3)) else y - e),
                    keep
                    |> Array.map (fun i ->
                        let y, e = c.Y[i], (if Double.IsFinite err[i] then err[i] else 0.0)
                        ty (y + e))
                | None -> ys, ys

            ysSeen.AddRange lower
            ysSeen.AddRange upper
            let s = plt.Add.Scatter(xs, ys)
            s.LegendText <- c.Label
            s.Color <- colour

            match c.Style with
            | Line
            | Band ->
                s.MarkerSize <- 0.0f
                s.LineWidth <- 2.0f
                s.LinePattern <- patterns[nLines % patterns.Length]
                nLines <- nLines + 1

                if c.Style = Band && c.Err.IsSome then
                    let f = plt.Add.FillY(xs, lower, upper)
                    f.FillColor <- colour.WithAlpha(0.25)
                    f.LineWidth <- 0.0f
                    f.LegendText <- ""
            | Wide ->
                s.MarkerSize <- 0.0f
                s.LineWidth <- 8.0f
                s.Color <- colour.WithAlpha(0.35)
            | Reference ->
                s.MarkerSize <- 0.0f
                s.LineWidth <- 1.2f

                s.LinePattern <-
                    (if nLines % 2 = 0 then
                         LinePattern.Dashed
                     else
                         LinePattern.Dotted)

                nLines <- nLines + 1
            | Markers ->
                s.LineWidth <- 0.0f
                s.MarkerSize <- 7.0f
                s.MarkerShape <- shapes[nMarkers % shapes.Length]
                nMarkers <- nMarkers + 1

                if c.Err.IsSome then
                    let e =
                        Plottables.ErrorBar(xs, ys, null, null, Array.map2 (-) ys lower, Array.map2 (-) upper ys)

                    e.Color <- colour
                    e.LineWidth <- 1.2f
                    plt.Add.Plottable e |> ignore
            | LineMarkers ->
                s.LineWidth <- 1.5f
                s.MarkerSize <- 8.0f
                s.MarkerShape <- shapes[nMarkers % shapes.Length]
                s.LinePattern <- patterns[nLines % patterns.Length]
                nMarkers <- nMarkers + 1
                nLines <- nLines + 1

    // Axis limits: x exactly over the data (a time axis never runs below its first time), y with a small margin.
    if xsSeen.Count > 0 then
        let x0, x1 = Seq.min xsSeen, Seq.max xsSeen
        let pad = if logX then 0.02 * (x1 - x0) else 0.0
        let x0', x1' = (if x1 > x0 then x0 - pad, x1 + pad else x0 - 0.5, x1 + 0.5)
        plt.Axes.SetLimitsX(x0', x1')

        if logX then
            plt.Axes.Bottom.TickGenerator <- logTicks x0' x1'

    let finiteY = ysSeen |> Seq.filter Double.IsFinite |> Array.ofSeq

    if finiteY.Length > 0 then
        let y0, y1 = Array.min finiteY, Array.max finiteY
        let span = if y1 > y0 then y1 - y0 else max 1.0 (abs y0)
        let y0', y1' = y0 - 0.04 * span, y1 + 0.04 * span
        plt.Axes.SetLimitsY(y0', y1')

        if logY then
            plt.Axes.Left.TickGenerator <- logTicks y0' y1'

    // The title is centred over the data area (about 90 characters wide): a long caption breaks at its "; ".
    let caption =
        if fig.Caption.Length <= 90 then
            fig.Caption
        else
            fig.Caption.Replace("; ", "\n")

    plt.Title(
        if String.IsNullOrWhiteSpace caption then
            fig.Title
        else
            fig.Title + "\n" + caption
    )

    plt.Axes.Title.Label.FontSize <- 14.0f
    plt.XLabel fig.XLabel
    plt.YLabel fig.YLabel
    plt.ShowLegend(Edge.Right) |> ignore

    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath path))
    |> ignore

    match Path.GetExtension(path).ToLowerInvariant() with
    | ".png" -> Validate.atomicWrite path (fun tmp -> plt.SavePng(tmp, 1100, 600) |> ignore)
    | ".svg" -> Validate.atomicWrite path (fun tmp -> plt.SaveSvg(tmp, 1100, 600) |> ignore)
    | ext -> raise (Args.UsageError($"--plot must end in .png or .svg, got '%s{ext}'"))

/// Draw curves on linear x; `logY` puts y on a log10 axis with decade ticks.
let save (path: string) (title: string) (xLabel: string) (yLabel: string) (logY: bool) (curves: Curve list) =
    render
        path
        {
            Title = title
            Caption = ""
            XLabel = xLabel
            YLabel = yLabel
            XScale = Linear
            YScale = (if logY then Log else Linear)
            Curves = curves
        }

/// A document's parameter as text ("" when absent).
let parameter (d: Output.Document) (name: string) =
    match d.Parameters |> List.tryFind (fst >> (=) name) with
    | Some(_, Output.Num x) -> $"%g{x}"
    | Some(_, Output.Int i) -> string i
    | Some(_, Output.Str s) -> s
    | Some(_, Output.Bool b) -> string b
    | _ -> ""

/// "a = 1, b = 2" from the named parameters that the document has.
let caption (d: Output.Document) (names: (string * string) list) =
    names
    |> List.choose (fun (key, shown) ->
        match parameter d key with
        | "" -> None
        | v -> Some($"%s{shown} = %s{v}"))
    |> String.concat ", "

/// The time axis: log when the document's grid is logarithmic.
let timeScale (d: Output.Document) =
    // A log grid may start at t = 0 (dropped on the log axis): look at the rest.
    let t = if d.T.Length > 0 && d.T[0] = 0.0 then d.T[1..] else d.T

    let geometric =
        t.Length >= 3
        && t[0] > 0.0
        && t[t.Length - 1] / t[0] >= 10.0
        && (let r = t[1] / t[0] in Seq.forall (fun i -> abs (t[i + 1] / t[i] - r) < 1e-6 * r) [ 0 .. t.Length - 2 ])

    if parameter d "grid" = "log" || geometric then
        Log
    else
        Linear

let private series (d: Output.Document) name =
    d.Series |> List.tryFind (fst >> (=) name) |> Option.map snd

/// The simulation's size as caption text ("d = 1000, 10 seeds"), when the document has one.
let simulationCaption (d: Output.Document) =
    match d.Meta |> List.tryFind (fst >> (=) "simulation") with
    | Some(_, Output.Obj kv) ->
        let get k =
            match kv |> List.tryFind (fst >> (=) k) with
            | Some(_, Output.Int i) -> Some i
            | _ -> None

        match get "dim", get "seeds" with
        | Some d, Some s -> $"simulation d = %d{d}, %d{s} seeds"
        | _ -> ""
    | _ -> ""

/// The learning-curve figure: eg from `theory` as a line (pass a densely gridded document for a smooth line) and
/// the simulation's mean with standard-error bars from `sim` when it has one. Log eg axis when eg spans decades.
let learningCurveOf (path: string) (title: string) (caption: string) (theory: Output.Document) (sim: Output.Document) =
    let curves =
        [
            match series theory "eg" with
            | Some eg -> yield line "theory (ODE, d -> infinity)" theory.T eg
            | None -> ()
            match series sim "eg_sim", series sim "eg_sim_stderr" with
            | Some y, Some e -> yield points "simulation (mean +- s.e.)" sim.T y e
            | _ -> ()
        ]

    let simText = simulationCaption sim

    render
        path
        {
            Title = title
            Caption =
                (if simText = "" then caption
                 elif caption = "" then simText
                 else caption + "; " + simText)
            XLabel = "t = steps / d"
            YLabel = "generalisation error eg"
            XScale = timeScale theory
            YScale = Auto
            Curves = curves
        }

/// The learning-curve figure of one output document (the caption names the simulation, when there is one).
let learningCurve (path: string) (title: string) (d: Output.Document) = learningCurveOf path title "" d d

/// The one warning line for a diverged result (theory and/or simulation runs), or None. The JSON says the same
/// under meta (status, divergence_time, divergence_reason; simulation divergences), but a user reading only the
/// terminal must not miss it.
let divergenceWarning (d: Output.Document) =
    let meta k =
        d.Meta |> List.tryFind (fst >> (=) k) |> Option.map snd

    let theory =
        match meta "status", meta "divergence_time", meta "divergence_reason" with
        | Some(Output.Str "diverged"), Some(Output.Num t), Some(Output.Str why) ->
            Some($"diverged at t = %g{t} (%s{why})")
        | Some(Output.Str "diverged"), Some(Output.Num t), _ -> Some($"diverged at t = %g{t}")
        | _ -> None

    // Simulation entries: "simulation", "simulation_sim", "simulation_sgd", each with a list of (run, time).
    let simulations =
        d.Meta
        |> List.choose (fun (k, v) ->
            match v with
            | Output.Obj kv when k.StartsWith "simulation" ->
                let runs =
                    match kv |> List.tryFind (fst >> (=) "seeds") with
                    | Some(_, Output.Int n) -> n
                    | _ -> 0

                match kv |> List.tryFind (fst >> (=) "divergences") with
                | Some(_, Output.Arr(_ :: _ as ds)) ->
                    let times =
                        ds
                        |> List.choose (function
                            | Output.Obj e ->
                                match e |> List.tryFind (fst >> (=) "time") with
                                | Some(_, Output.Num t) -> Some t
                                | _ -> None
                            | _ -> None)

                    let first =
                        if times.IsEmpty then
                            ""
                        else
                            $", the first at t = %g{(List.min times)}"

                    Some($"%s{k}: %d{ds.Length} of %d{runs} runs diverged%s{first}")
                | _ -> None
            | _ -> None)

    match Option.toList theory @ simulations with
    | [] -> None
    | parts -> Some("statphys: warning: " + String.concat "; " parts)

/// A command's main: parse, run, write the document (JSON to stdout without --out), draw the figure if asked.
let execute
    (parse: string list -> 's * string option * string option)
    (run: 's -> Output.Document)
    (plot: string -> Output.Document -> unit)
    (argv: string list)
    =
    let settings, out, plotPath = parse argv
    let doc = run settings
    Output.write out doc
    divergenceWarning doc |> Option.iter (eprintfn "%s")
    plotPath |> Option.iter (fun p -> plot p doc)
    0
