/// Ctrl-C and SIGTERM for the whole process (installed first thing in `main`): the run stops within a step, nothing
/// half-written is left (files are written atomically), and the command says "cancelled". ODE commands keep what they
/// computed (status "cancelled" with `stopped_at`); the others stop with one line and exit code 130. `statphys sweep`
/// stops starting new points on this token and keeps the finished ones (exit 130); its points never see the token.
module StatPhysFs.Cli.Interrupt

open System
open System.Runtime.InteropServices
open System.Threading

/// Wire Ctrl-C and SIGTERM to `source` (the command's token) until the returned value is disposed.
let install (source: CancellationTokenSource) : IDisposable =
    let current = source

    let onCancel =
        ConsoleCancelEventHandler(fun _ e ->
            // Keep the process alive: the command stops by itself and reports "cancelled".
            e.Cancel <- true
            current.Cancel())

    Console.CancelKeyPress.AddHandler onCancel

    let term =
        try
            Some(
                PosixSignalRegistration.Create(
                    PosixSignal.SIGTERM,
                    fun ctx ->
                        ctx.Cancel <- true
                        current.Cancel()
                )
            )
        with :? PlatformNotSupportedException ->
            None

    { new IDisposable with
        member _.Dispose() =
            Console.CancelKeyPress.RemoveHandler onCancel
            term |> Option.iter (fun t -> t.Dispose())
    }
