// The one owner of the factory grammar (docs/factory.md).
//
//   description := [wrapper ","] {transform ","} core ["," refine]
//   wrapper     := "IDMap" | "IDMap2"
//   transform   := a FAISS vector transform ("PCA64", "L2norm", "OPQ16_64",
//                  "RR64", "ITQ", "Pad128"), built by FAISS
//   core        := bq | "HNSW" [M] "_" bq | bq "(" binary ")" | ivf "," bq
//                  | bqr | bqt | bkq | any FAISS core
//   bqr         := "BQR" stages {"_" ("sym" | "axis" | "gscale")}:
//                  IndexBQRecurrent, stages 1..4 recurrent sign stages;
//                  "sym": SDC by default; "axis": the fitted rotation
//                  starts from the identity (else a random one); "gscale":
//                  one scale per stage instead of per vector
//   bqt         := "BQT" bits {"_" ("axis" | "noctr")}: IndexBQTurbo
//                  (TurboQuant-prod), bits 2..4 in all (bits - 1 of
//                  TurboQuant-MSE code, 1 of QJL sketch); "axis": no
//                  rotation; "noctr": not centred at the training mean
//   bkq         := "BKQ" k "x" m {"_" ("obl" | "nocorr")}: IndexBlockQuant,
//                  blocks of k rotated coordinates (2..32, dividing d
//                  rounded up to a multiple of 8), one byte each: m bits of
//                  direction (1..8), 8 - m of norm; "obl": the data-oblivious
//                  mode (no training, centre 0); "nocorr": no unbiasing scale
//   ivf         := "IVF" nlist ["_HNSW" M]: IndexIVFBQ (IndexIVFBQFastScan
//                  with "_fs") over an IndexFlat (or IndexHNSWFlat) coarse
//                  quantizer; asymmetric estimator only
//   bq          := "BQ" (nbits | bytes "B") {"_" option}
//   option      := "rot" | "axis" | "pca" | "ctr" | "noctr" | "sym" |
//                  "q" bits | "alloc" | "uniform" | "mrl" | "eden" | "tqmse" |
//                  "lm" |
//                  "fs" | "scalar" | "family"
//   ("alloc" / "uniform" force the kind of plan of a budget "BQ<bytes>B";
//   "mrl": the model is Matryoshka-trained, prefix plans are candidates;
//   "eden" / "tqmse" / "lm": force EDEN's levels / TurboQuant-MSE's (EDEN's
//   with the MSE scale) / fitted Lloyd-Max levels (default: the held-out
//   check weighs EDEN's and the fitted ones);
//   "fs": IndexBQFastScan, the same plan scanned by fast scan, asymmetric
//   float query only, not under HNSW nor over a binary index;
//   "family": IndexBQFamily, the held-out check weighs this IndexBQ, BQR,
//   BKQ and BQT at its bits per coordinate; no other option, flat only)
//   binary      := a binary description (index_binary_factory) of the
//                  plan's code bits: IndexFromBinary over that index
//                  (nbits 1 or 2, no budget)
//   refine      := "RFlat" | "Refine(" description ")": IndexBQRefine
//
// A description whose core is not faiss_bq's goes to faiss::index_factory
// unchanged. The nesting is FAISS's: IDMap(Refine(PreTransform(core))), so
// the refine stage sees the vectors before any transform.
#include <faiss_bq/IndexBQTurbo.h>
#include <faiss_bq/index_factory.h>

#include <faiss_bq/IndexBQ.h>
#include <faiss_bq/IndexBQFamily.h>
#include <faiss_bq/IndexBQFastScan.h>
#include <faiss_bq/IndexBQRecurrent.h>
#include <faiss_bq/IndexBQRefine.h>
#include <faiss_bq/IndexBlockQuant.h>
#include <faiss_bq/IndexFromBinary.h>
#include <faiss_bq/IndexIVFBQ.h>
#include <faiss_bq/IndexIVFBQFastScan.h>
#include <faiss_bq/codes.h>

#include <faiss/IndexBinaryFlat.h>
#include <faiss/IndexBinaryHNSW.h>
#include <faiss/IndexBinaryHash.h>
#include <faiss/IndexBinaryIVF.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexPQ.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/IndexRefine.h>
#include <faiss/IndexScalarQuantizer.h>
#include <faiss/VectorTransform.h>
#include <faiss/impl/FaissAssert.h>
#include <faiss/index_factory.h>
#include <faiss_bq/IndexBinaryFlatFast.h>

#include <cctype>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <typeinfo>
#include <utility>
#include <vector>

namespace faiss_bq {

namespace {

/// One comma-separated piece of a description and where it starts in the
/// string the user passed (for error messages).
struct Token {
    std::string text;
    size_t pos = 0;
};

[[noreturn]] void bad_token(
        const std::string& description,
        const Token& t,
        const std::string& why) {
    FAISS_THROW_FMT(
            "faiss_bq::index_factory: token '%s' at position %zu of '%s': %s",
            t.text.c_str(),
            t.pos,
            description.c_str(),
            why.c_str());
}

/// Splits at the commas outside parentheses. `offset` is the position of
/// s[0] in the user's string.
std::vector<Token> tokenize(
        const std::string& s,
        size_t offset,
        const std::string& description) {
    std::vector<Token> tokens;
    int depth = 0;
    size_t begin = 0;
    for (size_t i = 0; i <= s.size(); i++) {
        const char c = i < s.size() ? s[i] : ',';
        if (c == '(') {
            depth++;
        } else if (c == ')') {
            if (--depth < 0) {
                bad_token(
                        description,
                        {s.substr(begin, i + 1 - begin), offset + begin},
                        "unmatched ')' at position " +
                                std::to_string(offset + i));
            }
        } else if (c == ',' && depth == 0) {
            Token t{s.substr(begin, i - begin), offset + begin};
            if (t.text.empty()) {
                bad_token(description, t, "empty token");
            }
            tokens.push_back(t);
            begin = i + 1;
        }
    }
    if (depth != 0) {
        bad_token(
                description,
                {s.substr(begin), offset + begin},
                "unmatched '('");
    }
    return tokens;
}

bool starts_with(const std::string& s, const char* prefix) {
    return s.compare(0, std::strlen(prefix), prefix) == 0;
}

/// Parses the decimal number at s[i...] (at most 6 digits); false if none.
bool parse_int(const std::string& s, size_t& i, int& value) {
    size_t j = i;
    value = 0;
    while (j < s.size() && std::isdigit((unsigned char)s[j]) && j - i < 6) {
        value = value * 10 + (s[j] - '0');
        j++;
    }
    if (j == i || (j < s.size() && std::isdigit((unsigned char)s[j]))) {
        return false;
    }
    i = j;
    return true;
}

/// What a "BQ..." token asks for.
struct BQSpec {
    int nbits = 1;
    size_t budget_bytes = 0; ///< "BQ<bytes>B"
    AllocationChoice allocation = AllocationChoice::automatic;
    bool matryoshka = false; ///< "_mrl"
    bool fast_scan = false;  ///< "_fs": IndexBQFastScan
    bool scalar = false;     ///< "_scalar": fast scan without joint nibbles
    QuantizationChoice quantization = QuantizationChoice::automatic;
    TransformChoice transform = TransformChoice::automatic;
    CenteringChoice centering = CenteringChoice::automatic;
    Estimator estimator = Estimator::asymmetric;
    int query_bits = 0;
    bool family = false; ///< "_family": IndexBQFamily
};

/// What a "BQR..." token asks for (n_stages 0: not recurrent).
struct BQRSpec {
    int n_stages = 0;
    bool symmetric = false;
    bool random_init = true;
    bool global_scales = false;
};

/// What a "BKQ..." token asks for (block_size 0: not BlockQuant).
struct BKQSpec {
    int block_size = 0;
    int direction_bits = 0;
    bool oblivious = false;
    bool unbiased = true;
};

/// What a "BQT..." token asks for (nbits 0: not TurboQuant-prod).
struct BQTSpec {
    int nbits = 0;
    bool rotated = true;
    bool centered = true;
};

/// The typed form of a description with a faiss_bq core.
struct FactorySpec {
    BQRSpec bqr;
    BQTSpec bqt;
    BKQSpec bkq;
    enum class Wrapper { none, idmap, idmap2 } wrapper = Wrapper::none;
    std::vector<Token> transforms;
    BQSpec bq;
    int hnsw_M = 0;     ///< 0: no HNSW graph over the BQ storage
    int ivf_nlist = 0;  ///< > 0: "IVF<nlist>[_HNSW<M>],BQ...": IndexIVFBQ
    int ivf_hnsw_M = 0; ///< > 0: the coarse quantizer is an IndexHNSWFlat
    Token binary;       ///< inside "BQ...(...)": an IndexFromBinary over it
    enum class Refine { none, flat, index } refine = Refine::none;
    Token refine_description; ///< inside "Refine(...)"
};

/// Parses "BQ<nbits>{_option}" starting at t.text[i].
BQSpec parse_bq(const std::string& description, const Token& t, size_t i) {
    BQSpec bq;
    const std::string& s = t.text;
    i += 2; // "BQ"
    if (!parse_int(s, i, bq.nbits)) {
        bad_token(
                description,
                t,
                "BQ takes 1 or 2 bits per coordinate (BQ1, "
                "BQ2) or a budget of bytes (BQ64B)");
    }
    if (i < s.size() && s[i] == 'B') {
        i++;
        if (bq.nbits < 1) {
            bad_token(description, t, "a budget of code bytes must be >= 1");
        }
        bq.budget_bytes = size_t(bq.nbits);
        bq.nbits = 0;
    } else if (bq.nbits != 1 && bq.nbits != 2) {
        bad_token(
                description,
                t,
                "BQ takes 1 or 2 bits per coordinate (BQ1, "
                "BQ2) or a budget of bytes (BQ64B)");
    }
    bool seen_transform = false, seen_centering = false, seen_sym = false,
         seen_q = false, seen_alloc = false, seen_mrl = false, seen_fs = false,
         seen_scalar = false, seen_quantization = false, seen_family = false;
    size_t n_options = 0;
    while (i < s.size()) {
        if (s[i] != '_') {
            bad_token(
                    description,
                    t,
                    "expected '_' before an option at position " +
                            std::to_string(t.pos + i));
        }
        const size_t opt_begin = ++i;
        while (i < s.size() && s[i] != '_') {
            i++;
        }
        const std::string opt = s.substr(opt_begin, i - opt_begin);
        n_options++;
        const std::string where = "option '" + opt + "' at position " +
                std::to_string(t.pos + opt_begin);
        auto once = [&](bool& seen) {
            if (seen) {
                bad_token(
                        description,
                        t,
                        where + " conflicts with an earlier option");
            }
            seen = true;
        };
        if (opt == "rot" || opt == "axis" || opt == "pca") {
            once(seen_transform);
            bq.transform = opt == "rot" ? TransformChoice::random_rotation
                    : opt == "pca"      ? TransformChoice::pca
                                        : TransformChoice::identity;
        } else if (opt == "alloc" || opt == "uniform") {
            once(seen_alloc);
            if (bq.budget_bytes == 0) {
                bad_token(
                        description, t, where + " needs a budget (BQ<bytes>B)");
            }
            bq.allocation = opt == "alloc" ? AllocationChoice::allocated
                                           : AllocationChoice::uniform;
        } else if (opt == "mrl") {
            once(seen_mrl);
            if (bq.budget_bytes == 0) {
                bad_token(
                        description, t, where + " needs a budget (BQ<bytes>B)");
            }
            bq.matryoshka = true;
        } else if (opt == "eden" || opt == "tqmse" || opt == "lm") {
            once(seen_quantization);
            bq.quantization = opt == "eden" ? QuantizationChoice::eden
                    : opt == "tqmse"        ? QuantizationChoice::turbo_mse
                                            : QuantizationChoice::lloyd_max;
        } else if (opt == "family") {
            once(seen_family);
            bq.family = true;
        } else if (opt == "fs") {
            once(seen_fs);
            bq.fast_scan = true;
        } else if (opt == "scalar") {
            once(seen_scalar);
            bq.scalar = true;
        } else if (opt == "ctr" || opt == "noctr") {
            once(seen_centering);
            bq.centering = opt == "ctr" ? CenteringChoice::centered
                                        : CenteringChoice::uncentered;
        } else if (opt == "sym") {
            once(seen_sym);
            bq.estimator = Estimator::symmetric;
        } else if (!opt.empty() && opt[0] == 'q') {
            once(seen_q);
            size_t k = 1;
            if (!parse_int(opt, k, bq.query_bits) || k != opt.size() ||
                bq.query_bits < 4 || bq.query_bits > 8) {
                bad_token(description, t, where + ": query bits must be 4..8");
            }
        } else {
            bad_token(
                    description,
                    t,
                    "unknown " + where +
                            " (rot, axis, pca, ctr, noctr, sym, q4..q8, alloc, "
                            "uniform, mrl, eden, tqmse, lm, fs, scalar, family)");
        }
    }
    if (bq.family && n_options > 1) {
        bad_token(
                description,
                t,
                "_family weighs whole families of codes (IndexBQ's trainer "
                "with its defaults, BQR, BKQ, BQT): it takes no other option");
    }
    if ((bq.quantization == QuantizationChoice::eden ||
         bq.quantization == QuantizationChoice::turbo_mse) &&
        (bq.allocation == AllocationChoice::allocated ||
         bq.transform == TransformChoice::pca)) {
        bad_token(
                description,
                t,
                std::string(
                        bq.quantization == QuantizationChoice::eden
                                ? "_eden"
                                : "_tqmse") +
                        " plans are uniform in a rotated (or _axis) basis: "
                        "not with _alloc or _pca");
    }
    if (bq.budget_bytes > 0 && bq.estimator == Estimator::symmetric) {
        bad_token(
                description,
                t,
                "a budget needs the asymmetric estimator, not sym");
    }
    if (bq.fast_scan &&
        (bq.estimator == Estimator::symmetric || bq.query_bits != 0)) {
        bad_token(
                description,
                t,
                "fast scan (_fs) has the asymmetric float-query estimator "
                "only: _sym and _q<b> do not apply");
    }
    if (bq.scalar && !bq.fast_scan) {
        bad_token(
                description,
                t,
                "_scalar (per-coordinate levels instead of joint nibbles) "
                "applies to fast scan only: add _fs");
    }
    if (bq.estimator == Estimator::symmetric && bq.query_bits != 0) {
        bad_token(
                description,
                t,
                "query bits apply to the asymmetric estimator, not sym");
    }
    return bq;
}

/// The "_flag" options of t.text from position i on: each one of `flags`
/// (its name, and the bool it sets), at most once; `kind` names the token
/// ("BQR") in the messages.
void parse_flags(
        const std::string& description,
        const Token& t,
        size_t i,
        const char* kind,
        std::initializer_list<std::pair<const char*, bool*>> flags) {
    std::string names;
    for (const auto& f : flags) {
        names += (names.empty() ? "" : ", ") + std::string(f.first);
    }
    const std::string& s = t.text;
    while (i < s.size()) {
        if (s[i] != '_') {
            bad_token(
                    description,
                    t,
                    "expected '_' before an option at position " +
                            std::to_string(t.pos + i));
        }
        const size_t opt_begin = ++i;
        while (i < s.size() && s[i] != '_') {
            i++;
        }
        const std::string opt = s.substr(opt_begin, i - opt_begin);
        const std::string where = "option '" + opt + "' at position " +
                std::to_string(t.pos + opt_begin);
        bool* seen = nullptr;
        for (const auto& f : flags) {
            if (opt == f.first) {
                seen = f.second;
            }
        }
        if (!seen) {
            bad_token(
                    description,
                    t,
                    "unknown " + where + " of " + kind + " (" + names + ")");
        }
        if (*seen) {
            bad_token(description, t, where + " is repeated");
        }
        *seen = true;
    }
}

/// Parses "BQR<stages>{_option}" (the whole token).
BQRSpec parse_bqr(const std::string& description, const Token& t) {
    BQRSpec r;
    const std::string& s = t.text;
    size_t i = 3; // "BQR"
    if (!parse_int(s, i, r.n_stages)) {
        bad_token(description, t, "BQR takes a number of stages, 1..4 (BQR2)");
    }
    if (r.n_stages < 1 || r.n_stages > 4) {
        bad_token(
                description,
                t,
                "stage count " + std::to_string(r.n_stages) +
                        " is outside 1..4");
    }
    bool seen_sym = false, seen_axis = false, seen_gscale = false;
    parse_flags(
            description,
            t,
            i,
            "BQR",
            {{"sym", &seen_sym},
             {"axis", &seen_axis},
             {"gscale", &seen_gscale}});
    r.symmetric = seen_sym;
    r.random_init = !seen_axis;
    r.global_scales = seen_gscale;
    return r;
}

/// Parses "BKQ<k>x<m>{_option}" (the whole token).
BKQSpec parse_bkq(const std::string& description, const Token& t) {
    BKQSpec r;
    const std::string& s = t.text;
    size_t i = 3; // "BKQ"
    if (!parse_int(s, i, r.block_size) || i >= s.size() || s[i] != 'x' ||
        !parse_int(s, ++i, r.direction_bits)) {
        bad_token(
                description,
                t,
                "BKQ takes a block size and direction bits (BKQ8x6)");
    }
    if (r.block_size < 2 || r.block_size > 32) {
        bad_token(
                description,
                t,
                "block size " + std::to_string(r.block_size) +
                        " is outside 2..32");
    }
    if (r.direction_bits < 1 || r.direction_bits > 8) {
        bad_token(
                description,
                t,
                "direction bits " + std::to_string(r.direction_bits) +
                        " are outside 1..8");
    }
    bool seen_obl = false, seen_nocorr = false;
    parse_flags(
            description,
            t,
            i,
            "BKQ",
            {{"obl", &seen_obl}, {"nocorr", &seen_nocorr}});
    r.oblivious = seen_obl;
    r.unbiased = !seen_nocorr;
    return r;
}

/// Parses "BQT<bits>{_option}" (the whole token).
BQTSpec parse_bqt(const std::string& description, const Token& t) {
    BQTSpec r;
    const std::string& s = t.text;
    size_t i = 3; // "BQT"
    if (!parse_int(s, i, r.nbits)) {
        bad_token(
                description,
                t,
                "BQT takes a number of bits per coordinate, 2..4 (BQT2)");
    }
    if (r.nbits < 2 || r.nbits > 4) {
        bad_token(
                description,
                t,
                "bit count " + std::to_string(r.nbits) +
                        " is outside 2..4 (bits - 1 of MSE code and 1 of "
                        "sketch)");
    }
    bool seen_axis = false, seen_noctr = false;
    parse_flags(
            description,
            t,
            i,
            "BQT",
            {{"axis", &seen_axis}, {"noctr", &seen_noctr}});
    r.rotated = !seen_axis;
    r.centered = !seen_noctr;
    return r;
}

/// "BQ..." or "HNSW[M]_BQ...": true and fills spec if t is a faiss_bq core.
bool parse_core(
        const std::string& description,
        const Token& t,
        FactorySpec& spec) {
    const std::string& s = t.text;
    if (starts_with(s, "BQR")) {
        spec.bqr = parse_bqr(description, t);
        return true;
    }
    if (starts_with(s, "BKQ")) {
        spec.bkq = parse_bkq(description, t);
        return true;
    }
    if (starts_with(s, "BQT")) {
        spec.bqt = parse_bqt(description, t);
        return true;
    }
    if (starts_with(s, "BQ")) {
        const size_t open = s.find('(');
        if (open == std::string::npos) {
            spec.bq = parse_bq(description, t, 0);
            return true;
        }
        if (s.back() != ')' || open + 2 >= s.size()) {
            bad_token(
                    description, t, "expected BQ<n>[_options](<binary index>)");
        }
        spec.bq = parse_bq(description, {s.substr(0, open), t.pos}, 0);
        if (spec.bq.estimator != Estimator::asymmetric ||
            spec.bq.query_bits != 0) {
            bad_token(
                    description,
                    t,
                    "a binary index scores Hamming distances: _sym and "
                    "_q<b> do not apply");
        }
        if (spec.bq.budget_bytes > 0 || spec.bq.nbits > 2 ||
            spec.bq.transform == TransformChoice::pca ||
            spec.bq.allocation != AllocationChoice::automatic ||
            spec.bq.matryoshka || spec.bq.fast_scan || spec.bq.family ||
            spec.bq.quantization != QuantizationChoice::automatic) {
            bad_token(
                    description,
                    t,
                    "a binary index stores uniform 1- or 2-bit plans "
                    "(BQ1 or BQ2, axis or rot; no _fs, _eden, _tqmse, _lm, "
                    "_family)");
        }
        spec.binary = {
                s.substr(open + 1, s.size() - open - 2), t.pos + open + 1};
        return true;
    }
    if (starts_with(s, "HNSW")) {
        const size_t bq_at = s.find("_BQ");
        if (bq_at == std::string::npos) {
            return false; // FAISS's own HNSW
        }
        size_t i = 4;
        spec.hnsw_M = 32; // FAISS's default
        if (i < bq_at &&
            (!parse_int(s, i, spec.hnsw_M) || i != bq_at || spec.hnsw_M < 2 ||
             spec.hnsw_M > 4096)) {
            bad_token(description, t, "HNSW M must be in 2..4096");
        }
        spec.bq = parse_bq(description, t, bq_at + 1);
        if (spec.bq.fast_scan || spec.bq.family) {
            bad_token(
                    description,
                    t,
                    std::string("HNSW stores its vectors in an IndexBQ: ") +
                            (spec.bq.fast_scan ? "_fs" : "_family") +
                            " does not apply");
        }
        return true;
    }
    return false;
}

/// "IVF<nlist>[_HNSW<M>]" followed by a "BQ..." token: true and fills spec.
bool parse_ivf(
        const std::string& description,
        const Token& t,
        const Token* next,
        FactorySpec& spec) {
    const std::string& s = t.text;
    if (starts_with(s, "IVF") && next && starts_with(next->text, "BKQ")) {
        bad_token(
                description,
                *next,
                "BlockQuant codes (BKQ) are flat only: no IVF over them");
    }
    if (!starts_with(s, "IVF") || !next || !starts_with(next->text, "BQ")) {
        return false; // FAISS's own IVF (IVF4096,Flat, IVF4096,PQ64x4fs, ...)
    }
    if (starts_with(next->text, "BQR") || starts_with(next->text, "BQT")) {
        bad_token(
                description,
                *next,
                "recurrent (BQR) and TurboQuant (BQT) codes are flat only: "
                "no IVF over them");
    }
    size_t i = 3;
    if (!parse_int(s, i, spec.ivf_nlist) || spec.ivf_nlist < 1) {
        bad_token(description, t, "IVF takes a number of lists >= 1 (IVF4096)");
    }
    if (i < s.size()) {
        if (s.compare(i, 5, "_HNSW") != 0) {
            bad_token(
                    description,
                    t,
                    "expected IVF<nlist> or IVF<nlist>_HNSW<M>");
        }
        i += 5;
        if (!parse_int(s, i, spec.ivf_hnsw_M) || i != s.size() ||
            spec.ivf_hnsw_M < 2 || spec.ivf_hnsw_M > 4096) {
            bad_token(description, t, "HNSW M must be in 2..4096");
        }
    }
    if (next->text.find('(') != std::string::npos) {
        bad_token(
                description,
                *next,
                "an IVF stores its own codes: no binary index");
    }
    spec.bq = parse_bq(description, *next, 0);
    if (spec.bq.family) {
        bad_token(
                description,
                *next,
                "_family may choose a flat-only family (BQR, BKQ, BQT): no "
                "IVF over it");
    }
    if (spec.bq.estimator != Estimator::asymmetric) {
        bad_token(
                description,
                *next,
                "IVF lists are scored by the asymmetric estimator: _sym does "
                "not apply");
    }
    return true;
}

bool is_transform(const std::string& s) {
    for (const char* p :
         {"PCA", "L2norm", "L2Norm", "RR", "ITQ", "OPQ", "Pad"}) {
        if (starts_with(s, p)) {
            return true;
        }
    }
    return false;
}

/// A vector transform token built by FAISS's own grammar (FAISS 1.7.3 does
/// not export its transform parser, so it parses "<token>,Flat" and the
/// transform is taken out of the IndexPreTransform).
faiss::VectorTransform* make_transform(
        const std::string& description,
        const Token& t,
        int d,
        faiss::MetricType metric) {
    std::unique_ptr<faiss::Index> index;
    try {
        index.reset(
                faiss::index_factory(d, (t.text + ",Flat").c_str(), metric));
    } catch (const faiss::FaissException& e) {
        bad_token(description, t, std::string("FAISS: ") + e.what());
    }
    auto pt = dynamic_cast<faiss::IndexPreTransform*>(index.get());
    if (!pt || pt->chain.size() != 1) {
        bad_token(description, t, "not a FAISS vector transform");
    }
    faiss::VectorTransform* vt = pt->chain[0];
    pt->chain.clear();
    return vt;
}

faiss::Index* make_from_binary(
        int d,
        const FactorySpec& spec,
        const std::string& description,
        faiss::MetricType metric) {
    const CodeLayout layout(d, spec.bq.nbits);
    const int bits = int(8 * (layout.code_size - CodeLayout::factor_bytes));
    std::unique_ptr<faiss::IndexBinary> binary;
    try {
        binary.reset(index_binary_factory(bits, spec.binary.text.c_str()));
    } catch (const faiss::FaissException& e) {
        bad_token(description, spec.binary, e.what());
    }
    auto fb = std::make_unique<IndexFromBinary>(
            binary.get(), d, spec.bq.nbits, metric);
    binary.release();
    fb->own_fields = true;
    fb->trainer.transform = spec.bq.transform;
    fb->trainer.centering = spec.bq.centering;
    return fb.release();
}

faiss::Index* make_ivf(
        int d,
        const FactorySpec& spec,
        faiss::MetricType metric) {
    std::unique_ptr<faiss::Index> quantizer(
            spec.ivf_hnsw_M > 0
                    ? static_cast<faiss::Index*>(new faiss::IndexHNSWFlat(
                              d, spec.ivf_hnsw_M, metric))
                    : new faiss::IndexFlat(d, metric));
    const size_t nlist = size_t(spec.ivf_nlist);
    std::unique_ptr<IndexIVFBQ> ivf;
    if (spec.bq.fast_scan) {
        ivf.reset(
                spec.bq.budget_bytes > 0
                        ? new IndexIVFBQFastScan(
                                  quantizer.get(),
                                  d,
                                  nlist,
                                  CodeBudget{spec.bq.budget_bytes},
                                  metric)
                        : new IndexIVFBQFastScan(
                                  quantizer.get(),
                                  d,
                                  nlist,
                                  spec.bq.nbits,
                                  metric));
        ivf->trainer.joint_nibbles = !spec.bq.scalar;
    } else {
        ivf.reset(
                spec.bq.budget_bytes > 0
                        ? new IndexIVFBQ(
                                  quantizer.get(),
                                  d,
                                  nlist,
                                  CodeBudget{spec.bq.budget_bytes},
                                  metric)
                        : new IndexIVFBQ(
                                  quantizer.get(),
                                  d,
                                  nlist,
                                  spec.bq.nbits,
                                  metric));
    }
    quantizer.release();
    ivf->own_fields = true;
    ivf->trainer.allocation = spec.bq.allocation;
    ivf->trainer.matryoshka = spec.bq.matryoshka;
    ivf->trainer.transform = spec.bq.transform;
    ivf->trainer.centering = spec.bq.centering;
    ivf->trainer.quantization = spec.bq.quantization;
    ivf->query_bits = spec.bq.query_bits;
    return ivf.release();
}

faiss::Index* make_bq_core(
        int d,
        const FactorySpec& spec,
        const std::string& description,
        faiss::MetricType metric) {
    if (spec.bkq.block_size > 0) {
        auto b = std::make_unique<IndexBlockQuant>(
                d,
                spec.bkq.block_size,
                spec.bkq.direction_bits,
                metric,
                spec.bkq.oblivious);
        b->unbiased = spec.bkq.unbiased;
        return b.release();
    }
    if (spec.bqr.n_stages > 0) {
        auto r = std::make_unique<IndexBQRecurrent>(
                d, spec.bqr.n_stages, metric, !spec.bqr.global_scales);
        r->estimator = spec.bqr.symmetric ? Estimator::symmetric
                                          : Estimator::asymmetric;
        r->random_init = spec.bqr.random_init;
        return r.release();
    }
    if (spec.bqt.nbits > 0) {
        auto r = std::make_unique<IndexBQTurbo>(d, spec.bqt.nbits, metric);
        r->transform = spec.bqt.rotated ? Transform::random_rotation
                                        : Transform::identity;
        r->centered = spec.bqt.centered;
        return r.release();
    }
    if (!spec.binary.text.empty()) {
        return make_from_binary(d, spec, description, metric);
    }
    if (spec.ivf_nlist > 0) {
        return make_ivf(d, spec, metric);
    }
    if (spec.bq.family) {
        return spec.bq.budget_bytes > 0
                ? new IndexBQFamily(d, CodeBudget{spec.bq.budget_bytes}, metric)
                : new IndexBQFamily(d, spec.bq.nbits, metric);
    }
    auto bq = spec.bq.budget_bytes > 0
            ? std::make_unique<IndexBQ>(
                      d, CodeBudget{spec.bq.budget_bytes}, metric)
            : std::make_unique<IndexBQ>(d, spec.bq.nbits, metric);
    bq->trainer.allocation = spec.bq.allocation;
    bq->trainer.matryoshka = spec.bq.matryoshka;
    bq->trainer.transform = spec.bq.transform;
    bq->trainer.centering = spec.bq.centering;
    bq->trainer.quantization = spec.bq.quantization;
    bq->estimator = spec.bq.estimator;
    bq->query_bits = spec.bq.query_bits;
    if (spec.bq.fast_scan) {
        auto fs = new IndexBQFastScan(*bq);
        fs->trainer.joint_nibbles = !spec.bq.scalar;
        return fs;
    }
    if (spec.hnsw_M == 0) {
        return bq.release();
    }
    auto hnsw = std::make_unique<faiss::IndexHNSW>(bq.get(), spec.hnsw_M);
    bq.release();
    hnsw->own_fields = true;
    // faiss::Index starts as trained; the graph is not until its storage is.
    hnsw->is_trained = false;
    return hnsw.release();
}

faiss::Index* index_factory_at(
        int d,
        const std::string& s,
        size_t offset,
        const std::string& description,
        faiss::MetricType metric);

faiss::Index* build(
        int d,
        const FactorySpec& spec,
        const std::string& description,
        faiss::MetricType metric) {
    std::vector<std::unique_ptr<faiss::VectorTransform>> chain;
    int d_core = d;
    for (const Token& t : spec.transforms) {
        chain.emplace_back(make_transform(description, t, d_core, metric));
        d_core = chain.back()->d_out;
    }
    std::unique_ptr<faiss::Index> index(
            make_bq_core(d_core, spec, description, metric));
    if (!chain.empty()) {
        auto pt = std::make_unique<faiss::IndexPreTransform>(index.get());
        index.release();
        pt->own_fields = true;
        while (!chain.empty()) {
            pt->prepend_transform(chain.back().release());
            chain.pop_back();
        }
        index = std::move(pt);
    }
    if (spec.refine != FactorySpec::Refine::none) {
        // FAISS's nesting, faiss_bq's refine: per-search k_factor.
        std::unique_ptr<faiss::Index> refine;
        if (spec.refine == FactorySpec::Refine::index) {
            const Token& r = spec.refine_description;
            refine.reset(
                    index_factory_at(d, r.text, r.pos, description, metric));
        }
        auto rf = std::make_unique<IndexBQRefine>(index.get(), refine.get());
        index.release();
        rf->own_fields = true;
        if (refine) {
            refine.release();
            rf->own_refine_index = true;
        }
        index = std::move(rf);
    }
    if (spec.wrapper != FactorySpec::Wrapper::none) {
        std::unique_ptr<faiss::IndexIDMap> map(
                spec.wrapper == FactorySpec::Wrapper::idmap2
                        ? new faiss::IndexIDMap2(index.get())
                        : new faiss::IndexIDMap(index.get()));
        index.release();
        map->own_fields = true;
        index = std::move(map);
    }
    return index.release();
}

faiss::Index* index_factory_at(
        int d,
        const std::string& s,
        size_t offset,
        const std::string& description,
        faiss::MetricType metric) {
    FAISS_THROW_IF_NOT_FMT(
            d > 0, "faiss_bq::index_factory: d=%d must be > 0", d);
    const std::vector<Token> tokens = tokenize(s, offset, description);
    FactorySpec spec;
    size_t i = 0;
    if (tokens[i].text == "IDMap" || tokens[i].text == "IDMap2") {
        spec.wrapper = tokens[i].text == "IDMap" ? FactorySpec::Wrapper::idmap
                                                 : FactorySpec::Wrapper::idmap2;
        i++;
    }
    while (i < tokens.size() && is_transform(tokens[i].text)) {
        spec.transforms.push_back(tokens[i++]);
    }
    if (i == tokens.size()) {
        bad_token(
                description,
                tokens.back(),
                "the description has no index after it");
    }
    if (parse_ivf(
                description,
                tokens[i],
                i + 1 < tokens.size() ? &tokens[i + 1] : nullptr,
                spec)) {
        i++;
    } else if (!parse_core(description, tokens[i], spec)) {
        // Not ours: FAISS parses the whole description, unchanged.
        try {
            return faiss::index_factory(d, s.c_str(), metric);
        } catch (const faiss::FaissException& e) {
            bad_token(
                    description, tokens[i], std::string("FAISS: ") + e.what());
        }
    }
    i++;
    if (i < tokens.size()) {
        const Token& t = tokens[i];
        if (t.text == "RFlat") {
            spec.refine = FactorySpec::Refine::flat;
        } else if (
                starts_with(t.text, "Refine(") && t.text.back() == ')' &&
                t.text.size() > 8) {
            spec.refine = FactorySpec::Refine::index;
            spec.refine_description = {
                    t.text.substr(7, t.text.size() - 8), t.pos + 7};
        } else {
            bad_token(
                    description,
                    t,
                    "unknown token after the index (expected RFlat or "
                    "Refine(...))");
        }
        i++;
    }
    if (i < tokens.size()) {
        bad_token(
                description,
                tokens[i],
                "unexpected token after the refine stage");
    }
    return build(d, spec, description, metric);
}

// ---- reverse

/// head ("BQ1", "BQ64B") and the options of the trainer's forced choices.
std::string plan_string(std::string s, const TrainerOptions& trainer) {
    switch (trainer.transform) {
        case TransformChoice::pca:
            s += "_pca";
            break;
        case TransformChoice::identity:
            s += "_axis";
            break;
        case TransformChoice::random_rotation:
            s += "_rot";
            break;
        case TransformChoice::automatic:
            break;
    }
    switch (trainer.centering) {
        case CenteringChoice::centered:
            s += "_ctr";
            break;
        case CenteringChoice::uncentered:
            s += "_noctr";
            break;
        case CenteringChoice::automatic:
            break;
    }
    return s;
}

/// "BQ<n>" or "BQ<bytes>B" with the trainer's options.
std::string bq_plan_string(
        int nbits,
        size_t budget_bytes,
        const TrainerOptions& trainer) {
    std::string head = budget_bytes > 0
            ? "BQ" + std::to_string(budget_bytes) + "B"
            : "BQ" + std::to_string(nbits);
    if (budget_bytes > 0 && trainer.allocation != AllocationChoice::automatic) {
        head += trainer.allocation == AllocationChoice::allocated ? "_alloc"
                                                                  : "_uniform";
    }
    if (trainer.matryoshka) {
        head += "_mrl";
    }
    if (trainer.quantization != QuantizationChoice::automatic) {
        head += trainer.quantization == QuantizationChoice::eden ? "_eden"
                : trainer.quantization == QuantizationChoice::turbo_mse
                ? "_tqmse"
                : "_lm";
    }
    return plan_string(head, trainer);
}

std::string bq_string(const IndexBQ& bq) {
    std::string s = bq_plan_string(bq.nbits, bq.budget_bytes, bq.trainer);
    if (bq.estimator == Estimator::symmetric) {
        s += "_sym";
    }
    if (bq.query_bits != 0) {
        s += "_q" + std::to_string(bq.query_bits);
    }
    return s;
}

[[noreturn]] void unnamed(const char* what, const std::type_info& type) {
    FAISS_THROW_FMT(
            "faiss_bq::index_factory_string: %s of type %s has no factory "
            "string",
            what,
            type.name());
}

std::string transform_string(const faiss::VectorTransform* vt) {
    if (auto nt = dynamic_cast<const faiss::NormalizationTransform*>(vt)) {
        if (nt->norm == 2.0f) {
            return "L2norm";
        }
    } else if (dynamic_cast<const faiss::RandomRotationMatrix*>(vt)) {
        return "RR" + std::to_string(vt->d_out);
    } else if (auto pca = dynamic_cast<const faiss::PCAMatrix*>(vt)) {
        if (pca->eigen_power == 0 || pca->eigen_power == -0.5f) {
            return std::string("PCA") + (pca->eigen_power != 0 ? "W" : "") +
                    (pca->random_rotation ? "R" : "") +
                    std::to_string(vt->d_out);
        }
    } else if (auto opq = dynamic_cast<const faiss::OPQMatrix*>(vt)) {
        return "OPQ" + std::to_string(opq->M) + "_" + std::to_string(vt->d_out);
    }
    unnamed("vector transform", typeid(*vt));
}

std::string faiss_core_string(const faiss::Index* index) {
    if (auto bq = dynamic_cast<const IndexBQ*>(index)) {
        return bq_string(*bq);
    }
    if (auto r = dynamic_cast<const IndexBQRecurrent*>(index)) {
        return "BQR" + std::to_string(r->n_stages) +
                (r->random_init ? "" : "_axis") +
                (r->per_vector_scales ? "" : "_gscale") +
                (r->estimator == Estimator::symmetric ? "_sym" : "");
    }
    if (auto f = dynamic_cast<const IndexBQFamily*>(index)) {
        return f->head() + "_family";
    }
    if (auto b = dynamic_cast<const IndexBlockQuant*>(index)) {
        return "BKQ" + std::to_string(b->block_size) + "x" +
                std::to_string(b->direction_bits) +
                (b->oblivious ? "_obl" : "") + (b->unbiased ? "" : "_nocorr");
    }
    if (auto r = dynamic_cast<const IndexBQTurbo*>(index)) {
        return "BQT" + std::to_string(r->nbits) +
                (r->transform == Transform::identity ? "_axis" : "") +
                (r->centered ? "" : "_noctr");
    }
    if (auto ivf = dynamic_cast<const IndexIVFBQ*>(index)) {
        std::string head = "IVF" + std::to_string(ivf->nlist);
        if (auto hq =
                    dynamic_cast<const faiss::IndexHNSWFlat*>(ivf->quantizer)) {
            head += "_HNSW" + std::to_string(hq->hnsw.nb_neighbors(1));
        } else if (!dynamic_cast<const faiss::IndexFlat*>(ivf->quantizer)) {
            unnamed("IVF coarse quantizer", typeid(*ivf->quantizer));
        }
        std::string s = head + "," +
                bq_plan_string(ivf->nbits, ivf->budget_bytes, ivf->trainer);
        if (dynamic_cast<const IndexIVFBQFastScan*>(ivf)) {
            s += std::string("_fs") +
                    (ivf->trainer.joint_nibbles ? "" : "_scalar");
        }
        if (ivf->query_bits != 0) {
            s += "_q" + std::to_string(ivf->query_bits);
        }
        return s;
    }
    if (auto fs = dynamic_cast<const IndexBQFastScan*>(index)) {
        return bq_plan_string(fs->nbits, fs->budget_bytes, fs->trainer) +
                "_fs" + (fs->trainer.joint_nibbles ? "" : "_scalar");
    }
    if (auto fb = dynamic_cast<const IndexFromBinary*>(index)) {
        return plan_string("BQ" + std::to_string(fb->nbits), fb->trainer) +
                "(" + index_factory_string(fb->index) + ")";
    }
    if (typeid(*index) == typeid(faiss::IndexHNSW)) {
        auto hnsw = static_cast<const faiss::IndexHNSW*>(index);
        if (auto bq = dynamic_cast<const IndexBQ*>(hnsw->storage)) {
            return "HNSW" + std::to_string(hnsw->hnsw.nb_neighbors(1)) + "_" +
                    bq_string(*bq);
        }
    }
    if (dynamic_cast<const faiss::IndexFlat*>(index)) {
        return "Flat";
    }
    if (auto hnsw = dynamic_cast<const faiss::IndexHNSWFlat*>(index)) {
        return "HNSW" + std::to_string(hnsw->hnsw.nb_neighbors(1)) + ",Flat";
    }
    if (auto sq = dynamic_cast<const faiss::IndexScalarQuantizer*>(index)) {
        using QT = faiss::ScalarQuantizer::QuantizerType;
        switch (sq->sq.qtype) {
            case QT::QT_8bit:
                return "SQ8";
            case QT::QT_4bit:
                return "SQ4";
            case QT::QT_6bit:
                return "SQ6";
            case QT::QT_fp16:
                return "SQfp16";
            default:
                break;
        }
    }
    if (auto pq = dynamic_cast<const faiss::IndexPQ*>(index)) {
        if (typeid(*index) == typeid(faiss::IndexPQ)) {
            return "PQ" + std::to_string(pq->pq.M) + "x" +
                    std::to_string(pq->pq.nbits);
        }
    }
    unnamed("index", typeid(*index));
}

} // namespace

faiss::Index* index_factory(
        int d,
        const char* description,
        faiss::MetricType metric) {
    FAISS_THROW_IF_NOT_MSG(
            description, "faiss_bq::index_factory: null description");
    const std::string s(description);
    return index_factory_at(d, s, 0, s, metric);
}

std::string index_factory_string(const faiss::Index* index) {
    FAISS_THROW_IF_NOT_MSG(index, "faiss_bq::index_factory_string: null index");
    if (auto map2 = dynamic_cast<const faiss::IndexIDMap2*>(index)) {
        return "IDMap2," + index_factory_string(map2->index);
    }
    if (auto map = dynamic_cast<const faiss::IndexIDMap*>(index)) {
        return "IDMap," + index_factory_string(map->index);
    }
    if (auto rf = dynamic_cast<const IndexBQRefine*>(index)) {
        const bool exact =
                dynamic_cast<const faiss::IndexFlat*>(rf->refine_index);
        return index_factory_string(rf->base_index) +
                (exact ? std::string(",RFlat")
                       : ",Refine(" + index_factory_string(rf->refine_index) +
                                 ")");
    }
    // FAISS's own refine (e.g. read from a FAISS file) has the same string,
    // which builds IndexBQRefine: the same search, plus per-search options.
    if (auto rf = dynamic_cast<const faiss::IndexRefine*>(index)) {
        const bool rflat = dynamic_cast<const faiss::IndexRefineFlat*>(rf);
        return index_factory_string(rf->base_index) +
                (rflat ? std::string(",RFlat")
                       : ",Refine(" + index_factory_string(rf->refine_index) +
                                 ")");
    }
    if (auto pt = dynamic_cast<const faiss::IndexPreTransform*>(index)) {
        std::string s;
        for (const faiss::VectorTransform* vt : pt->chain) {
            s += transform_string(vt) + ",";
        }
        return s + index_factory_string(pt->index);
    }
    return faiss_core_string(index);
}

// ---- binary side

namespace {

/// The one place that decides which class "BFlat" builds: the drop-in
/// replacement of faiss::IndexBinaryFlat (same results, SIMD kernels).
faiss::IndexBinary* make_binary_flat(int d) {
    return new IndexBinaryFlatFast(d);
}

} // namespace

faiss::IndexBinary* index_binary_factory(int d, const char* description) {
    FAISS_THROW_IF_NOT_MSG(
            description, "faiss_bq::index_binary_factory: null description");
    const std::string s(description);
    FAISS_THROW_IF_NOT_FMT(
            d > 0 && d % 8 == 0,
            "faiss_bq::index_binary_factory: d=%d must be a positive multiple "
            "of 8",
            d);
    const std::vector<Token> tokens = tokenize(s, 0, s);
    size_t i = 0;
    const std::string wrapper = tokens[0].text;
    if (wrapper == "IDMap" || wrapper == "IDMap2") {
        i++;
    }
    if (i == tokens.size()) {
        bad_token(s, tokens.back(), "the description has no index after it");
    }
    if (i + 1 < tokens.size()) {
        bad_token(s, tokens[i + 1], "unexpected token after the binary index");
    }
    const Token& core = tokens[i];
    std::unique_ptr<faiss::IndexBinary> index;
    if (core.text == "BFlat") {
        index.reset(make_binary_flat(d));
    } else {
        try {
            index.reset(faiss::index_binary_factory(d, core.text.c_str()));
        } catch (const faiss::FaissException& e) {
            bad_token(s, core, std::string("FAISS: ") + e.what());
        }
    }
    if (i == 0) {
        return index.release();
    }
    std::unique_ptr<faiss::IndexBinaryIDMap> map(
            wrapper == "IDMap2" ? new faiss::IndexBinaryIDMap2(index.get())
                                : new faiss::IndexBinaryIDMap(index.get()));
    index.release();
    map->own_fields = true;
    return map.release();
}

std::string index_factory_string(const faiss::IndexBinary* index) {
    FAISS_THROW_IF_NOT_MSG(index, "faiss_bq::index_factory_string: null index");
    if (auto map2 = dynamic_cast<const faiss::IndexBinaryIDMap2*>(index)) {
        return "IDMap2," + index_factory_string(map2->index);
    }
    if (auto map = dynamic_cast<const faiss::IndexBinaryIDMap*>(index)) {
        return "IDMap," + index_factory_string(map->index);
    }
    if (dynamic_cast<const IndexBinaryFlatFast*>(index) ||
        dynamic_cast<const faiss::IndexBinaryFlat*>(index)) {
        return "BFlat";
    }
    if (auto hnsw = dynamic_cast<const faiss::IndexBinaryHNSW*>(index)) {
        return "BHNSW" + std::to_string(hnsw->hnsw.nb_neighbors(1));
    }
    if (auto ivf = dynamic_cast<const faiss::IndexBinaryIVF*>(index)) {
        // a flat quantizer, FAISS's or the drop-in (read back from a file)
        if (dynamic_cast<const faiss::IndexBinaryFlat*>(ivf->quantizer) ||
            dynamic_cast<const IndexBinaryFlatFast*>(ivf->quantizer)) {
            return "BIVF" + std::to_string(ivf->nlist);
        }
    }
    if (auto hash = dynamic_cast<const faiss::IndexBinaryHash*>(index)) {
        return "BHash" + std::to_string(hash->b);
    }
    if (auto mhash = dynamic_cast<const faiss::IndexBinaryMultiHash*>(index)) {
        return "BHash" + std::to_string(mhash->nhash) + "x" +
                std::to_string(mhash->b);
    }
    unnamed("binary index", typeid(*index));
}

} // namespace faiss_bq
