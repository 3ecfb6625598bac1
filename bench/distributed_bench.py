"""faiss_bq.distributed bench (issue 18): build time on 1 versus 2 dask
workers, and search through 2 shard server processes versus the merged index
in-process (recall, QPS, latency), on a TEXMEX set.

    PYTHONPATH=build/python /usr/bin/python3 bench/distributed_bench.py \\
        --data ../shared/data/use512-wordnet --index IVF256,BQ1_fs \\
        --work /tmp/dbench [--nprobe 16] [--repeat 3] [--tsv out.tsv]

Build: the plan and coarse quantizer are trained once (in this process, on
--train-rows rows), then faiss_bq.distributed.build encodes with that trained
index on a LocalCluster of W single-threaded worker processes (W shards; dask
starts workers with OMP_NUM_THREADS=1), merge included; the cluster's start
is not timed. Each W runs --repeat times, alternating, and the median is
reported (the machines here are shared: a single run says little).
Search: the merged index (lists memory-mapped) at 1 and 2 OpenMP threads,
and a ShardedClient over 2 server processes (one thread each): QPS over the
whole query batch, and latency of single-query searches (median, p99).
Recall@10 against the set's ground truth; the served and in-process results
are checked to be identical.
"""
import argparse
import os
import shutil
import statistics
import sys
import time

import numpy as np

import faiss
from faiss.contrib.vecs_io import fvecs_mmap, fvecs_read, ivecs_read
import faiss_bq
import faiss_bq.distributed as bqd


def recall_at_10(I, gt):
    return float(np.mean([len(set(I[i, :10]) & set(gt[i, :10])) / 10
                          for i in range(len(I))]))


def local_cluster(n_workers):
    import distributed
    cluster = distributed.LocalCluster(
        n_workers=n_workers, threads_per_worker=1, processes=True,
        host="127.0.0.1", dashboard_address=None, silence_logs=40,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
    return cluster, distributed.Client(cluster)


def time_builds(args, trained, base):
    """{W: [BuildResult per repeat]}, the W alternating within a repeat."""
    clusters = {w: local_cluster(w) for w in (1, 2)}
    runs = {1: [], 2: []}
    try:
        for r in range(args.repeat):
            for w in (1, 2) if r % 2 == 0 else (2, 1):
                out = os.path.join(args.work, "w%d" % w)
                shutil.rmtree(out, ignore_errors=True)
                t0 = time.time()
                result = bqd.build(clusters[w][1], base, trained, out)
                result.total_seconds = time.time() - t0
                runs[w].append(result)
                print("  build, %d worker(s), run %d: %.1f s (encode %.1f, merge %.1f); "
                      "per worker: %s s wall, %s s CPU; load %.1f"
                      % (w, r + 1, result.total_seconds, result.encode_seconds,
                         result.merge_seconds,
                         "/".join("%.1f" % s["seconds"] for s in result.shards),
                         "/".join("%.1f" % s["cpu_seconds"] for s in result.shards),
                         os.getloadavg()[0]), flush=True)
    finally:
        for cluster, client in clusters.values():
            client.close()
            cluster.close()
    return runs


def latency_ms(search, xq, n):
    search(xq[:1])
    times = []
    for i in range(min(n, len(xq))):
        t0 = time.perf_counter()
        search(xq[i:i + 1])
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), float(np.percentile(times, 99))


def qps(search, xq, repeat):
    search(xq)                  # warm-up: first-touch of mapped lists, buffers
    best = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        search(xq)
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return len(xq) / best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--index", default="IVF256,BQ1_fs")
    ap.add_argument("--metric", choices=["ip", "l2"], default="ip")
    ap.add_argument("--train-rows", type=int, default=50000)
    ap.add_argument("--nprobe", type=int, default=16)
    ap.add_argument("--work", required=True, help="folder for shards and indexes")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--latency-queries", type=int, default=200)
    ap.add_argument("--tsv")
    args = ap.parse_args()
    metric = faiss.METRIC_INNER_PRODUCT if args.metric == "ip" else faiss.METRIC_L2
    base = os.path.join(args.data, "base.fvecs")
    xq = fvecs_read(os.path.join(args.data, "query.fvecs"))
    gt = ivecs_read(os.path.join(args.data, "groundtruth.ivecs"))
    os.makedirs(args.work, exist_ok=True)
    xb = fvecs_mmap(base)
    print("%s: %d x %d, %d queries; %s, nprobe %d; %d cores, load %.1f"
          % (args.data, xb.shape[0], xb.shape[1], len(xq), args.index,
             args.nprobe, os.cpu_count(), os.getloadavg()[0]), flush=True)

    t0 = time.time()
    rows = np.sort(np.random.RandomState(1234).choice(
        len(xb), min(args.train_rows, len(xb)), replace=False))
    trained = faiss_bq.index_factory(xb.shape[1], args.index, metric)
    trained.train(np.ascontiguousarray(xb[rows]))
    train_seconds = time.time() - t0
    print("  train (this process, %d threads): %.1f s" %
          (faiss.omp_get_max_threads(), train_seconds), flush=True)

    runs = time_builds(args, trained, base)
    med = {w: statistics.median(r.total_seconds for r in runs[w]) for w in runs}
    enc = {w: statistics.median(r.encode_seconds for r in runs[w]) for w in runs}
    mrg = {w: statistics.median(r.merge_seconds for r in runs[w]) for w in runs}

    result = runs[2][-1]
    merged = faiss_bq.read_index(result.index_file)
    faiss.extract_index_ivf(merged).nprobe = args.nprobe
    rows_out = []
    faiss.omp_set_num_threads(1)
    D, I = merged.search(xq, 10)
    for threads in (1, 2):
        faiss.omp_set_num_threads(threads)
        rows_out.append(("in-process, %d thread%s" % (threads, "s" * (threads > 1)),
                         recall_at_10(I, gt),
                         qps(lambda q: merged.search(q, 10), xq, args.repeat),
                         *latency_ms(lambda q: merged.search(q, 10), xq,
                                     args.latency_queries)))
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    with bqd.start_servers(result.shard_files, env=env) as servers, \
            bqd.ShardedClient(servers.addresses, timeout=60.0) as client:
        client.set_nprobe(args.nprobe)
        D2, I2 = client.search(xq, 10)
        identical = np.array_equal(I, I2) and np.array_equal(D, D2)
        rows_out.append(("2 shard servers (1 thread each)", recall_at_10(I2, gt),
                         qps(lambda q: client.search(q, 10), xq, args.repeat),
                         *latency_ms(lambda q: client.search(q, 10), xq,
                                     args.latency_queries)))

    print()
    print("| build | 1 worker | 2 workers | 2 / 1 |")
    print("|---|---|---|---|")
    for name, m in (("encode", enc), ("merge", mrg), ("total (encode + merge)", med)):
        print("| %s, s (median of %d) | %.2f | %.2f | %.2f |"
              % (name, args.repeat, m[1], m[2], m[2] / m[1]))
    cpu = {w: statistics.median(sum(s["cpu_seconds"] for s in r.shards)
                                for r in runs[w]) for w in runs}
    print("| encode CPU seconds, all workers (median) | %.2f | %.2f | %.2f |"
          % (cpu[1], cpu[2], cpu[2] / cpu[1]))
    print("\ntrain once, in this process: %.1f s" % train_seconds)
    print()
    print("| search (nprobe %d, k 10, %d queries) | recall@10 | QPS (batch) | "
          "latency median, ms | latency p99, ms |" % (args.nprobe, len(xq)))
    print("|---|---|---|---|---|")
    for name, rec, q, l50, l99 in rows_out:
        print("| %s | %.4f | %.0f | %.2f | %.2f |" % (name, rec, q, l50, l99))
    print("\nserved results identical to the merged index's (labels and "
          "distances): %s" % identical)
    print("load average at the end: %.1f" % os.getloadavg()[0])
    if args.tsv:
        with open(args.tsv, "w") as f:
            f.write("row\trecall_at_10\tqps\tlatency_median_ms\tlatency_p99_ms"
                    "\tbuild_seconds\n")
            for row in rows_out:
                f.write("%s\t%.4f\t%.1f\t%.3f\t%.3f\t-\n" % row)
            for w in (1, 2):
                f.write("build, %d worker(s)\t-\t-\t-\t-\t%.3f\n" % (w, med[w]))
    if not identical:
        sys.exit("served results differ from the merged index's")


if __name__ == "__main__":
    main()
