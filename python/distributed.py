"""faiss_bq.distributed: an IVF index built on a dask.distributed cluster and
served as shards through FAISS's faiss.contrib.client_server.

    from dask.distributed import Client
    import faiss_bq.distributed as bqd
    result = bqd.build(Client("tcp://scheduler:8786"), "base.fvecs",
                       "IVF4096,BQ1_fs", "/shared/out",
                       metric=faiss.METRIC_INNER_PRODUCT)
    with bqd.start_servers(result.shard_files) as servers:
        client = bqd.ShardedClient(servers.addresses)
        D, I = client.search(xq, 10)

Building: the plan and the coarse quantizer are trained once, on a sample
(by a worker, which reads it); the trained empty index is scattered to the
workers; each worker reads its own rows (a row range of a TEXMEX .fvecs file
or of a .npy file, memory-mapped) and encodes them into its own shard file,
with ids global to the whole input; faiss.contrib.ondisk.merge_ondisk then
merges the shards into one index whose lists are an OnDiskInvertedLists file
(or the shards are kept). Files are written under a temporary name and
renamed when complete, so a failed build leaves no index where a complete one
is expected. The workers and the merge need one file system (the paths are
read and written by the workers).

Serving: each shard is a faiss.contrib.client_server SearchServer in its own
process (`python3 -m faiss_bq.distributed serve SHARD`), bound to one address;
ShardedClient is FAISS's ClientIndex with a deadline on every call, the
metric's merge order, and checks that the shards share one plan and hold
disjoint ids. A dead or hung shard raises ShardError naming it; a search
returns every shard's results or raises, never part of them.

Dask (Debian's python3-distributed) is imported only by build(): serving and
`import faiss_bq` work without it.
"""
import argparse
import dataclasses
import hashlib
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import List, Optional, Sequence, Tuple

import numpy as np

import faiss
from faiss.contrib import client_server, rpc

import faiss_bq

ADD_BATCH_ROWS = 65536  # rows read and added at a time by a worker


class DistributedError(RuntimeError):
    """A distributed build or merge failed; the message names the file."""


class ShardError(RuntimeError):
    """A shard server failed, died or did not answer in time."""


# ------------------------------------------------------------------ input
@dataclasses.dataclass(frozen=True)
class Part:
    """Rows [start, stop) of a .fvecs or .npy file (stop None: to the end),
    given the ids first_id, first_id + 1, ... (None: after the previous
    part's). The worker that encodes the part reads them."""
    path: str
    start: int = 0
    stop: Optional[int] = None
    first_id: Optional[int] = None

    def describe(self):
        return "%s rows [%d, %s)" % (self.path, self.start,
                                     "end" if self.stop is None else self.stop)


def open_rows(path):
    """The rows of a TEXMEX .fvecs file or a .npy file as a read-only
    memory map (n, d): nothing is read until sliced."""
    if not os.path.exists(path):
        raise FileNotFoundError("faiss_bq.distributed: input file %s is missing"
                                % path)
    if path.endswith(".npy"):
        x = np.load(path, mmap_mode="r")
        if x.ndim != 2 or x.dtype.kind != "f":
            raise DistributedError("%s: expected a 2-D float array, got %s %s"
                                   % (path, x.dtype, x.shape))
        return x
    if not path.endswith(".fvecs"):
        raise DistributedError("%s: expected a .fvecs or .npy file" % path)
    size = os.path.getsize(path)
    if size < 4:
        raise DistributedError("%s: %d bytes is not an .fvecs file" % (path, size))
    d = int(np.fromfile(path, dtype="int32", count=1)[0])
    if d <= 0 or size % (4 * (d + 1)) != 0:
        raise DistributedError("%s: %d bytes is not a whole number of rows of "
                               "d = %d" % (path, size, d))
    a = np.memmap(path, dtype="int32", mode="r").reshape(-1, d + 1)
    return a[:, 1:].view("float32")


def _row_count(part):
    x = open_rows(part.path)
    stop = len(x) if part.stop is None else part.stop
    if not 0 <= part.start <= stop <= len(x):
        raise DistributedError("%s: rows [%d, %d) of a file of %d rows"
                               % (part.path, part.start, stop, len(x)))
    return stop - part.start


def _paths(source):
    """source as a str path or a list of str paths and Parts."""
    if isinstance(source, np.ndarray):
        raise TypeError(
            "source: a numpy array of this process would travel to the workers "
            "through dask; save it (np.save(path, x)) and pass the .npy path: "
            "each worker memory-maps its own rows")
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return [p if isinstance(p, Part) else os.fspath(p) for p in source]


def _parts_of(source, n_parts):
    """Parts with their first ids set, checked for overlapping id ranges."""
    if isinstance(source, str):
        n = _row_count(Part(source))
        bounds = np.linspace(0, n, n_parts + 1).astype(int)
        parts = [Part(source, int(a), int(b)) for a, b in zip(bounds, bounds[1:])]
    else:
        parts = [p if isinstance(p, Part) else Part(p) for p in source]
    if not parts:
        raise DistributedError("faiss_bq.distributed: no input parts")
    placed, next_id = [], 0
    for p in parts:
        n = _row_count(p)
        first = next_id if p.first_id is None else p.first_id
        if first < 0:
            raise DistributedError("%s: first_id=%d is negative" % (p.describe(), first))
        placed.append((dataclasses.replace(p, stop=p.start + n, first_id=first), n))
        next_id = first + n
    check_disjoint([(p.describe(), p.first_id, p.first_id + n - 1)
                    for p, n in placed if n > 0])
    return [p for p, _ in placed]


def check_disjoint(ranges):
    """ranges: (name, first id, last id); raises naming two that overlap."""
    ranges = sorted(ranges, key=lambda r: r[1])
    for (a, a0, a1), (b, b0, b1) in zip(ranges, ranges[1:]):
        if b0 <= a1:
            raise DistributedError(
                "overlapping id ranges: %s holds ids [%d, %d], %s holds "
                "[%d, %d]" % (a, a0, a1, b, b0, b1))


# ------------------------------------------------------------------ plan
def plan_checksum(index):
    """sha256 of the index serialized with empty lists (its lists swapped
    out meanwhile, never emptied: they may be an on-disk file): equal for
    the trained empty index and every shard built from it."""
    ivf = _as_ivf(index, "plan_checksum")
    saved = (ivf.invlists, ivf.own_invlists, index.ntotal, ivf.ntotal)
    ivf.own_invlists = False
    empty = faiss.ArrayInvertedLists(ivf.nlist, ivf.code_size)
    ivf.replace_invlists(empty, False)
    index.ntotal = ivf.ntotal = 0
    try:
        blob = faiss_bq.serialize_index(index)
    finally:
        ivf.replace_invlists(saved[0], saved[1])
        index.ntotal, ivf.ntotal = saved[2], saved[3]
    return hashlib.sha256(blob.tobytes()).hexdigest()


def _checked_plan(blob, expected_checksum, who):
    got = hashlib.sha256(blob.tobytes()).hexdigest()
    if got != expected_checksum:
        raise DistributedError(
            "%s: the trained index given to this worker has checksum %s, the "
            "build's plan is %s: workers were given a different plan"
            % (who, got[:16], expected_checksum[:16]))
    return faiss_bq.deserialize_index(blob)


def _replace_atomically(write, path):
    """write(tmp) then rename to path: path is complete or absent."""
    tmp = "%s.tmp-%d-%d" % (path, os.getpid(), threading.get_ident())
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def encode_shard(plan_blob, expected_checksum, part, shard_file,
                 batch_rows=ADD_BATCH_ROWS):
    """The worker's task: rows of `part` (read here) encoded with the trained
    empty index serialized in plan_blob, written to shard_file. Returns a
    dict describing the shard."""
    t0, cpu0 = time.time(), time.process_time()
    who = "shard %s (%s)" % (shard_file, part.describe())
    index = _checked_plan(plan_blob, expected_checksum, who)
    x = open_rows(part.path)
    if x.shape[1] != index.d:
        raise DistributedError("%s: rows of d = %d for an index of d = %d"
                               % (who, x.shape[1], index.d))
    for i0 in range(part.start, part.stop, batch_rows):
        i1 = min(i0 + batch_rows, part.stop)
        ids = np.arange(i1 - i0, dtype="int64") + (part.first_id + i0 - part.start)
        index.add_with_ids(np.ascontiguousarray(x[i0:i1], dtype="float32"), ids)
    _replace_atomically(lambda tmp: faiss_bq.write_index(index, tmp), shard_file)
    return dict(shard_file=shard_file, part=part, ntotal=int(index.ntotal),
                plan_checksum=expected_checksum, seconds=time.time() - t0,
                cpu_seconds=time.process_time() - cpu0, pid=os.getpid())


def _train(source, description, metric, train_rows, seed):
    """The trained empty index (serialized): the coarse quantizer and the
    plan, fitted on train_rows rows drawn from the input."""
    parts = [p if isinstance(p, Part) else Part(p)
             for p in ([source] if isinstance(source, str) else source)]
    xs = [open_rows(p.path) for p in parts]
    spans = [(x, p.start, len(x) if p.stop is None else p.stop)
             for x, p in zip(xs, parts)]
    n = sum(b - a for _, a, b in spans)
    take = np.sort(np.random.RandomState(seed).choice(
        n, size=min(train_rows, n), replace=False))
    rows, offset = [], 0
    for x, a, b in spans:
        mine = take[(take >= offset) & (take < offset + b - a)] - offset + a
        rows.append(np.asarray(x[mine], dtype="float32"))
        offset += b - a
    xt = np.ascontiguousarray(np.concatenate(rows))
    index = faiss_bq.index_factory(xt.shape[1], description, metric)
    index.train(xt)
    return faiss_bq.serialize_index(index)


def _as_ivf(index, what):
    try:
        return faiss.extract_index_ivf(index)
    except Exception:
        raise DistributedError("%s: %s is not an IVF index"
                               % (what, type(index).__name__)) from None


# ------------------------------------------------------------------ merge
def id_range(index):
    """(first id, last id) held by an IVF index's lists, None if empty."""
    ivf = _as_ivf(index, "id_range")
    lo, hi = None, None
    for l in range(ivf.nlist):
        n = ivf.invlists.list_size(l)
        if n:
            ids = faiss.rev_swig_ptr(ivf.invlists.get_ids(l), n)
            lo = int(ids.min()) if lo is None else min(lo, int(ids.min()))
            hi = int(ids.max()) if hi is None else max(hi, int(ids.max()))
    return None if lo is None else (lo, hi)


def check_shards(trained_index, shard_files):
    """Checks each shard file before a merge or serving: it exists, was built
    from trained_index's plan, and the shards' ids do not overlap."""
    want = plan_checksum(trained_index)
    ranges = []
    for f in shard_files:
        if not os.path.exists(f):
            raise DistributedError("shard file %s is missing" % f)
        shard = faiss_bq.read_index(f, faiss.IO_FLAG_MMAP)
        got = plan_checksum(shard)
        if got != want:
            raise DistributedError(
                "shard %s was built with another plan (checksum %s, the "
                "trained index's is %s)" % (f, got[:16], want[:16]))
        r = id_range(shard)
        if r is not None:
            ranges.append(("shard " + f, r[0], r[1]))
    check_disjoint(ranges)


def merge_shards(trained_index, shard_files, index_file, ivfdata_file=None):
    """Checks the shards (check_shards), merges their lists with
    faiss.contrib.ondisk.merge_ondisk into an OnDiskInvertedLists file
    (ivfdata_file, default: index_file with the extension .ivfdata) and
    writes the index to index_file. Both appear complete, or not at all."""
    ivfdata_file = ivfdata_file or os.path.splitext(index_file)[0] + ".ivfdata"
    check_shards(trained_index, shard_files)
    index = faiss_bq.clone_index(trained_index)
    tmp_data = "%s.tmp-%d" % (ivfdata_file, os.getpid())
    tmp_index = "%s.tmp-%d" % (index_file, os.getpid())
    try:
        faiss_bq.merge_ondisk(index, list(shard_files), tmp_data)
        # the index names its data file by the final name (renamed below)
        invlists = faiss.downcast_InvertedLists(_as_ivf(index, index_file).invlists)
        invlists.filename = ivfdata_file
        faiss_bq.write_index(index, tmp_index)
        os.replace(tmp_data, ivfdata_file)
        os.replace(tmp_index, index_file)
    finally:
        for tmp in (tmp_data, tmp_index):
            if os.path.exists(tmp):
                os.remove(tmp)
    return index


# ------------------------------------------------------------------ build
@dataclasses.dataclass
class BuildResult:
    index_file: Optional[str]       # the merged index (None: merge=False)
    ivfdata_file: Optional[str]     # its OnDiskInvertedLists data
    shard_files: List[str]
    ntotal: int
    plan_checksum: str
    train_seconds: float
    encode_seconds: float           # scatter to the last shard written
    merge_seconds: float
    shards: List[dict]              # what each worker returned


def _dask_client_module():
    try:
        import distributed
    except ImportError as e:
        raise ImportError("faiss_bq.distributed.build needs dask.distributed "
                          "(Debian: apt-get install python3-distributed)") from e
    return distributed


def build(client, source, index, out_dir, *, metric=faiss.METRIC_L2,
          train_rows=100000, n_shards=None, merge=True, seed=1234,
          name="index"):
    """Builds an IVF index over `source` on the workers of `client` (a
    dask.distributed.Client).

    source: a .fvecs / .npy path (split into n_shards row ranges), or a list
      of paths or Parts (one shard each); ids are row numbers across the
      whole input unless Parts give first_id. Overlapping id ranges raise.
      An array in memory: np.save it, pass the .npy path (workers map it).
    index: a faiss_bq factory string ("IVF1024,BQ1_fs"), trained on
      train_rows rows drawn from the input by one worker, or a trained empty
      IVF index (a faiss_bq or FAISS one).
    out_dir: shards are written as out_dir/<name>.shard<i>; with merge, the
      merged index is out_dir/<name>.index, its lists out_dir/<name>.ivfdata.
    n_shards: default one per worker.
    """
    distributed = _dask_client_module()
    os.makedirs(out_dir, exist_ok=True)
    workers = sorted(client.scheduler_info()["workers"])
    if not workers:
        raise DistributedError("the dask client has no workers")
    n_shards = n_shards or len(workers)
    source = _paths(source)
    parts = _parts_of(source, n_shards)
    t0 = time.time()
    if isinstance(index, str):
        blob = client.submit(_train, source, index, metric, train_rows, seed,
                             pure=False).result()
    else:
        if not index.is_trained or index.ntotal != 0:
            raise DistributedError("build: the index must be trained and "
                                   "empty (ntotal=%d, is_trained=%s)"
                                   % (index.ntotal, index.is_trained))
        blob = faiss_bq.serialize_index(index)
    trained = faiss_bq.deserialize_index(blob)
    _as_ivf(trained, "build")
    checksum = hashlib.sha256(blob.tobytes()).hexdigest()
    if checksum != plan_checksum(trained):
        raise DistributedError("build: %s does not serialize to the same bytes "
                               "twice; its plan cannot be checked by checksum"
                               % type(trained).__name__)
    t1 = time.time()
    plan = client.scatter(blob, broadcast=True, direct=True)
    shard_files = [os.path.join(out_dir, "%s.shard%d" % (name, i))
                   for i in range(len(parts))]
    futures = [client.submit(encode_shard, plan, checksum, p, f, pure=False,
                             workers=[workers[i % len(workers)]])
               for i, (p, f) in enumerate(zip(parts, shard_files))]
    try:
        shards = client.gather(futures)
    except BaseException:
        # A failed build leaves no shard set: the other tasks run to their
        # end (a running task cannot be stopped), then their files go.
        distributed.wait(futures)
        for f in shard_files:
            if os.path.exists(f):
                os.remove(f)
        raise
    t2 = time.time()
    result = BuildResult(None, None, shard_files,
                         sum(s["ntotal"] for s in shards), checksum,
                         t1 - t0, t2 - t1, 0.0, shards)
    if merge:
        result.index_file = os.path.join(out_dir, name + ".index")
        result.ivfdata_file = os.path.join(out_dir, name + ".ivfdata")
        client.submit(_merge_task, plan, shard_files, result.index_file,
                      result.ivfdata_file, pure=False).result()
        result.merge_seconds = time.time() - t2
    return result


def _merge_task(blob, shard_files, index_file, ivfdata_file):
    merge_shards(faiss_bq.deserialize_index(blob), shard_files, index_file,
                 ivfdata_file)


# ------------------------------------------------------------------ serving
class ShardServer(client_server.SearchServer):
    """FAISS's SearchServer with the facts ShardedClient checks."""

    def __init__(self, s, index, checksum, ids, log):
        client_server.SearchServer.__init__(self, s, index)
        self.logf = log
        self.checksum = checksum
        self.ids = ids

    def get_plan_checksum(self):
        return self.checksum

    def get_id_range(self):
        return self.ids

    def get_metric_type(self):
        return int(self.index.metric_type)

    def set_omp_num_threads(self, nt):
        """ClientIndex.set_omp_num_threads calls it; SearchServer lacks it
        (the call would go to the index, which has no such method)."""
        faiss.omp_set_num_threads(nt)


def serve(index_file, host="127.0.0.1", port=0, log=None, announce=sys.stdout):
    """Serves index_file (read by faiss_bq) forever, one thread per client
    connection, as faiss.contrib.rpc.run_server does, but bound to `host`
    (rpc.run_server binds every interface). Writes "serving <file> on
    <host>:<port>" to `announce` once it listens (port 0: a free one)."""
    if not os.path.exists(index_file):
        raise FileNotFoundError("shard file %s is missing" % index_file)
    index = faiss_bq.read_index(index_file)
    checksum, ids = plan_checksum(index), id_range(index)
    log = log or open(os.devnull, "w")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(5)
    announce.write("serving %s on %s:%d\n" % (index_file, host, s.getsockname()[1]))
    announce.flush()
    while True:
        conn, _ = s.accept()
        _no_delay(conn)
        server = ShardServer(conn, index, checksum, ids, log)
        threading.Thread(target=server.exec_loop, daemon=True).start()


def _no_delay(sock):
    """A pickle is sent in several writes: without TCP_NODELAY, Nagle's
    algorithm and delayed acknowledgements add ~40 ms to a call."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class ShardServers:
    """Shard server processes on this machine (`python3 -m
    faiss_bq.distributed serve`), one per file; stop() (or the end of a
    with block) kills them."""

    def __init__(self, shard_files, host="127.0.0.1", start_timeout=60.0,
                 env=None):
        self.files = list(shard_files)
        self.processes, self.addresses, self.logs = [], [], []
        try:
            for f in self.files:
                self._start(f, host, start_timeout, env)
        except BaseException:
            self.stop()
            raise

    def _start(self, f, host, timeout, env):
        # stderr to a file: a pipe nobody reads would block a chatty server
        err = tempfile.TemporaryFile(mode="w+")
        self.logs.append(err)
        p = subprocess.Popen(
            [sys.executable, "-m", "faiss_bq.distributed", "serve", f,
             "--host", host],
            stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        self.processes.append(p)
        ready, _, _ = select.select([p.stdout], [], [], timeout)
        line = p.stdout.readline() if ready else ""
        if not line.startswith("serving "):
            p.kill()
            p.wait()
            err.seek(0)
            lines = err.read().strip().splitlines()
            raise ShardError("shard server for %s did not start within %.0f s: %s"
                             % (f, timeout, lines[-1] if lines else "no output"))
        host, port = line.rsplit(" ", 1)[1].strip().rsplit(":", 1)
        self.addresses.append((host, int(port)))

    def stop(self):
        for p in self.processes:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)   # in case a test stopped it
                p.kill()
            p.wait()
            p.stdout.close()
        for err in self.logs:
            err.close()
        self.processes, self.logs = [], []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class _DeadlineSock(rpc.FileSock):
    """rpc.FileSock whose reads and writes end at a deadline."""

    def __init__(self, sock):
        rpc.FileSock.__init__(self, sock)
        self.deadline = None

    def _arm(self):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("deadline passed")
        self.sock.settimeout(left)

    def write(self, buf):
        self._arm()
        self.sock.sendall(buf)

    def read(self, bs=512 * 1024):
        b, nb = [], 0
        while nb < bs:
            self._arm()
            rb = self.sock.recv(bs - nb)
            if not rb:
                break
            b.append(rb)
            nb += len(rb)
        return b"".join(b)

    def readinto(self, buf):
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)


class _ShardConnection(rpc.Client):
    """FAISS's rpc.Client with a deadline per call; any failure closes the
    connection (its stream is no longer in step) and raises ShardError
    naming the shard."""

    def __init__(self, shard, host, port, timeout):
        self.name = "shard %d (%s:%d)" % (shard, host, port)
        self.timeout = timeout
        self.sock = None
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise ShardError("%s: cannot connect: %s" % (self.name, e)) from None
        _no_delay(self.sock)
        self.fs = _DeadlineSock(self.sock)

    def generic_fun(self, fname, args):
        if self.sock is None:
            raise ShardError("%s: connection closed after an earlier failure"
                             % self.name)
        self.fs.deadline = time.monotonic() + self.timeout
        try:
            return rpc.Client.generic_fun(self, fname, args)
        except rpc.ServerException as e:
            raise ShardError("%s: %s failed on the server: %s"
                             % (self.name, fname, str(e).strip().splitlines()[-1]))
        except socket.timeout:
            self.close()
            raise ShardError("%s: no answer to %s within %.1f s (server hung?)"
                             % (self.name, fname, self.timeout)) from None
        except (OSError, EOFError, pickle.UnpicklingError) as e:
            self.close()
            raise ShardError("%s: connection lost during %s (server died?): %s"
                             % (self.name, fname, e or type(e).__name__)) from None

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class ShardedClient(client_server.ClientIndex):
    """FAISS's ClientIndex over shard servers, with
    - a deadline of `timeout` seconds on every call to a shard: a dead or
      hung shard raises ShardError naming it; a search returns every
      shard's results or raises;
    - results merged in the metric's order (ClientIndex's ResultHeap keeps
      the smallest distances, wrong for inner products);
    - a check at connection that the shards share one plan and hold
      disjoint ids (globally unique labels)."""

    def __init__(self, addresses: Sequence[Tuple[str, int]], timeout=10.0):
        from multiprocessing.dummy import Pool as ThreadPool
        self.sub_indexes = []
        try:
            for s, (host, port) in enumerate(addresses):
                self.sub_indexes.append(_ShardConnection(s, host, port, timeout))
        except BaseException:
            self.close()
            raise
        self.ni = len(self.sub_indexes)
        self.pool = ThreadPool(self.ni)
        self.verbose = False
        try:
            checksums = self._all(lambda c: c.get_plan_checksum())
            for c, sum_c in zip(self.sub_indexes, checksums):
                if sum_c != checksums[0]:
                    raise ShardError(
                        "%s was built with another plan than %s (checksum %s, "
                        "not %s)" % (c.name, self.sub_indexes[0].name,
                                     sum_c[:16], checksums[0][:16]))
            ranges = self._all(lambda c: c.get_id_range())
            check_disjoint([(c.name, r[0], r[1])
                            for c, r in zip(self.sub_indexes, ranges) if r])
            metrics = set(self._all(lambda c: c.get_metric_type()))
            if len(metrics) != 1:
                raise ShardError("the shards have different metrics: %s" % metrics)
            self.metric_type = metrics.pop()
            self.ntotal = self.get_ntotal()
        except BaseException:
            self.close()
            raise

    def _all(self, f):
        """f on every shard, all results or the first ShardError."""
        results = [r for r in self.pool.map(lambda c: _outcome(f, c),
                                            self.sub_indexes)]
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return results

    def set_nprobe(self, nprobe):
        self._all(lambda c: c.set_nprobe(nprobe))

    def set_omp_num_threads(self, nt):
        self._all(lambda c: c.set_omp_num_threads(nt))

    def get_ntotal(self):
        return sum(self._all(lambda c: c.get_ntotal()))

    def search(self, x, k):
        x = np.ascontiguousarray(x, dtype="float32")
        results = self._all(lambda c: c.search(x, k))
        rh = faiss.ResultHeap(x.shape[0], k, keep_max=(
            self.metric_type == faiss.METRIC_INNER_PRODUCT))
        for D, I in results:
            rh.add_result(D, I)
        rh.finalize()
        return rh.D, rh.I

    def close(self):
        for c in self.sub_indexes:
            c.close()
        if getattr(self, "pool", None) is not None:
            self.pool.terminate()
            self.pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _outcome(f, c):
    try:
        return f(c)
    except ShardError as e:
        return e


def start_servers(shard_files, host="127.0.0.1", **kwargs):
    """ShardServers(shard_files, host): one server process per shard file."""
    return ShardServers(shard_files, host, **kwargs)


def _main(argv):
    parser = argparse.ArgumentParser(prog="python3 -m faiss_bq.distributed")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="serve one shard file")
    p.add_argument("index_file")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--log", help="file for FAISS's RPC log (a line per call; "
                   "default: none)")
    args = parser.parse_args(argv)
    serve(args.index_file, args.host, args.port,
          log=open(args.log, "a") if args.log else None)


if __name__ == "__main__":
    _main(sys.argv[1:])
