// Progress of a long add (an index's `verbose`): one line per step of at
// least `every` rows, with the rows done, the time elapsed and the time left
// at that pace, as FAISS's own indexes report their adds.
#pragma once

#include <faiss/utils/utils.h>

#include <cstddef>
#include <cstdio>

namespace faiss_bq {

class AddProgress {
   public:
    AddProgress(bool verbose, const char* who, size_t n, size_t every = 262144)
            : on_(verbose && n > every),
              who_(who),
              n_(n),
              every_(every),
              next_(every),
              start_(faiss::getmillisecs()) {}

    /// Rows [0, done) are added.
    void at(size_t done) {
        if (!on_ || (done < next_ && done < n_)) {
            return;
        }
        next_ = done + every_;
        const double s = (faiss::getmillisecs() - start_) / 1000;
        std::printf(
                "[%s add] %zu / %zu vectors, %.1f s, ~%.1f s left\n",
                who_,
                done,
                n_,
                s,
                done ? s / double(done) * double(n_ - done) : 0.0);
        std::fflush(stdout);
    }

   private:
    bool on_;
    const char* who_;
    size_t n_, every_, next_;
    double start_;
};

} // namespace faiss_bq
