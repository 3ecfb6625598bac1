// IndexBlockQuant: blocks of a randomly rotated vector quantized on the
// sphere, a direction from a fixed spherical code and a norm per block
// (issue 16, BlockQuant). Needs no training data in its oblivious mode.
#pragma once

#include <faiss/IndexFlatCodes.h>

#include <cstdint>
#include <vector>

namespace faiss_bq {

/** Float vectors as one byte per block of block_size rotated coordinates.
 *
 * Model. y = R (x - center): R a seeded random rotation from R^d into R^D,
 * D = padded_dim(d) (d rounded up to a multiple of 8, as faiss_bq's bit
 * planes; the rotation of x padded with zeros), so |y| = |x - center|.
 * Block b (coordinates b k .. b k + k - 1, k = block_size, which must
 * divide D) is y_b = |y| rho_b u_b with rho_b = |y_b| / |y| and u_b a unit
 * vector. Its code is one byte: the low direction_bits bits (m) the index
 * j of the codeword of `codebook` (2^m unit vectors of R^k) nearest to u_b,
 * the high 8 - m bits the index l of the level of `norm_levels` nearest to
 * rho_b. The reconstruction is y_hat = |y| sum_b rho_hat_l c_j.
 *
 * The codebook depends on k, m and the seed only: Lloyd's algorithm on the
 * sphere (spherical k-means) over seeded points uniform on S^{k-1}, run
 * serially so that every process, machine and thread count gets the same
 * bytes. The norm levels are Lloyd-Max levels: in the oblivious mode for
 * the law of a block norm of a uniformly random unit vector of R^D
 * (rho^2 ~ Beta(k/2, (D - k)/2), the distribution of any fixed x after a
 * random rotation); in the trained mode for the sample's own block norms.
 *
 * Modes. oblivious (the default): center = 0 (a user may set it before
 * adding), is_trained from construction, train() a no-op accepting any n
 * including 0: a streaming writer encodes its first vector at once, and
 * writers that share d, k, m and the seed produce codes that merge.
 * Trained: train() sets center to the sample mean and fits the norm levels.
 *
 * Search, from two per-vector factors stored after the blocks: the offset
 * |x - center|^2 (METRIC_L2) or <center, x - center> (METRIC_INNER_PRODUCT)
 * and the scale s = |y|^2 / <rho_hat c, y> (unbiased: makes <y, s y_hat/|y|>
 * = |y|^2, RaBitQ's / EDEN's correction) or |y| (unbiased = false). With
 * yq = R (q - center): <yq, y> ~ s sum_b LUT_b[code_b], LUT_b[(l, j)] =
 * rho_hat_l <yq_b, c_j>: one 256-entry table per block, scanned by
 * kernels::lut_scan_block. search() returns |yq|^2 + offset - 2 ip (L2) or
 * <q, center> + offset + ip (inner product).
 *
 * Code layout (code_size bytes): n_blocks() bytes, then the float offset
 * and the float scale.
 */
struct IndexBlockQuant : faiss::IndexFlatCodes {
    /// k: coordinates per block, 2..32, dividing padded_dim(d).
    int block_size = 8;
    /// m: bits of the direction index, 1..8 (2^m codewords); the other
    /// 8 - m bits of the byte index the norm level. Measured best (of 5..8,
    /// docs/blockquant.md): 5 at k = 2, 7 at k = 4, 8 at k >= 8.
    int direction_bits = 8;
    /// No training: center 0 and the norm levels of a random rotation.
    bool oblivious = true;
    /// Scale the estimate by |y|^2 / <y_hat, y> (else by |y|).
    bool unbiased = true;
    /// Seed of the rotation, the codebook and the oblivious norm levels
    /// (the constructor draws them).
    int seed = 1234;
    /// Trained mode: the largest sample used (a seeded subset beyond it).
    size_t max_train_points = 65536;

    /// D: d rounded up to a multiple of 8.
    int padded_d = 0;
    /// d values (zeros in the oblivious mode).
    std::vector<float> center;
    /// D x d, row-major, orthonormal columns.
    std::vector<float> rotation;
    /// 2^m x k, row-major, unit rows.
    std::vector<float> codebook;
    /// 2^(8 - m) relative block norms, increasing.
    std::vector<float> norm_levels;

    IndexBlockQuant();
    IndexBlockQuant(
            idx_t d,
            int block_size,
            int direction_bits,
            faiss::MetricType metric = faiss::METRIC_L2,
            bool oblivious = true,
            int seed = 1234);

    /// d rounded up to a multiple of 8.
    static int padded_dim(int d) {
        return (d + 7) / 8 * 8;
    }
    /// Throws faiss::FaissException naming the values unless d > 0,
    /// block_size in 2..32 divides padded_dim(d), direction_bits in 1..8.
    static void check_settings(int d, int block_size, int direction_bits);
    /// Bytes per code: one per block plus two floats.
    static size_t code_size_for(int d, int block_size);
    int n_blocks() const {
        return padded_d / block_size;
    }

    /// The seeded spherical code: 2^m unit vectors of R^k (row-major).
    static std::vector<float> spherical_code(int k, int m, int seed);
    /// Lloyd-Max levels (n_levels, increasing) for the block norm rho of a
    /// uniformly random unit vector of R^D, blocks of k coordinates.
    static std::vector<float> oblivious_norm_levels(
            int D,
            int k,
            int n_levels,
            int seed);

    void train(idx_t n, const float* x) override;
    void add(idx_t n, const float* x) override;
    void search(
            idx_t n,
            const float* x,
            idx_t k,
            float* distances,
            idx_t* labels,
            const faiss::SearchParameters* params = nullptr) const override;

    void sa_encode(idx_t n, const float* x, uint8_t* bytes) const override;
    void sa_decode(idx_t n, const uint8_t* bytes, float* x) const override;

    /// y = R (x - center) for n rows (n x D out).
    void transform(idx_t n, const float* x, float* y) const;

    void check_compatible_for_merge(const faiss::Index& other) const override;
};

} // namespace faiss_bq
