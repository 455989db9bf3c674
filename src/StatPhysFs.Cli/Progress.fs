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

                        eprintfn
                            "%s: %.0f%% after %.0f s%s"
                            label
                            (100.0 * f)
                            now
                            (if f > 0.0 && f < 1.0 then sprintf ", ~%.0f s left" (now * (1.0 - f) / f) else ""))
        else
            let pct = int (100.0 * max 0.0 (min 1.0 fraction))

            lock gate (fun () ->
                if pct <> last then
                    last <- pct
                    let width = 30
                    let filled = pct * width / 100

                    let eta =
                        if pct > 0 && pct < 100 then
                            sprintf " ~%.0fs left" (sw.Elapsed.TotalSeconds * float (100 - pct) / float pct)
                        else
                            ""

                    eprintf "\r%s [%s%s] %3d%%%s   " label (String('#', filled)) (String('.', width - filled)) pct eta

                    if pct = 100 then
                        eprintfn "")

    member this.Done() = this.Report 1.0

let create (label: string) (force: bool) =
    Bar(label, force || not Console.IsErrorRedirected)
