module StatPhysFs.Tests.DataSetTests

open System
open System.Globalization
open System.IO
open Expecto
open StatPhysFs
open StatPhysFs.Sde

/// The built-in data set of `statphys sde` (--params 3 --n 6 --data-seed 7): rows N(0, I/d), labels N(0, 1).
let private builtIn =
    let rng = Rng(7, 1)
    let d, n = 3, 6

    let a =
        Array.init n (fun _ -> Array.init d (fun _ -> rng.NextNormal() / sqrt (float d)))

    let y = Array.init n (fun _ -> rng.NextNormal())
    a, y

/// CSV text of rows and labels, round-trip precision.
let private csvOf (header: string option) (a: float[][]) (y: float[]) =
    let num (v: float) =
        v.ToString("R", CultureInfo.InvariantCulture)

    (header |> Option.map (fun h -> h + "\n") |> Option.defaultValue "")
    + (Array.map2 (fun (r: float[]) yi -> (Array.append r [| yi |] |> Array.map num |> String.concat ",") + "\n") a y
       |> String.concat "")

let private withFile (text: string) (f: string -> 'a) =
    let path =
        Path.Combine(Path.GetTempPath(), sprintf "statphys-dataset-%s.csv" (Guid.NewGuid().ToString "N"))

    File.WriteAllText(path, text)

    try
        f path
    finally
        File.Delete path

/// The ArgumentException message of reading `text` as a CSV file (with the file's path replaced by FILE).
let private errorOf (text: string) (read: DataSet -> unit) =
    withFile text (fun path ->
        let message =
            try
                read (DataSet.readCsv path)
                None
            with :? ArgumentException as e ->
                Some e.Message

        match message with
        | None -> failtestf "expected an error for %A" text
        | Some m ->
            Expect.stringContains m path "the message names the file"
            m.Replace(path, "FILE"))

let private settings =
    { SdeSettings.defaults with
        Paths = 4000
        Seed = 3
    }

let private eta, horizon = 0.1, 1.0

let private x0 = [| [| 1.0; -0.5; 0.3 |]; [| -0.4; 0.8; 0.1 |] |]

let private observables =
    [
        {
            Name = "tr"
            Value = fun (xs: float[][]) -> xs[0] |> Array.sumBy (fun v -> v * v)
        }
        {
            Name = "x1"
            Value = fun (xs: float[][]) -> xs[0][0]
        }
        {
            Name = "two-point"
            Value = fun (xs: float[][]) -> Array.map2 (fun u v -> (u - v) * (u - v)) xs[0] xs[1] |> Array.sum
        }
    ]

/// SGD with replacement through `Flows.solve`: the estimates at the horizon.
let private sgd (p: FiniteSumProblem) =
    let sol =
        SdeProblem.create p (SdeProcess.Sgd WithReplacement) eta horizon x0 observables
        |> Flows.solve settings

    Expect.equal sol.Status Completed "completed"
    sol.Estimates

[<Tests>]
let dataSet =
    testList
        "user data sets (CSV)"
        [
            test "the library's built-in data set (DataSet.gaussian 3 6 7) is the documented recipe, bit for bit" {
                let a, y = builtIn
                let ds = DataSet.gaussian 3 6 7
                Expect.equal ds.Features a "rows a_i ~ N(0, I/d) from the stream (7, 1)"
                Expect.equal ds.Labels y "then the labels y_i ~ N(0, 1)"
                Expect.equal (DataSet.gaussian 3 6 7).Sha256 ds.Sha256 "the hash names the values"
                Expect.notEqual (DataSet.gaussian 3 6 8).Sha256 ds.Sha256 "another seed, another hash"
            }

            test "a CSV written from the built-in data set reads back bit for bit and gives the built-in numbers" {
                let a, y = builtIn

                for header in [ None; Some "a1,a2,a3,label" ] do
                    withFile (csvOf header a y) (fun path ->
                        let ds = DataSet.readCsv path
                        Expect.equal ds.Features a "features round-trip exactly"
                        Expect.equal ds.Labels y "labels round-trip exactly"
                        Expect.equal ds.HasHeader header.IsSome "header detected"
                        Expect.equal (ds.Rows, ds.Columns) (6, 4) "rows, columns"

                        // Same problem, same seed: the same Monte Carlo numbers as the in-memory problem.
                        let fromCsv = sgd (DataSet.leastSquares 0.0 ds)
                        let direct = sgd (FiniteSumProblem.leastSquares 0.0 a y)

                        for k in 0 .. observables.Length - 1 do
                            Expect.equal fromCsv[k].Mean direct[k].Mean "identical mean"
                            Expect.equal fromCsv[k].StdErr direct[k].StdErr "identical standard error"

                        // And against the exact moment recursion of SGD (independent of the Monte Carlo): 4 s.e.
                        let exact = LeastSquaresOracle.sgd 0.0 a y eta horizon x0

                        for (name, est: Estimate, value) in
                            [
                                "tr E[x x^T]", fromCsv[0], exact.TraceSecond 0
                                "E[x_1]", fromCsv[1], exact.Mean[0]
                                "E|x - y|^2", fromCsv[2], exact.TwoPoint(0, 1)
                            ] do
                            Expect.isLessThan
                                (abs (est.Mean - value))
                                (4.0 * est.StdErr)
                                (sprintf "%s: %g +- %g vs exact %g" name est.Mean est.StdErr value))
            }

            test "logistic labels {0, 1} and {-1, 1} give the library's c_i = y_i a_i, y_i = +-1" {
                let a, y = builtIn
                let signs = y |> Array.map (fun v -> if v >= 0.0 then 1.0 else -1.0)
                let zeroOne = signs |> Array.map (fun v -> if v > 0.0 then 1.0 else 0.0)
                let c = Array.map2 (fun (r: float[]) s -> r |> Array.map ((*) s)) a signs
                let reference = FiniteSumProblem.logistic (Array.create a.Length 0.05) c
                let rng = Rng(11, 1)

                for labels in [ signs; zeroOne ] do
                    let p = DataSet.logistic 0.05 (DataSet.parseCsv "inline" (csvOf None a labels))
                    Expect.equal (DataSet.signLabels (DataSet.parseCsv "inline" (csvOf None a labels))) signs "labels"

                    for _ in 1..5 do
                        let x = Array.init 3 (fun _ -> rng.NextNormal())
                        let g1, g2 = Array.zeroCreate 3, Array.zeroCreate 3

                        for i in 0 .. a.Length - 1 do
                            p.Gradient i x g1
                            reference.Gradient i x g2
                            Expect.equal g1 g2 "gradient"
                            Expect.equal (p.Loss i x) (reference.Loss i x) "loss"
            }

            test "the SHA-256 is of the file's bytes (values from sha256sum)" {
                withFile "1,2\n" (fun path ->
                    Expect.equal
                        (DataSet.readCsv path).Sha256
                        "52186c933993da4082b3cdc7c40bb4bf735b391ff54a2ef78c037dda6c38a680"
                        "no header")

                withFile "x1,y\n0.5,1\n" (fun path ->
                    Expect.equal
                        (DataSet.readCsv path).Sha256
                        "d781aef1dc2812493a6b165176dfaf149c18776260a6c3d4e337b0dcfc2284b7"
                        "with header")
            }

            test "comments, blank lines and CRLF line ends are accepted" {
                let ds = DataSet.parseCsv "inline" "# my data\r\nx,y\r\n\r\n1.5, 2\r\n-3e-1,4\r\n"
                Expect.equal ds.Features [| [| 1.5 |]; [| -0.3 |] |] "features"
                Expect.equal ds.Labels [| 2.0; 4.0 |] "labels"
                Expect.equal ds.LineNumbers [| 4; 5 |] "file line of each row"
            }

            test "malformed files: errors name the file, the line and the column" {
                let read (_: DataSet) = ()
                let logistic (d: DataSet) = DataSet.signLabels d |> ignore

                for text, reader, expected in
                    [
                        "", read, "FILE: no data rows (the file is empty)"
                        "# only a comment\n\n", read, "FILE: no data rows (the file is empty)"
                        "a,b,y\n", read, "FILE: no data rows after the header on line 1"
                        "1,2,3\n4,5\n", read, "FILE: line 2 has 2 columns, expected 3 (as on line 1)"
                        "a,b,y\n1,2,3\n4,5,6,7\n", read, "FILE: line 3 has 4 columns, expected 3 (as on line 1)"
                        "1,2,3\n4,x5,6\n", read, "FILE: line 2, column 2: 'x5' is not a number"
                        "1,2,3\n4,5,\n", read, "FILE: line 2, column 3: '' is not a number"
                        "1,abc,3\n", read, "FILE: line 1, column 2: 'abc' is not a number"
                        "1,NaN,3\n", read, "FILE: line 1, column 2: 'NaN' is not a finite number"
                        "1\n2\n", read, "each row needs at least one feature and the label"
                        "1,1\n2,2\n3,1\n",
                        logistic,
                        "FILE: logistic labels (last column) must all be in {-1, 1} or all in {0, 1}; line 2 has 2"
                        "1,1\n2,0\n3,-1\n", logistic, "they mix 0 (line 2) and -1 (line 3)"
                    ] do
                    Expect.stringContains (errorOf text reader) expected (sprintf "file %A" text)
            }

            test "a missing file is an error naming it" {
                let path = Path.Combine(Path.GetTempPath(), "statphys-no-such-file.csv")

                Expect.throwsC (fun () -> DataSet.readCsv path |> ignore) (fun e ->
                    Expect.stringContains e.Message (path + ": no such file") "message")
            }
        ]
