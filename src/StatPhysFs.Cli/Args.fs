/// The declarative command line: every command declares its options once (name, kind, default, help) and
/// System.CommandLine parses them, refuses unknown and repeated options and writes the help from the declarations,
/// so the help always shows the defaults the command really uses.
module StatPhysFs.Cli.Args

open System
open System.CommandLine
open System.Globalization

/// A usage error: one line on standard error, exit code 2.
exception UsageError of string

/// What an option's value is; the parser checks it before the command runs.
type Kind =
    | Number
    | Integer
    | Text
    | OneOf of string list
    /// A switch: present or absent, no value.
    | Switch

/// One declared option (its name without dashes).
type Spec =
    {
        Name: string
        Kind: Kind
        /// The value used when the option is absent, as the help shows it; None: absent means "not given".
        Default: string option
        Help: string
    }

/// A command's declaration: its words (e.g. "dmft committee"), what it does, its options, notes after the table.
type CommandSpec =
    {
        Path: string
        Summary: string
        Options: Spec list
        Notes: string
    }

let private invariant (x: float) =
    x.ToString("R", CultureInfo.InvariantCulture)

/// A real-valued option with its default.
let number name (fallback: float) help =
    {
        Name = name
        Kind = Number
        Default = Some(invariant fallback)
        Help = help
    }

/// An integer option with its default.
let integer name (fallback: int) help =
    {
        Name = name
        Kind = Integer
        Default = Some(string fallback)
        Help = help
    }

/// A text option (a file, a list); None: no default, the command checks whether it was given.
let text name (fallback: string option) help =
    {
        Name = name
        Kind = Text
        Default = fallback
        Help = help
    }

/// A real or integer option without a default value (the command derives one, said in the help).
let optionalNumber name help =
    {
        Name = name
        Kind = Number
        Default = None
        Help = help
    }

let optionalInteger name help =
    {
        Name = name
        Kind = Integer
        Default = None
        Help = help
    }

/// One of a fixed set of words, with its default.
let oneOf name (choices: string list) (fallback: string) help =
    {
        Name = name
        Kind = OneOf choices
        Default = Some fallback
        Help = help
    }

let switch name help =
    {
        Name = name
        Kind = Switch
        Default = None
        Help = help
    }

/// The names of a command's valued options and of its switches (the sweep checks spec files against them).
let valuedNames (c: CommandSpec) =
    c.Options
    |> List.filter (fun o -> o.Kind <> Switch)
    |> List.map (fun o -> o.Name)

let switchNames (c: CommandSpec) =
    c.Options
    |> List.filter (fun o -> o.Kind = Switch)
    |> List.map (fun o -> o.Name)

let private parseNumber (name: string) (s: string) =
    match Double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture) with
    | true, v when Double.IsFinite v -> v
    | _ -> raise (UsageError($"--%s{name} expects a finite number, got '%s{s}'"))

let private parseInteger (name: string) (s: string) =
    match Int32.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture) with
    | true, v -> v
    | _ ->
        raise (
            UsageError(
                $"--%s{name} expects an integer between %d{Int32.MinValue} and %d{Int32.MaxValue}, got '%s{s}'"
            )
        )

/// Check a value against its kind; raises UsageError naming the option.
let private check (o: Spec) (s: string) =
    match o.Kind with
    | Number -> parseNumber o.Name s |> ignore
    | Integer -> parseInteger o.Name s |> ignore
    | OneOf choices when not (List.contains s choices) ->
        raise (UsageError($"""--%s{o.Name} must be one of %s{(String.concat "|" choices)}, got '%s{s}'"""))
    | _ -> ()

let private placeholder (o: Spec) =
    match o.Kind with
    | Number -> "X"
    | Integer -> "N"
    | OneOf choices -> String.concat "|" choices
    | Text
    | Switch -> "VALUE"

/// The System.CommandLine command of a declaration, with one option object per declared option.
let private build (c: CommandSpec) =
    // A command name has no spaces: the last word here, the full words in the help's usage line.
    let cmd = Command(c.Path.Split(' ') |> Array.last, c.Summary)

    let options =
        [
            for o in c.Options ->
                let opt: Option =
                    match o.Kind with
                    | Switch -> Option<string>("--" + o.Name, Description = o.Help, Arity = ArgumentArity.Zero)
                    | _ ->
                        let help =
                            match o.Default with
                            | Some d -> $"%s{o.Help} [default: %s{d}]"
                            | None -> o.Help

                        Option<string>("--" + o.Name, Description = help, HelpName = placeholder o)

                cmd.Options.Add opt
                o, opt
        ]

    cmd, options

// Lazy: the program initialises every file's values at start-up; `help` and `--version` need no parser.
let private configuration =
    lazy
        // No @response files: an argument starting with '@' is a value like any other.
        // No bundling of single-letter options (there are none): less work per token.
        ParserConfiguration(ResponseFileTokenReplacer = null, EnablePosixBundling = false)

/// The parsed command line: the values given (raw text, already checked), the switches given, the declaration.
type Parsed =
    {
        Values: Map<string, string>
        Flags: Set<string>
        Spec: CommandSpec
    }

/// Parse the tokens after the command words against the declaration. Unknown options, options given twice, a
/// value that does not fit its kind: one UsageError naming the option.
let parse (c: CommandSpec) (argv: string list) =
    let cmd, options = build c
    let result = cmd.Parse(Array.ofList argv, configuration.Value)

    let valid () =
        options |> List.map (fun (o, _) -> "--" + o.Name) |> String.concat ", "

    match List.ofSeq result.UnmatchedTokens with
    | (t: string) :: _ when t.StartsWith "-" ->
        let name = t.Split('=')[0]
        raise (UsageError($"unknown option %s{name} for 'statphys %s{c.Path}' (valid: %s{(valid ())})"))
    | t :: _ -> raise (UsageError($"unexpected argument '%s{t}' for 'statphys %s{c.Path}'"))
    | [] -> ()

    for o, opt in options do
        let r = result.GetResult opt

        if not (isNull r) && r.IdentifierTokenCount > 1 then
            raise (UsageError($"option --%s{o.Name} given twice"))

    match List.ofSeq result.Errors with
    | e :: _ -> raise (UsageError(e.Message.TrimEnd('.')))
    | [] -> ()

    let mutable values = Map.empty
    let mutable flags = Set.empty

    for o, opt in options do
        let r = result.GetResult opt

        // Given on the command line (a switch's implicit default does not count).
        if not (isNull r) && r.IdentifierTokenCount > 0 then
            match o.Kind with
            | Switch -> flags <- flags.Add o.Name
            | _ ->
                // The token itself (a valued option has exactly one; the parser refused the rest).
                let v = r.Tokens[0].Value
                check o v
                values <- values.Add(o.Name, v)

    {
        Values = values
        Flags = flags
        Spec = c
    }

/// The generated help of a declaration (its options with their defaults), then its notes.
let help (c: CommandSpec) =
    let cmd, _ = build c
    cmd.Options.Add(Help.HelpOption())
    use w = new IO.StringWriter()

    cmd.Parse([| "--help" |], configuration.Value).Invoke(InvocationConfiguration(Output = w))
    |> ignore

    if c.Notes <> "" then
        w.WriteLine "Notes:"
        w.WriteLine c.Notes

    let name = "  " + cmd.Name + " "

    w.ToString().TrimEnd().Split('\n')
    |> Array.map (fun line ->
        if line.StartsWith name then
            "  statphys " + c.Path + " " + line.Substring name.Length
        else
            line)
    |> String.concat "\n"

let private declared (p: Parsed) (name: string) =
    match p.Spec.Options |> List.tryFind (fun o -> o.Name = name) with
    | Some o -> o
    | None -> invalidOp ($"statphys %s{p.Spec.Path} reads --%s{name}, which it does not declare")

/// The option's text: the value given, else the declared default.
let private value (p: Parsed) (name: string) =
    match p.Values.TryFind name with
    | Some v -> v
    | None ->
        match (declared p name).Default with
        | Some d -> d
        | None -> invalidOp ($"statphys %s{p.Spec.Path}: --%s{name} has no default; read it with tryValue")

/// Whether the user gave the option (a value or a switch).
let has (p: Parsed) name =
    declared p name |> ignore
    p.Values.ContainsKey name || p.Flags.Contains name

/// The value given, if any (for options whose absence means something).
let tryValue (p: Parsed) name =
    declared p name |> ignore
    p.Values.TryFind name

let float (p: Parsed) (name: string) = parseNumber name (value p name)

let int (p: Parsed) (name: string) = parseInteger name (value p name)

let string (p: Parsed) (name: string) = value p name

/// A declared choice (already checked against its words by the parser).
let choice (p: Parsed) (name: string) = value p name

/// --grid linear|log.
let grid (p: Parsed) =
    if choice p "grid" = "log" then
        StatPhysFs.LogGrid
    else
        StatPhysFs.LinearGrid

/// The value given, else the default that another declaration `c` gives the option (a command whose defaults depend
/// on another option, e.g. `simulate --model glm|committee`, takes them from the model's own declaration).
let private valueIn (c: CommandSpec) (p: Parsed) (name: string) =
    match p.Values.TryFind name with
    | Some v -> v
    | None ->
        match
            c.Options
            |> List.tryFind (fun o -> o.Name = name)
            |> Option.bind (fun o -> o.Default)
        with
        | Some d -> d
        | None -> invalidOp ($"statphys %s{c.Path} declares no default for --%s{name}")

let floatIn (c: CommandSpec) (p: Parsed) (name: string) = parseNumber name (valueIn c p name)

let stringIn (c: CommandSpec) (p: Parsed) (name: string) = valueIn c p name
