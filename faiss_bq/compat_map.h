// Compatible versions (BEBR's third idea): a linear map from a new embedding
// model's space to the space of an existing index, fitted on paired
// embeddings of the same items, so that the new model's queries search the
// old codes without re-encoding them.
#pragma once

#include <faiss/VectorTransform.h>

#include <cstddef>

namespace faiss_bq {

enum class MapFit {
    /// Orthogonal Procrustes: the map with orthonormal rows (or columns,
    /// when the new space is the larger) closest in least squares; keeps
    /// the new model's geometry, only rotates it.
    orthogonal,
    /// Ridge least squares: any linear map, closest in least squares.
    least_squares,
};

const char* map_fit_name(MapFit fit);

/** The map y = A x + b from the new model's space (d_new) to the old one's
 * (d_old), fitted on n paired rows: x_new[i] and x_old[i] embed the same item.
 * With `centre`, both sets are centred first and b maps the new mean to the
 * old one; without, b = 0 and the map is fitted on the raw rows. Least squares
 * adds ridge * (the mean eigenvalue of the new covariance) to its normal
 * equations. BLAS for the products, LAPACK (sgesvd, sposv) for the solves.
 * The result is FAISS's own LinearTransform: apply() it to queries, put it
 * in an IndexPreTransform, write it with faiss::write_VectorTransform.
 * Throws faiss::FaissException naming the values for paired arrays of
 * different lengths, no rows, dimensions below 1, rows that are not
 * finite, or a negative ridge.
 */
faiss::LinearTransform* fit_compatible_map(
        size_t n_new,
        int d_new,
        const float* x_new,
        size_t n_old,
        int d_old,
        const float* x_old,
        MapFit fit = MapFit::orthogonal,
        bool centre = true,
        float ridge = 1e-3f);

} // namespace faiss_bq
