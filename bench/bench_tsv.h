// The benches' rows as tab-separated values: what bq_bench --tsv writes,
// what a reference program (fast_scan_ref) prints for bq_bench to merge,
// and what bench/plot_recall_qps.py draws. Header-only: fast_scan_ref is
// built against other FAISS builds without faiss_bq.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace faiss_bq {
namespace bench {

struct TsvRow {
    std::string name;
    std::string family; ///< the plot's Pareto fronts are drawn per family
    double bytes_per_vector = 0;
    double recall = 0; ///< 10-recall@10
    double qps_batch = 0;
    double qps_single = 0;
    double train_seconds = 0;
    double add_seconds = 0;
    std::string build; ///< the library that ran it, e.g. "faiss_bq avx512"
};

inline const char* tsv_header() {
    return "name\tfamily\tbytes_per_vector\trecall_at_10\tqps_batch\t"
           "qps_single\ttrain_s\tadd_s\tbuild\n";
}

inline std::string tsv_line(const TsvRow& r) {
    char numbers[256];
    std::snprintf(
            numbers,
            sizeof(numbers),
            "%.1f\t%.4f\t%.1f\t%.1f\t%.3f\t%.3f",
            r.bytes_per_vector,
            r.recall,
            r.qps_batch,
            r.qps_single,
            r.train_seconds,
            r.add_seconds);
    return r.name + "\t" + r.family + "\t" + numbers + "\t" + r.build + "\n";
}

/// Rows of a TSV text with tsv_header()'s columns (the header line and
/// lines starting with '#' are skipped). Throws std::runtime_error naming
/// the line that does not parse.
inline std::vector<TsvRow> parse_tsv(const std::string& text) {
    std::vector<TsvRow> rows;
    std::istringstream in(text);
    std::string line;
    size_t line_no = 0;
    while (std::getline(in, line)) {
        line_no++;
        if (line.empty() || line[0] == '#' || line.rfind("name\t", 0) == 0) {
            continue;
        }
        std::vector<std::string> f;
        std::istringstream fields(line);
        for (std::string v; std::getline(fields, v, '\t');) {
            f.push_back(v);
        }
        auto number = [&](size_t i) {
            char* end = nullptr;
            const double v = std::strtod(f[i].c_str(), &end);
            if (f[i].empty() || *end != '\0') {
                throw std::runtime_error(
                        "TSV line " + std::to_string(line_no) + ": field " +
                        std::to_string(i + 1) + " '" + f[i] +
                        "' is not a number");
            }
            return v;
        };
        if (f.size() != 9) {
            throw std::runtime_error(
                    "TSV line " + std::to_string(line_no) + " has " +
                    std::to_string(f.size()) + " fields, expected 9: '" + line +
                    "'");
        }
        rows.push_back(
                {f[0],
                 f[1],
                 number(2),
                 number(3),
                 number(4),
                 number(5),
                 number(6),
                 number(7),
                 f[8]});
    }
    return rows;
}

} // namespace bench
} // namespace faiss_bq
