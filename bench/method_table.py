#!/usr/bin/python3
"""The README's table per method: bytes, 10-recall@10 on each data set,
training time and scan speed, grouped by bits per coordinate with the
trainer's choice at the same bytes first in each group.

    bench/method_table.py --run --bench build/bench/bq_bench \\
        --reference build/fast_scan_ref_avx512 --out DIR
runs bq_bench once per data set (1 thread, the rows below only) and writes
DIR/<set>.tsv; without --run it formats the TSVs already in DIR. The table
goes to stdout as Markdown. Rows missing from a TSV (a FAISS without EDEN,
a data set left out) print as a dash.
"""
import argparse
import os
import subprocess
import sys

SETS = ["use512-wordnet", "minilm-sap", "glove100-wink"]
DIMS = {"use512-wordnet": 512, "minilm-sap": 384, "glove100-wink": 100}
# The set whose training time and QPS the table shows.
SPEED_SET = "use512-wordnet"

# (group, method, row name; {d}: the dimension, {B3} / {B4}: bytes of 3 / 4
# bits per coordinate as padded planes (faiss_bq's max_budget_bytes for 4);
# "a|b": the better of two rows, for FAISS's quantizers bare and after its
# random rotation RR<d>)
ROWS = [
    ("1 bit", "**faiss_bq, the trainer's choice**", "BQ1 auto asym"),
    ("1 bit", "faiss_bq, the choice among families (`BQ1_family`)", "BQ1 family"),
    ("1 bit", "faiss_bq, the trainer's choice, fast scan", "BQ1 auto asym fs"),
    ("1 bit", "faiss_bq, symmetric (its own Hamming-like score)", "BQ1 auto sym"),
    ("1 bit", "sign bits, the common way (IndexBinaryFlat)", "BinaryFlat sign"),
    ("1 bit", "FAISS IndexLSH (rotation, thresholds)", "LSH rot+thr"),
    ("1 bit", "EDEN, faiss_bq (`_eden`)", "BQ1 eden asym"),
    ("1 bit", "EDEN, FAISS (best of bare / after RR)", "FAISS EDEN1|FAISS RR{d},EDEN1"),
    ("1 bit", "RaBitQ fast scan, FAISS", "RaBitQfs"),
    ("1 bit", "BEBR recurrent, SDC (faiss_bq)", "BQR1 sdc"),
    ("1 bit", "BEBR recurrent, float query (faiss_bq)", "BQR1 asym"),
    ("1 bit", "BlockQuant `BKQ8x8`, trained (faiss_bq)", "BKQ8x8"),
    ("1 bit", "BlockQuant `BKQ8x8_obl`, data-oblivious (faiss_bq)", "BKQ8x8 obl"),
    ("1 bit", "PQ fast scan, FAISS (d/4 4-bit codes)", "PQ{d4}x4fs"),
    ("2 bits", "**faiss_bq, the trainer's choice**", "BQ2 auto asym"),
    ("2 bits", "faiss_bq, the choice among families (`BQ2_family`)", "BQ2 family"),
    ("2 bits", "faiss_bq, the trainer's choice, fast scan", "BQ2 auto asym fs"),
    ("2 bits", "faiss_bq, symmetric", "BQ2 auto sym"),
    ("2 bits", "EDEN, faiss_bq (`_eden`)", "BQ2 eden asym"),
    ("2 bits", "EDEN, FAISS (best of bare / after RR)", "FAISS EDEN2|FAISS RR{d},EDEN2"),
    ("2 bits", "TurboQuant-MSE, faiss_bq (`_tqmse`)", "BQ2 tqmse asym"),
    ("2 bits", "TurboQuant-MSE, FAISS (best of bare / RR)", "FAISS SQtqmse2|FAISS RR{d},SQtqmse2"),
    ("2 bits", "TurboQuant-prod, faiss_bq (`BQT2`, best of rotated / axis)", "BQT2 rot|BQT2 axis"),
    ("2 bits", "TurboQuant-prod, FAISS (best of bare / RR)", "FAISS SQtq2|FAISS RR{d},SQtq2"),
    ("2 bits", "RaBitQ fast scan 2 bits, FAISS", "RaBitQfs2"),
    ("2 bits", "BEBR recurrent, SDC (faiss_bq)", "BQR2 sdc"),
    ("2 bits", "BEBR recurrent, float query (faiss_bq)", "BQR2 asym"),
    ("2 bits", "BlockQuant `BKQ4x7`, trained (faiss_bq)", "BKQ4x7"),
    ("2 bits", "BlockQuant `BKQ4x7_obl`, data-oblivious (faiss_bq)", "BKQ4x7 obl"),
    ("2 bits", "PQ fast scan, FAISS (d/2 4-bit codes)", "PQ{d2}x4fs"),
    ("3 bits", "**faiss_bq, the trainer's choice**", "B{B3} auto"),
    ("3 bits", "faiss_bq, the choice among families (`BQ<B>B_family`)", "B{B3} family"),
    ("3 bits", "TurboQuant-prod, faiss_bq (`BQT3`, best of rotated / axis)", "BQT3 rot|BQT3 axis"),
    ("3 bits", "TurboQuant-prod, FAISS (best of bare / RR)", "FAISS SQtq3|FAISS RR{d},SQtq3"),
    ("3 bits", "BEBR recurrent, float query (faiss_bq)", "BQR3 asym"),
    ("4 bits", "**faiss_bq, the trainer's choice**", "B{B4} auto"),
    ("4 bits", "faiss_bq, the choice among families (`BQ<B>B_family`)", "B{B4} family"),
    ("4 bits", "EDEN, faiss_bq", "B{B4} uniform eden"),
    ("4 bits", "EDEN, FAISS (best of bare / after RR)", "FAISS EDEN4|FAISS RR{d},EDEN4"),
    ("4 bits", "BEBR recurrent, float query (faiss_bq)", "BQR4 asym"),
    ("4 bits", "BlockQuant `BKQ2x5`, trained (faiss_bq)", "BKQ2x5"),
    ("4 bits", "BlockQuant `BKQ2x5_obl`, data-oblivious (faiss_bq)", "BKQ2x5 obl"),
]


def budgets(dataset):
    planes = (DIMS[dataset] + 7) // 8
    return 3 * planes, 4 * planes


def row_names(template, dataset):
    d = DIMS[dataset]
    b3, b4 = budgets(dataset)
    return [t.format(d=d, d2=d // 2, d4=d // 4, B3=b3, B4=b4)
            for t in template.split("|")]


def find(rows, template, dataset):
    """The row (of the better recall among alternatives), or None."""
    found = [rows[n] for n in row_names(template, dataset) if n in rows]
    return max(found, key=lambda r: float(r["recall_at_10"]), default=None)


def read_tsv(path):
    rows = {}
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        header = None
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            cols = line.split("\t")
            if header is None:
                header = cols
                continue
            rows[cols[0]] = dict(zip(header, cols))
    return rows


def methods_arg(dataset):
    """bq_bench --methods: every row of the table, each item matching it
    whole (bq_bench matches the words of an item)."""
    names = {n for _, _, t in ROWS for n in row_names(t, dataset)}
    return ",".join(sorted(n for n in names if not n.startswith("FAISS ")))


def run(args):
    os.makedirs(args.out, exist_ok=True)
    for s in args.sets:
        cmd = [args.bench, "--data", os.path.join(args.data_root, s),
               "--threads", "1", "--skip-refine",
               "--budgets", ",".join(str(b) for b in budgets(s)),
               "--methods", methods_arg(s),
               "--tsv", os.path.join(args.out, s + ".tsv")]
        for r in args.reference:
            cmd += ["--reference", r]
        print("#", " ".join(cmd), file=sys.stderr, flush=True)
        with open(os.path.join(args.out, s + ".log"), "w") as log:
            subprocess.run(cmd, check=True, stdout=log)


def number(row, key, fmt):
    if row is None or row.get(key, "-") in ("-", ""):
        return "—"
    return fmt.format(float(row[key]))


def table(args):
    tsv = {s: read_tsv(os.path.join(args.out, s + ".tsv")) for s in args.sets}
    head = ["bits", "method"]
    for s in args.sets:
        head += [s + " B", "recall"]
    head += ["train s", "QPS"]
    out = ["| " + " | ".join(head) + " |",
           "|" + "|".join(["---"] * 2 + ["--:"] * (len(head) - 2)) + "|"]
    for group, method, template in ROWS:
        cells = [group, method]
        for s in args.sets:
            row = find(tsv[s], template, s)
            cells += [number(row, "bytes_per_vector", "{:.0f}"),
                      number(row, "recall_at_10", "{:.3f}")]
        speed = (find(tsv[SPEED_SET], template, SPEED_SET)
                 if SPEED_SET in tsv else None)
        cells += [number(speed, "train_s", "{:.1f}"),
                  number(speed, "qps_batch", "{:,.0f}")]
        out.append("| " + " | ".join(cells) + " |")
    print("\n".join(out))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="folder of the TSVs")
    p.add_argument("--run", action="store_true", help="run the benches first")
    p.add_argument("--bench", default="build/bench/bq_bench")
    p.add_argument("--reference", action="append", default=[])
    p.add_argument("--data-root", default=os.environ.get(
        "FAISS_BQ_DATA", os.path.join(os.path.dirname(__file__),
                                      "..", "..", "shared", "data")))
    p.add_argument("--sets", default=",".join(SETS))
    args = p.parse_args()
    args.sets = args.sets.split(",")
    for s in args.sets:
        if s not in DIMS:
            p.error("unknown data set %s (known: %s)" % (s, ", ".join(SETS)))
    if args.run:
        run(args)
    table(args)


if __name__ == "__main__":
    main()
