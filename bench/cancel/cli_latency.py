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
    ("dmft glm (forward sweep, logistic, 400k samples)",
     ["dmft", "glm", "--loss", "logistic", "--teacher", "sign", "--strategy", "sweep", "--mc-samples", "400000",
      "--replicas", "2", "--t-end", "30"]),
    ("dmft glm (fixed point)",
     ["dmft", "glm", "--loss", "logistic", "--teacher", "sign", "--strategy", "fixed-point", "--mc-samples", "400000",
      "--replicas", "2", "--t-end", "30"]),
    ("simulate sgd (glm, d = 2000)", ["simulate", "sgd", "--dim", "2000", "--t-end", "1000", "--seeds", "2"]),
    ("simulate sgd (committee, d = 2000)",
     ["simulate", "sgd", "--model", "committee", "--dim", "2000", "--t-end", "1000", "--seeds", "2"]),
    ("sde (smf2, 1e7 paths)", ["sde", "--paths", "10000000", "--t-end", "10"]),
    ("sde (sgd, 1e7 paths)", ["sde", "--model", "sgd", "--paths", "10000000", "--t-end", "10"]),
    ("sde weak-order (small etas)", ["sde", "weak-order", "--etas", "4e-6,2e-6,1e-6"]),
]


def one(args, after, sig):
    p = subprocess.Popen(["dotnet", CLI] + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(after)
    if p.poll() is not None:
        return None, p.returncode, p.stderr.read().decode()[-200:]
    t0 = time.perf_counter()
    p.send_signal(sig)
    rc = p.wait(timeout=60)
    dt = (time.perf_counter() - t0) * 1000
    return dt, rc, p.stderr.read().decode().strip().splitlines()[-1:] 


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
        lat, notes = [], set()
        for _ in range(a.tries):
            dt, rc, err = one(args, a.after, sig)
            if dt is None:
                notes.add(f"exited before the signal (rc {rc}): {err}")
                continue
            lat.append(dt)
            notes.add(f"rc {rc} {err}")
        s = ", ".join(f"{x:.0f}" for x in lat)
        med = f"{statistics.median(lat):.0f}" if lat else "-"
        mx = f"{max(lat):.0f}" if lat else "-"
        print(f"{name}: SIG{a.signal} -> exit ms [{s}] median {med} max {mx}; {'; '.join(sorted(notes))}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
