module StatPhysFs.Benchmarks.Program
[<EntryPoint>]
let main _ = 0
