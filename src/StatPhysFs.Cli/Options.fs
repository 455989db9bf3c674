/// Every command's options, declared once: the parser, the generated help and the sweep's flag check all read these
/// lists, so a default shown by `--help` is the default the command uses. One name means one thing across all
/// commands (the flag table is in the README's glossary): --lr the SGD learning rate eta, --tau = eta/B only where the
/// physics uses it (DMFT), --t-end the horizon, --points the output grid size, --dim the input dimension d, --n a data
/// set's size, --mc-samples Monte Carlo draws of an effective process, --seeds independent finite-d runs.
module StatPhysFs.Cli.Options

open StatPhysFs.Cli.Args

// Shared declarations (the same name, meaning and help wherever they appear).
let private out =
    text "out" None "write the document to FILE.json or FILE.csv (default: JSON on standard output)"

let private plot =
    text "plot" None "draw the standard figure to FILE.svg or FILE.png"

let private progress =
    switch "progress" "show a progress bar even when standard error is not a terminal"

let private grid =
    oneOf "grid" [ "linear"; "log" ] "linear" "spacing of the output time grid"

let private divergenceBound (fallback: float) =
    number "divergence-bound" fallback "a run whose state exceeds this in absolute value is reported as diverged"

let private seed = integer "seed" 1 "random seed"

/// `statphys online linear`.
let onlineLinear =
    {
        Path = "online linear"
        Summary = "The ODE of online SGD on linear regression, optionally against simulation."
        Options =
            [
                number "rho" 1.0 "teacher norm |w*|^2/d"
                number "noise-var" 0.1 "label noise variance sigma^2"
                number "lr" 0.5 "SGD learning rate eta"
                number "ridge" 0.0 "ridge lambda: the loss term (lambda/2)|w|^2/d (critical lr 2B(1+lambda))"
                integer "batch" 1 "mini-batch size B"
                number "m0" 0.0 "initial teacher-student overlap m(0)"
                number "q0" 0.1 "initial student norm q(0)"
                number "t-end" 10.0 "horizon, in SGD steps / d"
                integer "points" 101 "output grid size"
                grid
                oneOf "solver" [ "dopri5"; "rk4"; "euler" ] "dopri5" "ODE integrator"
                number "rtol" 1e-10 "dopri5 relative tolerance, in [1e-14, 1e-2] (absolute: rtol * 1e-2)"
                number "dt" 0.01 "fixed step of rk4 and euler (within the method's stability limit)"
                switch "simulate" "overlay finite-d online SGD (mean and standard error over --seeds runs)"
                integer "dim" 1000 "input dimension d of the simulation (needs --simulate)"
                integer "seeds" 5 "independent simulation runs (needs --simulate)"
                seed
                out
                plot
                progress
                divergenceBound 1e8
            ]
        Notes = "  Time t = SGD steps / d. Without --out the JSON document goes to standard output."
    }

/// `statphys online committee`.
let onlineCommittee =
    {
        Path = "online committee"
        Summary = "Two-layer teacher-student networks (K students, M teachers): the online-SGD ODE of Saad & Solla."
        Options =
            [
                integer "K" 2 "student hidden units, in [1, 1000]"
                integer "M" 2 "teacher hidden units, in [1, 1000]"
                oneOf "student" [ "erf"; "relu"; "linear"; "tanh"; "sigmoid" ] "erf" "student activation"
                {
                    Name = "teacher"
                    Kind = OneOf [ "erf"; "relu"; "linear"; "tanh"; "sigmoid" ]
                    Default = None
                    Help = "teacher activation (default: the student's)"
                }
                number "lr" 0.5 "SGD learning rate eta of the first layer"
                optionalNumber "lr2" "learning rate of the second layer (default: second layer fixed)"
                number "noise-var" 0.0 "label noise variance sigma^2"
                number "ridge" 0.0 "ridge lambda, a loss term: per-step decay kappa = lr * lambda"
                integer "batch" 1 "mini-batch size B"
                number "momentum" 0.0 "heavy-ball momentum beta"
                oneOf
                    "schedule"
                    [ "constant"; "inverse" ]
                    "constant"
                    "learning-rate schedule; inverse: eta(t) = min(lr, C/t)"
                number "schedule-c" 1.0 "C of the inverse schedule"
                text "init" (Some "default") "initial state: default|small|informed|random|FILE.json (see notes)"
                seed
                number "t-end" 400.0 "horizon, in SGD steps / d"
                integer "points" 401 "output grid size"
                grid
                number "rtol" 1e-9 "Dormand-Prince 5(4) relative tolerance (absolute: rtol * 1e-5)"
                switch "simulate" "overlay finite-d online SGD"
                integer "dim" 1000 "input dimension d (--simulate, --init random)"
                integer "seeds" 5 "independent simulation runs (needs --simulate)"
                out
                plot
                progress
                switch "normalised" "the normalised committee: outputs (1/K) sum g and (1/M) sum g"
                switch "analysis" "also compute the plateau, its escape rate, eta_max and eta_opt"
            ]
        Notes =
            """  Activations: erf (= erf(x/sqrt 2)), relu, linear, tanh, sigmoid; a teacher activation other than the
  student's is integrated by common-random-number QMC.
  --rtol: default accuracy (spec 6.7 initial state, against a tight reference, where eg > 1e-8): eg within ~7e-6
  (K = 2) and ~8e-6 (K = 3) relative through plateau, escape and convergence, ~1e-8 on plateaus (K = 5).
  --analysis applies to realisable erf K = M, T = I, v = vT = 1, no noise or decay; it costs ~6 n right-hand sides
  and ~100 eigen-decompositions of n x n, n = K(K+1)/2 + K^2 (about a second at K = 10, a minute at K = 30).
  --init default: Q = diag(linspace(0.2, 0.3, K)) + 1e-4, R = 1e-4 (1 + index mod 3) (spec section 6.7);
  small: Q = 1e-3 I, R = 1e-5; informed: each student unit at overlap 0.9 with teacher unit k mod M;
  random: exact overlaps of Gaussian vectors in dimension --dim drawn with --seed;
  FILE.json: {"Q": [[...]], "R": [[...]], "T": [[...]], "v": [...], "vTeacher": [...], "b": [...], "bTeacher": [...]}
  (T, v, vTeacher, b, bTeacher optional; biases are fixed pre-activation offsets, their integrals are sampled)."""
    }

// DMFT: the problem options, with the defaults of the GLM or of the committee.
let private dmftProblem (committee: bool) =
    let dt, ridge, noise, q0 =
        if committee then
            0.2, 0.01, 0.01, 0.25
        else
            0.1, 0.0, 0.25, 0.0

    [
        number "alpha" 2.0 "samples per dimension, alpha = n/d"
        number "tau" 1.0 "tau = eta/B, the SGF's learning rate per batch size (the DMFT's physics parameter)"
        number "ridge" ridge "ridge lambda"
        number "noise-var" noise "label noise variance"
        number "dt" dt "time step of the SGF discretisation"
        number "t-end" 6.0 "horizon, SGF time t = SGD steps x eta / d"
        number "q0" q0 "initial overlap: theta_0 ~ N(0, q0 I)"
    ]

let private glmModel =
    [
        oneOf "loss" [ "square"; "logistic"; "hinge" ] "square" "GLM loss"
        oneOf "teacher" [ "linear"; "sign" ] "linear" "GLM teacher"
        number "rho" 1.0 "teacher norm"
    ]

let private committeeModel =
    [
        oneOf "student" [ "tanh"; "erf"; "relu"; "linear"; "sigmoid" ] "tanh" "student activation"
        oneOf "teacher" [ "tanh"; "erf"; "relu"; "linear"; "sigmoid" ] "tanh" "teacher activation"
        text "v" (Some "1,0.5") "fixed student readout v (its length is the width k)"
        text "v-teacher" (Some "1,1") "teacher readout (its length is the teacher's width)"
    ]

let private dmftSolver =
    [
        integer "mc-samples" 20000 "Monte Carlo draws of the effective process per replica"
        integer "replicas" 4 "independent replicas (standard errors)"
        seed
        oneOf "strategy" [ "auto"; "sweep"; "fixed-point" ] "auto" "DMFT solve strategy"
        integer "fp-batch" 2000 "draws per fixed-point iteration (--strategy fixed-point)"
        number "damping" 0.5 "fixed-point damping (--strategy fixed-point)"
        integer "iterations" 10 "fixed-point iterations (--strategy fixed-point)"
        switch "extrapolate" "Richardson in dt: solves at dt and dt/2, 2 v(dt/2) - v(dt)"
    ]

let private overlay =
    [
        switch "simulate" "overlay the finite-d SGF"
        switch "sgd" "overlay real mini-batch SGD (eta = tau B)"
        integer "dim" 2000 "input dimension d of the overlays"
        integer "seeds" 4 "independent finite-d runs of the overlays"
        integer "batch" 1 "mini-batch size B of --sgd"
        oneOf "sampling" [ "with"; "without" ] "with" "mini-batches drawn with or without replacement (--sgd)"
    ]

let private dmftOutput =
    [
        out
        plot
        progress
        switch "no-kernels" "leave the kernels C, R out of the document"
    ]

let private dmftNotes =
    """  alpha = n/d (delta in the spec), tau = eta/B, time t = SGD steps x eta/d (epochs = t/(tau alpha)).
  Series: m, q (GLM) or Q<ab>, M<ab> (committee), train_loss, test_loss, test_error (sign teacher), each with
  <name>_stderr; square-loss losses are mean squared residuals (no 1/2). Kernels C, R (and Sigma_u) under "kernels"."""

/// `statphys dmft glm`.
let dmftGlm =
    {
        Path = "dmft glm"
        Summary = "Multi-pass SGD on a GLM: the DMFT of its stochastic gradient flow on n = alpha d samples."
        Options =
            glmModel
            @ [
                switch "exact" "the least-squares closure (square loss, linear teacher; no Monte Carlo)"
                switch "continuous" "with --exact: the continuous-time Volterra equation (trapezoid, O(dt^2))"
            ]
            @ dmftProblem false
            @ dmftSolver
            @ overlay
            @ dmftOutput
        Notes =
            dmftNotes
            + "\n  --exact is exact for the Euler-Maruyama step --dt; --continuous removes the step (error O(dt^2))."
    }

/// `statphys dmft committee`.
let dmftCommittee =
    {
        Path = "dmft committee"
        Summary =
            "Multi-pass SGD on a two-layer network with fixed readout v (square loss): the DMFT with k x k kernels."
        Options = committeeModel @ dmftProblem true @ dmftSolver @ overlay @ dmftOutput
        Notes = dmftNotes
    }

/// `statphys simulate sgf|sgd`: the finite-d process alone. The problem defaults depend on --model, so the problem
/// options carry none here; the command takes them from `dmftGlm` or `dmftCommittee`.
let simulate (kind: string) =
    let problemOptions =
        [
            for o in List.distinctBy (fun (o: Spec) -> o.Name) (dmftProblem false @ glmModel @ committeeModel) ->
                let glm = (dmftProblem false @ glmModel) |> List.tryFind (fun g -> g.Name = o.Name)

                let committee =
                    (dmftProblem true @ committeeModel) |> List.tryFind (fun c -> c.Name = o.Name)

                let describe (s: Spec option) =
                    s |> Option.bind (fun s -> s.Default) |> Option.defaultValue "-"

                { o with
                    Kind = (if o.Name = "teacher" then Text else o.Kind)
                    Default = None
                    Help =
                        $"""%s{(if o.Name = "teacher" then "teacher: linear|sign (glm), an activation (committee)" else o.Help)} [default: %s{(describe glm)} (glm), %s{(describe committee)} (committee)]"""
                }
        ]

    let sgdOptions =
        if kind = "sgd" then
            [
                integer "batch" 1 "mini-batch size B (eta = tau B)"
                oneOf "sampling" [ "with"; "without" ] "with" "mini-batches drawn with or without replacement"
            ]
        else
            []

    {
        Path = "simulate " + kind
        Summary =
            (if kind = "sgd" then
                 "Real mini-batch SGD with eta = tau B on one data set of n = alpha d samples per seed."
             else
                 "The finite-d SGF by Euler-Maruyama with step --dt on one data set of n = alpha d samples per seed.")
        Options =
            [
                oneOf "model" [ "glm"; "committee" ] "glm" "the model: a GLM or a two-layer committee"
            ]
            @ problemOptions
            @ [
                integer "dim" 2000 "input dimension d"
                integer "seeds" 4 "independent finite-d runs"
                seed
            ]
            @ sgdOptions
            @ [ out; plot; progress ]
        Notes = "  Observed at t = k dt; time t = SGD steps x eta / d."
    }

// SDE: the data of the least-squares / logistic / two-layer problems.
let private sdeData =
    [
        text "data" None "FILE.csv: your data set, one row a point: the features, then the label (see notes)"
        integer "params" 3 "parameter dimension of the built-in data (= its input dimension; not with --data)"
        integer "n" 6 "data points of the built-in data set (not with --data)"
        integer "data-seed" 7 "seed of the built-in data (not with --data)"
        number "ridge" 0.0 "ridge lambda >= 0"
    ]

/// `statphys sde`.
let sde =
    {
        Path = "sde"
        Summary = "SGD against its SME / SMF at small learning rate: moments at the horizon, with standard errors."
        Options =
            [
                oneOf
                    "problem"
                    [ "least-squares"; "logistic"; "two-layer"; "mean-field" ]
                    "least-squares"
                    "the training problem"
            ]
            @ sdeData
            @ [
                integer "width" 100 "particles N of the mean-field network"
                oneOf "model" [ "sgd"; "gf"; "sme1"; "sme2"; "smf1"; "smf2" ] "smf2" "the process simulated"
                oneOf "scheme" [ "em"; "richardson"; "heun" ] "richardson" "SDE scheme"
                integer "substeps" 2 "scheme steps per SGD step"
                number "lr" 0.05 "SGD learning rate eta"
                number "t-end" 1.0 "horizon, t = SGD steps x eta"
                integer "batch" 1 "mini-batch size B"
                oneOf "sampling" [ "with"; "without" ] "with" "mini-batches drawn with or without replacement"
                optionalInteger "inits" "number of initial points (default 2; 1 for mean-field; set by --x0)"
                integer "paths" 10000 "sample paths of the Monte Carlo estimate"
                seed
                divergenceBound 1e8
                progress
                text "x0" None "initial point v1,v2,... ; several separated by ';' (their number sets --inits)"
                out
            ]
        Notes =
            """  --data: comma-separated, optional header line, '#' comments; least squares or logistic (labels all in
  {-1, 1} or all in {0, 1}, 0 read as -1). The JSON names the data (file, SHA-256, rows, columns) and the initial
  points. `sde` reports, at the horizon, tr E[x x^T] of the first point, E[x_1], E[F(x)] and (two or more points,
  driven by the same samples / the same data-indexed noise) E|x - y|^2, with standard errors.
  two-layer: an erf network with K = 2 units on --params inputs against a two-unit teacher on --n points.
  mean-field: the N = --width particle tanh network of sme-smf.md V4 (one point = the particle system); it reports
  the output at z = 0.7 and z = -1.3 and the training risk. A path that leaves |x_c| <= --divergence-bound (or
  turns non-finite) makes the run's status "diverged"; its statistics are then written as null."""
    }

/// `statphys sde weak-order`.
let sdeWeakOrder =
    {
        Path = "sde weak-order"
        Summary =
            "Weak-order slopes |E phi(SGD) - E phi(model)| of GF, SME1, SMF1, SMF2 on the exact least-squares oracles."
        Options =
            sdeData
            @ [
                text
                    "lrs"
                    (Some "0.125,0.0625,0.03125,0.015625,0.0078125,0.00390625")
                    "learning rates eta (at least two, distinct, <= --t-end)"
                number "t-end" 2.0 "horizon, t = SGD steps x eta"
                out
                plot
            ]
        Notes = "  No Monte Carlo: one- and two-point errors and their log-log slopes from two fixed initial points."
    }

/// `statphys demo`.
let demo =
    {
        Path = "demo"
        Summary = "The showcase: theory against simulation, data and figures in one directory."
        Options = [ text "out" (Some "statphys-demo") "the directory written"; progress ]
        Notes = ""
    }

/// `statphys sweep run|merge|plot|slurm` (the first argument, a spec or a directory or a table, precedes them).
let sweepRun =
    {
        Path = "sweep run"
        Summary = "Run a grid of points of a command (SPEC.json) in this process; resumable, parallel, sharded."
        Options =
            [
                text "out" None "the sweep's directory (required)"
                optionalInteger "parallel" "points at a time (default: cores; 1 for points that simulate)"
                text "shard" None "I/N: this process runs shard I of N (default: the Slurm array variables)"
                switch "force" "reuse a directory written by a different spec"
            ]
        Notes = ""
    }

let sweepMerge =
    {
        Path = "sweep merge"
        Summary = "Merge a sweep's points into one table."
        Options =
            [
                text "out" None "TABLE.csv or TABLE.json (required)"
                switch "no-wall-time" "leave the wall_time_s column out (reproducible tables)"
            ]
        Notes = ""
    }

let sweepPlot =
    {
        Path = "sweep plot"
        Summary = "A phase diagram (heat map) or curves from a merged table."
        Options =
            [
                text "x" None "the axis on x (required)"
                text "y" None "the axis on y (a heat map); absent: one curve per other axis value"
                text "z" None "the column plotted (required)"
                text "out" None "FIG.png or FIG.svg (required)"
                switch "log-z" "logarithmic colour scale"
            ]
        Notes = "  --where AXIS=VALUE (repeatable) fixes the other axes."
    }

let sweepSlurm =
    {
        Path = "sweep slurm"
        Summary = "Write (and optionally submit) a Slurm job array that runs a sweep's shards."
        Options =
            [
                text "out" None "the sweep's directory, on a file system the nodes share (required)"
                optionalInteger "tasks" "array tasks (required)"
                integer "cpus-per-task" 1 "CPUs per task"
                text "time" None "time limit HH:MM:SS or D-HH:MM:SS"
                text "partition" None "Slurm partition"
                text "table" None "with --wait: the merged table (default DIR/table.csv)"
                switch "submit" "submit with sbatch"
                switch "wait" "wait for the array and merge (needs --submit)"
                switch "force" "reuse a directory written by a different spec"
            ]
        Notes = ""
    }
