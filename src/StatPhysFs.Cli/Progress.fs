/// A progress bar on standard error for long runs; silent when stderr is redirected (CI logs), unless forced.
module StatPhysFs.Cli.Progress

open System
open System.Diagnostics

type Bar(label: string, enabled: bool) =
    let sw = Stopwatch.StartNew()
    let mutable last = -1
    let gate = obj ()

    let mutable lastLine = 0.0

    member _.Report(fraction: float) =
        if not enabled then
            // Not a terminal (a log, a batch job): one plain line at most every 10 s, none for short runs.
            let now = sw.Elapsed.TotalSeconds

            if now - lastLine >= 10.0 then
                lock gate (fun () ->
                    if now - lastLine >= 10.0 then
                        lastLine <- now
                        let f = max 0.0 (min 1.0 fraction)

                        eprintfn $"""%s{label}: %.0f{(100.0 * f)}%% after %.0f{now} s%s{(if f > 0.0 && f < 1.0 then $", ~%.0f{(now * (1.0 - f) / f)} s left" else "")}""")
        else
            let pct = int (100.0 * max 0.0 (min 1.0 fraction))

            lock gate (fun () ->
                if pct <> last then
                    last <- pct
                    let width = 30
                    let filled = pct * width / 100

                    let eta =
                        if pct > 0 && pct < 100 then
                            $" ~%.0f{(sw.Elapsed.TotalSeconds * float (100 - pct) / float pct)}s left"
                        else
                            ""

                    eprintf $"\r%s{label} [%s{(String('#', filled))}%s{(String('.', width - filled))}] %3d{pct}%%%s{eta}   "

                    if pct = 100 then
                        eprintfn "")

    member this.Done() = this.Report 1.0

let create (label: string) (force: bool) =
    Bar(label, force || not Console.IsErrorRedirected)
