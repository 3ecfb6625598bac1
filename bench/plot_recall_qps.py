#!/usr/bin/python3
"""Recall against queries per second, from bq_bench's TSV rows (--tsv).

    /usr/bin/python3 bench/plot_recall_qps.py OUT.png ROWS.tsv [MORE.tsv ...]
        [--qps batch|single] [--title TEXT] [--min-recall R]

One point per row, x = 10-recall@10, y = QPS on a log scale, in the style of
ann-benchmarks' plots: one colour and marker per family (the TSV's family
column), each family's Pareto front (no other row of the family both faster
and more accurate) joined by a line, the other rows as faint points. bq_bench
--plot runs it. Needs Debian's python3-matplotlib.
"""
import argparse
import csv
import sys


def read_rows(paths):
    rows = []
    for path in paths:
        with open(path, newline="") as f:
            lines = [line for line in f if line.strip() and not line.startswith("#")]
        for r in csv.DictReader(lines, delimiter="\t"):
            try:
                rows.append({
                    "name": r["name"],
                    "family": r["family"],
                    "bytes": float(r["bytes_per_vector"]),
                    "recall": float(r["recall_at_10"]),
                    "batch": float(r["qps_batch"]),
                    "single": float(r["qps_single"]),
                })
            except (KeyError, TypeError, ValueError) as e:
                sys.exit(f"plot_recall_qps.py: {path}: row {r!r} does not parse ({e})")
    return rows


def pareto_front(points):
    """The points no other beats in both recall and QPS, by increasing recall."""
    front = []
    for p in sorted(points, key=lambda p: (-p[0], -p[1])):
        if not front or p[1] > front[-1][1]:
            front.append(p)
    return front[::-1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("tsv", nargs="+")
    ap.add_argument("--qps", choices=["batch", "single"], default="batch")
    ap.add_argument("--title", default="")
    ap.add_argument("--min-recall", type=float, default=0.0)
    args = ap.parse_args()

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in read_rows(args.tsv) if r[args.qps] > 0 and r["recall"] >= args.min_recall]
    if not rows:
        sys.exit("plot_recall_qps.py: no rows to plot")
    families = sorted({r["family"] for r in rows})
    markers = "os^vD<>pPX*h"
    fig, ax = plt.subplots(figsize=(9, 6))
    for i, fam in enumerate(families):
        pts = [(r["recall"], r[args.qps], r["name"], r["bytes"]) for r in rows if r["family"] == fam]
        colour = plt.cm.tab10(i % 10)
        marker = markers[i % len(markers)]
        front = pareto_front(pts)
        on_front = {p[2] for p in front}
        rest = [p for p in pts if p[2] not in on_front]
        if rest:
            ax.scatter([p[0] for p in rest], [p[1] for p in rest], color=colour,
                       marker=marker, alpha=0.25, s=18)
        ax.plot([p[0] for p in front], [p[1] for p in front], color=colour,
                marker=marker, label=f"{fam} ({len(pts)} rows)", linewidth=1.5, markersize=6)
        for p in front:
            ax.annotate(f"{p[2]} ({p[3]:.0f} B)", (p[0], p[1]), fontsize=6,
                        xytext=(3, 3), textcoords="offset points", color=colour)
    ax.set_yscale("log")
    ax.set_xlabel("10-recall@10")
    ax.set_ylabel(f"queries per second ({'batch' if args.qps == 'batch' else 'one at a time'}, log)")
    ax.set_title(args.title or "recall against speed: each family's Pareto front")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    print(f"plot_recall_qps.py: {len(rows)} rows, {len(families)} families -> {args.out}")


if __name__ == "__main__":
    main()
