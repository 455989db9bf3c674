module StatPhysFs.Cli.Program

[<EntryPoint>]
let main argv = 0
