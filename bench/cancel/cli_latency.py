#!/usr/bin/env python3
"""SIGTERM latency of long CLI runs: start `statphys ...`, send SIGTERM after --after seconds, report the time from
the signal to the process's exit and its exit code (130 = cancelled). Usage (after a Release build):

    python3 bench/cancel/cli_latency.py [--tries 3] [--after 1.0] [--signal TERM|INT]

Each command is sized to run for far longer than --after (a run that exits before the signal is reported as such).
"""
import argparse, os, signal, statistics, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
CLI = os.path.join(HERE, "..", "..", "src", "StatPhysFs.Cli", "bin", "Release", "net10.0", "statphys.dll")

RUNS = [
    ("dmft glm (forward sweep, logistic, 200k samples)",
     ["dmft", "glm", "--loss", "logistic", "--teacher", "sign", "--strategy", "sweep", "--mc-samples", "200000",
      "--replicas", "2", "--t-end", "10"]),
    ("dmft glm (fixed point)",
     ["dmft", "glm", "--loss", "logistic", "--teacher", "sign", "--strategy", "fixed-point", "--mc-samples", "200000",
      "--replicas", "2", "--t-end", "5"]),
    ("simulate sgd (glm, d = 2000)", ["simulate", "sgd", "--dim", "2000", "--t-end", "1000", "--seeds", "2"]),
    ("simulate sgd (committee, d = 2000)",
     ["simulate", "sgd", "--model", "committee", "--dim", "2000", "--t-end", "1000", "--seeds", "2"]),
    ("sde (smf2, 1e6 paths)", ["sde", "--paths", "1000000", "--t-end", "10"]),
    ("sde (sgd, 1e7 paths)", ["sde", "--model", "sgd", "--paths", "10000000", "--t-end", "10"]),
    ("sde weak-order (small etas)", ["sde", "weak-order", "--lrs", "4e-6,2e-6,1e-6"]),
]


def one(args, after, sig):
    """(ms from the signal to the "cancelled" line on stderr, ms to the process's exit, exit code, last stderr line)"""
    p = subprocess.Popen(["dotnet", CLI] + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(after)
    if p.poll() is not None:
        return None, None, p.returncode, p.stderr.read().decode()[-200:]
    t0 = time.perf_counter()
    p.send_signal(sig)
    said, last = None, ""
    for line in iter(p.stderr.readline, b""):
        last = line.decode().strip()
        if said is None and "cancel" in last:
            said = (time.perf_counter() - t0) * 1000
    rc = p.wait(timeout=60)
    return said, (time.perf_counter() - t0) * 1000, rc, last


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tries", type=int, default=3)
    ap.add_argument("--after", type=float, default=1.0)
    ap.add_argument("--signal", default="TERM")
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    sig = getattr(signal, "SIG" + a.signal)
    print("load:", open("/proc/loadavg").read().strip())
    for name, args in RUNS:
        if a.only and a.only not in name:
            continue
        said, lat, notes = [], [], set()
        for _ in range(a.tries):
            sd, dt, rc, err = one(args, a.after, sig)
            if dt is None:
                notes.add(f"exited before the signal (rc {rc}): {err}")
                continue
            lat.append(dt)
            said.append(sd if sd is not None else float("nan"))
            notes.add(f"rc {rc}: {err}")
        fmt = lambda xs: ", ".join(f"{x:.0f}" for x in xs)
        med = lambda xs: f"{statistics.median(xs):.0f}" if xs else "-"
        print(f"{name}: SIG{a.signal} -> 'cancelled' printed after [{fmt(said)}] ms (median {med(said)}), "
              f"exit after [{fmt(lat)}] ms (median {med(lat)}); {'; '.join(sorted(notes))}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
