#!/usr/bin/env python3
"""Suite 7's summary: one scenario from a load tool's raw report, and the
summary of a whole run (schema `pecr.suite7.v1`, the types of
cli/src/suite7.rs, which refuse unknown fields).

  summary.py scenario --tool k6|loadgen --raw FILE --cpu FILE --name NAME
                      --kind run|operator|fault [--engine E] [--expect A,B] --out FILE
  summary.py assemble --mode short|full --settings TEXT --loadavg-start TEXT
                      --out FILE SCENARIO.json...
  summary.py table SUMMARY.json          (the table perf/suite7.sh prints)

--cpu is the CPU file perf/suite7.sh writes around a load: `clk_tck N`,
then one line per process (`controller`, `gateway`, `ledger_writer`,
`postgres`) with the ticks it burnt; the scenario's `cpu_ms_per_request` is
the three services' CPU over every request the load sent (warm-up included,
as the CPU was read around it). PostgreSQL's goes to the raw side file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone

SCHEMA = "pecr.suite7.v1"
SERVICES = ("controller", "gateway", "ledger_writer")


def read_cpu(path: str) -> tuple[int, dict[str, int]]:
    clk_tck, ticks = 100, {}
    with open(path) as lines:
        for line in lines:
            key, value = line.split()
            if key == "clk_tck":
                clk_tck = int(value)
            else:
                ticks[key] = ticks.get(key, 0) + int(value)
    return clk_tck, ticks


def cpu_ms_per_request(cpu_file: str, requests_all: int) -> tuple[float | None, dict]:
    clk_tck, ticks = read_cpu(cpu_file)
    if requests_all <= 0:
        return None, {}
    per = {name: round(ticks.get(name, 0) * 1000.0 / clk_tck / requests_all, 4) for name in ticks}
    services = sum(ticks.get(name, 0) for name in SERVICES)
    return round(services * 1000.0 / clk_tck / requests_all, 4), per


def figures(answers: int, wrong: int, duration: float, latency: dict, modes: dict, requests_all: int) -> dict:
    """A scenario's entry from either tool; `_requests_all` (warm-up included) is for the CPU."""
    return {
        "requests": answers,
        "duration_s": duration,
        "throughput_per_s": round(answers / duration, 3) if duration > 0 else 0.0,
        "latency_ms": {q: float(latency.get(q) or 0.0) for q in ("p50", "p95", "p99")},
        # Nothing answered counts as all wrong: a load that measured nothing fails.
        "error_rate": round(wrong / answers, 6) if answers else 1.0,
        "terminal_modes": modes,
        "_requests_all": requests_all,
    }


def from_k6(raw: dict, expected: set[str]) -> dict:
    outcomes = {name: int(count) for name, count in (raw.get("outcomes") or {}).items() if count}
    answers = sum(outcomes.values())
    unexpected = sum(count for name, count in outcomes.items() if name not in expected)
    duration = float(raw.get("duration_s") or 0.0)
    requests_all = int(raw.get("iterations_all") or answers)
    return figures(answers, unexpected, duration, raw.get("latency_ms") or {}, outcomes, requests_all)


def from_loadgen(raw: dict) -> dict:
    ok, failed = int(raw.get("requests") or 0), int(raw.get("errors") or 0)
    answers = ok + failed
    duration = float(raw.get("measured_s") or raw.get("duration_s") or 0.0)
    modes = {"OK": ok} if ok else {}
    for code, count in (raw.get("error_codes") or {}).items():
        if count:
            modes[code] = int(count)
    requests_all = answers + int(raw.get("warmup_requests") or 0)
    return figures(answers, failed, duration, raw.get("latency_ms") or {}, modes, requests_all)


def scenario(args: argparse.Namespace) -> None:
    with open(args.raw) as file:
        raw = json.load(file)
    if args.tool == "k6":
        expected = {"SUPPORTED", *filter(None, args.expect.split(","))}
        figures = from_k6(raw, expected)
    else:
        figures = from_loadgen(raw)
    cpu, per_process = cpu_ms_per_request(args.cpu, figures.pop("_requests_all"))
    entry = {"name": args.name, "kind": args.kind}
    if args.engine:
        entry["engine"] = args.engine
    entry.update(figures)
    if cpu is not None:
        entry["cpu_ms_per_request"] = cpu
    with open(args.out, "w") as file:
        json.dump(entry, file, indent=2)
        file.write("\n")
    # What the schema leaves out stays next to it.
    side = {"cpu_ms_per_request_by_process": per_process, "raw": os.path.basename(args.raw)}
    with open(args.out.replace(".scenario.json", ".extra.json"), "w") as file:
        json.dump(side, file, indent=2)
        file.write("\n")


def git(*argv: str) -> str:
    try:
        return subprocess.run(["git", *argv], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def machine(args: argparse.Namespace) -> dict[str, str]:
    model = ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    except OSError:
        pass
    with open("/proc/loadavg") as loadavg:
        load = " ".join(loadavg.read().split()[:3])
    return {
        "cpus": str(os.cpu_count() or 0),
        "cpu_model": model,
        "kernel": platform.release(),
        # 1, 5 and 15 minute load averages: other work on this shared
        # machine shows here, and skews every figure.
        "loadavg_start": args.loadavg_start,
        "loadavg": load,
        "build": "debug" if args.mode == "short" else "release",
        "settings": args.settings,
    }


def assemble(args: argparse.Namespace) -> None:
    scenarios = []
    for path in args.scenarios:
        with open(path) as file:
            scenarios.append(json.load(file))
    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no"):
        commit += "+dirty"
    summary = {
        "schema": SCHEMA,
        "mode": args.mode,
        "commit": commit,
        "measured_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(args),
        "scenarios": scenarios,
    }
    with open(args.out, "w") as file:
        json.dump(summary, file, indent=2)
        file.write("\n")


def table(args: argparse.Namespace) -> None:
    with open(args.summary) as file:
        summary = json.load(file)
    print(f"{'scenario':<24}{'engine':>9}{'requests':>10}{'per s':>10}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'errors':>9}{'CPU ms/req':>12}  outcomes")
    for s in summary["scenarios"]:
        cpu = s.get("cpu_ms_per_request")
        modes = ", ".join(f"{k} {v}" for k, v in sorted(s["terminal_modes"].items()))
        print(
            f"{s['name']:<24}{s.get('engine') or '-':>9}{s['requests']:>10}{s['throughput_per_s']:>10.1f}"
            f"{s['latency_ms']['p50']:>10.2f}{s['latency_ms']['p95']:>10.2f}{s['latency_ms']['p99']:>10.2f}"
            f"{s['error_rate']:>9.4f}{(f'{cpu:.3f}' if cpu is not None else '-'):>12}  {modes}"
        )
    m = summary["machine"]
    print(f"\n{m['cpus']} CPUs, {m['build']} build, load average {m['loadavg_start']} at the start, {m['loadavg']} at the end")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("scenario")
    one.add_argument("--tool", choices=("k6", "loadgen"), required=True)
    one.add_argument("--raw", required=True)
    one.add_argument("--cpu", required=True)
    one.add_argument("--name", required=True)
    one.add_argument("--kind", choices=("run", "operator", "fault"), required=True)
    one.add_argument("--engine", default="")
    one.add_argument("--expect", default="")
    one.add_argument("--out", required=True)
    whole = sub.add_parser("assemble")
    whole.add_argument("--mode", choices=("short", "full"), required=True)
    whole.add_argument("--settings", required=True)
    whole.add_argument("--loadavg-start", required=True)
    whole.add_argument("--out", required=True)
    whole.add_argument("scenarios", nargs="*")
    show = sub.add_parser("table")
    show.add_argument("summary")
    args = parser.parse_args()
    {"scenario": scenario, "assemble": assemble, "table": table}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
