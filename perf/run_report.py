#!/usr/bin/env python3
"""Per-run accounting of the controller Run benchmarks (perf/controller-mesh.sh).

    run_report.py account REPORT OUT_DIR CLK_TCK PG_SETTINGS CPU(6) PG0(5) PG1(5)
        Adds to k6's REPORT (perf/k6/controller_run.js's summary JSON), per run
        (all iterations, warm-up included):
          server_cpu          CPU µs of the controller, gateway, ledger-writer,
                              PostgreSQL (its shared processes and the bench
                              database's backends) and the rest, from /proc
                              tick counts sampled before and after the load;
          postgres_per_run    pg_stat_database deltas of the bench database:
                              commits, rollbacks, rows inserted/updated/fetched;
          ledger_rpcs_per_run pecr_ledger_rpcs_total deltas from ledger-writer's
                              /metrics: all calls, errors, and per method;
          server_time         the services' own histograms: calls, mean ms, per run.
        CPU: ticks burnt by the controller, gateway, ledger-writer, PostgreSQL,
        then the machine's total and idle ticks over the load;
        PG0/PG1: xact_commit xact_rollback tup_inserted tup_updated
        tup_fetched. The /metrics scrapes are OUT_DIR/.metrics-<service>-{0,1}.

    run_report.py table REPORT...
        Prints one line per report: throughput, latency, checks, CPU µs per
        run per process, PostgreSQL commits per run, ledger RPCs per run.
"""

import json
import re
import sys

SERVICES = ("controller", "gateway", "ledger")
SAMPLE = re.compile(r"^(\w+)(?:\{([^}]*)\})? ([0-9.eE+-]+|NaN|\+Inf)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(path):
    """Prometheus text → {(name, frozenset(labels)): value}; {} when unreadable."""
    values = {}
    try:
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                match = SAMPLE.match(line.strip())
                if match:
                    labels = frozenset(LABEL.findall(match.group(2) or ""))
                    values[(match.group(1), labels)] = float(match.group(3))
    except OSError:
        pass
    return values


def deltas(before, after, name):
    """(labels, after - before) of every series called `name`."""
    return [
        (dict(labels), value - before.get((series, labels), 0.0))
        for (series, labels), value in after.items()
        if series == name
    ]


def label_text(labels):
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else ""


def account(args):
    path, out_dir, hz, pg_settings = args[0], args[1], int(args[2]), args[3]
    numbers = [int(x) for x in args[4:]]
    if len(numbers) != 16:
        sys.exit(f"run_report.py account: expected 16 counters, got {len(numbers)}")
    cpu, pg0, pg1 = numbers[0:6], numbers[6:11], numbers[11:16]
    with open(path, encoding="utf-8") as file:
        report = json.load(file)
    runs = max(report.get("iterations_all") or report.get("iterations") or 0, 1)

    ct, gw, lw, pg, total, idle = cpu
    busy = total - idle
    services = ct + gw + lw + pg

    def per_run(ticks):
        return round(ticks * 1e6 / hz / runs, 1)

    report["server_cpu"] = {
        "note": "CPU time over warm-up + measured time, per run (all iterations), from /proc; "
        "postgres = PostgreSQL's shared processes and the bench database's backends (per-process deltas); "
        "rest = every other process (k6 itself, other databases' backends, anything else running)",
        "runs": runs,
        "controller_us_per_run": per_run(ct),
        "gateway_us_per_run": per_run(gw),
        "ledger_writer_us_per_run": per_run(lw),
        "postgres_us_per_run": per_run(pg),
        "services_us_per_run": per_run(services),
        "rest_us_per_run": per_run(max(busy - services, 0)),
        "machine_busy_pct": round(100.0 * busy / max(total, 1), 1),
        # A rest far above k6's own share means other work (builds, tests) ran too.
        "disturbed": busy - services > 0.6 * services,
    }

    report["postgres_per_run"] = {
        "note": "pg_stat_database deltas of the bench database over warm-up + measured time, per run",
        **{
            name: round((a - b) / runs, 2)
            for name, a, b in zip(("commits", "rollbacks", "rows_inserted", "rows_updated", "rows_fetched"), pg1, pg0)
        },
    }

    scrapes = {s: (scrape(f"{out_dir}/.metrics-{s}-0"), scrape(f"{out_dir}/.metrics-{s}-1")) for s in SERVICES}
    ledger_before, ledger_after = scrapes["ledger"]
    calls = deltas(ledger_before, ledger_after, "pecr_ledger_rpcs_total")
    by_rpc = {}
    errors = 0.0
    for labels, count in calls:
        by_rpc[labels.get("rpc", "?")] = by_rpc.get(labels.get("rpc", "?"), 0.0) + count
        if labels.get("code") != "OK":
            errors += count
    report["ledger_rpcs_per_run"] = {
        "note": "pecr_ledger_rpcs_total deltas from ledger-writer's /metrics over warm-up + measured time, per run"
        if calls
        else "ledger-writer's /metrics had no pecr_ledger_rpcs_total",
        "total": round(sum(by_rpc.values()) / runs, 2) if calls else None,
        "errors": round(errors / runs, 3) if calls else None,
        "by_rpc": {rpc: round(count / runs, 2) for rpc, count in sorted(by_rpc.items()) if count > 0},
    }

    times = {}
    for service in SERVICES:
        before, after = scrapes[service]
        for (series, labels), value in after.items():
            if not series.endswith("_duration_seconds_count"):
                continue
            count = value - before.get((series, labels), 0.0)
            if count <= 0:
                continue
            name = series[: -len("_count")]
            seconds = after.get((f"{name}_sum", labels), 0.0) - before.get((f"{name}_sum", labels), 0.0)
            times[name + label_text(dict(labels))] = {
                "count": int(count),
                "mean_ms": round(1000 * seconds / count, 3),
                "per_run": round(count / runs, 2),
            }
    report["server_time"] = {
        "note": "from the services' own /metrics histograms over warm-up + measured time: calls, mean ms, and calls per run",
        "series": dict(sorted(times.items())),
    }
    report["postgres_settings"] = pg_settings
    with open(path, "w", encoding="utf-8") as file:
        json.dump(report, file, indent=2)
        file.write("\n")


def table(paths):
    rows = []
    for path in paths:
        with open(path, encoding="utf-8") as file:
            rows.append(json.load(file))
    head = (
        f"{'mode':<6}{'VUs':>5}{'runs/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'checks':>9}"
        f"  {'>=700/s & p99<=15ms':<20}{'CPU us/run ctrl / gw / ledger / pg / rest':>44}{'busy%':>7}"
        f"{'commits/run':>13}{'ledger RPCs/run':>17}"
    )
    print(head)
    print("-" * len(head))
    disturbed = False
    for r in rows:
        lat, cpu = r["latency_ms"], r.get("server_cpu", {})
        pg, rpcs = r.get("postgres_per_run", {}), r.get("ledger_rpcs_per_run", {})
        met = (r["throughput_runs_per_s"] or 0) >= 700 and (lat["p99"] or 1e9) <= 15
        keys = ("controller_us_per_run", "gateway_us_per_run", "ledger_writer_us_per_run", "postgres_us_per_run", "rest_us_per_run")
        cpu_text = " / ".join(str(cpu.get(k, "-")) for k in keys)
        mode = r["mode"] + ("!" if cpu.get("disturbed") else "")
        print(
            f"{mode:<6}{r['vus']:>5}{r['throughput_runs_per_s']:>9.1f}{lat['p50']:>9.2f}{lat['p95']:>9.2f}"
            f"{lat['p99']:>9.2f}{lat['max']:>9.2f}{(r['check_pass_rate'] or 0):>9.4f}"
            f"  {('yes' if met else 'NO'):<20}{cpu_text:>44}{cpu.get('machine_busy_pct', '-'):>7}"
            f"{str(pg.get('commits', '-')):>13}{str(rpcs.get('total', '-')):>17}"
        )
        disturbed = disturbed or bool(cpu.get("disturbed"))
    if disturbed:
        print("! other processes used much CPU during this run (server_cpu.disturbed): rerun it on a quiet machine")


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "account" and len(sys.argv) >= 6:
        account(sys.argv[2:])
    elif len(sys.argv) >= 3 and sys.argv[1] == "table":
        table(sys.argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
