// The one owner of faiss_bq's file formats (docs/files.md).
//
// IndexBQ, fourcc "BQix":
//   fourcc | version | FAISS index header | index fields | trainer options |
//   plan (with its evidence) | codes | checksum
// faiss::IndexHNSW over faiss_bq storage, fourcc "BQhn" (FAISS writes only
// its own HNSW subclasses):
//   fourcc | version | FAISS index header | FAISS's HNSW graph layout |
//   storage (recursively) | checksum
// IndexBQRefine, fourcc "BQrf":
//   fourcc | version | FAISS index header | k_factor | bound_sigmas |
//   first stage, refine store (recursively) | checksum
// IndexFromBinary, fourcc "BQfb":
//   fourcc | version (>= 2) | FAISS index header | nbits | trainer options |
//   plan | plan allocation | binary index (recursively, write_index_binary) |
//   checksum
// IndexBQFastScan, fourcc "BQfs":
//   fourcc | version (>= 3) | FAISS index header | an IndexBQ record of its
//   configuration and plan, without codes (recursively) | codes (blocks of
//   the fast-scan layout) | factors | checksum
// IndexIVFBQ, fourcc "BQiv", and IndexIVFBQFastScan, fourcc "BQif":
//   fourcc | version (>= 5) | FAISS index header | a code-less IndexBQ record
//   of its configuration and plan | nlist | nprobe | max_codes | query_bits
//   | code_size | direct map type | quantizer (recursively) | inverted lists
//   in FAISS's own list format (faiss::write_InvertedLists: "ilar" inline,
//   read here with bounded reads, into memory even under IO_FLAG_MMAP;
//   "ilod" names its OnDiskInvertedLists data file, read here with bounded
//   reads, the data file checked, then mapped: IO_FLAG_ONDISK_SAME_DIR,
//   IO_FLAG_READ_ONLY and IO_FLAG_MMAP as FAISS means them) | checksum
// IndexBQRecurrent, fourcc "BQRc", its own format version (kRecurrentVersion):
//   fourcc | version | FAISS index header | n_stages | per_vector_scales |
//   estimator | training options | code_size | mean | rotation |
//   stage_scales | train_errors | codes | checksum
// IndexBQTurbo, fourcc "BQTq", its own format version (kTurboVersion):
//   fourcc | version | FAISS index header | nbits | transform | centered |
//   seed | sketch_seed | code_size | plan center | plan rotation | plan
//   thresholds | plan levels | sketch | codes | checksum
// IndexBlockQuant, fourcc "BQbk", its own format version (kBlockQuantVersion):
//   fourcc | version | FAISS index header | block_size | direction_bits |
//   oblivious | unbiased | seed | max_train_points | padded_d | code_size |
//   center | rotation | codebook | norm_levels | codes | checksum
// IndexBQFamily, fourcc "BQFm", its own format version (kFamilyVersion):
//   fourcc | version | FAISS index header | nbits | budget_bytes | seed |
//   heldout_fraction | max_heldout_base | max_heldout_queries |
//   max_fit_rows | candidate count | per candidate: key, code_size,
//   heldout_recall, heldout_recall_stderr, train_seconds, left_out |
//   chosen | reason | has index | the chosen index (recursively) | checksum
// The checksum (64-bit FNV-1a) covers every byte after the fourcc, so a
// flipped byte anywhere in a faiss_bq record is an error, not a silently
// different index. Containers use FAISS's fourccs and layouts unchanged.
// faiss_bq's fourccs differ from every FAISS 1.7.3 fourcc in at least two
// bytes ("IxBQ" would be one byte from IndexPQ's "IxPQ"): a single corrupted
// byte never sends a faiss_bq record to one of FAISS's readers, which trust
// what they read (garbage can make them divide by zero or allocate terabytes).
#include <faiss_bq/clone_index.h>
#include <faiss_bq/index_io.h>

#include <faiss_bq/index_factory.h>

#include <faiss_bq/IndexBQ.h>
#include <faiss_bq/IndexBQFamily.h>
#include <faiss_bq/IndexBQFastScan.h>
#include <faiss_bq/IndexBQRecurrent.h>
#include <faiss_bq/IndexBQRefine.h>
#include <faiss_bq/IndexBQTurbo.h>
#include <faiss_bq/IndexBlockQuant.h>
#include <faiss_bq/IndexFromBinary.h>
#include <faiss_bq/IndexIVFBQ.h>
#include <faiss_bq/IndexIVFBQFastScan.h>
#include <faiss_bq/kernels/kernels.h>

#include <faiss/IndexBinaryFlat.h>
#include <faiss/IndexBinaryFromFloat.h>
#include <faiss/IndexBinaryIVF.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/IndexRefine.h>
#include <faiss/VectorTransform.h>
#include <faiss/impl/FaissAssert.h>
#include <faiss/index_io.h>
#include <faiss/invlists/InvertedLists.h>
#include <faiss/invlists/OnDiskInvertedLists.h>
#include <faiss_bq/IndexBinaryFlatFast.h>

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <type_traits>
#include <typeinfo>

namespace faiss_bq {

namespace {

using faiss::fourcc;

// 2: IndexBQ records carry the allocation (bits per coordinate, budget,
// candidates' distortions) after the plan; 1 is still read (uniform plans).
// 3: trainer.matryoshka and each candidate's prefix flag.
// 4: trainer.fast_scan_layout (IndexBQFastScan's allocations).
// 5: trainer.joint_nibbles and the plan's joint_levels (joint nibbles).
// 6: the plan's recall profile (k_factor_for, expected_recall).
// 7: trainer.quantization, the plan's and each candidate's quantization
// (EDEN).
// 8: the same fields may hold TurboQuant-MSE (Quantization::turbo_mse,
// QuantizationChoice::turbo_mse); the layout is version 7's.
constexpr uint32_t kFormatVersion = 8;
/// Dimensions beyond this are rejected before anything is sized by them.
constexpr int64_t kMaxDim = 1 << 20;
/// Vectors are grown by at most this many bytes per read, so a size field
/// that claims more than the file holds fails at the end of the data.
constexpr size_t kChunkBytes = size_t(1) << 20;
/// HNSW search sizes its candidate lists by these.
constexpr int kMaxEf = 1 << 20;

// ---- writing

void write_bytes(faiss::IOWriter* f, const void* p, size_t n) {
    FAISS_THROW_IF_NOT_FMT(
            n == 0 || (*f)(p, 1, n) == n,
            "faiss_bq: write error in %s (%zu bytes)",
            f->name.c_str(),
            n);
}

template <class T>
void put(faiss::IOWriter* f, const T& x) {
    static_assert(std::is_trivially_copyable<T>::value, "plain data only");
    write_bytes(f, &x, sizeof(T));
}

template <class T>
void put_vector(faiss::IOWriter* f, const std::vector<T>& v) {
    put(f, uint64_t(v.size()));
    write_bytes(f, v.data(), v.size() * sizeof(T));
}

void put_string(faiss::IOWriter* f, const std::string& s) {
    put(f, uint64_t(s.size()));
    write_bytes(f, s.data(), s.size());
}

/// 64-bit FNV-1a over the bytes that pass through.
struct Checksum {
    uint64_t h = 0xcbf29ce484222325ull;
    void update(const void* p, size_t n) {
        const uint8_t* b = static_cast<const uint8_t*>(p);
        for (size_t i = 0; i < n; i++) {
            h = (h ^ b[i]) * 0x100000001b3ull;
        }
    }
};

struct ChecksumWriter : faiss::IOWriter {
    faiss::IOWriter* inner;
    Checksum sum;
    explicit ChecksumWriter(faiss::IOWriter* inner) : inner(inner) {
        name = inner->name;
    }
    size_t operator()(const void* p, size_t size, size_t n) override {
        const size_t written = (*inner)(p, size, n);
        sum.update(p, written * size);
        return written;
    }
};

// ---- reading

void read_bytes(faiss::IOReader* f, void* p, size_t n) {
    FAISS_THROW_IF_NOT_FMT(
            n == 0 || (*f)(p, 1, n) == n,
            "faiss_bq: %s ends early (%zu more bytes expected)",
            f->name.c_str(),
            n);
}

template <class T>
T get(faiss::IOReader* f) {
    static_assert(std::is_trivially_copyable<T>::value, "plain data only");
    T x;
    read_bytes(f, &x, sizeof(T));
    return x;
}

/// A bool stored as one byte; anything but 0 or 1 is corruption (and
/// loading it as a bool would be undefined behaviour).
bool get_bool(faiss::IOReader* f, const char* what) {
    const uint8_t b = get<uint8_t>(f);
    FAISS_THROW_IF_NOT_FMT(
            b <= 1, "faiss_bq: %s=%d is not a bool", what, int(b));
    return b;
}

/// An enum stored in its underlying type, checked against its last value.
template <class E>
E get_enum(faiss::IOReader* f, const char* what, E last) {
    using U = std::underlying_type_t<E>;
    static_assert(std::is_unsigned<U>::value, "unsigned enums only");
    const U v = get<U>(f);
    FAISS_THROW_IF_NOT_FMT(
            v <= U(last), "faiss_bq: %s=%ld is out of range", what, long(v));
    return E(v);
}

/// A length-prefixed vector, grown in chunks as its bytes arrive. The
/// stored length counts units of `scale` elements (FAISS stores IndexFlat's
/// byte vector as a number of floats).
/// Reads n values into v, growing it a chunk at a time.
template <class T>
void get_values(faiss::IOReader* f, std::vector<T>& v, uint64_t n) {
    v.clear();
    const size_t chunk = std::max<size_t>(1, kChunkBytes / sizeof(T));
    for (size_t done = 0; done < n;) {
        const size_t m = std::min<size_t>(chunk, n - done);
        v.resize(done + m);
        read_bytes(f, v.data() + done, m * sizeof(T));
        done += m;
    }
}

template <class T>
void get_vector(
        faiss::IOReader* f,
        std::vector<T>& v,
        const char* what,
        size_t scale = 1) {
    const uint64_t stored = get<uint64_t>(f);
    FAISS_THROW_IF_NOT_FMT(
            stored < (uint64_t(1) << 40) / sizeof(T) / scale,
            "faiss_bq: %s: size %lu is absurd",
            what,
            (unsigned long)stored);
    get_values(f, v, stored * scale);
}

std::string get_string(faiss::IOReader* f, const char* what) {
    std::vector<char> chars;
    get_vector(f, chars, what);
    return std::string(chars.begin(), chars.end());
}

struct ChecksumReader : faiss::IOReader {
    faiss::IOReader* inner;
    Checksum sum;
    explicit ChecksumReader(faiss::IOReader* inner) : inner(inner) {
        name = inner->name;
    }
    size_t operator()(void* p, size_t size, size_t n) override {
        const size_t got = (*inner)(p, size, n);
        sum.update(p, got * size);
        return got;
    }
};

void check_checksum(ChecksumReader& r, faiss::IOReader* f, const char* what) {
    const uint64_t computed = r.sum.h;
    const uint64_t stored = get<uint64_t>(f);
    FAISS_THROW_IF_NOT_FMT(
            stored == computed,
            "faiss_bq: %s record in %s fails its checksum (corrupted file)",
            what,
            f->name.c_str());
}

uint32_t check_version(faiss::IOReader* f, const char* what) {
    const uint32_t version = get<uint32_t>(f);
    FAISS_THROW_IF_NOT_FMT(
            version >= 1 && version <= kFormatVersion,
            "faiss_bq: %s format version %u; this build reads 1..%u",
            what,
            version,
            kFormatVersion);
    return version;
}

/// Yields a fourcc already consumed from `inner`, then inner's bytes: FAISS's
/// readers read the fourcc themselves.
struct ReplayReader : faiss::IOReader {
    faiss::IOReader* inner;
    uint8_t head[4];
    size_t head_used = 0;
    ReplayReader(faiss::IOReader* inner, uint32_t h) : inner(inner) {
        name = inner->name;
        std::memcpy(head, &h, 4);
    }
    size_t operator()(void* p, size_t size, size_t n) override {
        if (size == 0 || n == 0) {
            return 0;
        }
        uint8_t* out = static_cast<uint8_t*>(p);
        const size_t want = size * n;
        const size_t from_head = std::min(want, 4 - head_used);
        std::memcpy(out, head + head_used, from_head);
        head_used += from_head;
        size_t got = from_head;
        if (got < want) {
            got += (*inner)(out + got, 1, want - got);
        }
        return got / size;
    }
};

// ---- FAISS's index headers (their layout, with values checked)

/// A metric stored as an int, checked before it becomes a MetricType (an
/// enum holding a value outside its range is undefined behaviour).
faiss::MetricType get_metric(faiss::IOReader* f, const char* what) {
    const int m = get<int>(f);
    for (faiss::MetricType known :
         {faiss::METRIC_INNER_PRODUCT,
          faiss::METRIC_L2,
          faiss::METRIC_L1,
          faiss::METRIC_Linf,
          faiss::METRIC_Lp,
          faiss::METRIC_Canberra,
          faiss::METRIC_BrayCurtis,
          faiss::METRIC_JensenShannon}) {
        if (m == int(known)) {
            return known;
        }
    }
    FAISS_THROW_FMT("faiss_bq: %s=%d is not a FAISS metric", what, m);
}

void write_header(const faiss::Index* idx, faiss::IOWriter* f) {
    put(f, idx->d);
    put(f, idx->ntotal);
    const idx_t dummy = 1 << 20;
    put(f, dummy);
    put(f, dummy);
    put(f, idx->is_trained);
    put(f, idx->metric_type);
    if (idx->metric_type > 1) {
        put(f, idx->metric_arg);
    }
}

void read_header(faiss::Index* idx, faiss::IOReader* f) {
    idx->d = get<int>(f);
    idx->ntotal = get<idx_t>(f);
    get<idx_t>(f);
    get<idx_t>(f);
    idx->is_trained = get_bool(f, "is_trained");
    idx->metric_type = get_metric(f, "metric_type");
    FAISS_THROW_IF_NOT_FMT(
            idx->d > 0 && idx->d <= kMaxDim && idx->ntotal >= 0 &&
                    idx->ntotal < (idx_t(1) << 40),
            "faiss_bq: bad index header in %s: d=%d ntotal=%ld",
            f->name.c_str(),
            idx->d,
            long(idx->ntotal));
    if (idx->metric_type > 1) {
        idx->metric_arg = get<float>(f);
    }
    idx->verbose = false;
}

void write_binary_header(const faiss::IndexBinary* idx, faiss::IOWriter* f) {
    put(f, idx->d);
    put(f, idx->code_size);
    put(f, idx->ntotal);
    put(f, idx->is_trained);
    put(f, idx->metric_type);
}

/// FAISS 1.7.3's IndexBinaryIDMap leaves code_size at 0, so a container
/// header may hold 0 there.
void read_binary_header(
        faiss::IndexBinary* idx,
        faiss::IOReader* f,
        bool container) {
    idx->d = get<int>(f);
    idx->code_size = get<int>(f);
    idx->ntotal = get<idx_t>(f);
    idx->is_trained = get_bool(f, "is_trained");
    idx->metric_type = get_metric(f, "metric_type");
    FAISS_THROW_IF_NOT_FMT(
            idx->d > 0 && idx->d <= kMaxDim && idx->d % 8 == 0 &&
                    (idx->code_size == idx->d / 8 ||
                     (container && idx->code_size == 0)) &&
                    idx->ntotal >= 0 && idx->ntotal < (idx_t(1) << 40),
            "faiss_bq: bad binary index header in %s: d=%d code_size=%d "
            "ntotal=%ld",
            f->name.c_str(),
            idx->d,
            idx->code_size,
            long(idx->ntotal));
    idx->verbose = false;
}

// ---- IndexBQ

void write_trainer(const TrainerOptions& t, faiss::IOWriter* f) {
    put(f, t.nbits);
    put(f, t.transform);
    put(f, t.centering);
    put(f, t.estimator);
    put(f, t.metric);
    put(f, t.seed);
    put(f, t.heldout_fraction);
    put(f, uint64_t(t.max_heldout_base));
    put(f, uint64_t(t.max_heldout_queries));
    put(f, uint64_t(t.max_fit_rows));
}

TrainerOptions read_trainer(faiss::IOReader* f) {
    TrainerOptions t;
    t.nbits = get<int>(f);
    t.transform = get_enum(f, "trainer.transform", TransformChoice::pca);
    t.centering = get_enum(f, "trainer.centering", CenteringChoice::uncentered);
    t.estimator = get_enum(f, "trainer.estimator", Estimator::symmetric);
    t.metric = get_metric(f, "trainer.metric");
    t.seed = get<int>(f);
    t.heldout_fraction = get<float>(f);
    t.max_heldout_base = get<uint64_t>(f);
    t.max_heldout_queries = get<uint64_t>(f);
    t.max_fit_rows = get<uint64_t>(f);
    FAISS_THROW_IF_NOT_FMT(
            (t.nbits == 1 || t.nbits == 2) &&
                    (t.metric == faiss::METRIC_L2 ||
                     t.metric == faiss::METRIC_INNER_PRODUCT) &&
                    t.heldout_fraction >= 0 && t.heldout_fraction <= 1,
            "faiss_bq: bad trainer options: nbits=%d metric=%d "
            "heldout_fraction=%g",
            t.nbits,
            int(t.metric),
            t.heldout_fraction);
    return t;
}

void write_analysis(const DatasetAnalysis& a, faiss::IOWriter* f) {
    put(f, uint64_t(a.n));
    put(f, uint64_t(a.d));
    put_vector(f, a.mean);
    put_vector(f, a.sigma);
    put(f, a.cv_sigma);
    put(f, a.mean_offset_ratio);
    put_vector(f, a.positive_fraction);
    put_vector(f, a.positive_fraction_centered);
    put(f, a.sign_entropy_bits);
    put(f, a.sign_entropy_centered_bits);
    put_vector(f, a.eigenvalues);
    put(f, a.effective_rank);
    put(f, a.offdiag_energy);
    put_vector(f, a.excess_kurtosis);
    put(f, a.mean_excess_kurtosis);
    put(f, uint64_t(a.n_constant));
}

DatasetAnalysis read_analysis(faiss::IOReader* f) {
    DatasetAnalysis a;
    a.n = get<uint64_t>(f);
    a.d = get<uint64_t>(f);
    FAISS_THROW_IF_NOT_FMT(
            a.d <= size_t(kMaxDim), "faiss_bq: analysis d=%zu", a.d);
    get_vector(f, a.mean, "analysis.mean");
    get_vector(f, a.sigma, "analysis.sigma");
    a.cv_sigma = get<float>(f);
    a.mean_offset_ratio = get<float>(f);
    get_vector(f, a.positive_fraction, "analysis.positive_fraction");
    get_vector(
            f,
            a.positive_fraction_centered,
            "analysis.positive_fraction_centered");
    a.sign_entropy_bits = get<float>(f);
    a.sign_entropy_centered_bits = get<float>(f);
    get_vector(f, a.eigenvalues, "analysis.eigenvalues");
    a.effective_rank = get<float>(f);
    a.offdiag_energy = get<float>(f);
    get_vector(f, a.excess_kurtosis, "analysis.excess_kurtosis");
    a.mean_excess_kurtosis = get<float>(f);
    a.n_constant = get<uint64_t>(f);
    // report() indexes every per-coordinate vector by j < d.
    for (const auto* v :
         {&a.mean,
          &a.sigma,
          &a.positive_fraction,
          &a.positive_fraction_centered,
          &a.eigenvalues,
          &a.excess_kurtosis}) {
        FAISS_THROW_IF_NOT_FMT(
                v->size() == a.d,
                "faiss_bq: analysis of d=%zu holds a vector of size %zu",
                a.d,
                v->size());
    }
    return a;
}

void write_plan(const BinarizationPlan& p, faiss::IOWriter* f) {
    put(f, p.d);
    put(f, p.nbits);
    put(f, p.transform);
    put(f, p.centered);
    put(f, p.seed);
    put_vector(f, p.center);
    put_vector(f, p.rotation);
    put_vector(f, p.thresholds);
    put_vector(f, p.levels);
    write_analysis(p.analysis, f);
    put(f, uint64_t(p.candidates.size()));
    for (const CandidateReport& c : p.candidates) {
        put(f, c.transform);
        put(f, c.centered);
        put(f, c.estimator);
        put(f, c.predicted_loss);
        put(f, c.heldout_recall);
        put(f, c.heldout_recall_stderr);
    }
    put(f, p.decided_for);
    put(f, p.forced);
    put_string(f, p.reason);
}

BinarizationPlan read_plan(faiss::IOReader* f) {
    BinarizationPlan p;
    p.d = get<int>(f);
    p.nbits = get<int>(f);
    p.transform = get_enum(f, "plan.transform", Transform::pca);
    p.centered = get_bool(f, "plan.centered");
    p.seed = get<int>(f);
    get_vector(f, p.center, "plan.center");
    get_vector(f, p.rotation, "plan.rotation");
    get_vector(f, p.thresholds, "plan.thresholds");
    get_vector(f, p.levels, "plan.levels");
    p.analysis = read_analysis(f);
    const uint64_t n_candidates = get<uint64_t>(f);
    // Pushed one by one: the count alone allocates nothing.
    for (uint64_t i = 0; i < n_candidates; i++) {
        CandidateReport c;
        c.transform = get_enum(f, "candidate.transform", Transform::pca);
        c.centered = get_bool(f, "candidate.centered");
        c.estimator = get_enum(f, "candidate.estimator", Estimator::symmetric);
        c.predicted_loss = get<float>(f);
        c.heldout_recall = get<float>(f);
        c.heldout_recall_stderr = get<float>(f);
        p.candidates.push_back(c);
    }
    p.decided_for = get_enum(f, "plan.decided_for", Estimator::symmetric);
    p.forced = get_bool(f, "plan.forced");
    p.reason = get_string(f, "plan.reason");
    return p;
}

/// The plan's sizes as fit_plan() makes them: encode and the estimators
/// index every vector by them without checking.
void check_plan(const BinarizationPlan& p, int d, int nbits, size_t code_size) {
    const size_t dd = size_t(d);
    const bool rot = p.transform != Transform::identity;
    const bool bits_ok = p.nbits >= 1 && p.nbits <= 4 && p.bits.size() == dd &&
            std::all_of(p.bits.begin(), p.bits.end(), [&](uint8_t b) {
                             return b <= p.nbits;
                         });
    const size_t L = size_t(1) << (bits_ok ? p.nbits : 0);
    FAISS_THROW_IF_NOT_FMT(
            bits_ok && p.d == d && (nbits == 0 || p.nbits == nbits) &&
                    p.center.size() == dd &&
                    p.rotation.size() == (rot ? dd * dd : 0) &&
                    p.thresholds.size() == dd * (L - 1) &&
                    p.levels.size() == dd * L &&
                    (p.joint_levels.empty() ||
                     p.joint_levels.size() == dd * 16) &&
                    grouped_plane_bytes(p.bits_histogram()) <= p.code_bytes &&
                    p.code_bytes + CodeLayout::factor_bytes == code_size &&
                    (p.quantization == Quantization::lloyd_max ||
                     (p.is_uniform() && !p.is_joint() &&
                      p.transform != Transform::pca)),
            "faiss_bq: plan of d=%d nbits=%d %s (sizes center %zu, rotation %zu, "
            "thresholds %zu, levels %zu, joint levels %zu, bits %zu, code "
            "bytes %zu) does not fit an index of d=%d nbits=%d code_size=%zu",
            p.d,
            p.nbits,
            quantization_name(p.quantization),
            p.center.size(),
            p.rotation.size(),
            p.thresholds.size(),
            p.levels.size(),
            p.joint_levels.size(),
            p.bits.size(),
            p.code_bytes,
            d,
            nbits,
            code_size);
}

/// The largest Quantization a file of this version may hold.
Quantization last_quantization(uint32_t version) {
    return version >= 8 ? Quantization::turbo_mse : Quantization::eden;
}

/// Version 2: the plan's allocation and its evidence (after the plan);
/// version 3 adds whether each candidate was a Matryoshka prefix, version 5
/// the joint levels, version 6 the recall profile, version 7 the
/// quantization (EDEN) of the plan and of each candidate.
void write_plan_allocation(const BinarizationPlan& p, faiss::IOWriter* f) {
    put_vector(f, p.bits);
    put(f, uint64_t(p.code_bytes));
    put(f, p.energy_kept);
    put(f, p.predicted_distortion);
    put(f, p.heldout_distortion);
    for (const CandidateReport& c : p.candidates) {
        put(f, c.nbits);
        put(f, c.allocated);
        put(f, c.prefix);
        put(f, c.joint);
        put(f, c.quantization);
        put(f, c.predicted_distortion);
        put(f, c.heldout_distortion);
    }
    put_vector(f, p.joint_levels);
    const RecallProfile& rp = p.recall_profile;
    put(f, uint64_t(rp.base_rows));
    put_vector(f, rp.candidates);
    put_vector(f, rp.recall);
    put_vector(f, rp.growth);
    put(f, p.quantization);
}

void read_plan_allocation(
        BinarizationPlan& p,
        faiss::IOReader* f,
        uint32_t version) {
    get_vector(f, p.bits, "plan.bits");
    p.code_bytes = get<uint64_t>(f);
    p.energy_kept = get<float>(f);
    p.predicted_distortion = get<float>(f);
    p.heldout_distortion = get<float>(f);
    for (CandidateReport& c : p.candidates) {
        c.nbits = get<int>(f);
        c.allocated = get_bool(f, "candidate.allocated");
        c.prefix = version >= 3 && get_bool(f, "candidate.prefix");
        c.joint = version >= 5 && get_bool(f, "candidate.joint");
        c.quantization = version >= 7 ? get_enum(
                                                f,
                                                "candidate.quantization",
                                                last_quantization(version))
                                      : Quantization::lloyd_max;
        c.predicted_distortion = get<float>(f);
        c.heldout_distortion = get<float>(f);
    }
    p.joint_levels.clear();
    if (version >= 5) {
        get_vector(f, p.joint_levels, "plan.joint_levels");
    }
    RecallProfile& rp = p.recall_profile;
    rp = RecallProfile();
    if (version >= 6) {
        rp.base_rows = get<uint64_t>(f);
        get_vector(f, rp.candidates, "plan.recall_profile.candidates");
        get_vector(f, rp.recall, "plan.recall_profile.recall");
        get_vector(f, rp.growth, "plan.recall_profile.growth");
        const size_t nk = rp.candidates.size();
        bool ok = rp.recall.size() == nk && rp.growth.size() == nk &&
                (nk == 0 ||
                 (rp.base_rows > 0 &&
                  double(rp.candidates.back()) == double(rp.base_rows)));
        for (size_t i = 0; ok && i < nk; i++) {
            ok = rp.candidates[i] >= 1 &&
                    (i == 0 || rp.candidates[i] > rp.candidates[i - 1]) &&
                    rp.recall[i] >= 0 && rp.recall[i] <= 1 &&
                    rp.growth[i] >= 0 && rp.growth[i] <= 1 &&
                    (i == 0 || rp.recall[i] >= rp.recall[i - 1]);
        }
        FAISS_THROW_IF_NOT_FMT(
                ok,
                "faiss_bq: bad recall profile: %zu counts, %zu shares, "
                "%zu growth exponents over %zu rows",
                nk,
                rp.recall.size(),
                rp.growth.size(),
                size_t(rp.base_rows));
    }
    p.quantization = version >= 7
            ? get_enum(f, "plan.quantization", last_quantization(version))
            : Quantization::lloyd_max;
}

/// Version 2: what version 1 of IndexBQ did not record (after the plan).
void write_allocation(const IndexBQ* idx, faiss::IOWriter* f) {
    put(f, uint64_t(idx->budget_bytes));
    put(f, uint64_t(idx->trainer.budget_bytes));
    put(f, idx->trainer.allocation);
    put(f, idx->trainer.matryoshka);
    put(f, idx->trainer.fast_scan_layout);
    put(f, idx->trainer.joint_nibbles);
    put(f, idx->trainer.quantization);
    write_plan_allocation(idx->plan, f);
}

void read_allocation(IndexBQ* idx, faiss::IOReader* f, uint32_t version) {
    idx->budget_bytes = get<uint64_t>(f);
    idx->trainer.budget_bytes = get<uint64_t>(f);
    idx->trainer.allocation =
            get_enum(f, "trainer.allocation", AllocationChoice::uniform);
    idx->trainer.matryoshka = version >= 3 && get_bool(f, "trainer.matryoshka");
    idx->trainer.fast_scan_layout =
            version >= 4 && get_bool(f, "trainer.fast_scan_layout");
    idx->trainer.joint_nibbles =
            version >= 5 && get_bool(f, "trainer.joint_nibbles");
    idx->trainer.quantization = version >= 7
            ? get_enum(
                      f,
                      "trainer.quantization",
                      version >= 8 ? QuantizationChoice::turbo_mse
                                   : QuantizationChoice::eden)
            : QuantizationChoice::automatic;
    read_plan_allocation(idx->plan, f, version);
}

/// Version 1 files hold uniform plans only.
void set_uniform_allocation(IndexBQ* idx) {
    BinarizationPlan& p = idx->plan;
    if (p.is_trained()) {
        p.bits.assign(size_t(std::max(p.d, 0)), uint8_t(p.nbits));
        p.code_bytes = p.nbits * ((size_t(std::max(p.d, 0)) + 7) / 8);
    }
    for (CandidateReport& c : p.candidates) {
        c.nbits = p.nbits;
    }
}

void write_IndexBQ(const IndexBQ* idx, faiss::IOWriter* f) {
    put(f, fourcc("BQix"));
    ChecksumWriter w(f);
    put(&w, kFormatVersion);
    write_header(idx, &w);
    put(&w, idx->nbits);
    put(&w, uint64_t(idx->code_size));
    put(&w, idx->estimator);
    put(&w, idx->query_bits);
    write_trainer(idx->trainer, &w);
    write_plan(idx->plan, &w);
    write_allocation(idx, &w);
    put_vector(&w, idx->codes);
    put(f, w.sum.h);
}

IndexBQ* read_IndexBQ(faiss::IOReader* f) {
    ChecksumReader r(f);
    const uint32_t version = check_version(&r, "IndexBQ");
    auto idx = std::make_unique<IndexBQ>();
    read_header(idx.get(), &r);
    idx->nbits = get<int>(&r);
    const uint64_t code_size = get<uint64_t>(&r);
    idx->estimator = get_enum(&r, "estimator", Estimator::symmetric);
    idx->query_bits = get<int>(&r);
    FAISS_THROW_IF_NOT_FMT(
            (idx->nbits == 0 || idx->nbits == 1 || idx->nbits == 2) &&
                    (idx->metric_type == faiss::METRIC_L2 ||
                     idx->metric_type == faiss::METRIC_INNER_PRODUCT) &&
                    (idx->query_bits == 0 ||
                     (idx->query_bits >= 4 && idx->query_bits <= 8)),
            "faiss_bq: bad IndexBQ fields: nbits=%d metric=%d query_bits=%d",
            idx->nbits,
            int(idx->metric_type),
            idx->query_bits);
    idx->trainer = read_trainer(&r);
    idx->plan = read_plan(&r);
    if (version >= 2) {
        read_allocation(idx.get(), &r, version);
    } else {
        set_uniform_allocation(idx.get());
    }
    const bool budget = idx->budget_bytes > 0;
    FAISS_THROW_IF_NOT_FMT(
            (idx->nbits == 0) == budget && idx->d > 0 &&
                    idx->budget_bytes <= max_budget_bytes(size_t(idx->d)),
            "faiss_bq: bad IndexBQ fields: nbits=%d budget_bytes=%zu d=%d",
            idx->nbits,
            idx->budget_bytes,
            idx->d);
    idx->code_size = budget ? idx->budget_bytes + CodeLayout::factor_bytes
                            : CodeLayout(idx->d, idx->nbits).code_size;
    FAISS_THROW_IF_NOT_FMT(
            code_size == idx->code_size,
            "faiss_bq: IndexBQ code_size=%lu, expected %zu for d=%d nbits=%d "
            "budget_bytes=%zu",
            (unsigned long)code_size,
            idx->code_size,
            idx->d,
            idx->nbits,
            idx->budget_bytes);
    get_vector(&r, idx->codes, "IndexBQ.codes");
    check_checksum(r, f, "IndexBQ");
    FAISS_THROW_IF_NOT_FMT(
            idx->is_trained == idx->plan.is_trained(),
            "faiss_bq: IndexBQ is_trained=%d but its plan says %d",
            int(idx->is_trained),
            int(idx->plan.is_trained()));
    if (idx->is_trained) {
        check_plan(idx->plan, idx->d, idx->nbits, idx->code_size);
    }
    FAISS_THROW_IF_NOT_FMT(
            idx->codes.size() == size_t(idx->ntotal) * idx->code_size,
            "faiss_bq: IndexBQ holds %zu code bytes for ntotal=%ld",
            idx->codes.size(),
            long(idx->ntotal));
    FAISS_THROW_IF_NOT_MSG(
            idx->is_trained || idx->ntotal == 0,
            "faiss_bq: an untrained IndexBQ holds codes");
    return idx.release();
}

// ---- IndexBQRecurrent (versioned on its own: it shares no record with
// IndexBQ)

constexpr uint32_t kRecurrentVersion = 1;

void write_IndexBQRecurrent(const IndexBQRecurrent* idx, faiss::IOWriter* f) {
    put(f, fourcc("BQRc"));
    ChecksumWriter w(f);
    put(&w, kRecurrentVersion);
    write_header(idx, &w);
    put(&w, idx->n_stages);
    put(&w, uint8_t(idx->per_vector_scales));
    put(&w, idx->estimator);
    put(&w, idx->train_iterations);
    put(&w, uint8_t(idx->random_init));
    put(&w, idx->seed);
    put(&w, uint64_t(idx->max_train_points));
    put(&w, uint64_t(idx->code_size));
    put_vector(&w, idx->mean);
    put_vector(&w, idx->rotation);
    put_vector(&w, idx->stage_scales);
    put_vector(&w, idx->train_errors);
    put_vector(&w, idx->codes);
    put(f, w.sum.h);
}

IndexBQRecurrent* read_IndexBQRecurrent(faiss::IOReader* f) {
    ChecksumReader r(f);
    const uint32_t version = get<uint32_t>(&r);
    FAISS_THROW_IF_NOT_FMT(
            version >= 1 && version <= kRecurrentVersion,
            "faiss_bq: IndexBQRecurrent format version %u; this build reads "
            "1..%u",
            version,
            kRecurrentVersion);
    auto idx = std::make_unique<IndexBQRecurrent>();
    read_header(idx.get(), &r);
    const int n_stages = get<int>(&r);
    FAISS_THROW_IF_NOT_FMT(
            n_stages >= 1 && n_stages <= 4 &&
                    (idx->metric_type == faiss::METRIC_L2 ||
                     idx->metric_type == faiss::METRIC_INNER_PRODUCT),
            "faiss_bq: bad IndexBQRecurrent fields: n_stages=%d metric=%d",
            n_stages,
            int(idx->metric_type));
    idx->n_stages = n_stages;
    idx->per_vector_scales = get_bool(&r, "per_vector_scales");
    idx->estimator = get_enum(&r, "estimator", Estimator::symmetric);
    idx->train_iterations = get<int>(&r);
    idx->random_init = get_bool(&r, "random_init");
    idx->seed = get<int>(&r);
    idx->max_train_points = size_t(get<uint64_t>(&r));
    const uint64_t code_size = get<uint64_t>(&r);
    idx->code_size = IndexBQRecurrent::code_size_for(
            idx->d, n_stages, idx->per_vector_scales);
    FAISS_THROW_IF_NOT_FMT(
            code_size == idx->code_size,
            "faiss_bq: IndexBQRecurrent code_size=%lu, expected %zu for d=%d "
            "n_stages=%d per_vector_scales=%d",
            (unsigned long)code_size,
            idx->code_size,
            idx->d,
            n_stages,
            int(idx->per_vector_scales));
    get_vector(&r, idx->mean, "IndexBQRecurrent.mean");
    get_vector(&r, idx->rotation, "IndexBQRecurrent.rotation");
    get_vector(&r, idx->stage_scales, "IndexBQRecurrent.stage_scales");
    get_vector(&r, idx->train_errors, "IndexBQRecurrent.train_errors");
    get_vector(&r, idx->codes, "IndexBQRecurrent.codes");
    check_checksum(r, f, "IndexBQRecurrent");
    const size_t d = size_t(idx->d);
    FAISS_THROW_IF_NOT_FMT(
            !idx->is_trained ||
                    (idx->mean.size() == d && idx->rotation.size() == d * d &&
                     idx->stage_scales.size() == size_t(n_stages)),
            "faiss_bq: IndexBQRecurrent model sizes mean=%zu rotation=%zu "
            "stage_scales=%zu for d=%zu n_stages=%d",
            idx->mean.size(),
            idx->rotation.size(),
            idx->stage_scales.size(),
            d,
            n_stages);
    FAISS_THROW_IF_NOT_FMT(
            idx->codes.size() == size_t(idx->ntotal) * idx->code_size &&
                    (idx->is_trained || idx->ntotal == 0),
            "faiss_bq: IndexBQRecurrent holds %zu code bytes for ntotal=%ld "
            "(is_trained=%d)",
            idx->codes.size(),
            long(idx->ntotal),
            int(idx->is_trained));
    return idx.release();
}

// ---- IndexBlockQuant (versioned on its own, as IndexBQRecurrent)

constexpr uint32_t kBlockQuantVersion = 1;

void write_IndexBlockQuant(const IndexBlockQuant* idx, faiss::IOWriter* f) {
    put(f, fourcc("BQbk"));
    ChecksumWriter w(f);
    put(&w, kBlockQuantVersion);
    write_header(idx, &w);
    put(&w, idx->block_size);
    put(&w, idx->direction_bits);
    put(&w, uint8_t(idx->oblivious));
    put(&w, uint8_t(idx->unbiased));
    put(&w, idx->seed);
    put(&w, uint64_t(idx->max_train_points));
    put(&w, idx->padded_d);
    put(&w, uint64_t(idx->code_size));
    put_vector(&w, idx->center);
    put_vector(&w, idx->rotation);
    put_vector(&w, idx->codebook);
    put_vector(&w, idx->norm_levels);
    put_vector(&w, idx->codes);
    put(f, w.sum.h);
}

IndexBlockQuant* read_IndexBlockQuant(faiss::IOReader* f) {
    ChecksumReader r(f);
    const uint32_t version = get<uint32_t>(&r);
    FAISS_THROW_IF_NOT_FMT(
            version >= 1 && version <= kBlockQuantVersion,
            "faiss_bq: IndexBlockQuant format version %u; this build reads "
            "1..%u",
            version,
            kBlockQuantVersion);
    auto idx = std::make_unique<IndexBlockQuant>();
    read_header(idx.get(), &r);
    idx->block_size = get<int>(&r);
    idx->direction_bits = get<int>(&r);
    FAISS_THROW_IF_NOT_FMT(
            idx->metric_type == faiss::METRIC_L2 ||
                    idx->metric_type == faiss::METRIC_INNER_PRODUCT,
            "faiss_bq: bad IndexBlockQuant metric=%d",
            int(idx->metric_type));
    IndexBlockQuant::check_settings(
            idx->d, idx->block_size, idx->direction_bits);
    idx->oblivious = get_bool(&r, "oblivious");
    idx->unbiased = get_bool(&r, "unbiased");
    idx->seed = get<int>(&r);
    idx->max_train_points = size_t(get<uint64_t>(&r));
    idx->padded_d = get<int>(&r);
    const uint64_t code_size = get<uint64_t>(&r);
    idx->code_size = IndexBlockQuant::code_size_for(idx->d, idx->block_size);
    FAISS_THROW_IF_NOT_FMT(
            idx->padded_d == IndexBlockQuant::padded_dim(idx->d) &&
                    code_size == idx->code_size,
            "faiss_bq: IndexBlockQuant padded_d=%d code_size=%lu, expected "
            "%d and %zu for d=%d block_size=%d",
            idx->padded_d,
            (unsigned long)code_size,
            IndexBlockQuant::padded_dim(idx->d),
            idx->code_size,
            idx->d,
            idx->block_size);
    get_vector(&r, idx->center, "IndexBlockQuant.center");
    get_vector(&r, idx->rotation, "IndexBlockQuant.rotation");
    get_vector(&r, idx->codebook, "IndexBlockQuant.codebook");
    get_vector(&r, idx->norm_levels, "IndexBlockQuant.norm_levels");
    get_vector(&r, idx->codes, "IndexBlockQuant.codes");
    check_checksum(r, f, "IndexBlockQuant");
    const size_t d = size_t(idx->d), D = size_t(idx->padded_d);
    FAISS_THROW_IF_NOT_FMT(
            idx->center.size() == d && idx->rotation.size() == D * d &&
                    idx->codebook.size() ==
                            (size_t(1) << idx->direction_bits) *
                                    idx->block_size &&
                    idx->norm_levels.size() ==
                            (size_t(1) << (8 - idx->direction_bits)),
            "faiss_bq: IndexBlockQuant model sizes center=%zu rotation=%zu "
            "codebook=%zu norm_levels=%zu for d=%zu block_size=%d "
            "direction_bits=%d",
            idx->center.size(),
            idx->rotation.size(),
            idx->codebook.size(),
            idx->norm_levels.size(),
            d,
            idx->block_size,
            idx->direction_bits);
    FAISS_THROW_IF_NOT_FMT(
            idx->codes.size() == size_t(idx->ntotal) * idx->code_size &&
                    (idx->is_trained || idx->ntotal == 0),
            "faiss_bq: IndexBlockQuant holds %zu code bytes for ntotal=%ld "
            "(is_trained=%d)",
            idx->codes.size(),
            long(idx->ntotal),
            int(idx->is_trained));
    return idx.release();
}

// ---- IndexBQTurbo (versioned on its own, as IndexBQRecurrent)

constexpr uint32_t kTurboVersion = 1;

void write_IndexBQTurbo(const IndexBQTurbo* idx, faiss::IOWriter* f) {
    put(f, fourcc("BQTq"));
    ChecksumWriter w(f);
    put(&w, kTurboVersion);
    write_header(idx, &w);
    put(&w, idx->nbits);
    put(&w, idx->transform);
    put(&w, uint8_t(idx->centered));
    put(&w, idx->seed);
    put(&w, idx->sketch_seed);
    put(&w, uint64_t(idx->code_size));
    // The MSE plan is written in full so that a read index scores bit for
    // bit as the written one; its other fields follow from these.
    put_vector(&w, idx->plan.center);
    put_vector(&w, idx->plan.rotation);
    put_vector(&w, idx->plan.thresholds);
    put_vector(&w, idx->plan.levels);
    put_vector(&w, idx->sketch);
    put_vector(&w, idx->codes);
    put(f, w.sum.h);
}

IndexBQTurbo* read_IndexBQTurbo(faiss::IOReader* f) {
    ChecksumReader r(f);
    const uint32_t version = get<uint32_t>(&r);
    FAISS_THROW_IF_NOT_FMT(
            version >= 1 && version <= kTurboVersion,
            "faiss_bq: IndexBQTurbo format version %u; this build reads 1..%u",
            version,
            kTurboVersion);
    auto idx = std::make_unique<IndexBQTurbo>();
    read_header(idx.get(), &r);
    const int nbits = get<int>(&r);
    const Transform transform =
            get_enum(&r, "IndexBQTurbo.transform", Transform::pca);
    FAISS_THROW_IF_NOT_FMT(
            nbits >= 2 && nbits <= 4 && transform != Transform::pca &&
                    (idx->metric_type == faiss::METRIC_L2 ||
                     idx->metric_type == faiss::METRIC_INNER_PRODUCT),
            "faiss_bq: bad IndexBQTurbo fields: nbits=%d transform=%s "
            "metric=%d",
            nbits,
            transform_name(transform),
            int(idx->metric_type));
    idx->nbits = nbits;
    idx->transform = transform;
    idx->centered = get_bool(&r, "IndexBQTurbo.centered");
    idx->seed = get<int>(&r);
    idx->sketch_seed = get<int>(&r);
    const uint64_t code_size = get<uint64_t>(&r);
    idx->code_size = IndexBQTurbo::code_size_for(idx->d, nbits);
    FAISS_THROW_IF_NOT_FMT(
            code_size == idx->code_size,
            "faiss_bq: IndexBQTurbo code_size=%lu, expected %zu for d=%d "
            "nbits=%d",
            (unsigned long)code_size,
            idx->code_size,
            idx->d,
            nbits);
    BinarizationPlan& p = idx->plan;
    get_vector(&r, p.center, "IndexBQTurbo.plan.center");
    get_vector(&r, p.rotation, "IndexBQTurbo.plan.rotation");
    get_vector(&r, p.thresholds, "IndexBQTurbo.plan.thresholds");
    get_vector(&r, p.levels, "IndexBQTurbo.plan.levels");
    get_vector(&r, idx->sketch, "IndexBQTurbo.sketch");
    get_vector(&r, idx->codes, "IndexBQTurbo.codes");
    check_checksum(r, f, "IndexBQTurbo");
    const size_t d = size_t(idx->d);
    if (idx->is_trained) {
        p.d = idx->d;
        p.nbits = nbits - 1;
        p.transform = transform;
        p.centered = idx->centered;
        p.seed = idx->seed;
        p.quantization = Quantization::turbo_mse;
        p.bits.assign(d, uint8_t(nbits - 1));
        p.code_bytes = size_t(nbits - 1) * ((d + 7) / 8);
        check_plan(p, idx->d, nbits - 1, idx->mse_code_size());
    }
    FAISS_THROW_IF_NOT_FMT(
            !idx->is_trained || idx->sketch.size() == d * d,
            "faiss_bq: IndexBQTurbo sketch of %zu values for d=%zu",
            idx->sketch.size(),
            d);
    FAISS_THROW_IF_NOT_FMT(
            idx->codes.size() == size_t(idx->ntotal) * idx->code_size &&
                    (idx->is_trained || idx->ntotal == 0),
            "faiss_bq: IndexBQTurbo holds %zu code bytes for ntotal=%ld "
            "(is_trained=%d)",
            idx->codes.size(),
            long(idx->ntotal),
            int(idx->is_trained));
    return idx.release();
}

// ---- faiss::IndexHNSW over faiss_bq storage

void write_IndexHNSW_BQ(const faiss::IndexHNSW* idx, faiss::IOWriter* f) {
    put(f, fourcc("BQhn"));
    ChecksumWriter w(f);
    put(&w, kFormatVersion);
    write_header(idx, &w);
    const faiss::HNSW& g = idx->hnsw;
    put_vector(&w, g.assign_probas);
    put_vector(&w, g.cum_nneighbor_per_level);
    put_vector(&w, g.levels);
    put_vector(&w, g.offsets);
    put_vector(&w, g.neighbors);
    put(&w, g.entry_point);
    put(&w, g.max_level);
    put(&w, g.efConstruction);
    put(&w, g.efSearch);
    put(&w, g.upper_beam);
    faiss_bq::write_index(idx->storage, &w);
    put(f, w.sum.h);
}

/// Everything HNSW search and add index without checking.
void check_hnsw(const faiss::HNSW& g, idx_t ntotal) {
    const auto& cum = g.cum_nneighbor_per_level;
    bool ok = cum.size() >= 2 && cum[0] == 0 &&
            g.assign_probas.size() + 1 == cum.size() &&
            g.levels.size() == size_t(ntotal) &&
            g.offsets.size() == size_t(ntotal) + 1 && g.offsets[0] == 0 &&
            g.efConstruction >= 1 && g.efConstruction <= kMaxEf &&
            g.efSearch >= 1 && g.efSearch <= kMaxEf && g.upper_beam >= 1 &&
            g.upper_beam <= kMaxEf;
    for (size_t l = 1; ok && l < cum.size(); l++) {
        ok = cum[l] >= cum[l - 1] && cum[l] - cum[l - 1] <= kMaxEf;
    }
    for (idx_t i = 0; ok && i < ntotal; i++) {
        const int level = g.levels[i];
        ok = level >= 1 && size_t(level) < cum.size() &&
                g.offsets[i + 1] >= g.offsets[i] &&
                g.offsets[i + 1] - g.offsets[i] == size_t(cum[level]);
    }
    ok = ok && g.neighbors.size() == g.offsets.back();
    for (size_t i = 0; ok && i < g.neighbors.size(); i++) {
        ok = g.neighbors[i] >= -1 && g.neighbors[i] < ntotal;
    }
    if (ok && ntotal == 0) {
        ok = g.entry_point == -1 && g.max_level == -1;
    } else if (ok) {
        ok = g.entry_point >= 0 && g.entry_point < ntotal &&
                g.max_level == g.levels[g.entry_point] - 1;
        for (idx_t i = 0; ok && i < ntotal; i++) {
            ok = g.levels[i] - 1 <= g.max_level;
        }
    }
    FAISS_THROW_IF_NOT_FMT(
            ok, "faiss_bq: inconsistent HNSW graph of %ld nodes", long(ntotal));
}

faiss::IndexHNSW* read_IndexHNSW_BQ(faiss::IOReader* f, int io_flags) {
    ChecksumReader r(f);
    check_version(&r, "IndexHNSW over faiss_bq");
    auto idx = std::make_unique<faiss::IndexHNSW>();
    read_header(idx.get(), &r);
    faiss::HNSW& g = idx->hnsw;
    get_vector(&r, g.assign_probas, "hnsw.assign_probas");
    get_vector(&r, g.cum_nneighbor_per_level, "hnsw.cum_nneighbor_per_level");
    get_vector(&r, g.levels, "hnsw.levels");
    get_vector(&r, g.offsets, "hnsw.offsets");
    get_vector(&r, g.neighbors, "hnsw.neighbors");
    g.entry_point = get<faiss::HNSW::storage_idx_t>(&r);
    g.max_level = get<int>(&r);
    g.efConstruction = get<int>(&r);
    g.efSearch = get<int>(&r);
    g.upper_beam = get<int>(&r);
    idx->storage = faiss_bq::read_index(&r, io_flags);
    idx->own_fields = true;
    check_checksum(r, f, "IndexHNSW over faiss_bq");
    check_hnsw(g, idx->ntotal);
    FAISS_THROW_IF_NOT_FMT(
            idx->storage->d == idx->d && idx->storage->ntotal == idx->ntotal &&
                    idx->storage->metric_type == idx->metric_type,
            "faiss_bq: HNSW of d=%d ntotal=%ld over storage of d=%d ntotal=%ld",
            idx->d,
            long(idx->ntotal),
            idx->storage->d,
            long(idx->storage->ntotal));
    return idx.release();
}

// ---- FAISS containers, in FAISS's layout

void check_sub(
        const faiss::Index* outer,
        const faiss::Index* sub,
        const char* what) {
    FAISS_THROW_IF_NOT_FMT(
            sub->d == outer->d && sub->ntotal == outer->ntotal,
            "faiss_bq: %s of d=%d ntotal=%ld holds an index of d=%d "
            "ntotal=%ld",
            what,
            outer->d,
            long(outer->ntotal),
            sub->d,
            long(sub->ntotal));
}

faiss::Index* read_IndexIDMap(faiss::IOReader* f, bool map2, int io_flags) {
    std::unique_ptr<faiss::IndexIDMap> idx(
            map2 ? new faiss::IndexIDMap2() : new faiss::IndexIDMap());
    read_header(idx.get(), f);
    idx->index = faiss_bq::read_index(f, io_flags);
    idx->own_fields = true;
    get_vector(f, idx->id_map, "IndexIDMap.id_map");
    check_sub(idx.get(), idx->index, "IndexIDMap");
    FAISS_THROW_IF_NOT_FMT(
            idx->id_map.size() == size_t(idx->ntotal),
            "faiss_bq: IndexIDMap of ntotal=%ld holds %zu ids",
            long(idx->ntotal),
            idx->id_map.size());
    if (map2) {
        static_cast<faiss::IndexIDMap2*>(idx.get())->construct_rev_map();
    }
    return idx.release();
}

faiss::Index* read_IndexRefine(faiss::IOReader* f, int io_flags) {
    auto header = std::make_unique<faiss::IndexRefine>();
    read_header(header.get(), f);
    std::unique_ptr<faiss::Index> base(faiss_bq::read_index(f, io_flags));
    std::unique_ptr<faiss::Index> refine(faiss_bq::read_index(f, io_flags));
    const float k_factor = get<float>(f);
    // As FAISS does: a flat refine index makes an IndexRefineFlat.
    std::unique_ptr<faiss::IndexRefine> idx(
            dynamic_cast<faiss::IndexFlat*>(refine.get())
                    ? new faiss::IndexRefineFlat()
                    : new faiss::IndexRefine());
    idx->d = header->d;
    idx->ntotal = header->ntotal;
    idx->is_trained = header->is_trained;
    idx->metric_type = header->metric_type;
    idx->metric_arg = header->metric_arg;
    check_sub(idx.get(), base.get(), "IndexRefine (base)");
    check_sub(idx.get(), refine.get(), "IndexRefine (refine)");
    // search() keeps k * k_factor candidates.
    FAISS_THROW_IF_NOT_FMT(
            std::isfinite(k_factor) && k_factor >= 1 && k_factor <= 1e6f,
            "faiss_bq: IndexRefine k_factor=%g must be in [1, 1e6]",
            k_factor);
    idx->k_factor = k_factor;
    idx->base_index = base.release();
    idx->refine_index = refine.release();
    idx->own_fields = true;
    idx->own_refine_index = true;
    return idx.release();
}

// ---- IndexBQFamily (versioned on its own, as IndexBQRecurrent)

constexpr uint32_t kFamilyVersion = 1;

void write_IndexBQFamily(const IndexBQFamily* idx, faiss::IOWriter* f) {
    put(f, fourcc("BQFm"));
    ChecksumWriter w(f);
    put(&w, kFamilyVersion);
    write_header(idx, &w);
    put(&w, idx->nbits);
    put(&w, uint64_t(idx->budget_bytes));
    put(&w, idx->seed);
    put(&w, idx->heldout_fraction);
    put(&w, uint64_t(idx->max_heldout_base));
    put(&w, uint64_t(idx->max_heldout_queries));
    put(&w, uint64_t(idx->max_fit_rows));
    put(&w, uint64_t(idx->candidates.size()));
    for (const FamilyCandidateReport& c : idx->candidates) {
        put_string(&w, c.key);
        put(&w, uint64_t(c.code_size));
        put(&w, c.heldout_recall);
        put(&w, c.heldout_recall_stderr);
        put(&w, c.train_seconds);
        put_string(&w, c.left_out);
    }
    put(&w, uint64_t(idx->chosen));
    put_string(&w, idx->reason);
    put(&w, uint8_t(idx->index != nullptr));
    if (idx->index) {
        faiss_bq::write_index(idx->index, &w);
    }
    put(f, w.sum.h);
}

IndexBQFamily* read_IndexBQFamily(faiss::IOReader* f, int io_flags) {
    ChecksumReader r(f);
    const uint32_t version = get<uint32_t>(&r);
    FAISS_THROW_IF_NOT_FMT(
            version >= 1 && version <= kFamilyVersion,
            "faiss_bq: IndexBQFamily format version %u; this build reads 1..%u",
            version,
            kFamilyVersion);
    auto idx = std::make_unique<IndexBQFamily>();
    read_header(idx.get(), &r);
    idx->nbits = get<int>(&r);
    idx->budget_bytes = size_t(get<uint64_t>(&r));
    idx->seed = get<int>(&r);
    idx->heldout_fraction = get<float>(&r);
    idx->max_heldout_base = size_t(get<uint64_t>(&r));
    idx->max_heldout_queries = size_t(get<uint64_t>(&r));
    idx->max_fit_rows = size_t(get<uint64_t>(&r));
    IndexBQFamily::check_settings(
            idx->d, idx->nbits, idx->budget_bytes, idx->metric_type);
    const std::vector<std::string> keys =
            family_candidates(idx->d, idx->nbits, idx->budget_bytes);
    const uint64_t n_candidates = get<uint64_t>(&r);
    FAISS_THROW_IF_NOT_FMT(
            n_candidates == 0 || n_candidates == keys.size(),
            "faiss_bq: IndexBQFamily holds %lu candidates; %s at d=%d has %zu",
            (unsigned long)n_candidates,
            idx->head().c_str(),
            idx->d,
            keys.size());
    idx->candidates.resize(n_candidates);
    for (FamilyCandidateReport& c : idx->candidates) {
        c.key = get_string(&r, "IndexBQFamily.key");
        c.code_size = size_t(get<uint64_t>(&r));
        c.heldout_recall = get<float>(&r);
        c.heldout_recall_stderr = get<float>(&r);
        c.train_seconds = get<double>(&r);
        c.left_out = get_string(&r, "IndexBQFamily.left_out");
    }
    idx->chosen = size_t(get<uint64_t>(&r));
    idx->reason = get_string(&r, "IndexBQFamily.reason");
    const bool has_index = get_bool(&r, "has_index");
    if (has_index) {
        idx->index = faiss_bq::read_index(&r, io_flags);
    }
    check_checksum(r, f, "IndexBQFamily");
    for (size_t i = 0; i < idx->candidates.size(); i++) {
        FAISS_THROW_IF_NOT_FMT(
                idx->candidates[i].key == keys[i],
                "faiss_bq: IndexBQFamily candidate %zu is '%s', expected '%s'",
                i,
                idx->candidates[i].key.c_str(),
                keys[i].c_str());
    }
    FAISS_THROW_IF_NOT_FMT(
            has_index == idx->is_trained &&
                    (!has_index || idx->chosen < idx->candidates.size()) &&
                    (has_index || idx->ntotal == 0),
            "faiss_bq: IndexBQFamily is_trained=%d with%s a chosen index, "
            "chosen=%zu of %zu candidates, ntotal=%ld",
            int(idx->is_trained),
            has_index ? "" : "out",
            idx->chosen,
            idx->candidates.size(),
            long(idx->ntotal));
    if (has_index) {
        check_sub(idx.get(), idx->index, "IndexBQFamily");
        const std::string kind = index_factory_string(idx->index);
        FAISS_THROW_IF_NOT_FMT(
                idx->index->metric_type == idx->metric_type &&
                        kind == keys[idx->chosen],
                "faiss_bq: IndexBQFamily chose '%s' but holds '%s' (metric "
                "%d, expected %d)",
                keys[idx->chosen].c_str(),
                kind.c_str(),
                int(idx->index->metric_type),
                int(idx->metric_type));
    }
    return idx.release();
}

// ---- IndexBQRefine and IndexFromBinary

void write_IndexBQRefine(const IndexBQRefine* idx, faiss::IOWriter* f) {
    put(f, fourcc("BQrf"));
    ChecksumWriter w(f);
    put(&w, kFormatVersion);
    write_header(idx, &w);
    put(&w, idx->k_factor);
    put(&w, idx->bound_sigmas);
    faiss_bq::write_index(idx->base_index, &w);
    faiss_bq::write_index(idx->refine_index, &w);
    put(f, w.sum.h);
}

IndexBQRefine* read_IndexBQRefine(faiss::IOReader* f, int io_flags) {
    ChecksumReader r(f);
    check_version(&r, "IndexBQRefine");
    auto idx = std::make_unique<IndexBQRefine>();
    read_header(idx.get(), &r);
    idx->k_factor = get<float>(&r);
    idx->bound_sigmas = get<float>(&r);
    idx->base_index = faiss_bq::read_index(&r, io_flags);
    idx->own_fields = true;
    idx->refine_index = faiss_bq::read_index(&r, io_flags);
    idx->own_refine_index = true;
    check_checksum(r, f, "IndexBQRefine");
    FAISS_THROW_IF_NOT_FMT(
            std::isfinite(idx->k_factor) && idx->k_factor >= 1 &&
                    idx->k_factor <= 1e6f && std::isfinite(idx->bound_sigmas) &&
                    idx->bound_sigmas >= 0,
            "faiss_bq: IndexBQRefine k_factor=%g bound_sigmas=%g (k_factor must "
            "be in [1, 1e6], bound_sigmas >= 0)",
            idx->k_factor,
            idx->bound_sigmas);
    check_sub(idx.get(), idx->base_index, "IndexBQRefine (first stage)");
    idx->check_consistent("faiss_bq: IndexBQRefine");
    return idx.release();
}

void write_IndexBQFastScan(const IndexBQFastScan* idx, faiss::IOWriter* f) {
    put(f, fourcc("BQfs"));
    ChecksumWriter w(f);
    put(&w, kFormatVersion);
    write_header(idx, &w);
    const IndexBQ config = idx->to_IndexBQ(false);
    write_IndexBQ(&config, &w);
    put_vector(&w, idx->codes);
    put_vector(&w, idx->factors);
    put(f, w.sum.h);
}

IndexBQFastScan* read_IndexBQFastScan(faiss::IOReader* f, int io_flags) {
    ChecksumReader r(f);
    check_version(&r, "IndexBQFastScan");
    faiss::IndexFlatL2 header; // d, ntotal, metric of the fast-scan index
    read_header(&header, &r);
    std::unique_ptr<faiss::Index> config(faiss_bq::read_index(&r, io_flags));
    auto bq = dynamic_cast<const IndexBQ*>(config.get());
    FAISS_THROW_IF_NOT_MSG(
            bq && bq->ntotal == 0,
            "faiss_bq: IndexBQFastScan's configuration is not a code-less IndexBQ");
    auto idx = std::make_unique<IndexBQFastScan>(*bq);
    get_vector(&r, idx->codes, "IndexBQFastScan.codes");
    get_vector(&r, idx->factors, "IndexBQFastScan.factors");
    check_checksum(r, f, "IndexBQFastScan");
    idx->ntotal = header.ntotal;
    FAISS_THROW_IF_NOT_FMT(
            header.d == idx->d && header.metric_type == idx->metric_type &&
                    header.is_trained == idx->is_trained,
            "faiss_bq: IndexBQFastScan header d=%d metric=%d trained=%d, its "
            "plan's index d=%d metric=%d trained=%d",
            header.d,
            int(header.metric_type),
            int(header.is_trained),
            idx->d,
            int(idx->metric_type),
            int(idx->is_trained));
    const size_t n = size_t(idx->ntotal);
    const NibbleLayout nl = idx->nibble_layout();
    const size_t want = idx->is_trained ? nl.blocks_bytes(n) : 0;
    const size_t want_factors = idx->is_trained
            ? want / nl.block_bytes() * 3 * kernels::fast_scan_block
            : 0;
    FAISS_THROW_IF_NOT_FMT(
            idx->codes.size() == want && idx->factors.size() == want_factors,
            "faiss_bq: IndexBQFastScan holds %zu code bytes and %zu factors for "
            "ntotal=%ld (expected %zu and %zu)",
            idx->codes.size(),
            idx->factors.size(),
            long(idx->ntotal),
            want,
            want_factors);
    return idx.release();
}

// ---- IndexIVFBQ, IndexIVFBQFastScan

/// FAISS's "ilar" record (ArrayInvertedLists), read with bounded reads and
/// checked sizes (FAISS's own reader sizes its vectors by what it reads).
faiss::InvertedLists* read_array_invlists(
        faiss::IOReader* f,
        size_t nlist,
        size_t code_size) {
    const size_t stored_nlist = get<uint64_t>(f);
    const size_t stored_cs = get<uint64_t>(f);
    FAISS_THROW_IF_NOT_FMT(
            stored_nlist == nlist && stored_cs == code_size,
            "faiss_bq: inverted lists of nlist=%zu code_size=%zu in an index "
            "of nlist=%zu code_size=%zu",
            stored_nlist,
            stored_cs,
            nlist,
            code_size);
    const uint32_t list_type = get<uint32_t>(f);
    std::vector<uint64_t> sizes_in, sizes(nlist, 0);
    get_vector(f, sizes_in, "inverted list sizes");
    if (list_type == fourcc("full")) {
        FAISS_THROW_IF_NOT_FMT(
                sizes_in.size() == nlist,
                "faiss_bq: %zu list sizes for nlist=%zu",
                sizes_in.size(),
                nlist);
        sizes = sizes_in;
    } else {
        FAISS_THROW_IF_NOT_FMT(
                list_type == fourcc("sprs") && sizes_in.size() % 2 == 0,
                "faiss_bq: inverted list type %s with %zu size entries",
                faiss::fourcc_inv_printable(list_type).c_str(),
                sizes_in.size());
        for (size_t i = 0; i < sizes_in.size(); i += 2) {
            FAISS_THROW_IF_NOT_FMT(
                    sizes_in[i] < nlist,
                    "faiss_bq: list %lu of nlist=%zu",
                    (unsigned long)sizes_in[i],
                    nlist);
            sizes[sizes_in[i]] = sizes_in[i + 1];
        }
    }
    auto ils = std::make_unique<faiss::ArrayInvertedLists>(nlist, code_size);
    for (size_t l = 0; l < nlist; l++) {
        const uint64_t n = sizes[l];
        FAISS_THROW_IF_NOT_FMT(
                n < (uint64_t(1) << 40) / (code_size + sizeof(idx_t)),
                "faiss_bq: list %zu: size %lu is absurd",
                l,
                (unsigned long)n);
        get_values(f, ils->codes[l], n * code_size);
        get_values(f, ils->ids[l], n);
    }
    return ils.release();
}

/// The directory part of a path, with its slash ("" for a bare name).
std::string directory_of(const std::string& path) {
    const size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? std::string()
                                      : path.substr(0, slash + 1);
}

/// FAISS's "ilod" record (OnDiskInvertedLists: FAISS's layout, the
/// OnDiskInvertedListsIOHook's) read with bounded reads, its data file
/// checked before it is mapped, and nothing leaked when a read fails.
/// FAISS 1.7.3's own reader trusts the sizes and the data file (a truncated
/// one faults when a list is scanned), maps nothing under IO_FLAG_MMAP (so
/// merge_ondisk of on-disk shards would read null lists), and honours
/// IO_FLAG_ONDISK_SAME_DIR only for a FileIOReader, which faiss_bq's
/// checksumming reader is not: here the reader's name is the index file.
faiss::InvertedLists* read_ondisk_invlists(
        faiss::IOReader* f,
        int io_flags,
        size_t nlist,
        size_t code_size) {
    using Slot = faiss::OnDiskInvertedLists::Slot;
    static_assert(
            sizeof(faiss::OnDiskOneList) == 3 * sizeof(size_t) &&
                    sizeof(Slot) == 2 * sizeof(size_t),
            "FAISS writes these structs as plain data");
    auto od = std::make_unique<faiss::OnDiskInvertedLists>();
    od->read_only = io_flags & faiss::IO_FLAG_READ_ONLY;
    od->nlist = get<uint64_t>(f);
    od->code_size = get<uint64_t>(f);
    FAISS_THROW_IF_NOT_FMT(
            od->nlist == nlist && od->code_size == code_size,
            "faiss_bq: on-disk inverted lists of nlist=%zu code_size=%zu in an "
            "index of nlist=%zu code_size=%zu",
            od->nlist,
            od->code_size,
            nlist,
            code_size);
    get_vector(f, od->lists, "OnDiskInvertedLists.lists");
    FAISS_THROW_IF_NOT_FMT(
            od->lists.size() == nlist,
            "faiss_bq: %zu on-disk list entries for nlist=%zu",
            od->lists.size(),
            nlist);
    std::vector<Slot> slots;
    get_vector(f, slots, "OnDiskInvertedLists.slots");
    od->slots.assign(slots.begin(), slots.end());
    const std::string stored_name =
            get_string(f, "OnDiskInvertedLists.filename");
    od->totsize = get<uint64_t>(f);
    od->filename = stored_name;
    if (io_flags & faiss::IO_FLAG_ONDISK_SAME_DIR) {
        FAISS_THROW_IF_NOT_MSG(
                !f->name.empty(),
                "faiss_bq: IO_FLAG_ONDISK_SAME_DIR needs the index to be read "
                "from a named file");
        const size_t slash = stored_name.find_last_of('/');
        od->filename = directory_of(f->name) +
                (slash == std::string::npos ? stored_name
                                            : stored_name.substr(slash + 1));
    }

    // Every list and free slot must lie inside totsize bytes.
    const size_t entry_bytes = code_size + sizeof(idx_t);
    for (size_t l = 0; l < nlist; l++) {
        const faiss::OnDiskOneList& list = od->lists[l];
        const bool unallocated = list.offset == size_t(-1) && list.size == 0 &&
                list.capacity == 0;
        FAISS_THROW_IF_NOT_FMT(
                unallocated ||
                        (list.size <= list.capacity &&
                         list.offset <= od->totsize &&
                         list.capacity <=
                                 (od->totsize - list.offset) / entry_bytes),
                "faiss_bq: on-disk list %zu (size %zu, capacity %zu at offset "
                "%zu) lies beyond the %zu bytes of %s",
                l,
                list.size,
                list.capacity,
                list.offset,
                od->totsize,
                od->filename.c_str());
    }
    for (const Slot& slot : slots) {
        FAISS_THROW_IF_NOT_FMT(
                slot.offset <= od->totsize &&
                        slot.capacity <= od->totsize - slot.offset,
                "faiss_bq: free slot of %zu bytes at offset %zu lies beyond the "
                "%zu bytes of %s",
                slot.capacity,
                slot.offset,
                od->totsize,
                od->filename.c_str());
    }

    // IO_FLAG_SKIP_IVF_DATA alone: the lists' layout without their data;
    // IO_FLAG_MMAP (which includes it): mapped, as for any on-disk lists.
    const int mmap_bits = faiss::IO_FLAG_MMAP & ~faiss::IO_FLAG_SKIP_IVF_DATA;
    const bool map = !(io_flags & faiss::IO_FLAG_SKIP_IVF_DATA) ||
            (io_flags & mmap_bits) == mmap_bits;
    if (map) {
        struct stat st;
        FAISS_THROW_IF_NOT_FMT(
                stat(od->filename.c_str(), &st) == 0,
                "faiss_bq: the inverted lists' data file %s (named by %s) is "
                "missing%s",
                od->filename.c_str(),
                f->name.empty() ? "the index" : f->name.c_str(),
                (io_flags & faiss::IO_FLAG_ONDISK_SAME_DIR)
                        ? ""
                        : "; IO_FLAG_ONDISK_SAME_DIR looks for it beside the "
                          "index file");
        FAISS_THROW_IF_NOT_FMT(
                size_t(st.st_size) >= od->totsize,
                "faiss_bq: the inverted lists' data file %s has %zu bytes, "
                "the index expects %zu (truncated?)",
                od->filename.c_str(),
                size_t(st.st_size),
                od->totsize);
        if (od->totsize > 0) { // mmap of 0 bytes fails; no list has data
            od->do_mmap();
        }
    }
    return od.release();
}

/// The lists of fourcc h (already read): FAISS's inline lists ("ilar") with
/// bounded reads into memory (FAISS 1.7.3's reader trusts the sizes and
/// leaks its lists when a read fails), on-disk lists ("ilod") likewise, any
/// other kind by FAISS.
faiss::InvertedLists* read_invlists(
        faiss::IOReader* f,
        uint32_t h,
        int io_flags,
        size_t nlist,
        size_t code_size) {
    if (h == fourcc("ilar")) {
        return read_array_invlists(f, nlist, code_size);
    }
    if (h == fourcc("ilod")) {
        return read_ondisk_invlists(f, io_flags, nlist, code_size);
    }
    ReplayReader replay(f, h);
    return faiss::read_InvertedLists(&replay, io_flags);
}

void write_IndexIVFBQ(const IndexIVFBQ* idx, faiss::IOWriter* f) {
    const bool fast = dynamic_cast<const IndexIVFBQFastScan*>(idx) != nullptr;
    put(f, fourcc(fast ? "BQif" : "BQiv"));
    ChecksumWriter w(f);
    put(&w, kFormatVersion);
    write_header(idx, &w);
    IndexBQ config = idx->budget_bytes > 0
            ? IndexBQ(idx->d, CodeBudget{idx->budget_bytes}, idx->metric_type)
            : IndexBQ(idx->d, idx->nbits, idx->metric_type);
    config.trainer = idx->trainer;
    config.plan = idx->plan;
    config.is_trained = idx->plan.is_trained();
    write_IndexBQ(&config, &w);
    put(&w, uint64_t(idx->nlist));
    put(&w, uint64_t(idx->nprobe));
    put(&w, uint64_t(idx->max_codes));
    put(&w, idx->query_bits);
    put(&w, uint64_t(idx->code_size));
    put(&w, int(idx->direct_map.type));
    faiss_bq::write_index(idx->quantizer, &w);
    faiss::write_InvertedLists(idx->invlists, &w);
    put(f, w.sum.h);
}

IndexIVFBQ* read_IndexIVFBQ(faiss::IOReader* f, bool fast, int io_flags) {
    ChecksumReader r(f);
    check_version(&r, "IndexIVFBQ");
    faiss::IndexFlatL2 header;
    read_header(&header, &r);
    std::unique_ptr<faiss::Index> config_index(
            faiss_bq::read_index(&r, io_flags));
    auto config = dynamic_cast<const IndexBQ*>(config_index.get());
    FAISS_THROW_IF_NOT_MSG(
            config && config->ntotal == 0,
            "faiss_bq: IndexIVFBQ's configuration is not a code-less IndexBQ");
    const size_t nlist = get<uint64_t>(&r);
    const size_t nprobe = get<uint64_t>(&r);
    const size_t max_codes = get<uint64_t>(&r);
    const int query_bits = get<int>(&r);
    const size_t code_size = get<uint64_t>(&r);
    const int dm_type = get<int>(&r);
    FAISS_THROW_IF_NOT_FMT(
            nlist >= 1 && nlist < (size_t(1) << 40) && dm_type >= 0 &&
                    dm_type <= 2 && header.d == config->d &&
                    header.metric_type == config->metric_type,
            "faiss_bq: bad IndexIVFBQ fields: nlist=%zu direct_map=%d d=%d "
            "(plan d=%d) metric=%d (plan metric=%d)",
            nlist,
            dm_type,
            header.d,
            config->d,
            int(header.metric_type),
            int(config->metric_type));
    std::unique_ptr<faiss::Index> quantizer(faiss_bq::read_index(&r, io_flags));
    FAISS_THROW_IF_NOT_FMT(
            quantizer->d == header.d &&
                    (quantizer->ntotal == idx_t(nlist) ||
                     (!header.is_trained && quantizer->ntotal == 0)),
            "faiss_bq: IndexIVFBQ of d=%d nlist=%zu has a quantizer of d=%d "
            "with %ld centroids",
            header.d,
            nlist,
            quantizer->d,
            long(quantizer->ntotal));
    std::unique_ptr<IndexIVFBQ> idx;
    const size_t d = size_t(header.d);
    const faiss::MetricType m = header.metric_type;
    if (config->budget_bytes > 0) {
        const CodeBudget b{config->budget_bytes};
        idx.reset(
                fast ? new IndexIVFBQFastScan(quantizer.get(), d, nlist, b, m)
                     : new IndexIVFBQ(quantizer.get(), d, nlist, b, m));
    } else {
        idx.reset(
                fast ? new IndexIVFBQFastScan(
                               quantizer.get(), d, nlist, config->nbits, m)
                     : new IndexIVFBQ(
                               quantizer.get(), d, nlist, config->nbits, m));
    }
    quantizer.release();
    idx->own_fields = true;
    idx->trainer = config->trainer;
    idx->plan = config->plan;
    idx->is_trained = config->is_trained;
    idx->nprobe = nprobe;
    idx->max_codes = max_codes;
    idx->query_bits = query_bits;
    idx->ntotal = header.ntotal;
    FAISS_THROW_IF_NOT_FMT(
            code_size == idx->code_size && header.is_trained == idx->is_trained,
            "faiss_bq: IndexIVFBQ code_size=%zu trained=%d, its configuration "
            "gives code_size=%zu trained=%d",
            code_size,
            int(header.is_trained),
            idx->code_size,
            int(idx->is_trained));
    faiss::InvertedLists* ils;
    const uint32_t h = get<uint32_t>(&r);
    if (h == fourcc("ilar")) {
        // Inline lists sit inside the checksummed record: they are read
        // into memory. IO_FLAG_MMAP (which faiss.contrib.ondisk.merge_ondisk
        // passes for its shards) is accepted and reads them too; skipping
        // them (IO_FLAG_SKIP_IVF_DATA alone) is not supported.
        const int mmap_bits =
                faiss::IO_FLAG_MMAP & ~faiss::IO_FLAG_SKIP_IVF_DATA;
        FAISS_THROW_IF_NOT_FMT(
                !(io_flags & faiss::IO_FLAG_SKIP_IVF_DATA) ||
                        (io_flags & mmap_bits) == mmap_bits,
                "faiss_bq: io_flags=0x%x: a faiss_bq IVF file's inline lists "
                "are read into memory, not skipped; for lists on disk use "
                "OnDiskInvertedLists (merge_ondisk)",
                unsigned(io_flags));
    }
    ils = read_invlists(&r, h, io_flags, nlist, code_size);
    idx->replace_invlists(ils, true);
    check_checksum(r, f, "IndexIVFBQ");
    FAISS_THROW_IF_NOT_FMT(
            ils->nlist == nlist && ils->code_size == code_size,
            "faiss_bq: inverted lists of nlist=%zu code_size=%zu in an index "
            "of nlist=%zu code_size=%zu",
            ils->nlist,
            ils->code_size,
            nlist,
            code_size);
    size_t total = 0;
    for (size_t l = 0; l < nlist; l++) {
        total += ils->list_size(l);
    }
    FAISS_THROW_IF_NOT_FMT(
            total == size_t(idx->ntotal),
            "faiss_bq: IndexIVFBQ lists hold %zu entries for ntotal=%ld",
            total,
            long(idx->ntotal));
    if (idx->is_trained) {
        check_plan(
                idx->plan,
                idx->d,
                idx->nbits,
                idx->plane_bytes() + CodeLayout::factor_bytes);
    }
    if (dm_type != 0) {
        idx->set_direct_map_type(faiss::DirectMap::Type(dm_type));
    }
    return idx.release();
}

void write_IndexFromBinary(const IndexFromBinary* idx, faiss::IOWriter* f) {
    put(f, fourcc("BQfb"));
    ChecksumWriter w(f);
    put(&w, kFormatVersion);
    write_header(idx, &w);
    put(&w, idx->nbits);
    write_trainer(idx->trainer, &w);
    write_plan(idx->plan, &w);
    write_plan_allocation(idx->plan, &w);
    faiss_bq::write_index_binary(idx->index, &w);
    put(f, w.sum.h);
}

IndexFromBinary* read_IndexFromBinary(faiss::IOReader* f, int io_flags) {
    ChecksumReader r(f);
    const uint32_t version = check_version(&r, "IndexFromBinary");
    FAISS_THROW_IF_NOT_MSG(
            version >= 2,
            "faiss_bq: IndexFromBinary records start at format version 2");
    auto idx = std::make_unique<IndexFromBinary>();
    read_header(idx.get(), &r);
    idx->nbits = get<int>(&r);
    FAISS_THROW_IF_NOT_FMT(
            (idx->nbits == 1 || idx->nbits == 2) &&
                    (idx->metric_type == faiss::METRIC_L2 ||
                     idx->metric_type == faiss::METRIC_INNER_PRODUCT),
            "faiss_bq: bad IndexFromBinary fields: nbits=%d metric=%d",
            idx->nbits,
            int(idx->metric_type));
    idx->trainer = read_trainer(&r);
    idx->plan = read_plan(&r);
    read_plan_allocation(idx->plan, &r, version);
    idx->index = faiss_bq::read_index_binary(&r, io_flags);
    idx->own_fields = true;
    check_checksum(r, f, "IndexFromBinary");
    if (idx->plan.is_trained()) {
        check_plan(
                idx->plan,
                idx->d,
                idx->nbits,
                CodeLayout(idx->d, idx->nbits).code_size);
    }
    FAISS_THROW_IF_NOT_FMT(
            idx->index->d == idx->code_bits() &&
                    idx->index->ntotal == idx->ntotal &&
                    (idx->plan.is_trained() || idx->ntotal == 0),
            "faiss_bq: IndexFromBinary of d=%d nbits=%d ntotal=%ld (plan "
            "trained: %d) holds a binary index of d=%d ntotal=%ld",
            idx->d,
            idx->nbits,
            long(idx->ntotal),
            int(idx->plan.is_trained()),
            idx->index->d,
            long(idx->index->ntotal));
    return idx.release();
}

/// FAISS's vector transforms, in FAISS's layout (write_VectorTransform),
/// read with bounded vectors; any other kind goes to FAISS.
faiss::VectorTransform* read_transform(faiss::IOReader* f) {
    const uint32_t h = get<uint32_t>(f);
    std::unique_ptr<faiss::VectorTransform> vt;
    faiss::LinearTransform* lt = nullptr;
    if (h == fourcc("rrot")) {
        vt.reset(lt = new faiss::RandomRotationMatrix());
    } else if (h == fourcc("Pcam")) {
        auto pca = new faiss::PCAMatrix();
        vt.reset(lt = pca);
        pca->eigen_power = get<float>(f);
        pca->epsilon = get<float>(f);
        pca->random_rotation = get_bool(f, "PCAMatrix.random_rotation");
        pca->balanced_bins = get<int>(f);
        get_vector(f, pca->mean, "PCAMatrix.mean");
        get_vector(f, pca->eigenvalues, "PCAMatrix.eigenvalues");
        get_vector(f, pca->PCAMat, "PCAMatrix.PCAMat");
    } else if (h == fourcc("Viqm")) {
        auto itq = new faiss::ITQMatrix();
        vt.reset(lt = itq);
        itq->max_iter = get<int>(f);
        itq->seed = get<int>(f);
    } else if (h == fourcc("LTra")) {
        vt.reset(lt = new faiss::LinearTransform());
    } else if (h == fourcc("VNrm")) {
        auto nt = new faiss::NormalizationTransform();
        vt.reset(nt);
        nt->norm = get<float>(f);
    } else if (h == fourcc("VCnt")) {
        auto ct = new faiss::CenteringTransform();
        vt.reset(ct);
        get_vector(f, ct->mean, "CenteringTransform.mean");
    } else if (h == fourcc("RmDT")) {
        auto rdt = new faiss::RemapDimensionsTransform();
        vt.reset(rdt);
        get_vector(f, rdt->map, "RemapDimensionsTransform.map");
    } else {
        ReplayReader replay(f, h);
        return faiss::read_VectorTransform(&replay);
    }
    if (lt) {
        lt->have_bias = get_bool(f, "LinearTransform.have_bias");
        get_vector(f, lt->A, "LinearTransform.A");
        get_vector(f, lt->b, "LinearTransform.b");
    }
    vt->d_in = get<int>(f);
    vt->d_out = get<int>(f);
    vt->is_trained = get_bool(f, "VectorTransform.is_trained");
    const size_t d_in = size_t(vt->d_in), d_out = size_t(vt->d_out);
    bool ok = vt->d_in > 0 && vt->d_in <= kMaxDim && vt->d_out > 0 &&
            vt->d_out <= kMaxDim;
    if (ok && lt) {
        ok = !vt->is_trained ||
                (lt->A.size() == d_in * d_out &&
                 (!lt->have_bias || lt->b.size() == d_out));
    } else if (ok && h == fourcc("VCnt")) {
        auto ct = static_cast<faiss::CenteringTransform*>(vt.get());
        ok = d_in == d_out && (!vt->is_trained || ct->mean.size() == d_in);
    } else if (ok && h == fourcc("VNrm")) {
        ok = d_in == d_out;
    } else if (ok && h == fourcc("RmDT")) {
        auto rdt = static_cast<faiss::RemapDimensionsTransform*>(vt.get());
        ok = rdt->map.size() == d_out;
        for (size_t i = 0; ok && i < d_out; i++) {
            ok = rdt->map[i] >= -1 && rdt->map[i] < vt->d_in;
        }
    }
    FAISS_THROW_IF_NOT_FMT(
            ok,
            "faiss_bq: inconsistent vector transform '%s' (d_in=%d d_out=%d)",
            faiss::fourcc_inv_printable(h).c_str(),
            vt->d_in,
            vt->d_out);
    if (lt && vt->is_trained) {
        lt->set_is_orthonormal();
    }
    return vt.release();
}

faiss::Index* read_IndexPreTransform(faiss::IOReader* f, int io_flags) {
    auto idx = std::make_unique<faiss::IndexPreTransform>();
    idx->own_fields = true;
    read_header(idx.get(), f);
    const int nt = get<int>(f);
    FAISS_THROW_IF_NOT_FMT(
            nt >= 0 && nt <= 1024,
            "faiss_bq: IndexPreTransform with %d transforms",
            nt);
    int d = idx->d;
    for (int i = 0; i < nt; i++) {
        idx->chain.push_back(read_transform(f));
        FAISS_THROW_IF_NOT_FMT(
                idx->chain.back()->d_in == d,
                "faiss_bq: transform %d takes d=%d, its input has d=%d",
                i,
                idx->chain.back()->d_in,
                d);
        d = idx->chain.back()->d_out;
    }
    idx->index = faiss_bq::read_index(f, io_flags);
    FAISS_THROW_IF_NOT_FMT(
            idx->index->d == d && idx->index->ntotal == idx->ntotal,
            "faiss_bq: IndexPreTransform to d=%d ntotal=%ld holds an index "
            "of d=%d ntotal=%ld",
            d,
            long(idx->ntotal),
            idx->index->d,
            long(idx->index->ntotal));
    return idx.release();
}

faiss::Index* read_IndexFlat(faiss::IOReader* f, uint32_t h) {
    std::unique_ptr<faiss::IndexFlat> idx(
            h == fourcc("IxFI")           ? new faiss::IndexFlatIP()
                    : h == fourcc("IxF2") ? new faiss::IndexFlatL2()
                                          : new faiss::IndexFlat());
    read_header(idx.get(), f);
    idx->code_size = idx->d * sizeof(float);
    // FAISS's layout: the number of floats, then their bytes.
    get_vector(f, idx->codes, "IndexFlat.codes", sizeof(float));
    FAISS_THROW_IF_NOT_FMT(
            idx->codes.size() == size_t(idx->ntotal) * idx->code_size &&
                    (h != fourcc("IxFI") ||
                     idx->metric_type == faiss::METRIC_INNER_PRODUCT) &&
                    (h != fourcc("IxF2") ||
                     idx->metric_type == faiss::METRIC_L2),
            "faiss_bq: IndexFlat of ntotal=%ld d=%d holds %zu floats",
            long(idx->ntotal),
            idx->d,
            idx->codes.size());
    return idx.release();
}

// ---- binary side

faiss::IndexBinary* read_IndexBinaryIDMap(
        faiss::IOReader* f,
        bool map2,
        int io_flags) {
    std::unique_ptr<faiss::IndexBinaryIDMap> idx(
            map2 ? new faiss::IndexBinaryIDMap2()
                 : new faiss::IndexBinaryIDMap());
    read_binary_header(idx.get(), f, true);
    idx->index = faiss_bq::read_index_binary(f, io_flags);
    idx->own_fields = true;
    get_vector(f, idx->id_map, "IndexBinaryIDMap.id_map");
    FAISS_THROW_IF_NOT_FMT(
            idx->index->d == idx->d && idx->index->ntotal == idx->ntotal &&
                    idx->id_map.size() == size_t(idx->ntotal),
            "faiss_bq: IndexBinaryIDMap of d=%d ntotal=%ld holds an index of "
            "d=%d ntotal=%ld and %zu ids",
            idx->d,
            long(idx->ntotal),
            idx->index->d,
            long(idx->index->ntotal),
            idx->id_map.size());
    if (map2) {
        static_cast<faiss::IndexBinaryIDMap2*>(idx.get())->construct_rev_map();
    }
    return idx.release();
}

/// FAISS's IndexBinaryFlat layout ("IBxF"): header, then the codes. Any
/// flat binary class with FAISS's `xb` (the drop-in replacement included) is
/// written and read through these two, so FAISS reads what it writes.
template <class Flat>
void write_binary_flat(const Flat* idx, faiss::IOWriter* f) {
    put(f, fourcc("IBxF"));
    write_binary_header(idx, f);
    put_vector(f, idx->xb);
}

template <class Flat>
faiss::IndexBinary* read_binary_flat(faiss::IOReader* f) {
    auto idx = std::make_unique<Flat>();
    read_binary_header(idx.get(), f, false);
    get_vector(f, idx->xb, "IndexBinaryFlat.xb");
    FAISS_THROW_IF_NOT_FMT(
            idx->xb.size() == size_t(idx->ntotal) * idx->code_size,
            "faiss_bq: IndexBinaryFlat of ntotal=%ld holds %zu bytes",
            long(idx->ntotal),
            idx->xb.size());
    return idx.release();
}

} // namespace

// ---- public entry points

void write_index(const faiss::Index* index, faiss::IOWriter* f) {
    FAISS_THROW_IF_NOT_MSG(index, "faiss_bq::write_index: null index");
    if (auto bq = dynamic_cast<const IndexBQ*>(index)) {
        write_IndexBQ(bq, f);
    } else if (auto ivf = dynamic_cast<const IndexIVFBQ*>(index)) {
        write_IndexIVFBQ(ivf, f);
    } else if (auto fs = dynamic_cast<const IndexBQFastScan*>(index)) {
        write_IndexBQFastScan(fs, f);
    } else if (auto rf = dynamic_cast<const IndexBQRefine*>(index)) {
        write_IndexBQRefine(rf, f);
    } else if (auto fb = dynamic_cast<const IndexFromBinary*>(index)) {
        write_IndexFromBinary(fb, f);
    } else if (auto rc = dynamic_cast<const IndexBQRecurrent*>(index)) {
        write_IndexBQRecurrent(rc, f);
    } else if (auto tq = dynamic_cast<const IndexBQTurbo*>(index)) {
        write_IndexBQTurbo(tq, f);
    } else if (auto bk = dynamic_cast<const IndexBlockQuant*>(index)) {
        write_IndexBlockQuant(bk, f);
    } else if (auto fm = dynamic_cast<const IndexBQFamily*>(index)) {
        write_IndexBQFamily(fm, f);
    } else if (typeid(*index) == typeid(faiss::IndexHNSW)) {
        write_IndexHNSW_BQ(static_cast<const faiss::IndexHNSW*>(index), f);
    } else if (auto map = dynamic_cast<const faiss::IndexIDMap*>(index)) {
        put(f,
            fourcc(dynamic_cast<const faiss::IndexIDMap2*>(index) ? "IxM2"
                                                                  : "IxMp"));
        write_header(map, f);
        faiss_bq::write_index(map->index, f);
        put_vector(f, map->id_map);
    } else if (auto pt = dynamic_cast<const faiss::IndexPreTransform*>(index)) {
        put(f, fourcc("IxPT"));
        write_header(pt, f);
        put(f, int(pt->chain.size()));
        for (const faiss::VectorTransform* vt : pt->chain) {
            faiss::write_VectorTransform(vt, f);
        }
        faiss_bq::write_index(pt->index, f);
    } else if (auto rf = dynamic_cast<const faiss::IndexRefine*>(index)) {
        put(f, fourcc("IxRF"));
        write_header(rf, f);
        faiss_bq::write_index(rf->base_index, f);
        faiss_bq::write_index(rf->refine_index, f);
        put(f, rf->k_factor);
    } else {
        faiss::write_index(index, f);
    }
}

namespace {

/// The record of fourcc h (already read) when faiss_bq reads it itself,
/// else nullptr (FAISS reads it).
faiss::Index* read_own_index(faiss::IOReader* f, uint32_t h, int io_flags) {
    if (h == fourcc("BQix")) {
        return read_IndexBQ(f);
    } else if (h == fourcc("BQhn")) {
        return read_IndexHNSW_BQ(f, io_flags);
    } else if (h == fourcc("BQrf")) {
        return read_IndexBQRefine(f, io_flags);
    } else if (h == fourcc("BQfb")) {
        return read_IndexFromBinary(f, io_flags);
    } else if (h == fourcc("BQfs")) {
        return read_IndexBQFastScan(f, io_flags);
    } else if (h == fourcc("BQTq")) {
        return read_IndexBQTurbo(f);
    } else if (h == fourcc("BQRc")) {
        return read_IndexBQRecurrent(f);
    } else if (h == fourcc("BQbk")) {
        return read_IndexBlockQuant(f);
    } else if (h == fourcc("BQFm")) {
        return read_IndexBQFamily(f, io_flags);
    } else if (h == fourcc("BQiv") || h == fourcc("BQif")) {
        return read_IndexIVFBQ(f, h == fourcc("BQif"), io_flags);
    } else if (h == fourcc("IxMp") || h == fourcc("IxM2")) {
        return read_IndexIDMap(f, h == fourcc("IxM2"), io_flags);
    } else if (h == fourcc("IxPT")) {
        return read_IndexPreTransform(f, io_flags);
    } else if (h == fourcc("IxRF")) {
        return read_IndexRefine(f, io_flags);
    } else if (
            h == fourcc("IxFI") || h == fourcc("IxF2") || h == fourcc("IxFl")) {
        return read_IndexFlat(f, h);
    }
    return nullptr;
}

} // namespace

faiss::Index* read_index(faiss::IOReader* f, int io_flags) {
    FAISS_THROW_IF_NOT_MSG(f, "faiss_bq::read_index: null reader");
    const uint32_t h = get<uint32_t>(f);
    if (faiss::Index* index = read_own_index(f, h, io_flags)) {
        return index;
    }
    ReplayReader replay(f, h);
    return faiss::read_index(&replay, io_flags);
}

// ---- FAISS's binary containers with a faiss_bq part (an
// IndexBinaryFlatFast quantizer, a faiss_bq float index): FAISS's own
// layouts ("IBwF", "IBFf"), their parts written and read by faiss_bq, so
// that a file without faiss_bq parts is byte for byte FAISS's.

void write_direct_map(const faiss::DirectMap& dm, faiss::IOWriter* f) {
    put(f, char(dm.type)); // FAISS writes the type as a char
    put_vector(f, dm.array);
    if (dm.type == faiss::DirectMap::Hashtable) {
        std::vector<std::pair<idx_t, idx_t>> v(
                dm.hashtable.begin(), dm.hashtable.end());
        put_vector(f, v);
    }
}

void read_direct_map(
        faiss::DirectMap& dm,
        faiss::IOReader* f,
        const char* who) {
    const int type = int(get<char>(f));
    FAISS_THROW_IF_NOT_FMT(
            type >= 0 && type <= 2,
            "faiss_bq: %s: direct map type %d (0, 1 or 2)",
            who,
            type);
    dm.type = faiss::DirectMap::Type(type);
    get_vector(f, dm.array, "direct_map.array");
    if (dm.type == faiss::DirectMap::Hashtable) {
        std::vector<std::pair<idx_t, idx_t>> v;
        get_vector(f, v, "direct_map.hashtable");
        dm.hashtable.insert(v.begin(), v.end());
    }
}

void write_IndexBinaryIVF(
        const faiss::IndexBinaryIVF* ivf,
        faiss::IOWriter* f) {
    put(f, fourcc("IBwF"));
    write_binary_header(ivf, f);
    put(f, ivf->nlist);
    put(f, ivf->nprobe);
    faiss_bq::write_index_binary(ivf->quantizer, f);
    write_direct_map(ivf->direct_map, f);
    faiss::write_InvertedLists(ivf->invlists, f);
}

faiss::IndexBinary* read_IndexBinaryIVF(faiss::IOReader* f, int io_flags) {
    auto ivf = std::make_unique<faiss::IndexBinaryIVF>();
    read_binary_header(ivf.get(), f, false);
    ivf->nlist = get<size_t>(f);
    ivf->nprobe = get<size_t>(f);
    FAISS_THROW_IF_NOT_FMT(
            ivf->nlist > 0 && ivf->nlist < (size_t(1) << 40),
            "faiss_bq: IndexBinaryIVF nlist=%zu",
            ivf->nlist);
    ivf->quantizer = faiss_bq::read_index_binary(f, io_flags);
    ivf->own_fields = true;
    FAISS_THROW_IF_NOT_FMT(
            ivf->quantizer->d == ivf->d &&
                    (!ivf->is_trained ||
                     size_t(ivf->quantizer->ntotal) == ivf->nlist),
            "faiss_bq: IndexBinaryIVF of d=%d nlist=%zu has a quantizer of d=%d "
            "with %ld centroids",
            ivf->d,
            ivf->nlist,
            ivf->quantizer->d,
            long(ivf->quantizer->ntotal));
    read_direct_map(ivf->direct_map, f, "IndexBinaryIVF");
    const uint32_t h = get<uint32_t>(f);
    ivf->invlists = read_invlists(
            f,
            h,
            io_flags & ~IO_FLAG_FAISS_BINARY_FLAT,
            ivf->nlist,
            size_t(ivf->code_size));
    ivf->own_invlists = true;
    FAISS_THROW_IF_NOT_FMT(
            ivf->invlists && ivf->invlists->nlist == ivf->nlist &&
                    ivf->invlists->code_size == size_t(ivf->code_size),
            "faiss_bq: IndexBinaryIVF of nlist=%zu code_size=%d holds lists of nlist=%zu "
            "code_size=%zu",
            ivf->nlist,
            ivf->code_size,
            ivf->invlists ? ivf->invlists->nlist : 0,
            ivf->invlists ? ivf->invlists->code_size : 0);
    return ivf.release();
}

void write_IndexBinaryFromFloat(
        const faiss::IndexBinaryFromFloat* idx,
        faiss::IOWriter* f) {
    put(f, fourcc("IBFf"));
    write_binary_header(idx, f);
    faiss_bq::write_index(idx->index, f);
}

faiss::IndexBinary* read_IndexBinaryFromFloat(
        faiss::IOReader* f,
        int io_flags) {
    auto idx = std::make_unique<faiss::IndexBinaryFromFloat>();
    read_binary_header(idx.get(), f, false);
    idx->index = faiss_bq::read_index(f, io_flags & ~IO_FLAG_FAISS_BINARY_FLAT);
    idx->own_fields = true;
    FAISS_THROW_IF_NOT_FMT(
            idx->index->d == idx->d,
            "faiss_bq: IndexBinaryFromFloat of d=%d holds a float index of d=%d",
            idx->d,
            idx->index->d);
    return idx.release();
}

void write_index_binary(const faiss::IndexBinary* index, faiss::IOWriter* f) {
    FAISS_THROW_IF_NOT_MSG(index, "faiss_bq::write_index_binary: null index");
    if (auto map = dynamic_cast<const faiss::IndexBinaryIDMap*>(index)) {
        put(f,
            fourcc(dynamic_cast<const faiss::IndexBinaryIDMap2*>(index)
                           ? "IBM2"
                           : "IBMp"));
        write_binary_header(map, f);
        faiss_bq::write_index_binary(map->index, f);
        put_vector(f, map->id_map);
    } else if (auto flat = dynamic_cast<const faiss::IndexBinaryFlat*>(index)) {
        write_binary_flat(flat, f);
    } else if (auto fast = dynamic_cast<const IndexBinaryFlatFast*>(index)) {
        write_binary_flat(fast, f);
    } else if (auto ivf = dynamic_cast<const faiss::IndexBinaryIVF*>(index)) {
        write_IndexBinaryIVF(ivf, f);
    } else if (
            auto ff = dynamic_cast<const faiss::IndexBinaryFromFloat*>(index)) {
        write_IndexBinaryFromFloat(ff, f);
    } else {
        faiss::write_index_binary(index, f);
    }
}

faiss::IndexBinary* read_index_binary(faiss::IOReader* f, int io_flags) {
    FAISS_THROW_IF_NOT_MSG(f, "faiss_bq::read_index_binary: null reader");
    const uint32_t h = get<uint32_t>(f);
    if (h == fourcc("IBMp") || h == fourcc("IBM2")) {
        return read_IndexBinaryIDMap(f, h == fourcc("IBM2"), io_flags);
    } else if (h == fourcc("IBxF")) {
        return io_flags & IO_FLAG_FAISS_BINARY_FLAT
                ? read_binary_flat<faiss::IndexBinaryFlat>(f)
                : read_binary_flat<IndexBinaryFlatFast>(f);
    } else if (h == fourcc("IBwF")) {
        return read_IndexBinaryIVF(f, io_flags);
    } else if (h == fourcc("IBFf")) {
        return read_IndexBinaryFromFloat(f, io_flags);
    }
    ReplayReader replay(f, h);
    return faiss::read_index_binary(
            &replay, io_flags & ~IO_FLAG_FAISS_BINARY_FLAT);
}

void write_index(const faiss::Index* index, const char* fname) {
    faiss::FileIOWriter writer(fname);
    faiss_bq::write_index(index, &writer);
}

void write_index(const faiss::Index* index, FILE* f) {
    faiss::FileIOWriter writer(f);
    faiss_bq::write_index(index, &writer);
}

faiss::Index* read_index(const char* fname, int io_flags) {
    {
        faiss::FileIOReader reader(fname);
        const uint32_t h = get<uint32_t>(&reader);
        if (faiss::Index* index = read_own_index(&reader, h, io_flags)) {
            return index;
        }
    }
    // A FAISS record at the top: read by FAISS from the file, with its own
    // FileIOReader, which FAISS's IO_FLAG_MMAP (inline lists mapped, as
    // merge_ondisk reads its shards) and IO_FLAG_ONDISK_SAME_DIR require.
    return faiss::read_index(fname, io_flags);
}

faiss::Index* read_index(FILE* f, int io_flags) {
    faiss::FileIOReader reader(f);
    return faiss_bq::read_index(&reader, io_flags);
}

void write_index_binary(const faiss::IndexBinary* index, const char* fname) {
    faiss::FileIOWriter writer(fname);
    faiss_bq::write_index_binary(index, &writer);
}

void write_index_binary(const faiss::IndexBinary* index, FILE* f) {
    faiss::FileIOWriter writer(f);
    faiss_bq::write_index_binary(index, &writer);
}

faiss::IndexBinary* read_index_binary(const char* fname, int io_flags) {
    faiss::FileIOReader reader(fname);
    return faiss_bq::read_index_binary(&reader, io_flags);
}

faiss::IndexBinary* read_index_binary(FILE* f, int io_flags) {
    faiss::FileIOReader reader(f);
    return faiss_bq::read_index_binary(&reader, io_flags);
}

faiss::Index* clone_index(const faiss::Index* index) {
    faiss::VectorIOWriter writer;
    faiss_bq::write_index(index, &writer);
    faiss::VectorIOReader reader;
    reader.data = std::move(writer.data);
    return faiss_bq::read_index(&reader);
}

faiss::IndexBinary* clone_index_binary(const faiss::IndexBinary* index) {
    faiss::VectorIOWriter writer;
    faiss_bq::write_index_binary(index, &writer);
    faiss::VectorIOReader reader;
    reader.data = std::move(writer.data);
    return faiss_bq::read_index_binary(&reader);
}

} // namespace faiss_bq
