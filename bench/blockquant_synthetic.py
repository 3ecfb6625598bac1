"""BlockQuant against fast scan's joint nibbles at equal bytes on synthetic
Gaussian data (docs/blockquant.md): isotropic, where a random rotation loses
nothing, and anisotropic (sigmas falling 20x), where the data-trained plan
allocates its bits by variance.

    PYTHONPATH=build/python python3 bench/blockquant_synthetic.py
"""
import numpy as np

import faiss
import faiss_bq

D, NB, NQ = 128, 20000, 200
ROWS = ["BKQ4x7", "BKQ4x7_obl", "BKQ4x7_nocorr", "BQ28B_fs",
        "BKQ8x8", "BKQ8x8_obl", "BKQ8x8_nocorr", "BQ12B_fs", "BQ1_fs"]


def recall(description, xb, xq, gt):
    index = faiss_bq.index_factory(D, description, faiss.METRIC_INNER_PRODUCT)
    index.train(xb)
    index.add(xb)
    _, I = index.search(xq, 10)
    return index.sa_code_size(), np.mean(
        [len(set(I[i]) & set(gt[i])) / 10 for i in range(NQ)])


def main():
    faiss.omp_set_num_threads(1)
    print("| data | method | bytes/vector | 10-recall@10 |\n|---|---|--:|--:|")
    for name, sigma in (("isotropic", np.ones(D)),
                        ("anisotropic", 0.05 ** (np.arange(D) / D))):
        rng = np.random.default_rng(0)
        xb = (rng.standard_normal((NB, D)) * sigma).astype("float32")
        xq = (rng.standard_normal((NQ, D)) * sigma).astype("float32")
        flat = faiss.IndexFlatIP(D)
        flat.add(xb)
        _, gt = flat.search(xq, 10)
        for s in ROWS:
            size, r = recall(s, xb, xq, gt)
            print("| %s | %s | %d | %.3f |" % (name, s, size, r), flush=True)


if __name__ == "__main__":
    main()
