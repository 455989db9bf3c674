/// Figures with ScottPlot (PNG or SVG by extension): theory as lines, simulation as points with error bars.
module StatPhysFs.Cli.Plot

open System
open System.IO
open ScottPlot

type Curve =
    {
        Label: string
        X: float[]
        Y: float[]
        /// Standard errors: drawn as error bars and markers instead of a line.
        Err: float[] option
    }

/// SkiaSharp's Linux "NoDependencies" native build has no fontconfig, so system fonts are invisible to it and
/// text would not render. Register a font file ourselves: DejaVu Sans if present, else any TrueType font found.
let private fontFamily =
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

let line label (x: float[]) (y: float[]) =
    {
        Label = label
        X = x
        Y = y
        Err = None
    }

let points label (x: float[]) (y: float[]) (err: float[]) =
    {
        Label = label
        X = x
        Y = y
        Err = Some err
    }

/// Draw curves on one axis; `logY` plots log10 of positive values with decade ticks.
let save (path: string) (title: string) (xLabel: string) (yLabel: string) (logY: bool) (curves: Curve list) =
    use plt = new Plot()
    fontFamily.Value |> Option.iter (fun f -> plt.Font.Set(f) |> ignore)
    let palette = ScottPlot.Palettes.Category10()

    curves
    |> List.iteri (fun k c ->
        let keep =
            [|
                for i in 0 .. c.X.Length - 1 do
                    if Double.IsFinite c.Y[i] && (not logY || c.Y[i] > 0.0) then
                        i
            |]

        if keep.Length > 0 then
            let xs = keep |> Array.map (fun i -> c.X[i])
            let ys = keep |> Array.map (fun i -> if logY then log10 c.Y[i] else c.Y[i])
            let color = palette.GetColor k

            match c.Err with
            | None ->
                let s = plt.Add.Scatter(xs, ys)
                s.LegendText <- c.Label
                s.MarkerSize <- 0.0f
                s.LineWidth <- 2.0f
                s.Color <- color
            | Some err ->
                let s = plt.Add.Scatter(xs, ys)
                s.LegendText <- c.Label
                s.LineWidth <- 0.0f
                s.MarkerSize <- 6.0f
                s.Color <- color

                let lo, hi =
                    if logY then
                        keep
                        |> Array.map (fun i -> let y = c.Y[i] in log10 y - log10 (max (y - err[i]) (y * 1e-3))),
                        keep |> Array.map (fun i -> let y = c.Y[i] in log10 (y + err[i]) - log10 y)
                    else
                        keep |> Array.map (fun i -> err[i]), keep |> Array.map (fun i -> err[i])

                let e = Plottables.ErrorBar(xs, ys, null, null, lo, hi)
                e.Color <- color
                plt.Add.Plottable e |> ignore)

    if logY then
        let ticks = TickGenerators.NumericAutomatic()
        ticks.MinorTickGenerator <- TickGenerators.LogMinorTickGenerator()
        ticks.IntegerTicksOnly <- true
        ticks.LabelFormatter <- fun y -> sprintf "1e%d" (int (Math.Round y))
        plt.Axes.Left.TickGenerator <- ticks

    plt.Title title
    plt.XLabel xLabel
    plt.YLabel(if logY then yLabel + " (log scale)" else yLabel)
    plt.ShowLegend(Alignment.UpperRight) |> ignore

    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath path))
    |> ignore

    match Path.GetExtension(path).ToLowerInvariant() with
    | ".png" -> Validate.atomicWrite path (fun tmp -> plt.SavePng(tmp, 900, 560) |> ignore)
    | ".svg" -> Validate.atomicWrite path (fun tmp -> plt.SaveSvg(tmp, 900, 560) |> ignore)
    | ext -> raise (Args.UsageError(sprintf "--plot must end in .png or .svg, got '%s'" ext))

/// The standard learning-curve figure of an output document: eg from theory as a line, and the simulation's mean
/// with standard-error bars when the document has one.
let learningCurve (path: string) (title: string) (d: Output.Document) =
    let get name =
        d.Series |> List.tryFind (fst >> (=) name) |> Option.map snd

    let curves =
        [
            yield line "theory (ODE)" d.T (get "eg").Value
            match get "eg_sim", get "eg_sim_stderr" with
            | Some y, Some e -> yield points "simulation (mean +- s.e.)" d.T y e
            | _ -> ()
        ]

    save path title "t = steps / d" "generalisation error eg" true curves

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
    plotPath |> Option.iter (fun p -> plot p doc)
    0
