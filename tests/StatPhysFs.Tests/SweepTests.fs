/// Sweeps: grid, keys, shards, the crash-safe store, resume, parallel determinism, spec validation, and rows
/// against the command run alone (and against the closed form of online linear regression).
module StatPhysFs.Tests.SweepTests

open System
open System.Diagnostics
open System.Globalization
open System.IO
open System.Security.Cryptography
open System.Text
open System.Text.Json
open System.Threading
open Expecto
open FsCheck
open FsCheck.FSharp
open StatPhysFs
open StatPhysFs.Models
open StatPhysFs.Sweep
open StatPhysFs.Cli

let private tempDir () =
    let d =
        Path.Combine(Path.GetTempPath(), "statphys-sweep-test-" + Guid.NewGuid().ToString "N")

    d

let private deleteDir (d: string) =
    if Directory.Exists d then
        Directory.Delete(d, true)

/// Runs `f` on a fresh temporary folder and deletes the folder afterwards, whatever happens.
let private withTempDir (f: string -> unit) =
    let dir = tempDir ()

    try
        f dir
    finally
        deleteDir dir

/// Runs `f` on two fresh temporary folders and deletes both afterwards, whatever happens.
let private withTempDirs (f: string -> string -> unit) =
    withTempDir (fun a -> withTempDir (fun b -> f a b))

let private specError (f: unit -> 'a) =
    try
        f () |> ignore
        failwith "expected a SpecError"
    with SpecError m ->
        m

/// A deterministic stand-in for a command: a smooth function of the point, failing where x < 0.
let private synthetic (p: Point) : PointResult =
    let get n =
        p.Parameters
        |> List.pick (fun (k, v) -> if k = n then ParamValue.tryNumber v else None)

    let x, y = get "x", get "y"

    if x < 0.0 then
        PointResult.failed "x must be >= 0"
    else
        {
            Status = if x * y > 10.0 then Diverged else Completed
            DivergenceTime = if x * y > 10.0 then Some(1.0 / (x * y)) else None
            Message = None
            Values = [ "f", sin x * exp (-y); "g", x * x + y ]
        }

let private syntheticSpec =
    Spec.parse
        """{"command": "synthetic", "fixed": {"c": 1},
            "axes": {"x": {"from": -1, "to": 4, "points": 11}, "y": {"from": 0.1, "to": 10, "points": 7, "spacing": "log"}}}"""

let private noProgress (_: RunProgress) = ()

let private options p =
    { Sweep.defaultOptions with
        Parallelism = p
    }

/// The merged table without wall times, as text: what must not depend on how the sweep was run.
let private tableText dir =
    match Sweep.merge dir with
    | Ok t -> Sweep.toCsv false t
    | Error missing -> failwithf "missing points %A" missing

let private cliDll = Path.Combine(AppContext.BaseDirectory, "statphys.dll")

/// Run the CLI as its own process: exit code, standard output, standard error.
let private runCli (args: string list) =
    let psi = ProcessStartInfo("dotnet", cliDll :: args)
    psi.RedirectStandardOutput <- true
    psi.RedirectStandardError <- true
    psi.UseShellExecute <- false
    psi.Environment.Remove "SLURM_ARRAY_TASK_ID" |> ignore
    use p = Process.Start psi
    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEnd()
    p.WaitForExit()
    p.ExitCode, out.Result, err

let private onlineSpec =
    """{"command": "online linear", "fixed": {"noise-var": 0.1, "t-end": 10, "points": 21, "q0": 0.2},
        "axes": {"lr": [0.25, 0.7, 1.3, -0.5], "ridge": [0, 0.3]}, "record": ["m", "q", "eg"], "at": [2, 3.3]}"""

[<Tests>]
let tests =
    testList
        "Sweep"
        [
            testList
                "grid"
                [
                    test "log spacing: endpoints exact, every point on the geometric sequence" {
                        let v = Spec.spaced "a" Log 0.25 4.0 9

                        Expect.equal v[0] 0.25 "first exactly from"
                        Expect.equal v[8] 4.0 "last exactly to"

                        for k in 0..8 do
                            let exact = 0.25 * Math.Pow(2.0, float k / 2.0)
                            Expect.floatClose { absolute = 0.0; relative = 1e-14 } v[k] exact (sprintf "point %d" k)
                    }

                    test "linear spacing: endpoints exact, uniform steps" {
                        let v = Spec.spaced "a" Linear 0.1 0.7 7
                        Expect.equal v[0] 0.1 "from"
                        Expect.equal v[6] 0.7 "to"

                        for k in 0..6 do
                            Expect.floatClose { absolute = 1e-15; relative = 1e-14 } v[k] (0.1 + 0.1 * float k) "step"
                    }

                    test "product: last axis fastest, index = position in the grid; zip pairs values" {
                        let s = Spec.parse """{"command": "c", "axes": {"a": [1, 2, 3], "b": ["u", "v"]}}"""

                        let pts = Spec.points s
                        Expect.equal pts.Length 6 "3 x 2"

                        Expect.equal
                            [ for p in pts -> p.Coordinates |> List.map (snd >> ParamValue.text) ]
                            [
                                [ "1"; "u" ]
                                [ "1"; "v" ]
                                [ "2"; "u" ]
                                [ "2"; "v" ]
                                [ "3"; "u" ]
                                [ "3"; "v" ]
                            ]
                            "order"

                        Expect.equal [ for p in pts -> p.Index ] [ 0..5 ] "indices"

                        let z =
                            Spec.parse
                                """{"command": "c", "combine": "zip", "axes": {"a": [1, 2, 3], "b": [4, 5, 6]}}"""

                        Expect.equal
                            [ for p in Spec.points z -> p.Coordinates |> List.map (snd >> ParamValue.text) ]
                            [ [ "1"; "4" ]; [ "2"; "5" ]; [ "3"; "6" ] ]
                            "zip"
                    }

                    test "zip needs axes of equal length" {
                        let m =
                            specError (fun () ->
                                Spec.parse """{"command": "c", "zip": true, "axes": {"a": [1, 2, 3], "b": [4, 5]}}""")

                        Expect.stringStarts m "axes.b: zip needs axes of equal length" m
                    }

                    test "bad specs: one message naming the field" {
                        let cases =
                            [
                                """{"command": "c", "axes": {"a": []}}""", "axes.a: empty axis"
                                """{"command": "c", "axes": {"a": {"from": 1, "to": 2, "points": 0}}}""",
                                "axes.a.points"
                                """{"command": "c", "axes": {"a": {"from": 0, "to": 2, "points": 3, "spacing": "log"}}}""",
                                "axes.a: log spacing"
                                """{"command": "c", "axes": {"a": {"from": 1, "to": 2, "points": 3, "spacing": "cubic"}}}""",
                                "axes.a.spacing"
                                """{"command": "c", "axes": {}}""", "axes: a sweep needs at least one axis"
                                """{"axes": {"a": [1]}}""", "command: missing"
                                """{"command": "c", "fixed": {"a": 1}, "axes": {"a": [1]}}""",
                                "axes.a: also given in fixed"
                                """{"command": "c", "axes": {"a": [1]}, "recrd": ["m"]}""", "recrd: unknown field"
                                """{"command": "c", "axes": {"a": [1]}, "at": ["x"]}""", "at[0]"
                                """{"command": "c", "fixed": {"--lr": 1}, "axes": {"a": [1]}}""", "fixed.--lr"
                                """not json""", "spec: not valid JSON"
                            ]

                        for json, field in cases do
                            let m = specError (fun () -> Spec.parse json)
                            Expect.stringStarts m field json
                            Expect.isFalse (m.Contains "\n") "one line"
                    }

                    test "the spec round-trips through its JSON form" {
                        let again = Spec.parse (Spec.toJson syntheticSpec)
                        Expect.equal again syntheticSpec "same spec"
                        Expect.equal (Spec.hash again) (Spec.hash syntheticSpec) "same fingerprint"
                    }
                ]

            testList
                "keys"
                [
                    test
                        "a key is SHA-256 of the documented canonical text (version, command, sorted flags, record, at)" {
                        let s =
                            Spec.parse
                                """{"command": "online linear", "fixed": {"t-end": 5, "exact": true},
                                    "axes": {"lr": [0.1]}, "record": ["m", "q"], "at": [1.5]}"""

                        let canonical =
                            "statphys-sweep/1\n"
                            + Spec.libraryVersion
                            + "\nonline linear\nexact=true\nlr=0.1\nt-end=5\nrecord=m,q\nat=1.5"

                        let expected =
                            SHA256.HashData(Encoding.UTF8.GetBytes canonical)
                            |> Array.take 12
                            |> Array.map (fun b -> b.ToString "x2")
                            |> String.concat ""

                        let first = (Spec.points s).[0]
                        Expect.equal first.Key expected "key"
                    }

                    test "keys do not depend on the order of fixed flags, and change with any value" {
                        let a =
                            Spec.parse """{"command": "c", "fixed": {"p": 1, "q": "w"}, "axes": {"x": [1, 2]}}"""

                        let b =
                            Spec.parse """{"command": "c", "fixed": {"q": "w", "p": 1.0}, "axes": {"x": [1, 2]}}"""

                        let c =
                            Spec.parse """{"command": "c", "fixed": {"q": "w", "p": 1.5}, "axes": {"x": [1, 2]}}"""

                        let d =
                            Spec.parse
                                """{"command": "c", "fixed": {"q": "w", "p": 1}, "axes": {"x": [1, 2]}, "at": [3]}"""

                        let keys s =
                            Spec.points s |> Array.map (fun p -> p.Key)

                        let ka, kc, kd = keys a, keys c, keys d
                        Expect.equal ka (keys b) "reordered"
                        Expect.notEqual ka.[0] kc.[0] "changed value"
                        Expect.notEqual ka.[0] kd.[0] "changed record times"
                        Expect.notEqual ka.[0] ka.[1] "different points"
                    }

                    Prop.testProp
                        "every point of a grid has its own key"
                        50
                        (Prop.forAll (Arb.fromGen (Gen.choose (2, 40))) (fun n ->
                            let s =
                                Spec.parse (
                                    sprintf
                                        """{"command": "c", "axes": {"x": {"from": 0, "to": 1, "points": %d}, "y": [1, 2]}}"""
                                        n
                                )

                            let ks = Spec.points s |> Array.map (fun p -> p.Key)
                            (Array.distinct ks).Length = ks.Length))
                ]

            testList
                "shards"
                [
                    Prop.testProp
                        "shards I of N cover every point exactly once"
                        200
                        (Prop.forAll
                            (Arb.fromGen (Gen.zip (Gen.choose (1, 500)) (Gen.choose (1, 60))))
                            (fun (n, shards) ->
                                let counts = Array.zeroCreate n

                                for i in 0 .. shards - 1 do
                                    let s = Shard.parse "shard" (sprintf "%d/%d" i shards)

                                    for k in 0 .. n - 1 do
                                        if Shard.contains s k then
                                            counts[k] <- counts[k] + 1

                                Array.forall ((=) 1) counts))

                    test "bad shards name the field" {
                        for bad in [ "4/4"; "-1/2"; "a/b"; "1"; "1/0"; "0/2/3"; "" ] do
                            let m = specError (fun () -> Shard.parse "shard" bad)
                            Expect.stringStarts m "shard: expected I/N" bad
                    }
                ]

            testList
                "store and runner"
                [
                    test "resume after cancellation gives the uninterrupted table" {
                        withTempDirs (fun whole cut ->
                            let s1 =
                                Sweep.run whole syntheticSpec (options 2) noProgress CancellationToken.None synthetic

                            Expect.equal (s1.Computed + s1.Failed, s1.Skipped) (77, 0) "all computed"
                            use cts = new CancellationTokenSource()

                            let stopAfter (pr: RunProgress) =
                                if pr.Done >= 30 then
                                    cts.Cancel()

                            let s2 = Sweep.run cut syntheticSpec (options 2) stopAfter cts.Token synthetic
                            Expect.isTrue s2.Cancelled "cancelled"
                            let stored = s2.Computed + s2.Failed
                            Expect.isTrue (stored >= 30 && stored < 77) (sprintf "stopped midway (%d)" stored)
                            Expect.isError (Sweep.merge cut) "incomplete table refused"

                            let s3 =
                                Sweep.run cut syntheticSpec (options 2) noProgress CancellationToken.None synthetic

                            Expect.equal s3.Skipped stored "skips the stored points"
                            Expect.equal (s3.Computed + s3.Failed) (77 - stored) "computes the rest"
                            Expect.equal (tableText cut) (tableText whole) "same table")
                    }

                    test "a torn last line is ignored and the point recomputed; the file stays clean" {
                        withTempDir (fun dir ->
                            Sweep.run dir syntheticSpec (options 1) noProgress CancellationToken.None synthetic
                            |> ignore

                            let whole = tableText dir
                            let file = Store.shardFile dir Shard.all
                            let bytes = File.ReadAllBytes file
                            // Cut the last record in half: a crash during its write.
                            let lastStart =
                                Array.FindLastIndex(bytes, bytes.Length - 2, fun b -> b = byte '\n') + 1

                            File.WriteAllBytes(file, bytes[.. lastStart + 20])
                            Expect.equal (Store.readAll dir).Length 76 "the torn record is ignored"

                            match Sweep.merge dir with
                            | Error [ _ ] -> ()
                            | other -> failtestf "one point missing expected, got %A" other

                            let s =
                                Sweep.run dir syntheticSpec (options 1) noProgress CancellationToken.None synthetic

                            Expect.equal (s.Computed + s.Failed, s.Skipped) (1, 76) "only the torn point"
                            Expect.equal (tableText dir) whole "same table"

                            for line in File.ReadAllLines file do
                                Store.rowOfJson line |> ignore)
                    }

                    test "a changed spec into an old folder is refused; --force accepts it and reuses shared points" {
                        withTempDir (fun dir ->
                            Sweep.run dir syntheticSpec (options 2) noProgress CancellationToken.None synthetic
                            |> ignore

                            let changed =
                                Spec.parse
                                    """{"command": "synthetic", "fixed": {"c": 1},
                                        "axes": {"x": {"from": -1, "to": 4, "points": 11}, "y": [0.1, 20]}}"""

                            let m =
                                specError (fun () ->
                                    Sweep.run dir changed (options 2) noProgress CancellationToken.None synthetic)

                            Expect.stringContains m "holds a different sweep" m

                            let s =
                                Sweep.run
                                    dir
                                    changed
                                    { options 2 with Force = true }
                                    noProgress
                                    CancellationToken.None
                                    synthetic

                            // y = 0.1 is shared with the old grid (same resolved parameters, same key).
                            Expect.equal (s.Skipped, s.Computed + s.Failed) (11, 11) "shared points kept"
                            Expect.isOk (Sweep.merge dir) "complete")
                    }

                    test "a progress callback's exception comes out unwrapped" {
                        withTempDir (fun dir ->
                            let boom (pr: RunProgress) =
                                if pr.Done >= 3 then
                                    invalidOp "progress failed"

                            Expect.throwsT<InvalidOperationException>
                                (fun () ->
                                    Sweep.run dir syntheticSpec (options 2) boom CancellationToken.None synthetic
                                    |> ignore)
                                "its own type, not an AggregateException")
                    }

                    // Sequenced: it blocks every pool thread (see the Chunked test).
                    testSequenced
                    <| test "a cancellation does not wait for the thread pool (all pool threads blocked)" {
                        withTempDir (fun dir ->
                            // As the Chunked test: block every pool thread the pool gives without its ~0.5 s
                            // injection delay; a runner that waits for the workers it queued (Parallel.ForEach did)
                            // then returns only after thread injection.
                            let minWorkers, _ = ThreadPool.GetMinThreads()
                            // Not disposed: blockers the pool starts later still read it.
                            let release = new ManualResetEventSlim(false)

                            for _ in 1 .. minWorkers + 4 do
                                ThreadPool.UnsafeQueueUserWorkItem((fun _ -> release.Wait()), null) |> ignore

                            try
                                use cts = new CancellationTokenSource()
                                let cancelledAt = Diagnostics.Stopwatch()

                                let evaluate (p: Point) =
                                    if p.Index = 5 then
                                        cancelledAt.Start()
                                        cts.Cancel()

                                    synthetic p

                                // On a thread of its own, as a caller outside the pool (a pool thread could run a
                                // queued worker inline from its local queue).
                                let result = ref (Unchecked.defaultof<RunSummary>, nan)

                                let caller =
                                    Thread(fun () ->
                                        let s = Sweep.run dir syntheticSpec (options 4) noProgress cts.Token evaluate
                                        result.Value <- s, cancelledAt.Elapsed.TotalMilliseconds)

                                caller.Start()
                                caller.Join()
                                let s, ms = result.Value
                                Expect.isTrue s.Cancelled "cancelled"
                                Expect.isLessThan (s.Computed + s.Failed) 77 "stopped midway"
                                // Far below the pool's injection interval (500 ms), well above scheduling noise.
                                Expect.isLessThan ms 200.0 (sprintf "returned %.1f ms after the cancellation" ms)
                            finally
                                release.Set())
                    }

                    test "failed points are recorded with their message and the sweep goes on" {
                        withTempDir (fun dir ->
                            let s =
                                Sweep.run dir syntheticSpec (options 2) noProgress CancellationToken.None (fun p ->
                                    if p.Index = 50 then failwith "boom" else synthetic p)

                            Expect.equal s.Failed (2 * 7 + 1) "x < 0 (14 points) and the thrown one"

                            match Sweep.merge dir with
                            | Ok t ->
                                Expect.equal t.Rows[50].Result.Message (Some "boom") "message kept"
                                Expect.equal t.Rows[50].Result.Status Failed "failed"
                                Expect.equal t.Rows[76].Result.Status Diverged "x y > 10 diverged"
                            | Error m -> failtestf "missing %A" m)
                    }

                    test "merge lists the missing indices" {
                        withTempDir (fun dir ->
                            let shard = { Index = 1; Count = 3 }

                            Sweep.run
                                dir
                                syntheticSpec
                                { options 1 with Shard = shard }
                                noProgress
                                CancellationToken.None
                                synthetic
                            |> ignore

                            match Sweep.merge dir with
                            | Error missing ->
                                Expect.equal
                                    missing
                                    [
                                        for i in 0..76 do
                                            if i % 3 <> 1 then
                                                i
                                    ]
                                    "indices not in shard 1/3"
                            | Ok _ -> failtest "expected missing points")
                    }
                ]

            testList
                "command points"
                [
                    test "a row equals the command run alone, and the closed form of online linear regression" {
                        withTempDir (fun dir ->
                            let spec = Spec.parse onlineSpec
                            let cmd = SweepCommand.resolve spec

                            // No console silencing here: it is process-wide and would hide other tests' output; these
                            // runs print nothing (no progress bars without --progress or a simulation).
                            let s =
                                Sweep.run
                                    dir
                                    spec
                                    (options 2)
                                    noProgress
                                    CancellationToken.None
                                    (SweepCommand.evaluator (Validate.Context.defaults ()) spec cmd)

                            Expect.equal (s.Computed, s.Failed) (6, 2) "lr = -0.5 fails"

                            let t =
                                match Sweep.merge dir with
                                | Ok t -> t
                                | Error m -> failtestf "missing %A" m

                            for r in t.Rows do
                                let lr, ridge =
                                    match r.Coordinates with
                                    | [ _, Number lr; _, Number ridge ] -> lr, ridge
                                    | c -> failtestf "coordinates %A" c

                                if lr < 0.0 then
                                    Expect.equal r.Result.Status Failed "negative lr"
                                    Expect.stringContains r.Result.Message.Value "lr" "message names lr"
                                else
                                    let out = Path.Combine(dir, sprintf "alone-%d.json" r.Index)

                                    let rc, _, _ =
                                        runCli
                                            [
                                                "online"
                                                "linear"
                                                "--noise-var"
                                                "0.1"
                                                "--t-end"
                                                "10"
                                                "--points"
                                                "21"
                                                "--q0"
                                                "0.2"
                                                "--lr"
                                                string lr
                                                "--ridge"
                                                string ridge
                                                "--out"
                                                out
                                            ]

                                    Expect.equal rc 0 "command alone"
                                    use doc = JsonDocument.Parse(File.ReadAllText out)

                                    let series (n: string) =
                                        [|
                                            for x in
                                                doc.RootElement.GetProperty("series").GetProperty(n).EnumerateArray() ->
                                                x.GetDouble()
                                        |]

                                    let tGrid =
                                        [|
                                            for x in doc.RootElement.GetProperty("t").EnumerateArray() -> x.GetDouble()
                                        |]

                                    let v = dict r.Result.Values

                                    for n in [ "m"; "q"; "eg" ] do
                                        let y = series n
                                        Expect.equal v[n] y[y.Length - 1] (sprintf "%s final, bitwise" n)
                                        // t = 2 is on the grid (step 0.5); 3.3 lies between 3 and 3.5.
                                        Expect.equal v[n + "@2"] y[4] (sprintf "%s at 2, bitwise" n)
                                        let w = (3.3 - tGrid[6]) / (tGrid[7] - tGrid[6])

                                        Expect.floatClose
                                            Accuracy.veryHigh
                                            v[n + "@3.3"]
                                            ((1.0 - w) * y[6] + w * y[7])
                                            "interpolated"

                                    let p =
                                        { OnlineLinear.defaults with
                                            NoiseVar = 0.1
                                            Q0 = 0.2
                                            Lr = lr
                                            Ridge = ridge
                                        }

                                    for time, suffix in [ 10.0, ""; 2.0, "@2" ] do
                                        let exact = OnlineLinear.closedForm p time

                                        Expect.floatClose
                                            { absolute = 1e-9; relative = 1e-7 }
                                            v["m" + suffix]
                                            exact.M
                                            "m vs closed form"

                                        Expect.floatClose
                                            { absolute = 1e-9; relative = 1e-7 }
                                            v["q" + suffix]
                                            exact.Q
                                            "q vs closed form")
                    }

                    test "parallel = sequential, bitwise (DMFT exact closure)" {
                        withTempDirs (fun a b ->
                            let spec =
                                Spec.parse
                                    """{"command": "dmft glm", "fixed": {"exact": true, "t-end": 3, "dt": 0.1},
                                        "axes": {"alpha": {"from": 0.5, "to": 4, "points": 4, "spacing": "log"}, "tau": [0.5, 1.5, 2.5]},
                                        "record": ["test_loss", "train_loss"], "at": [1.05]}"""

                            let cmd = SweepCommand.resolve spec

                            for dir, p in [ a, 1; b, 4 ] do
                                Sweep.run
                                    dir
                                    spec
                                    (options p)
                                    noProgress
                                    CancellationToken.None
                                    (SweepCommand.evaluator (Validate.Context.defaults ()) spec cmd)
                                |> ignore

                            Expect.equal (tableText b) (tableText a) "same bytes")
                    }

                    test "specs that do not fit the command are refused before anything runs" {
                        let cases =
                            [
                                """{"command": "online quadratic", "axes": {"lr": [1]}}""", "command: unknown command"
                                """{"command": "online linear", "axes": {"K": [1, 2]}}""",
                                "axes.K: 'online linear' takes no option --K"
                                """{"command": "online linear", "fixed": {"lrr": 1}, "axes": {"lr": [1]}}""",
                                "fixed.lrr"
                                """{"command": "online linear", "fixed": {"out": "x.json"}, "axes": {"lr": [1]}}""",
                                "fixed.out"
                                """{"command": "dmft glm", "fixed": {"exact": 1}, "axes": {"tau": [1]}}""",
                                "fixed.exact: --exact is a switch"
                                """{"command": "dmft glm", "fixed": {"alpha": true}, "axes": {"tau": [1]}}""",
                                "fixed.alpha: --alpha of 'dmft glm' takes a value"
                            ]

                        for json, field in cases do
                            let m = specError (fun () -> SweepCommand.resolve (Spec.parse json))
                            Expect.stringStarts m field json
                    }

                    test "the CLI: bad spec or shard -> exit 2, one line on stderr naming the field, nothing written" {
                        let dir = tempDir ()
                        let spec = Path.Combine(Path.GetTempPath(), Guid.NewGuid().ToString "N" + ".json")

                        try
                            for json, extra, field in
                                [
                                    """{"command": "online linear", "axes": {"lr": []}}""", [], "axes.lr: empty axis"
                                    """{"command": "online linear", "axes": {"K": [1]}}""", [], "axes.K:"
                                    """{"command": "online linear", "axes": {"lr": [1]}}""",
                                    [ "--shard"; "2/2" ],
                                    "shard:"
                                    """{"command": "online linear", "axes": {"lr": [1]}}""",
                                    [ "--parallel"; "0" ],
                                    "parallel:"
                                ] do
                                File.WriteAllText(spec, json)
                                let rc, out, err = runCli ([ "sweep"; "run"; spec; "--out"; dir ] @ extra)
                                Expect.equal rc 2 json
                                Expect.equal out "" "nothing on stdout"
                                let lines = err.Trim().Split '\n'
                                Expect.equal lines.Length 1 (sprintf "one line: %s" err)
                                Expect.stringStarts lines[0] ("statphys: sweep: " + field) json
                                Expect.isFalse (Directory.Exists dir) "nothing written"

                            File.WriteAllText(spec, onlineSpec)
                            let rc, _, err = runCli [ "sweep"; "run"; spec; "--out"; dir; "--parallel"; "2" ]
                            Expect.equal rc 0 err
                            Expect.equal (err.Trim()) "sweep: 6 computed, 0 skipped, 2 failed" "summary line only"
                            let rc, _, err = runCli [ "sweep"; "run"; spec; "--out"; dir ]
                            Expect.equal (rc, err.Trim()) (0, "sweep: 0 computed, 8 skipped, 0 failed") "rerun skips"
                        finally
                            deleteDir dir

                            if File.Exists spec then
                                File.Delete spec
                    }
                ]
        ]

module private Posix =
    [<Runtime.InteropServices.DllImport("libc", SetLastError = true)>]
    extern int kill(int pid, int signal)

    [<Runtime.InteropServices.DllImport("libc", SetLastError = true)>]
    extern int mkfifo(string path, uint32 mode)

/// A signal that comes while the CLI is still reading its command line is a cancellation, not the runtime's default
/// (the process killed by the signal). The spec is a FIFO: opening it for writing returns once the CLI has opened it
/// to read the spec, so the CLI is then inside `main`, before the point where the handler used to be installed (a
/// sweep installed its own only after reading the spec). The signal is sent there; the spec follows 0.5 s later. A
/// cancelled sweep prints its summary line and exits 130; a killed process prints nothing (SIGINT's death is also
/// 128 + 2 = 130, so the summary line is what tells them apart). About 1 s per signal.
[<Tests>]
let earlySignals =
    testList
        "CLI signals"
        [
            for signal, name in [ 15, "SIGTERM"; 2, "SIGINT" ] do
                test $"a %s{name} while the command line is read cancels the command (exit 130), never kills it" {
                    if not (OperatingSystem.IsLinux()) then
                        skiptest "POSIX signals to a child process: Linux only"

                    let dir =
                        Path.Combine(Path.GetTempPath(), "statphys-signal-" + Guid.NewGuid().ToString("N"))

                    Directory.CreateDirectory dir |> ignore

                    try
                        let spec = Path.Combine(dir, "spec.json")
                        Expect.equal (Posix.mkfifo (spec, 0o600u)) 0 "mkfifo"

                        let psi =
                            ProcessStartInfo(
                                "dotnet",
                                [
                                    cliDll
                                    "sweep"
                                    "run"
                                    spec
                                    "--out"
                                    Path.Combine(dir, "out")
                                    "--parallel"
                                    "1"
                                ]
                            )

                        psi.RedirectStandardOutput <- true
                        psi.RedirectStandardError <- true
                        psi.UseShellExecute <- false
                        psi.Environment.Remove "SLURM_ARRAY_TASK_ID" |> ignore
                        use p = Process.Start psi
                        let out = p.StandardOutput.ReadToEndAsync()
                        let err = p.StandardError.ReadToEndAsync()

                        let opened =
                            Tasks.Task.Run(fun () -> new FileStream(spec, FileMode.Open, FileAccess.Write))

                        let clock = Stopwatch.StartNew()

                        while not opened.IsCompleted && not p.HasExited && clock.Elapsed.TotalSeconds < 60.0 do
                            Thread.Sleep 5

                        if not opened.IsCompleted then
                            // Unblock the writer's open before failing.
                            use _r = new FileStream(spec, FileMode.Open, FileAccess.Read)
                            p.WaitForExit()
                            failtest $"the CLI never opened its spec (exit %d{p.ExitCode}): %s{err.Result}"

                        Expect.equal (Posix.kill (p.Id, signal)) 0 "kill"
                        Thread.Sleep 500
                        // 400 points of a few ms each: a cancellation seen a little late still leaves points unstarted.
                        let text =
                            """{"command": "online linear", "fixed": {"t-end": 50, "points": 11},
                                "axes": {"lr": {"from": 0.1, "to": 0.9, "points": 400}}}"""

                        try
                            use w = opened.Result
                            let bytes = Encoding.UTF8.GetBytes text
                            w.Write(bytes, 0, bytes.Length)
                        with :? IOException ->
                            // The reader is gone: the signal killed the process (the failure this test is about).
                            ()

                        if not (p.WaitForExit 60_000) then
                            p.Kill()
                            failtest "the CLI did not end within 60 s of the signal"

                        let stderr = err.Result
                        out.Result |> ignore

                        Expect.stringContains
                            stderr
                            "sweep: "
                            $"the summary line of a cancelled sweep (exit %d{p.ExitCode}, stderr '%s{stderr}')"

                        Expect.equal p.ExitCode 130 $"exit code of a cancelled run (stderr '%s{stderr}')"
                    finally
                        Directory.Delete(dir, true)
                }
        ]
