namespace StatPhysFs.Sde

open System
open System.Globalization
open System.IO
open System.Security.Cryptography
open System.Text
open StatPhysFs

/// A labelled data set for the finite-sum problems: one row a data point, its features a_i then its label y_i. This is
/// how a user's own data reaches `FiniteSumProblem.leastSquares` and `FiniteSumProblem.logistic` (the library and the
/// C# facade take the arrays directly; this reads them from CSV).
type DataSet =
    {
        /// Where the rows came from (a file path, or a name given to `parseCsv`).
        Source: string
        /// Rows a_i (n rows of d features).
        Features: float[][]
        /// Labels y_i (n).
        Labels: float[]
        /// SHA-256 of the bytes read, lower-case hex: names the exact data a result was computed on.
        Sha256: string
        /// Whether the first line was a header (column names).
        HasHeader: bool
        /// The file line (from 1) of each row, for messages about a row.
        LineNumbers: int[]
    }

    member d.Rows = d.Features.Length
    /// Columns per row: features + 1 (the label).
    member d.Columns = d.Features[0].Length + 1

[<RequireQualifiedAccess>]
module DataSet =
    let private fail (source: string) (msg: string) =
        raise (ArgumentException($"%s{source}: %s{msg}", "data"))

    let private tryNumber (s: string) =
        match Double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture) with
        | true, v -> Some v
        | _ -> None

    let private hex (bytes: byte[]) =
        Convert.ToHexString(SHA256.HashData bytes).ToLowerInvariant()

    let private parse (source: string) (sha: string) (text: string) =
        // Lines numbered from 1 as an editor shows them; blank lines and '#' comments are skipped.
        let lines =
            text.Split('\n')
            |> Array.mapi (fun i l -> i + 1, l.TrimEnd('\r'))
            |> Array.filter (fun (_, l) -> l.Trim() <> "" && not (l.TrimStart().StartsWith "#"))

        if lines.Length = 0 then
            fail source "no data rows (the file is empty)"

        // A header is a first line none of whose fields is a number; a line mixing numbers and text is a bad row.
        let firstLine, first = lines[0]
        let firstFields = first.Split(',')
        let hasHeader = firstFields |> Array.forall (fun f -> (tryNumber f).IsNone)
        let rows = if hasHeader then lines[1..] else lines

        if rows.Length = 0 then
            fail source ($"no data rows after the header on line %d{firstLine}")

        let width =
            if hasHeader then
                firstFields.Length
            else
                (snd rows[0]).Split(',').Length

        if width < 2 then
            fail
                source
                ($"line %d{(fst rows[0])} has %d{width} column; each row needs at least one feature and the label (the last column)")

        let values =
            rows
            |> Array.map (fun (lineNo, line) ->
                let fields = line.Split(',')

                if fields.Length <> width then
                    fail
                        source
                        ($"line %d{lineNo} has %d{fields.Length} columns, expected %d{width} (as on line %d{(if hasHeader then firstLine else fst rows[0])})")

                fields
                |> Array.mapi (fun j f ->
                    match tryNumber f with
                    | Some v when Double.IsFinite v -> v
                    | Some _ ->
                        fail
                            source
                            ($"line %d{lineNo}, column %d{(j + 1)}: '%s{(f.Trim())}' is not a finite number")
                    | None ->
                        fail source ($"line %d{lineNo}, column %d{(j + 1)}: '%s{(f.Trim())}' is not a number")))

        {
            Source = source
            Features = values |> Array.map (fun r -> r[.. width - 2])
            Labels = values |> Array.map (fun r -> r[width - 1])
            Sha256 = sha
            HasHeader = hasHeader
            LineNumbers = rows |> Array.map fst
        }

    /// Parse CSV text (comma-separated, '.' decimals, optional header line, '#' comment lines and blank lines
    /// skipped). `source` names the data in error messages, which give the line and column of a malformed field.
    [<CompiledName("ParseCsv")>]
    let parseCsv (source: string) (text: string) =
        parse source (hex (Encoding.UTF8.GetBytes text)) text

    /// Read a CSV file (see `parseCsv`); the hash is of the file's bytes.
    [<CompiledName("ReadCsv")>]
    let readCsv (path: string) =
        if not (File.Exists path) then
            raise (ArgumentException($"%s{path}: no such file", "data"))

        let bytes = File.ReadAllBytes path
        parse path (hex bytes) (Encoding.UTF8.GetString bytes)

    /// The labels as the logistic loss expects them, y_i in {-1, +1} (f_i = log(1 + e^{-y_i a_i . x})): labels in
    /// {-1, 1} are kept, labels in {0, 1} are read as 0 -> -1; anything else is an error naming the line of data.
    [<CompiledName("SignLabels")>]
    let signLabels (d: DataSet) =
        let distinct = d.Labels |> Array.distinct |> Array.sort

        let zeroOne = distinct |> Array.forall (fun v -> v = 0.0 || v = 1.0)
        let plusMinus = distinct |> Array.forall (fun v -> v = -1.0 || v = 1.0)

        if zeroOne then
            d.Labels |> Array.map (fun v -> if v = 0.0 then -1.0 else 1.0)
        elif plusMinus then
            Array.copy d.Labels
        else
            let shown =
                distinct |> Array.truncate 5 |> Array.map (fun v -> $"%g{v}") |> String.concat ", "

            match d.Labels |> Array.tryFindIndex (fun v -> not (v = -1.0 || v = 0.0 || v = 1.0)) with
            | Some i ->
                fail
                    d.Source
                    ($"logistic labels (last column) must all be in {{-1, 1}} or all in {{0, 1}}; line %d{d.LineNumbers[i]} has %g{d.Labels[i]} (labels found: %s{shown})")
            | None ->
                let zero = Array.findIndex ((=) 0.0) d.Labels
                let minus = Array.findIndex ((=) -1.0) d.Labels

                fail
                    d.Source
                    ($"logistic labels (last column) must all be in {{-1, 1}} or all in {{0, 1}}; they mix 0 (line %d{d.LineNumbers[zero]}) and -1 (line %d{d.LineNumbers[minus]})")

    /// Least squares on the data: f_i(x) = (a_i . x - y_i)^2/2 + ridge |x|^2/2.
    [<CompiledName("LeastSquares")>]
    let leastSquares (ridge: float) (d: DataSet) =
        FiniteSumProblem.leastSquares ridge d.Features d.Labels

    /// Logistic regression on the data: f_i(x) = log(1 + e^{-y_i a_i . x}) + ridge |x|^2/2, y_i from `signLabels`.
    [<CompiledName("Logistic")>]
    let logistic (ridge: float) (d: DataSet) =
        let y = signLabels d

        let c =
            Array.map2 (fun (a: float[]) yi -> a |> Array.map (fun v -> yi * v)) d.Features y

        FiniteSumProblem.logistic (Array.create d.Rows ridge) c

    /// The built-in data set of `statphys sde`: n rows a_i ~ N(0, I/d) then n labels y_i ~ N(0, 1), all from the
    /// stream (seed, 1). Its SHA-256 is of the values as little-endian float64, rows then labels.
    [<CompiledName("Gaussian")>]
    let gaussian (dim: int) (samples: int) (seed: int) =
        Check.intInRange "dim" 1 10_000 dim
        Check.intInRange "samples" 1 1_000_000 samples
        let rng = Rng(seed, 1)

        let rows =
            Array.init samples (fun _ -> Array.init dim (fun _ -> rng.NextNormal() / sqrt (float dim)))

        let y = Array.init samples (fun _ -> rng.NextNormal())

        let bytes =
            Array.append (Array.concat rows) y
            |> Array.collect (fun (v: float) -> BitConverter.GetBytes v)

        {
            Source = $"built-in Gaussian data (d = %d{dim}, n = %d{samples}, seed %d{seed})"
            Features = rows
            Labels = y
            Sha256 = hex bytes
            HasHeader = false
            LineNumbers = Array.init samples (fun i -> i + 1)
        }

    /// Logistic regression on real-valued labels read by their sign: c_i = a_i for y_i >= 0, -a_i otherwise, with
    /// f_i(x) = log(1 + e^{-c_i . x}) + ridge |x|^2/2 (the built-in logistic problem of `statphys sde`).
    [<CompiledName("LogisticBySign")>]
    let logisticBySign (ridge: float) (d: DataSet) =
        let c =
            Array.map2
                (fun (r: float[]) yi -> r |> Array.map (fun v -> if yi >= 0.0 then v else -v))
                d.Features
                d.Labels

        FiniteSumProblem.logistic (Array.create d.Rows ridge) c

    /// The built-in two-layer problem of `statphys sde`: inputs x_i = sqrt(N) a_i (so x ~ N(0, I_N) for the Gaussian
    /// data), labels from a fixed teacher of two erf units w*_m ~ N(0, I_N) drawn from the stream (seed, 2),
    /// y_i = sum_m erf-unit(w*_m . x_i / sqrt N); the student is a K = 2 erf committee with readout (1, 1).
    [<CompiledName("TwoLayerTeacher")>]
    let twoLayerTeacher (seed: int) (d: DataSet) =
        let nIn = d.Features[0].Length
        let inputs = d.Features |> Array.map (Array.map (fun v -> v * sqrt (float nIn)))
        let trng = Rng(seed, 2)
        let teacher = Array.init 2 (fun _ -> Array.init nIn (fun _ -> trng.NextNormal()))

        let g z =
            Gaussian.Activation.value Gaussian.Activation.Erf z

        let labels =
            inputs
            |> Array.map (fun x -> teacher |> Array.sumBy (fun w -> g (Blas.dotArr w x / sqrt (float nIn))))

        FiniteSumProblem.twoLayer Gaussian.Activation.Erf [| 1.0; 1.0 |] inputs labels

/// C#-shaped entries (the module above compiles as DataSetModule).
type DataSet with
    static member ReadCsv(path: string) = DataSet.readCsv path
    static member Gaussian(dim: int, samples: int, seed: int) = DataSet.gaussian dim samples seed
    member d.LeastSquares(ridge: float) = DataSet.leastSquares ridge d
    member d.Logistic(ridge: float) = DataSet.logistic ridge d
    member d.LogisticBySign(ridge: float) = DataSet.logisticBySign ridge d
    member d.TwoLayerTeacher(seed: int) = DataSet.twoLayerTeacher seed d
