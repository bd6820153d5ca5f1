"""Latency distribution per contestant, from bench/out/results-*.json (written by bench/run.mjs).

Usage: bench/.venv/bin/python bench/plot.py bench/out/results-direct.json bench/latency.png

Left: latency by percentile (x: 0 .. 99.99, on a log scale of 1/(1 - p) so the tail is
readable, as HdrHistogram plots do). Right: p50 and p99 as ratios to the reference (floor (b), else the pass-through Worker).
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter  # noqa: E402


def main(src: str, dst: str) -> None:
    with open(src, encoding="utf-8") as f:
        r = json.load(f)
    contestants = r["contestants"]
    ref = r["reference"]

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(15, 6.5), gridspec_kw={"width_ratios": [3, 2]})
    cmap = plt.get_cmap("tab20")
    for i, c in enumerate(contestants):
        pts = [(p, ms) for p, ms in c["percentiles"] if p < 100]
        xs = [1.0 / (1.0 - p / 100.0) for p, _ in pts]
        ys = [ms for _, ms in pts]
        style = "--" if c["id"].startswith(("passthrough", "floor-")) else ("-." if c["id"] in ("origin", "hono", "hono-full-isolate") else "-")
        width = 2.4 if c["id"] in ("passthrough", "floor-b", "gateway-full", "hono", "hono-full-isolate") else 1.4
        ax.plot(xs, ys, style, color=cmap(i % 20), linewidth=width, label=f'{c["label"]} ({c["rps"]:.0f} req/s)')
    ticks = [0, 50, 90, 99, 99.9, 99.99]
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator([1.0 / (1.0 - t / 100.0) for t in ticks]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"p{100.0 * (1.0 - 1.0 / x):g}"))
    ax.xaxis.set_minor_locator(FixedLocator([]))
    ax.set_yscale("log")
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title(
        f'Latency by percentile, {r["machine"]["nproc"]} CPUs, '
        f'{r["contestants"][0]["url"].split("/")[2].split(":")[0]}, runner "{r["runner"]}"'
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")

    workers = [c for c in contestants if c["id"] != "origin"]
    labels = [c["label"] for c in workers]
    p50 = [c["p50"] / ref["p50"] for c in workers]
    p99 = [c["p99"] / ref["p99"] for c in workers]
    ys = range(len(workers))
    bx.barh([y - 0.2 for y in ys], p50, height=0.4, label="p50", color="#4c72b0")
    bx.barh([y + 0.2 for y in ys], p99, height=0.4, label="p99", color="#dd8452")
    bx.axvline(1.0, color="black", linewidth=1)
    bx.set_yticks(list(ys))
    bx.set_yticklabels(labels, fontsize=8)
    bx.invert_yaxis()
    bx.set_xlabel(f'× {ref.get("label") or "pass-through Worker"} (medians over the rounds)')
    bx.set_title(f'Latency relative to the {ref.get("label") or "pass-through Worker"}')
    bx.grid(True, axis="x", alpha=0.3)
    bx.legend(fontsize=8)

    fig.suptitle(f'make bench, {r["date"]}: numbers from a shared, noisy machine; compare ratios', fontsize=10)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
