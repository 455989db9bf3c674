module StatPhysFs.Tests.Main

open Expecto

[<Tests>]
let smoke = testCase "argument checks name the parameter" <| fun () ->
    let ex = Expect.throwsT<System.ArgumentOutOfRangeException> (fun () -> StatPhysFs.Check.positive "lr" -1.0) |> ignore
    ()

[<EntryPoint>]
let main argv = runTestsInAssemblyWithCLIArgs [] argv
