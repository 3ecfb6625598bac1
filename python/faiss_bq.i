// SWIG interface of faiss_bq: `import faiss, faiss_bq`.
//
// The proxies derive from faiss's own proxy classes (faiss.Index,
// faiss.IndexFlatCodes, faiss.IndexBinary, faiss.SearchParameters) and share
// faiss's SWIG type table; the extension resolves FAISS symbols against
// faiss's _swigfaiss*.so (one FAISS copy per process). Recipe and pitfalls:
// ../shared/notes-swig.md; the rules that matter here: NOTES.md, "Python module".
//
// ---------------------------------------------------------------------------
// ADDING A CLASS faiss_bq::X (declared in faiss_bq/X.h):
//  1. #include <faiss_bq/X.h> in the %{ %} block and %include "faiss_bq/X.h"
//     in the "faiss_bq headers" block below, after the headers of the types
//     it uses. If its base is a FAISS class not yet %import-ed (e.g.
//     faiss::IndexRefine), %import(module="faiss") that FAISS header.
//  2. If X derives from faiss::Index, add FAISS_BQ_DOWNCAST(faiss_bq::X) to
//     FAISS_BQ_INDEX_CLASSES (a faiss::IndexBinary: to
//     FAISS_BQ_INDEX_BINARY_CLASSES), a derived class before its base.
//     Every faiss::Index* that comes back to Python (factory, read_index,
//     downcast_index, member getters such as IndexBQRefine::base) is then a
//     faiss_bq.X.
//  3. If a constructor of X stores sub-indexes it does not own
//     (own_fields = false), add X to _SUB_INDEX_ARGS in python/__init__.py
//     with the positions of those arguments per argument count, as faiss
//     does: e.g. IndexBQRefine(base, refine) -> {2: [0, 1]},
//     IndexFromBinary(binary_index) -> {1: [0]}.
//  Nothing else: python/__init__.py finds every class of this module and
//  applies faiss's numpy wrappers (and faiss_bq's input checks) by base class
//  (faiss.Index, faiss.IndexBinary, faiss.SearchParameters), so
//  SearchParametersX needs step 1 only. Then add a test in python/tests.
// ---------------------------------------------------------------------------

%module swigfaiss_bq

// Goes to the top of swigfaiss_bq.py, before "from . import _swigfaiss_bq":
// the extension has DT_NEEDED "_swigfaiss.so" (the SONAME of faiss's
// extension), which the loader satisfies only when faiss is already loaded.
%pythonbegin %{
import faiss  # noqa: F401  -- must stay first, see faiss_bq.i
%}

// The integer typedefs of faiss/python/swigfaiss.swig (built with
// -DSWIGWORDSIZE64): int64_t* must mangle to _p_long as in faiss, so that
// faiss.swig_ptr(int64 array) is accepted for idx_t*.
typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef signed char int8_t;
typedef short int16_t;
typedef int int32_t;
#ifdef SWIGWORDSIZE64
typedef unsigned long uint64_t;
typedef long int64_t;
#else
typedef unsigned long long uint64_t;
typedef long long int64_t;
#endif
typedef uint64_t size_t;
#define __restrict

%{
#include <faiss/IndexHNSW.h>
#include <faiss/impl/FaissAssert.h>
#include <faiss/impl/FaissException.h>

#include <faiss_bq/IndexBQ.h>
#include <faiss_bq/IndexBQFastScan.h>
#include <faiss_bq/IndexBQRecurrent.h>
#include <faiss_bq/IndexBQTurbo.h>
#include <faiss_bq/IndexBlockQuant.h>
#include <faiss_bq/IndexBQFamily.h>
#include <faiss_bq/IndexBinaryFlatFast.h>
#include <faiss_bq/IndexBQRefine.h>
#include <faiss_bq/IndexFromBinary.h>
#include <faiss_bq/IndexIVFBQ.h>
#include <faiss_bq/IndexIVFBQFastScan.h>
#include <faiss_bq/analysis.h>
#include <faiss_bq/clone_index.h>
#include <faiss_bq/compat_map.h>
#include <faiss_bq/codes.h>
#include <faiss_bq/index_factory.h>
#include <faiss_bq/index_io.h>
#include <faiss_bq/kernels/kernels.h>
#include <faiss_bq/plan.h>
#include <faiss_bq/trainer.h>

#include <typeinfo>

// Anything that is not a faiss_bq class: faiss's own downcast function
// (faiss.downcast_index / faiss.downcast_IndexBinary) is the type oracle.
// It returns a non-owning proxy; when the result must be owned it is
// re-wrapped with SWIG_POINTER_OWN at creation. Never set `thisown = True`
// afterwards: with SWIG >= 4.1 an owned proxy decrefs the shared type-table
// capsule on dealloc but was not counted when ownership was acquired late.
static PyObject* faiss_bq_faiss_downcast(
        void* p,
        swig_type_info* base_type,
        const char* oracle,
        int owner) {
    PyObject* raw = SWIG_NewPointerObj(p, base_type, 0);
    if (!raw) {
        return NULL;
    }
    PyObject* mod = PyImport_ImportModule("faiss");
    if (!mod) {
        Py_DECREF(raw);
        return NULL;
    }
    PyObject* res = PyObject_CallMethod(mod, oracle, "O", raw);
    Py_DECREF(mod);
    Py_DECREF(raw);
    if (!res || !owner) {
        return res;
    }
    SwigPyObject* sobj = SWIG_Python_GetSwigThis(res);
    if (!sobj) {
        Py_DECREF(res);
        PyErr_Format(PyExc_TypeError, "faiss.%s returned a non-SWIG object", oracle);
        return NULL;
    }
    void* ptr = sobj->ptr;         // already cast to the concrete class
    swig_type_info* ty = sobj->ty; // e.g. faiss::IndexIDMap2 *
    Py_DECREF(res);
    return SWIG_NewPointerObj(ptr, ty, SWIG_POINTER_OWN);
}
%}

%include <std_string.i>

// Same policy as swigfaiss.swig: release the GIL, map C++ exceptions
// (faiss::FaissException and std::exception -> RuntimeError).
%exception {
    Py_BEGIN_ALLOW_THREADS
    try {
        $action
    } catch (faiss::FaissException& e) {
        PyEval_RestoreThread(_save);
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_RuntimeError, e.what());
        }
        SWIG_fail;
    } catch (std::bad_alloc& ba) {
        PyEval_RestoreThread(_save);
        PyErr_SetString(PyExc_MemoryError, "std::bad_alloc");
        SWIG_fail;
    } catch (const std::exception& ex) {
        PyEval_RestoreThread(_save);
        std::string what = std::string("C++ exception ") + ex.what();
        PyErr_SetString(PyExc_RuntimeError, what.c_str());
        SWIG_fail;
    }
    Py_END_ALLOW_THREADS
}

// Declarations only (no wrapper code): SWIG does not follow #include, so
// every FAISS header whose classes are used is listed. module="faiss" rather
// than "faiss.swigfaiss": pip wheels may load swigfaiss_avx2.
%import(module="faiss") "faiss_vectors.i"
%import(module="faiss") "faiss/MetricType.h"
%import(module="faiss") "faiss/Index.h"
%import(module="faiss") "faiss/IndexFlatCodes.h"
%import(module="faiss") "faiss/IndexBinary.h"
%import(module="faiss") "faiss/impl/io.h"
%import(module="faiss") "faiss/IndexHNSW.h"
#define FAISS_API
%import(module="faiss") "faiss/Clustering.h"
%import(module="faiss") "faiss/invlists/InvertedLists.h"
%import(module="faiss") "faiss/invlists/DirectMap.h"
%import(module="faiss") "faiss/IndexIVF.h"
%import(module="faiss") "faiss/VectorTransform.h"

// ---------------------------------------------------------------------------
// The wrapped classes, for downcasting (see "ADDING A CLASS" above).
%define FAISS_BQ_DOWNCAST(CLASS)
    else if (auto* q = dynamic_cast<CLASS*>($1)) {
        $result = SWIG_NewPointerObj(q, $descriptor(CLASS*), $owner);
    }
%enddef

%define FAISS_BQ_INDEX_CLASSES
    FAISS_BQ_DOWNCAST(faiss_bq::IndexBQ)
    FAISS_BQ_DOWNCAST(faiss_bq::IndexBQFastScan)
    FAISS_BQ_DOWNCAST(faiss_bq::IndexIVFBQFastScan)
    FAISS_BQ_DOWNCAST(faiss_bq::IndexIVFBQ)
    FAISS_BQ_DOWNCAST(faiss_bq::IndexBQRefine)
    FAISS_BQ_DOWNCAST(faiss_bq::IndexFromBinary)
    FAISS_BQ_DOWNCAST(faiss_bq::IndexBQTurbo)
    FAISS_BQ_DOWNCAST(faiss_bq::IndexBQRecurrent)
    FAISS_BQ_DOWNCAST(faiss_bq::IndexBlockQuant)
    FAISS_BQ_DOWNCAST(faiss_bq::IndexBQFamily)
%enddef

%define FAISS_BQ_INDEX_BINARY_CLASSES
    FAISS_BQ_DOWNCAST(faiss_bq::IndexBinaryFlatFast)
%enddef

// FAISS classes that faiss_bq builds but faiss.downcast_index (1.7.3) does
// not know: matched by exact type, so that FAISS's subclasses (e.g.
// IndexHNSWFlat) still go to faiss's oracle.
%define FAISS_BQ_DOWNCAST_EXACT(CLASS)
    else if (typeid(*$1) == typeid(CLASS)) {
        $result = SWIG_NewPointerObj(
                static_cast<CLASS*>($1), $descriptor(CLASS*), $owner);
    }
%enddef

%define FAISS_BQ_FAISS_INDEX_CLASSES
    FAISS_BQ_DOWNCAST_EXACT(faiss::IndexHNSW)
%enddef
// ---------------------------------------------------------------------------

// Every faiss::Index* / faiss::IndexBinary* returned to Python (functions
// and member getters) comes back as its most derived class.
%typemap(out) faiss::Index* {
    if ($1 == nullptr) {
        $result = SWIG_Py_Void();
    }
    FAISS_BQ_INDEX_CLASSES
    FAISS_BQ_FAISS_INDEX_CLASSES
    else {
        $result = faiss_bq_faiss_downcast(
                $1, $descriptor(faiss::Index*), "downcast_index", $owner);
        if (!$result) {
            SWIG_fail;
        }
    }
}
%typemap(out) faiss::IndexBinary* {
    if ($1 == nullptr) {
        $result = SWIG_Py_Void();
    }
    FAISS_BQ_INDEX_BINARY_CLASSES
    else {
        $result = faiss_bq_faiss_downcast(
                $1, $descriptor(faiss::IndexBinary*), "downcast_IndexBinary", $owner);
        if (!$result) {
            SWIG_fail;
        }
    }
}

// The caller owns what these return.
%newobject faiss_bq::index_factory;
%newobject faiss_bq::index_binary_factory;
%newobject faiss_bq::read_index;
%newobject faiss_bq::read_index_binary;
%newobject faiss_bq::clone_index;
%newobject faiss_bq::clone_index_binary;
%newobject faiss_bq::fit_compatible_map;
%newobject faiss_bq::IndexBQ::get_FlatCodesDistanceComputer;
%newobject faiss_bq::IndexBQ::get_distance_computer;

// Raw-pointer internals with no bounds checks: reachable from Python through
// the checked numpy methods (sa_encode, sa_decode, search) and attributes.
%ignore faiss_bq::BinarizationPlan::apply;
%ignore faiss_bq::BinarizationPlan::apply_inverse;
%ignore faiss_bq::BinarizationPlan::quantize;
%ignore faiss_bq::BinarizationPlan::level;
%ignore faiss_bq::BinarizationPlan::unit_scale;
%ignore faiss_bq::IndexBQ::layout;
%ignore faiss_bq::IndexBQRecurrent::transform;
%ignore faiss_bq::IndexBlockQuant::transform;
%ignore faiss_bq::write_index(const faiss::Index*, FILE*);
%ignore faiss_bq::read_index(FILE*, int);
%ignore faiss_bq::write_index_binary(const faiss::IndexBinary*, FILE*);
%ignore faiss_bq::read_index_binary(FILE*, int);
// numpy front ends in __init__.py (analyze(x), train_plan(x, options), ...)
%rename(analyze_c) faiss_bq::analyze;
%rename(train_plan_c) faiss_bq::train_plan;
%rename(fit_compatible_map_c) faiss_bq::fit_compatible_map;
%rename(fit_plan_c) faiss_bq::fit_plan;
%rename(fit_eden_plan_c) faiss_bq::fit_eden_plan;
%rename(gaussian_lloyd_max_c) faiss_bq::gaussian_lloyd_max;

// Vector fields are faiss.Float32Vector proxies here; __init__.py turns
// them into numpy properties (with the plan's shapes).
%extend faiss_bq::BinarizationPlan {
    size_t n_candidates() const {
        return $self->candidates.size();
    }
    faiss_bq::CandidateReport candidate(size_t i) const {
        FAISS_THROW_IF_NOT_FMT(
                i < $self->candidates.size(),
                "candidate %zu: the plan has %zu candidates",
                i,
                $self->candidates.size());
        return $self->candidates[i];
    }
}
%ignore faiss_bq::BinarizationPlan::candidates;
%extend faiss_bq::IndexBQFamily {
    size_t n_candidates() const {
        return $self->candidates.size();
    }
    faiss_bq::FamilyCandidateReport candidate(size_t i) const {
        FAISS_THROW_IF_NOT_FMT(
                i < $self->candidates.size(),
                "candidate %zu: the index has %zu candidates",
                i,
                $self->candidates.size());
        return $self->candidates[i];
    }
}
%ignore faiss_bq::IndexBQFamily::candidates;
// family_candidates' list of strings: through a comma-joined string
// (__init__.py splits it).
%ignore faiss_bq::family_candidates;
%ignore faiss_bq::IndexBQFamily::chosen_index;

// CodeBudget(bytes) in Python, as the C++ aggregate CodeBudget{bytes}.
%extend faiss_bq::CodeBudget {
    CodeBudget(size_t bytes = 0) {
        return new faiss_bq::CodeBudget{bytes};
    }
}

// ---------------------------------------------------------------- faiss_bq headers
%include "faiss_bq/analysis.h"
%include "faiss_bq/plan.h"
%include "faiss_bq/trainer.h"
%include "faiss_bq/IndexBQ.h"
// The layout object stays C++ (codes.h is not wrapped).
%ignore faiss_bq::IndexBQFastScan::nibble_layout;
%include "faiss_bq/IndexBQFastScan.h"
%include "faiss_bq/IndexBinaryFlatFast.h"
%include "faiss_bq/IndexBQRefine.h"
%include "faiss_bq/IndexFromBinary.h"
%include "faiss_bq/IndexBQRecurrent.h"
%include "faiss_bq/IndexBQTurbo.h"
%include "faiss_bq/IndexBlockQuant.h"
%include "faiss_bq/IndexBQFamily.h"
%include "faiss_bq/IndexIVFBQ.h"
%include "faiss_bq/IndexIVFBQFastScan.h"
%include "faiss_bq/index_factory.h"
%include "faiss_bq/index_io.h"
%include "faiss_bq/clone_index.h"
%include "faiss_bq/compat_map.h"

%inline %{
namespace faiss_bq {

/// family_candidates(d, nbits, budget_bytes), comma-joined.
std::string family_candidates_joined(int d, int nbits, size_t budget_bytes) {
    std::string s;
    for (const std::string& key : family_candidates(d, nbits, budget_bytes)) {
        s += (s.empty() ? "" : ",") + key;
    }
    return s;
}

/// Bytes per vector of IndexBQ for d dimensions and nbits (codes.h).
size_t code_size(int d, int nbits);

/// The SIMD level of the kernels in this process: "ref", "avx2" or "avx512"
/// (throws when FAISS_BQ_SIMD names a level the CPU lacks).
std::string simd_level() {
    return kernels::simd_level_name(kernels::simd_level());
}

/// The same object as its most derived Python class (faiss_bq's types, then
/// faiss's): the out-typemaps above do the work. Not owning.
faiss::Index* downcast_index(faiss::Index* index) {
    return index;
}
faiss::IndexBinary* downcast_IndexBinary(faiss::IndexBinary* index) {
    return index;
}

} // namespace faiss_bq
%}
