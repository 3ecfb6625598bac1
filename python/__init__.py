"""faiss_bq: binary quantization indexes for FAISS, with FAISS's numpy API.

    import faiss, faiss_bq
    index = faiss_bq.index_factory(d, "BQ1", faiss.METRIC_INNER_PRODUCT)

The classes derive from faiss's Python classes (faiss.Index, faiss.IndexBinary,
faiss.SearchParameters) and carry faiss's numpy methods, with input checks
that hold under `python -O` too (faiss's own are asserts). The extension links
faiss's _swigfaiss*.so, so `import faiss` comes first (swigfaiss_bq.py does it).
Ownership follows faiss: a container keeps a Python reference to the
sub-indexes given to its constructor (`referenced_objects`); objects from
index_factory / read_index / clone_index own their C++ parts.
"""
import functools
import inspect
import operator

import numpy as np

import faiss
from faiss import class_wrappers

from .swigfaiss_bq import *  # noqa: F401,F403
from . import swigfaiss_bq as _swig

# Constructors that store sub-indexes without owning them (own_fields =
# false): {class: {argument count: [positions]}}, as faiss's
# add_ref_in_constructor. See "ADDING A CLASS" in faiss_bq.i.
_SUB_INDEX_ARGS = {
    IndexBQRefine: {0: [], 1: [0], 2: [0, 1]},
    # (binary, d), (binary, plan), (binary, d, nbits), (binary, plan, metric),
    # (binary, d, nbits, metric)
    IndexFromBinary: {0: [], 2: [0], 3: [0], 4: [0]},
    # (quantizer, d, nlist[, nbits or CodeBudget[, metric]])
    IndexIVFBQ: {0: [], 3: [0], 4: [0], 5: [0]},
    IndexIVFBQFastScan: {0: [], 3: [0], 4: [0], 5: [0]},
}


# ------------------------------------------------------------------ input checks
# faiss's numpy wrappers check shapes with `assert` (gone under python -O, and
# then a wrong d reads past the array in C++) and convert any dtype silently.
# These run first and raise TypeError / ValueError naming the problem.

def _rows(x, what, width, unit, kinds, dtype_name):
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.dtype.kind not in kinds:
        raise TypeError("%s: expected a %s array, got dtype %s"
                        % (what, dtype_name, x.dtype))
    if x.ndim != 2:
        raise ValueError("%s: expected a 2-D array (n, %d), got shape %s"
                         % (what, width, x.shape))
    if x.shape[1] != width:
        raise ValueError("%s: has %d columns, the index expects %d (%s)"
                         % (what, x.shape[1], width, unit))
    return x


def _float_rows(index, x, what="x"):
    return _rows(x, what, index.d, "d = %d" % index.d, "fiu", "float32")


def _code_rows(index, x, what, width, unit):
    return _rows(x, what, width, unit, "u", "uint8")


def _positive_k(k):
    try:
        k = operator.index(k)
    except TypeError:
        raise TypeError("k: expected an integer, got %r" % (k,)) from None
    if k <= 0:
        raise ValueError("k=%d: must be > 0" % k)
    return k


def _out_array(a, name, shape):
    if a is not None and (not isinstance(a, np.ndarray) or a.shape != shape):
        raise ValueError("%s: expected an array of shape %s, got %s"
                         % (name, shape, getattr(a, "shape", type(a))))


def _ids(ids, n):
    ids = np.asarray(ids)
    if ids.shape != (n,):
        raise ValueError("ids: expected shape (%d,), got %s" % (n, ids.shape))
    if ids.dtype.kind not in "iu":
        raise TypeError("ids: expected an int64 array, got dtype %s" % ids.dtype)


def _key(index, key):
    key = operator.index(key)
    if not 0 <= key < index.ntotal:
        raise IndexError("key=%d: the index holds %d vectors"
                         % (key, index.ntotal))
    return key


def _checked(the_class, name, check):
    """Runs check(self, *args, **kwargs) before the_class.name."""
    inner = getattr(the_class, name)

    @functools.wraps(inner)
    def method(self, *args, **kwargs):
        check(self, *args, **kwargs)
        return inner(self, *args, **kwargs)

    setattr(the_class, name, method)


def _check_index(the_class):
    def train(self, x, *args, **kwargs):
        _float_rows(self, x)

    def add(self, x):
        _float_rows(self, x)

    def add_with_ids(self, x, ids):
        _ids(ids, len(_float_rows(self, x)))

    def search(self, x, k, *, params=None, D=None, I=None):
        n = len(_float_rows(self, x))
        k = _positive_k(k)
        _out_array(D, "D", (n, k))
        _out_array(I, "I", (n, k))

    def range_search(self, x, thresh, *, params=None):
        _float_rows(self, x)

    def assign(self, x, k, labels=None):
        n = len(_float_rows(self, x))
        _out_array(labels, "labels", (n, _positive_k(k)))

    def sa_encode(self, x, codes=None):
        n = len(_float_rows(self, x))
        _out_array(codes, "codes", (n, self.sa_code_size()))

    def sa_decode(self, codes, x=None):
        n = len(_code_rows(self, codes, "codes", self.sa_code_size(),
                           "sa_code_size() = %d" % self.sa_code_size()))
        _out_array(x, "x", (n, self.d))

    def reconstruct(self, key, x=None):
        _key(self, key)

    def reconstruct_n(self, n0, ni, x=None):
        if n0 < 0 or ni < 0 or n0 + ni > self.ntotal:
            raise IndexError("reconstruct_n(%d, %d): the index holds %d vectors"
                             % (n0, ni, self.ntotal))

    for name, check in dict(train=train, add=add, add_with_ids=add_with_ids,
                            search=search, range_search=range_search,
                            assign=assign, sa_encode=sa_encode,
                            sa_decode=sa_decode, reconstruct=reconstruct,
                            reconstruct_n=reconstruct_n).items():
        _checked(the_class, name, check)


def _check_index_binary(the_class):
    def codes(self, x):
        return _code_rows(self, x, "x", self.code_size,
                          "d / 8 = %d bytes" % self.code_size)

    def train(self, x):
        codes(self, x)

    def add(self, x):
        codes(self, x)

    def add_with_ids(self, x, ids):
        _ids(ids, len(codes(self, x)))

    def search(self, x, k):
        codes(self, x)
        _positive_k(k)

    def range_search(self, x, thresh):
        codes(self, x)

    def reconstruct(self, key):
        _key(self, key)

    for name, check in dict(train=train, add=add, add_with_ids=add_with_ids,
                            search=search, range_search=range_search,
                            reconstruct=reconstruct).items():
        _checked(the_class, name, check)


# ------------------------------------------------------------------ classes
def _handle_SearchParameters(the_class):
    """SearchParametersX(estimator=..., sel=...), as faiss's
    handle_SearchParameters, with two differences: an unknown name raises
    TypeError (faiss asserts), and the IDSelector (and base_params), given
    here or assigned later, is held as long as the parameters live (faiss
    1.7.3 keeps no reference: its check is inspect.isclass, never true for an
    instance, so the C++ pointer dangles once the selector is collected)."""
    original_init = the_class.__init__

    def init(self, **kwargs):
        original_init(self)
        for name, value in kwargs.items():
            if not hasattr(self, name):
                raise TypeError("%s has no parameter %r"
                                % (the_class.__name__, name))
            setattr(self, name, value)

    the_class.__init__ = init
    # Pointer members (the IDSelector, SearchParametersBQRefine.base_params)
    # hold the Python object they were given.
    for name in ("sel", "base_params"):
        if hasattr(the_class, name):
            setattr(the_class, name, _holding_property(getattr(the_class, name), name))


def _holding_property(raw, name):
    def set_value(self, value):
        raw.fset(self, value)
        setattr(self, "_ref_" + name, value)
    return property(raw.fget, set_value, doc=raw.__doc__)


def _handle_pickle(the_class, serialize, deserialize):
    """pickle / copy.deepcopy through faiss_bq's IO (faiss's own __getstate__
    calls faiss.serialize_index, which rejects plugin types)."""
    def getstate(self):
        return {"this": serialize(self).tobytes()}

    def setstate(self, state):
        other = deserialize(np.frombuffer(state["this"], dtype=np.uint8))
        self.this = other.this

    the_class.__getstate__ = getstate
    the_class.__setstate__ = setstate


_CLASSES = [c for c in vars(_swig).values()
            if inspect.isclass(c) and c.__module__ == _swig.__name__]
for _c in _CLASSES:
    if issubclass(_c, faiss.Index):
        class_wrappers.handle_Index(_c)
        _check_index(_c)
        _handle_pickle(_c, lambda i: serialize_index(i),
                       lambda a: deserialize_index(a))
    elif issubclass(_c, faiss.IndexBinary):
        class_wrappers.handle_IndexBinary(_c)
        _check_index_binary(_c)
        _handle_pickle(_c, lambda i: serialize_index_binary(i),
                       lambda a: deserialize_index_binary(a))
    elif issubclass(_c, faiss.SearchParameters):
        _handle_SearchParameters(_c)
for _c in _SUB_INDEX_ARGS:
    faiss.add_ref_in_constructor(_c, _SUB_INDEX_ARGS[_c])


# ------------------------------------------------------------------ plan as numpy
def _add_vector_properties(the_class, shapes):
    for name, shape in shapes.items():
        setattr(the_class, name, _vector_property_of(the_class, name, shape))


def _vector_property_of(the_class, name, shape):
    raw = getattr(the_class, name)

    def get(self):
        a = faiss.vector_to_array(raw.fget(self))
        return a.reshape(shape(self)) if shape and a.size else a

    return property(get, doc="numpy copy of the C++ field %s" % name)


_add_vector_properties(BinarizationPlan, {  # noqa: F405
    "center": None,
    "rotation": lambda p: (p.d, p.d),
    "thresholds": lambda p: (p.d, p.n_levels() - 1),
    "levels": lambda p: (p.d, p.n_levels()),
})
_add_vector_properties(DatasetAnalysis, {  # noqa: F405
    name: None for name in ("mean", "sigma", "positive_fraction",
                            "positive_fraction_centered", "eigenvalues",
                            "excess_kurtosis")})
_add_vector_properties(IndexBQRecurrent, {  # noqa: F405
    "mean": None,
    "rotation": lambda r: (r.d, r.d),
    "stage_scales": None,
    "train_errors": None,
})
_add_vector_properties(IndexBlockQuant, {  # noqa: F405
    "center": None,
    "rotation": lambda b: (b.padded_d, b.d),
    "codebook": lambda b: (1 << b.direction_bits, b.block_size),
    "norm_levels": None,
})
_add_vector_properties(IndexBQTurbo, {  # noqa: F405
    "sketch": lambda r: (r.d, r.d),
})
BinarizationPlan.candidates = property(  # noqa: F405
    lambda self: [self.candidate(i) for i in range(self.n_candidates())],
    doc="copies of the CandidateReports the trainer weighed")
IndexBQFamily.candidates = property(  # noqa: F405
    lambda self: [self.candidate(i) for i in range(self.n_candidates())],
    doc="copies of the FamilyCandidateReports the held-out check measured")
# IndexBinaryFlatFast.xb stays the C++ vector (faiss.UInt8Vector), as
# faiss.IndexBinaryFlat's: faiss.vector_to_array(index.xb) reads it.


# ------------------------------------------------------------------ functions
def _matrix(x, what="x"):
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.dtype.kind not in "fiu" or x.ndim != 2:
        raise ValueError("%s: expected a 2-D float32 array, got %s %s"
                         % (what, x.dtype, x.shape))
    return np.ascontiguousarray(x, dtype="float32")


def analyze(x):
    """DatasetAnalysis of the rows of x (n, d)."""
    x = _matrix(x)
    return _swig.analyze_c(x.shape[0], x.shape[1], faiss.swig_ptr(x))


def train_plan(x, options=None):
    """The BinarizationPlan the trainer chooses for x (n, d) (TrainerOptions)."""
    x = _matrix(x)
    options = TrainerOptions() if options is None else options  # noqa: F405
    return _swig.train_plan_c(x.shape[0], x.shape[1], faiss.swig_ptr(x), options)


def fit_plan(x, nbits, transform, centered, seed=1234):
    """One plan of the given shape fitted on x (n, d), without the evidence."""
    x = _matrix(x)
    return _swig.fit_plan_c(x.shape[0], x.shape[1], faiss.swig_ptr(x),
                            nbits, transform, centered, seed)


def fit_eden_plan(x, nbits, transform=None, centered=True, seed=1234,
                  quantization=None):
    """An EDEN plan (Quantization_eden) for x (n, d): centre and basis
    (Transform_random_rotation by default, or Transform_identity) from x,
    Gaussian Lloyd-Max levels, each vector scaled to norm sqrt(d). With
    quantization=Quantization_turbo_mse, TurboQuant-MSE's plan (the MSE
    scale |r|/sqrt(d) in the codes)."""
    x = _matrix(x)
    if transform is None:
        transform = Transform_random_rotation  # noqa: F405
    if quantization is None:
        quantization = Quantization_eden  # noqa: F405
    return _swig.fit_eden_plan_c(x.shape[0], x.shape[1], faiss.swig_ptr(x),
                                 nbits, transform, centered, seed,
                                 quantization)


def gaussian_lloyd_max(nbits):
    """(thresholds, levels) of the Lloyd-Max quantizer of N(0, 1) with
    2**nbits levels, nbits in 1..4, as float32 arrays."""
    nbits = int(nbits)
    if not 1 <= nbits <= 4:
        # the C++ check would run after sizing the arrays by nbits
        raise ValueError("nbits=%d: must be in 1..4" % nbits)
    thresholds = np.zeros((1 << nbits) - 1, dtype="float32")
    levels = np.zeros(1 << nbits, dtype="float32")
    _swig.gaussian_lloyd_max_c(nbits, faiss.swig_ptr(thresholds),
                               faiss.swig_ptr(levels))
    return thresholds, levels


def fit_compatible_map(x_new, x_old, fit=None, centre=True, ridge=1e-3):
    """faiss.LinearTransform from a new model's space to an old index's,
    fitted on paired rows (row i of each embeds the same item): x_new (n,
    d_new), x_old (n, d_old); fit MapFit_orthogonal (default) or
    MapFit_least_squares. Apply it to the new model's queries, or put it in
    a faiss.IndexPreTransform in front of the old index."""
    x_new = _matrix(x_new, "x_new")
    x_old = _matrix(x_old, "x_old")
    if x_new.shape[0] != x_old.shape[0]:
        raise ValueError("fit_compatible_map: x_new has %d rows, x_old %d; row i "
                         "of each must embed the same item"
                         % (x_new.shape[0], x_old.shape[0]))
    fit = MapFit_orthogonal if fit is None else fit  # noqa: F405
    return _swig.fit_compatible_map_c(
        x_new.shape[0], x_new.shape[1], faiss.swig_ptr(x_new),
        x_old.shape[0], x_old.shape[1], faiss.swig_ptr(x_old), fit, centre, ridge)


def family_candidates(d, nbits, budget_bytes=0):
    """The factory strings IndexBQFamily weighs for an IndexBQ head (BQ<nbits>,
    or BQ<budget_bytes>B when budget_bytes > 0) at dimension d."""
    return family_candidates_joined(d, nbits, budget_bytes).split(",")  # noqa: F405


def serialize_index(index):
    """The index (faiss_bq's or FAISS's, or a container of either) as a numpy
    uint8 array, in faiss_bq.write_index's format."""
    writer = faiss.VectorIOWriter()
    _swig.write_index(index, writer)
    return faiss.vector_to_array(writer.data)


def _reader(data):
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 1:
        raise TypeError("data: expected a 1-D numpy uint8 array, got %s"
                        % (getattr(data, "dtype", type(data)),))
    reader = faiss.VectorIOReader()
    faiss.copy_array_to_vector(np.ascontiguousarray(data), reader.data)
    return reader


def deserialize_index(data, io_flags=0):
    """Inverse of serialize_index; the caller owns the result."""
    return _swig.read_index(_reader(data), io_flags)


def serialize_index_binary(index):
    writer = faiss.VectorIOWriter()
    _swig.write_index_binary(index, writer)
    return faiss.vector_to_array(writer.data)


def deserialize_index_binary(data, io_flags=0):
    return _swig.read_index_binary(_reader(data), io_flags)


def merge_ondisk(trained_index, shard_fnames, ivfdata_fname):
    """faiss.contrib.ondisk.merge_ondisk for faiss_bq's IVF indexes: FAISS's
    own function, with the shard files read by faiss_bq.read_index (FAISS
    1.7.3's reader has no hook for other libraries' records). The lists of
    every shard are merged into an OnDiskInvertedLists at ivfdata_fname and
    put into trained_index (empty, trained); write it with
    faiss_bq.write_index, read it back with faiss_bq.read_index (the data
    file is mapped). Not thread-safe: faiss.read_index is swapped meanwhile.
    """
    from faiss.contrib import ondisk
    saved = faiss.read_index
    faiss.read_index = _swig.read_index
    try:
        ondisk.merge_ondisk(trained_index, list(shard_fnames), ivfdata_fname)
    finally:
        faiss.read_index = saved


del _c
