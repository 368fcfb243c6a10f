#!/usr/bin/env python3
"""Plots the RSS of each service over stored runs, from perf/scaling.sh's CSV.

    plot_rss.py CSV SVG [TITLE]

The CSV has a header with `stored_runs` and one `<service>_rss_kb` column per
service (perf/scaling.sh writes it). The SVG is hand-written (no plotting
library): one line per service, RSS in MiB against stored runs.
"""

import csv
import math
import sys
from html import escape

WIDTH, HEIGHT = 900, 480
LEFT, RIGHT, TOP, BOTTOM = 80, 190, 50, 60
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def nice_step(span, ticks=6):
    """A 1/2/5×10^n step giving about `ticks` intervals over `span`."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(f * power for f in (1, 2, 5, 10) if raw <= f * power)


def label(value):
    if value >= 1000 and value % 1000 == 0:
        return f"{int(value / 1000)}k"
    return f"{value:g}"


def read(path):
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    if not rows:
        sys.exit(f"plot_rss.py: {path} has no samples")
    services = [name[: -len("_rss_kb")] for name in rows[0] if name.endswith("_rss_kb")]
    points = {service: [] for service in services}
    for row in rows:
        try:
            runs = float(row["stored_runs"])
        except (KeyError, ValueError):
            continue
        for service in services:
            try:
                points[service].append((runs, float(row[f"{service}_rss_kb"]) / 1024))
            except (KeyError, ValueError):
                pass
    return points


def plot(points, title):
    xs = [x for line in points.values() for x, _ in line]
    ys = [y for line in points.values() for _, y in line]
    if not xs:
        sys.exit("plot_rss.py: no numeric samples")
    x_step = nice_step(max(xs))
    x_max = max(x_step, x_step * -(-max(xs) // x_step))
    y_step = nice_step(max(ys))
    y_max = max(y_step, y_step * -(-max(ys) // y_step))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x):
        return LEFT + plot_w * x / x_max

    def py(y):
        return TOP + plot_h * (1 - y / y_max)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="28" text-anchor="middle" font-size="15">{escape(title)}</text>',
    ]
    tick = 0.0
    while tick <= x_max + 1e-9:
        x = px(tick)
        out.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + plot_h}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{x:.1f}" y="{TOP + plot_h + 18}" text-anchor="middle">{label(tick)}</text>')
        tick += x_step
    tick = 0.0
    while tick <= y_max + 1e-9:
        y = py(tick)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{label(tick)}</text>')
        tick += y_step
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>')
    out.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 15}" text-anchor="middle">stored runs</text>')
    out.append(
        f'<text x="20" y="{TOP + plot_h / 2}" text-anchor="middle" transform="rotate(-90 20 {TOP + plot_h / 2})">RSS (MiB)</text>'
    )
    for index, (service, line) in enumerate(points.items()):
        colour = COLOURS[index % len(COLOURS)]
        if line:
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in line)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        ly = TOP + 20 + 22 * index
        last = f" ({line[-1][1]:.1f} MiB)" if line else ""
        out.append(f'<line x1="{LEFT + plot_w + 15}" y1="{ly}" x2="{LEFT + plot_w + 40}" y2="{ly}" stroke="{colour}" stroke-width="3"/>')
        out.append(f'<text x="{LEFT + plot_w + 46}" y="{ly + 4}">{escape(service.replace("_", "-"))}{last}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    title = sys.argv[3] if len(sys.argv) == 4 else "RSS of each service over stored runs"
    svg = plot(read(sys.argv[1]), title)
    with open(sys.argv[2], "w", encoding="utf-8") as file:
        file.write(svg)


if __name__ == "__main__":
    main()
