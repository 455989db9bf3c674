/// Ctrl-C and SIGTERM for one command: the run stops within a step, nothing half-written is left (files are written
/// atomically), and the command says "cancelled". ODE commands keep what they computed (status "cancelled" with
/// `stopped_at`); the others stop with one line and exit code 130. `statphys sweep` installs its own handler instead
/// (it keeps the finished points and stops starting new ones), so a sweep's points never see this token.
module StatPhysFs.Cli.Interrupt

open System
open System.Runtime.InteropServices
open System.Threading

// One source per command run (the tests run many commands in one process).
let mutable private source = new CancellationTokenSource()

/// The token every long loop of the current command watches.
let token () = source.Token

/// Cancel the current command, as Ctrl-C would (for tests and embedding).
let cancel () = source.Cancel()

/// A fresh token for a new command, with Ctrl-C and SIGTERM wired to it until the returned value is disposed.
let install () : IDisposable =
    source <- new CancellationTokenSource()
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
