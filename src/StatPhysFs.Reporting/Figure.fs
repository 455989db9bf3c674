/// Figures for notebooks and reports (ScottPlot, headless): theory as lines, simulations as markers with
/// standard-error bars, standard-error bands, real log axes with decade ticks, the legend outside the data.
/// `Figure.svg` returns the SVG text, which a notebook shows inline (`HTML svg |> display`); `Figure.save`
/// writes a .svg or .png file.
[<RequireQualifiedAccess>]
module StatPhysFs.Reporting.Figure

open System
open System.IO
open ScottPlot

/// How a series is drawn.
type Style =
    /// A line through the points (theory: an ODE, a closed form, a DMFT mean).
    | Line
    /// Markers with error bars of the given half-widths (a simulation: mean +- standard error).
    | Markers of err: float[]
    /// A line with a shaded band of the given half-widths (a Monte Carlo theory with its standard error).
    | Band of err: float[]

type Series =
    {
        Label: string
        X: float[]
        Y: float[]
        Style: Style
    }

/// Title, axis labels and axis scales of one figure.
type Axes =
    {
        Title: string
        XLabel: string
        YLabel: string
        LogX: bool
        LogY: bool
        Width: int
        Height: int
    }

let axes title xLabel yLabel =
    {
        Title = title
        XLabel = xLabel
        YLabel = yLabel
        LogX = false
        LogY = false
        Width = 1000
        Height = 520
    }

let line label (x: float[]) (y: float[]) =
    if x.Length <> y.Length then
        invalidArg "y" ($"series '%s{label}': %d{x.Length} x values but %d{y.Length} y values")

    {
        Label = label
        X = x
        Y = y
        Style = Line
    }

/// A series with error half-widths drawn as `style err` (markers with bars, or a band).
let private withErrors (style: float[] -> Style) label (x: float[]) (y: float[]) (err: float[]) =
    if x.Length <> y.Length || err.Length <> y.Length then
        invalidArg "err" ($"series '%s{label}': x, y and err must have the same length")

    {
        Label = label
        X = x
        Y = y
        Style = style err
    }

let markers label x y err = withErrors Markers label x y err

let band label x y err = withErrors Band label x y err

/// SkiaSharp's Linux "NoDependencies" native build has no fontconfig, so system fonts are invisible to it and
/// text would not render. Register a font file ourselves: DejaVu Sans if present, else any TrueType font found.
/// Shared by every figure of the library, the command line and the notebooks.
let fontFamily =
    lazy
        (let dirs =
            [
                "/usr/share/fonts"
                "/usr/local/share/fonts"
                Environment.GetFolderPath Environment.SpecialFolder.Fonts
            ]

         let files =
             dirs
             |> List.filter (fun d -> not (String.IsNullOrEmpty d) && Directory.Exists d)
             |> List.collect (fun d -> Directory.GetFiles(d, "*.ttf", SearchOption.AllDirectories) |> List.ofArray)

         let pick =
             files
             |> List.tryFind (fun f -> Path.GetFileName f = "DejaVuSans.ttf")
             |> Option.orElse (files |> List.tryFind (fun f -> Path.GetFileName(f).Contains "Sans"))
             |> Option.orElse (List.tryHead files)

         match pick with
         | Some f ->
             Fonts.AddFontFile("StatPhysFs Sans", f) |> ignore
             Some "StatPhysFs Sans"
         | None ->
             eprintfn "statphys: no TrueType font found; figure text will be missing (install fonts-dejavu-core)"
             None)

let private superscript (k: int) =
    let digits = "⁰¹²³⁴⁵⁶⁷⁸⁹"

    (if k < 0 then "⁻" else "")
    + String(string (abs k) |> Seq.map (fun c -> digits[int c - int '0']) |> Array.ofSeq)

/// Ticks of a log10-transformed axis spanning [lo, hi] (in log10 units): majors at decades labelled 10^k, minors
/// at 2..9 times a decade; when the data span less than 2.5 decades, 2x and 5x are labelled too.
let logTicks (lo: float) (hi: float) =
    let ticks = TickGenerators.NumericManual()
    let k0, k1 = int (floor lo) - 1, int (ceil hi) + 1
    let fewDecades = hi - lo < 2.5

    for k in k0..k1 do
        ticks.AddMajor(float k, "10" + superscript k)

        for m in 2..9 do
            let pos = float k + log10 (float m)

            if fewDecades && (m = 2 || m = 5) then
                ticks.AddMajor(pos, $"%d{m}·10%s{(superscript k)}")
            else
                ticks.AddMinor pos

    ticks

/// Build the plot. Points with a non-finite value (or a non-positive one on a log axis) are left out.
let private build (a: Axes) (series: Series list) =
    let plt = new Plot()
    fontFamily.Value |> Option.iter (fun f -> plt.Font.Set(f) |> ignore)
    let palette = Palettes.Category10()
    let tx v = if a.LogX then log10 v else v
    let ty v = if a.LogY then log10 v else v
    let ok logScale v = Double.IsFinite v && (not logScale || v > 0.0)
    let mutable yRange = (infinity, -infinity)
    let mutable xRange = (infinity, -infinity)

    series
    |> List.iteri (fun k s ->
        let keep =
            [|
                for i in 0 .. s.X.Length - 1 do
                    if ok a.LogX s.X[i] && ok a.LogY s.Y[i] then
                        i
            |]

        if keep.Length > 0 then
            let xs = keep |> Array.map (fun i -> tx s.X[i])
            let ys = keep |> Array.map (fun i -> ty s.Y[i])
            xRange <- (min (fst xRange) (Array.min xs), max (snd xRange) (Array.max xs))
            yRange <- (min (fst yRange) (Array.min ys), max (snd yRange) (Array.max ys))
            let color = palette.GetColor k

            // Half-widths below and above, in plotted units; on a log axis a bar reaching zero is cut at 1e-3 y.
            let lowHigh (err: float[]) =
                if a.LogY then
                    keep |> Array.map (fun i -> log10 s.Y[i] - log10 (max (s.Y[i] - err[i]) (s.Y[i] * 1e-3))),
                    keep |> Array.map (fun i -> log10 (s.Y[i] + err[i]) - log10 s.Y[i])
                else
                    keep |> Array.map (fun i -> err[i]), keep |> Array.map (fun i -> err[i])

            match s.Style with
            | Line ->
                let p = plt.Add.Scatter(xs, ys)
                p.LegendText <- s.Label
                p.MarkerSize <- 0.0f
                p.LineWidth <- 2.0f
                p.Color <- color
            | Markers err ->
                let p = plt.Add.Scatter(xs, ys)
                p.LegendText <- s.Label
                p.LineWidth <- 0.0f
                p.MarkerSize <- 7.0f
                p.MarkerShape <- MarkerShape.OpenCircle
                p.Color <- color
                let lo, hi = lowHigh err
                let e = Plottables.ErrorBar(xs, ys, null, null, lo, hi)
                e.Color <- color
                plt.Add.Plottable e |> ignore
            | Band err ->
                let lo, hi = lowHigh err
                let f = plt.Add.FillY(xs, Array.map2 (-) ys lo, Array.map2 (+) ys hi)
                f.FillColor <- color.WithAlpha 0.25
                f.LineColor <- Colors.Transparent
                let p = plt.Add.Scatter(xs, ys)
                p.LegendText <- s.Label + " (± s.e. band)"
                p.MarkerSize <- 0.0f
                p.LineWidth <- 2.0f
                p.Color <- color)

    if a.LogX && Double.IsFinite(fst xRange) then
        plt.Axes.Bottom.TickGenerator <- logTicks (fst xRange) (snd xRange)

    if a.LogY && Double.IsFinite(fst yRange) then
        plt.Axes.Left.TickGenerator <- logTicks (fst yRange) (snd yRange)

    plt.Title a.Title
    plt.XLabel(a.XLabel + (if a.LogX then " (log scale)" else ""))
    plt.YLabel(a.YLabel + (if a.LogY then " (log scale)" else ""))
    plt.ShowLegend(Edge.Right) |> ignore
    plt

/// The figure as SVG text, for display inline in a notebook (`HTML (Figure.svg axes series) |> display`).
let svg (a: Axes) (series: Series list) : string =
    use plt = build a series
    plt.GetSvgXml(a.Width, a.Height)

/// Write the figure to a .svg or .png file (by extension).
let save (path: string) (a: Axes) (series: Series list) =
    use plt = build a series

    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath path))
    |> ignore

    match Path.GetExtension(path).ToLowerInvariant() with
    | ".png" -> plt.SavePng(path, a.Width, a.Height) |> ignore
    | ".svg" -> plt.SaveSvg(path, a.Width, a.Height) |> ignore
    | ext -> invalidArg "path" ($"a figure file must end in .png or .svg, got '%s{ext}'")
