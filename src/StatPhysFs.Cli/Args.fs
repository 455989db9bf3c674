/// A small, strict argument parser: every option is declared, unknown ones are errors, values are checked.
module StatPhysFs.Cli.Args

open System
open System.Globalization

/// A usage error: printed with the command's usage, exit code 2.
exception UsageError of string

type Parsed =
    {
        Values: Map<string, string>
        Flags: Set<string>
    }

/// Parse `--name value`, `--name=value` and `--flag` tokens. `valued` and `flags` list the allowed names (without
/// dashes).
let parse (valued: string list) (flags: string list) (argv: string list) =
    let rec go (acc: Parsed) args =
        match args with
        | [] -> acc
        | (a: string) :: rest when a.StartsWith "--" && a.IndexOf '=' > 2 ->
            let i = a.IndexOf '='
            let name = a.Substring(2, i - 2)

            if List.contains name flags then
                raise (UsageError(sprintf "option --%s is a flag and takes no value" name))

            if List.contains name valued then
                if acc.Values.ContainsKey name then
                    raise (UsageError(sprintf "option --%s given twice" name))

                go
                    { acc with
                        Values = acc.Values.Add(name, a.Substring(i + 1))
                    }
                    rest
            else
                go acc (a.Substring(0, i) :: rest)
        | (a: string) :: rest when a.StartsWith "--" ->
            let name = a.Substring 2

            if List.contains name flags then
                go { acc with Flags = acc.Flags.Add name } rest
            elif List.contains name valued then
                match rest with
                | v :: rest' when not (v.StartsWith "--" && v.Length > 2 && Char.IsLetter v[2]) ->
                    if acc.Values.ContainsKey name then
                        raise (UsageError(sprintf "option --%s given twice" name))

                    go
                        { acc with
                            Values = acc.Values.Add(name, v)
                        }
                        rest'
                | _ -> raise (UsageError(sprintf "option --%s needs a value" name))
            else
                raise (
                    UsageError(
                        sprintf
                            "unknown option %s (valid: %s)"
                            a
                            (valued @ flags |> List.map ((+) "--") |> String.concat ", ")
                    )
                )
        | a :: _ -> raise (UsageError(sprintf "unexpected argument '%s'" a))

    go
        {
            Values = Map.empty
            Flags = Set.empty
        }
        argv

let has (p: Parsed) name =
    p.Values.ContainsKey name || p.Flags.Contains name

let float (p: Parsed) (name: string) (fallback: float) =
    match p.Values.TryFind name with
    | None -> fallback
    | Some s ->
        match Double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture) with
        | true, v when Double.IsFinite v -> v
        | _ -> raise (UsageError(sprintf "--%s expects a finite number, got '%s'" name s))

let int (p: Parsed) (name: string) (fallback: int) =
    match p.Values.TryFind name with
    | None -> fallback
    | Some s ->
        match Int32.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture) with
        | true, v -> v
        | _ ->
            raise (
                UsageError(
                    sprintf "--%s expects an integer between %d and %d, got '%s'" name Int32.MinValue Int32.MaxValue s
                )
            )

let string (p: Parsed) (name: string) (fallback: string) =
    p.Values.TryFind name |> Option.defaultValue fallback

let choice (p: Parsed) (name: string) (allowed: string list) (fallback: string) =
    let v = string p name fallback

    if List.contains v allowed then
        v
    else
        raise (UsageError(sprintf "--%s must be one of %s, got '%s'" name (String.concat "|" allowed) v))

/// --grid linear|log (default linear).
let grid (p: Parsed) =
    if choice p "grid" [ "linear"; "log" ] "linear" = "log" then
        StatPhysFs.LogGrid
    else
        StatPhysFs.LinearGrid
