"""faiss_bq.distributed: builds on a dask LocalCluster of 2 worker processes,
shards served by faiss.contrib.client_server server processes, all bound to
127.0.0.1 and stopped here; results against the merged index, bad input."""
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import faiss
from faiss.contrib.vecs_io import fvecs_read, fvecs_write, ivecs_read
import faiss_bq
import faiss_bq.distributed as bqd

distributed = pytest.importorskip("distributed")

D_SMALL, N_SMALL, NLIST = 32, 6000, 16


@pytest.fixture(scope="module")
def client():
    # dashboard off; the scheduler's HTTP server (health routes, always
    # started) on a free port of 127.0.0.1 rather than 8787
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, silence_logs=40,
        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Clustered rows, no exact ties: as .fvecs and .npy."""
    rs = np.random.RandomState(7)
    centres = rs.randn(NLIST, D_SMALL).astype("float32") * 2
    xb = (centres[rs.randint(NLIST, size=N_SMALL)] +
          rs.randn(N_SMALL, D_SMALL)).astype("float32")
    xq = (centres[rs.randint(NLIST, size=40)] +
          rs.randn(40, D_SMALL)).astype("float32")
    folder = tmp_path_factory.mktemp("data")
    fvecs_write(str(folder / "base.fvecs"), xb)
    np.save(str(folder / "base.npy"), xb)
    return folder, xb, xq


def trained_empty(xb, description="IVF16,BQ1_fs", metric=faiss.METRIC_INNER_PRODUCT,
                  seed=3):
    index = faiss_bq.index_factory(xb.shape[1], description, metric)
    rows = np.random.RandomState(seed).choice(len(xb), 3000, replace=False)
    index.train(xb[np.sort(rows)])
    return index


def in_process(trained, xb):
    index = faiss_bq.clone_index(trained)
    index.add(xb)
    return index


@pytest.fixture(scope="module")
def built(client, data, tmp_path_factory):
    """One build of the .fvecs file by the 2 workers, merged and kept."""
    folder, xb, _ = data
    trained = trained_empty(xb)
    out = tmp_path_factory.mktemp("built")
    result = bqd.build(client, str(folder / "base.fvecs"), trained, str(out))
    return trained, result


def search(index, xq, nprobe=4, k=10):
    faiss.extract_index_ivf(index).nprobe = nprobe
    return index.search(xq, k)


def test_build_uses_both_workers_and_equals_the_single_process_index(
        client, data, built):
    folder, xb, xq = data
    trained, result = built
    for w in client.scheduler_info()["workers"]:
        assert w.startswith("tcp://127.0.0.1:")
    assert len({s["pid"] for s in result.shards}) == 2
    assert [s["ntotal"] for s in result.shards] == [N_SMALL // 2] * 2
    assert result.ntotal == N_SMALL
    assert result.plan_checksum == bqd.plan_checksum(trained)
    # only complete files: the shards, the index and its lists
    assert sorted(os.listdir(os.path.dirname(result.index_file))) == [
        "index.index", "index.ivfdata", "index.shard0", "index.shard1"]
    merged = faiss_bq.read_index(result.index_file)
    assert isinstance(faiss.downcast_InvertedLists(
        faiss.extract_index_ivf(merged).invlists), faiss.OnDiskInvertedLists)
    assert merged.ntotal == N_SMALL
    D, I = search(merged, xq)
    D0, I0 = search(in_process(trained, xb), xq)
    np.testing.assert_array_equal(I, I0)
    np.testing.assert_array_equal(D, D0)
    # the shards hold disjoint row ranges: ids are global row numbers
    ranges = [bqd.id_range(faiss_bq.read_index(f)) for f in result.shard_files]
    assert ranges == [(0, N_SMALL // 2 - 1), (N_SMALL // 2, N_SMALL - 1)]


def test_build_from_a_factory_string_npy_parts_shards_kept(client, data, tmp_path):
    folder, xb, xq = data
    npy = str(folder / "base.npy")
    parts = [bqd.Part(npy, 0, 2500, first_id=10**9),
             bqd.Part(npy, 2500, None)]          # ids follow: 10**9 + 2500...
    result = bqd.build(client, parts, "IVF16,BQ2", str(tmp_path), merge=False,
                       metric=faiss.METRIC_L2, train_rows=2000, name="npy")
    assert result.index_file is None and result.ivfdata_file is None
    assert sorted(os.listdir(tmp_path)) == ["npy.shard0", "npy.shard1"]
    shards = [faiss_bq.read_index(f) for f in result.shard_files]
    assert [s.ntotal for s in shards] == [2500, N_SMALL - 2500]
    assert [bqd.id_range(s) for s in shards] == [
        (10**9, 10**9 + 2499), (10**9 + 2500, 10**9 + N_SMALL - 1)]
    assert {bqd.plan_checksum(s) for s in shards} == {result.plan_checksum}
    assert type(shards[0]) is faiss_bq.IndexIVFBQ
    assert shards[0].metric_type == faiss.METRIC_L2
    assert "residuals" in shards[0].plan.reason     # trained by a worker
    # merged afterwards, by the same checks and merge_ondisk
    trained = faiss_bq.clone_index(shards[0])
    trained.reset()
    merged = bqd.merge_shards(trained, result.shard_files,
                              str(tmp_path / "later.index"))
    _, I = search(merged, xq, nprobe=NLIST)
    assert I.min() >= 10**9
    together = faiss.IndexShards(D_SMALL, False, False)
    for s in shards:
        together.add_shard(s)
    for s in shards:
        faiss.extract_index_ivf(s).nprobe = NLIST
    np.testing.assert_array_equal(together.search(xq, 10)[1], I)


def test_build_of_a_faiss_ivf_index(client, data, tmp_path):
    """The machinery is FAISS's: a FAISS IVF index builds, merges and serves
    the same way."""
    folder, xb, xq = data
    trained = faiss.index_factory(D_SMALL, "IVF16,SQ8", faiss.METRIC_L2)
    trained.train(xb[:3000])
    result = bqd.build(client, str(folder / "base.npy"), trained, str(tmp_path))
    D, I = search(faiss_bq.read_index(result.index_file), xq)
    D0, I0 = search(in_process(trained, xb), xq)
    np.testing.assert_array_equal(I, I0)
    np.testing.assert_array_equal(D, D0)
    with bqd.start_servers(result.shard_files) as servers, \
            bqd.ShardedClient(servers.addresses) as c:
        c.set_nprobe(4)
        D2, I2 = c.search(xq, 10)
    np.testing.assert_array_equal(I2, I)
    np.testing.assert_array_equal(D2, D)


def listening_addresses(port):
    """IPv4 addresses listening on port, from /proc/net/tcp (hex, host order)."""
    found = []
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, p = local.split(":")
            if int(p, 16) == port and state == "0A":      # LISTEN
                found.append(".".join(str(b) for b in bytes.fromhex(addr)[::-1]))
    return found


@pytest.mark.parametrize("nprobe", [1, 4, NLIST])
def test_served_shards_return_exactly_the_merged_index_results(data, built, nprobe):
    _, _, xq = data
    _, result = built
    D, I = search(faiss_bq.read_index(result.index_file), xq, nprobe)
    with bqd.start_servers(result.shard_files) as servers:
        assert [h for h, _ in servers.addresses] == ["127.0.0.1"] * 2
        for _, port in servers.addresses:
            assert listening_addresses(port) == ["127.0.0.1"]
        with bqd.ShardedClient(servers.addresses) as c:
            assert c.ntotal == N_SMALL
            assert c.metric_type == faiss.METRIC_INNER_PRODUCT
            c.set_omp_num_threads(1)
            c.set_nprobe(nprobe)
            D2, I2 = c.search(xq, 10)
    np.testing.assert_array_equal(I2, I)
    np.testing.assert_array_equal(D2, D)


def test_faiss_client_index_alone_merges_inner_products_wrongly(data, built):
    """Why ShardedClient re-merges: ClientIndex's ResultHeap keeps the
    smallest distances, the worst inner products."""
    from faiss.contrib import client_server
    _, _, xq = data
    _, result = built
    _, I = search(faiss_bq.read_index(result.index_file), xq)
    with bqd.start_servers(result.shard_files) as servers:
        c = client_server.ClientIndex(servers.addresses)
        c.set_nprobe(4)
        _, I2 = c.search(xq, 10)
        for s in c.sub_indexes:
            s.sock.close()
    assert not np.array_equal(I, I2)


def shard_number(message):
    return int(re.search(r"shard (\d+) \(127\.0\.0\.1:\d+\)", message).group(1))


def wait_until_stopped(pid):
    """SIGSTOP is delivered asynchronously: wait for state T in /proc."""
    for _ in range(1000):
        with open("/proc/%d/stat" % pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "T":
                return
        time.sleep(0.01)
    raise AssertionError("process %d did not stop" % pid)


@pytest.mark.parametrize("how", ["killed", "hung"])
def test_dead_or_hung_server_is_named_within_the_time_limit(data, built, how):
    _, _, xq = data
    _, result = built
    with bqd.start_servers(result.shard_files) as servers:
        c = bqd.ShardedClient(servers.addresses, timeout=2.0)
        c.search(xq, 10)
        victim = servers.processes[1]
        if how == "killed":
            victim.kill()
            victim.wait()
        else:
            victim.send_signal(signal.SIGSTOP)
            wait_until_stopped(victim.pid)
        t0 = time.monotonic()
        with pytest.raises(bqd.ShardError) as e:
            c.search(xq, 10)
        elapsed = time.monotonic() - t0
        assert shard_number(str(e.value)) == 1, str(e.value)
        assert ("within 2.0 s" if how == "hung" else "server died") in str(e.value)
        assert elapsed < 10.0          # the limit; the deadline is 2 s
        # the connection is closed: no later answer mixes in stale replies
        with pytest.raises(bqd.ShardError, match="shard 1 .*earlier failure"):
            c.search(xq, 10)
        c.close()
        with pytest.raises(bqd.ShardError, match="shard 1 .*cannot connect"
                           if how == "killed" else "shard 1 .*within 2.0 s"):
            bqd.ShardedClient(servers.addresses, timeout=2.0)


def test_client_refuses_shards_of_other_plans_or_overlapping_ids(
        client, data, built, tmp_path):
    folder, xb, _ = data
    trained, result = built
    other = bqd.build(client, str(folder / "base.fvecs"),
                      trained_empty(xb, seed=4), str(tmp_path), merge=False)
    mixed = [result.shard_files[0], other.shard_files[1]]
    with bqd.start_servers(mixed) as servers:
        with pytest.raises(bqd.ShardError, match=r"shard 1 \(127\.0\.0\.1:\d+\) "
                           r"was built with another plan than shard 0"):
            bqd.ShardedClient(servers.addresses)
    twice = [result.shard_files[0], result.shard_files[0]]
    with bqd.start_servers(twice) as servers:
        with pytest.raises(bqd.DistributedError, match=r"overlapping id ranges: "
                           r"shard 0 .* holds ids \[0, 2999\], shard 1 .*"):
            bqd.ShardedClient(servers.addresses)


def test_worker_given_another_plan_is_refused_and_writes_nothing(
        client, data, tmp_path):
    folder, xb, _ = data
    blob = faiss_bq.serialize_index(trained_empty(xb))
    other = faiss_bq.serialize_index(trained_empty(xb, seed=4))
    checksum = bqd.plan_checksum(faiss_bq.deserialize_index(blob))
    part = bqd.Part(str(folder / "base.fvecs"), 0, 100, first_id=0)
    shard = str(tmp_path / "s.shard0")
    with pytest.raises(bqd.DistributedError,
                       match=r"shard .*s\.shard0 .*: the trained index given "
                             r"to this worker has checksum .*different plan"):
        client.submit(bqd.encode_shard, other, checksum, part, shard).result()
    assert os.listdir(tmp_path) == []
    # the same worker with the right plan writes the shard
    client.submit(bqd.encode_shard, blob, checksum, part, shard).result()
    assert os.listdir(tmp_path) == ["s.shard0"]


def test_merge_refuses_another_plan_overlaps_and_missing_files(
        client, data, built, tmp_path):
    folder, xb, _ = data
    trained, result = built
    other = bqd.build(client, str(folder / "base.fvecs"),
                      trained_empty(xb, seed=4), str(tmp_path / "other"),
                      merge=False)
    out = str(tmp_path / "m.index")
    cases = [
        ([result.shard_files[0], other.shard_files[1]],
         r"shard .*other/index\.shard1 was built with another plan"),
        ([result.shard_files[0], result.shard_files[0]],
         r"overlapping id ranges: shard .*index\.shard0 holds ids \[0, 2999\]"),
        ([result.shard_files[0], str(tmp_path / "gone.shard")],
         r"shard file .*gone\.shard is missing"),
    ]
    for shard_files, message in cases:
        with pytest.raises(bqd.DistributedError, match=message):
            bqd.merge_shards(trained, shard_files, out)
        assert sorted(os.listdir(tmp_path)) == ["other"]   # nothing written
    with pytest.raises(bqd.ShardError, match=r"shard server for .*gone\.shard "
                       r"did not start.*gone\.shard is missing"):
        bqd.start_servers([str(tmp_path / "gone.shard")])


def test_merged_index_names_its_missing_data_file(data, built, tmp_path):
    _, result = built
    moved = str(tmp_path / "moved.index")
    with open(result.index_file, "rb") as f, open(moved, "wb") as g:
        g.write(f.read())
    faiss_bq.read_index(moved)                  # the data file is where it says
    with pytest.raises(RuntimeError, match=r"data file .*/index\.ivfdata \(named by "
                       r".*moved\.index\) is missing"):
        faiss_bq.read_index(moved, faiss.IO_FLAG_ONDISK_SAME_DIR)


def test_build_input_errors_name_the_file_and_leave_nothing(client, data, tmp_path):
    folder, xb, _ = data
    fvecs = str(folder / "base.fvecs")
    trained = trained_empty(xb)
    with pytest.raises(bqd.DistributedError,
                       match=r"overlapping id ranges: .*base\.fvecs rows \[0, 3000\) "
                             r"holds ids \[0, 2999\], .*base\.npy rows \[0, 10\) "
                             r"holds \[2990, 2999\]"):
        bqd.build(client, [bqd.Part(fvecs, 0, 3000),
                           bqd.Part(str(folder / "base.npy"), 0, 10, first_id=2990)],
                  trained, str(tmp_path))
    with pytest.raises(TypeError, match=r"save it \(np\.save\(path, x\)\) and pass "
                       r"the \.npy path"):
        bqd.build(client, xb, trained, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"input file .*nothere\.fvecs is missing"):
        bqd.build(client, str(tmp_path / "nothere.fvecs"), trained, str(tmp_path))
    # a part of another width fails on its worker: no shard of the build stays
    wide = str(tmp_path / "wide.fvecs")
    fvecs_write(wide, np.ones((50, D_SMALL + 1), dtype="float32"))
    with pytest.raises(bqd.DistributedError, match=r"wide\.fvecs rows \[0, 50\).*d = 33 "
                       r"for an index of d = 32"):
        bqd.build(client, [fvecs, wide], trained, str(tmp_path / "out"))
    assert os.listdir(tmp_path / "out") == []
    with pytest.raises(bqd.DistributedError, match="trained and empty"):
        bqd.build(client, fvecs, in_process(trained, xb[:10]), str(tmp_path))
    bad = str(tmp_path / "bad.fvecs")
    with open(bad, "wb") as f:
        f.write(np.array([4, 0, 0], dtype="int32").tobytes())
    with pytest.raises(bqd.DistributedError, match=r"bad\.fvecs: 12 bytes is not a "
                       r"whole number of rows of d = 4"):
        bqd.build(client, bad, trained, str(tmp_path))


def test_import_needs_no_dask():
    code = ("import sys; sys.modules['dask'] = None; sys.modules['distributed'] = None\n"
            "import faiss_bq, faiss_bq.distributed as bqd\n"
            "try:\n"
            "    bqd.build(None, 'x.fvecs', 'IVF4,BQ1', '.')\n"
            "except ImportError as e:\n"
            "    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True).stdout
    assert "apt-get install python3-distributed" in out


def real_data(name):
    folder = os.path.join(os.environ.get("FAISS_BQ_DATA", ""), name)
    if not os.path.exists(os.path.join(folder, "base.fvecs")):
        pytest.skip("real data %s absent (FAISS_BQ_DATA=%s): run "
                    "../shared/data/get-data.sh" % (name, os.environ.get("FAISS_BQ_DATA")))
    return folder


def test_real_minilm_built_by_two_workers_served_as_two_shards(client, tmp_path):
    folder = real_data("minilm-sap")
    base = os.path.join(folder, "base.fvecs")
    xq = fvecs_read(os.path.join(folder, "query.fvecs"))
    gt = ivecs_read(os.path.join(folder, "groundtruth.ivecs"))
    result = bqd.build(client, base, "IVF8,BQ1_fs", str(tmp_path),
                       metric=faiss.METRIC_INNER_PRODUCT)
    merged = faiss_bq.read_index(result.index_file)
    D, I = search(merged, xq, nprobe=8)
    recall = np.mean([len(set(I[i]) & set(gt[i, :10])) / 10 for i in range(len(xq))])
    assert recall > 0.6, recall        # BQ1 on minilm: ~0.75 flat
    with bqd.start_servers(result.shard_files) as servers, \
            bqd.ShardedClient(servers.addresses) as c:
        c.set_nprobe(8)
        D2, I2 = c.search(xq, 10)
    np.testing.assert_array_equal(I2, I)
    np.testing.assert_array_equal(D2, D)

# docs/distributed.md's Python blocks run in python/tests/test_docs.py.
