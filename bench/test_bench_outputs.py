#!/usr/bin/python3
"""ctest: bq_bench --tsv / --plot / --reference on minilm-sap (skips, and says
so, when the real data is absent).

    test_bench_outputs.py BQ_BENCH FAST_SCAN_REF DATA_DIR OUT_DIR
"""
import csv
import os
import subprocess
import sys

SKIP = 77  # ctest's SKIP_RETURN_CODE


def main():
    bq_bench, ref, data, out = sys.argv[1:5]
    folder = os.path.join(data, "minilm-sap")
    if not os.path.exists(os.path.join(folder, "base.fvecs")):
        print(f"SKIPPED: no real data in {folder} (run ../shared/data/get-data.sh)")
        return SKIP
    os.makedirs(out, exist_ok=True)
    tsv, png = os.path.join(out, "rows.tsv"), os.path.join(out, "recall_qps.png")
    for f in (tsv, png):
        if os.path.exists(f):
            os.remove(f)
    cmd = [bq_bench, "--data", folder, "--threads", "1", "--skip-pq", "--skip-refine",
           "--methods", "BQ1-auto-asym-fs,sign,flat-exact", "--reference", ref,
           "--tsv", tsv, "--plot", png]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    with open(tsv) as f:
        rows = list(csv.DictReader((l for l in f if not l.startswith("#")), delimiter="\t"))
    names = [r["name"] for r in rows]
    families = {r["family"] for r in rows}
    # the bench's rows and the reference's, each with its family and numbers
    for want in ("BQ1 auto asym fs", "BinaryFlat sign", "Flat exact", "PQ96x4fs", "PQ192x4fs"):
        assert want in names, f"{want} missing from {names}"
    assert "faiss_bq fast scan" in families, families
    assert any(f.startswith("FAISS fast scan (FAISS ") for f in families), families
    for r in rows:
        assert 0 <= float(r["recall_at_10"]) <= 1 and float(r["qps_batch"]) > 0, r
    flat = next(r for r in rows if r["name"] == "Flat exact")
    assert float(flat["recall_at_10"]) == 1.0, flat
    assert float(flat["bytes_per_vector"]) == 384 * 4, flat
    with open(png, "rb") as f:
        head = f.read(8)
    assert head == b"\x89PNG\r\n\x1a\n", head
    size = os.path.getsize(png)
    assert 10_000 < size < 200_000, size

    # a reference that fails or prints no rows is an error naming it
    bad = subprocess.run([bq_bench, "--data", folder, "--threads", "1", "--methods",
                          "flat-exact", "--reference", "/bin/false"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "--reference /bin/false" in bad.stderr, bad.stderr
    print(f"ok: {len(rows)} rows, {len(families)} families, plot {size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
