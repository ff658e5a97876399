"""Concurrency: many clients reading one cold object make one UFS fetch per
page (shared fetches), all get the right bytes; 1,000 concurrent
keep-alive connections are all answered; at the connection cap idle
connections are shed and 503 comes only when all are busy."""
import random
import socket
import threading
import time

from conftest import PAGE, rand_bytes, read_response, wait_for


def run_threads(n, fn, timeout=120):
    barrier = threading.Barrier(n)
    errors = []

    def body(i):
        try:
            barrier.wait(30)
            fn(i)
        except Exception as e:  # noqa: BLE001 - collected and reported
            errors.append(f"thread {i}: {e!r}")

    ts = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    deadline = time.monotonic() + timeout
    for t in ts:
        t.join(max(0.1, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in ts), "client threads still running after the timeout"
    return errors


def test_64_clients_one_cold_object(mounted):
    w = mounted.worker
    data = rand_bytes(8 * PAGE, 64)
    mounted.put("cold/eight.bin", data)
    mark = mounted.mark()
    s3 = w.s3(max_pool_connections=64)
    s3.head_bucket(Bucket="data")  # (create the client's pool before the rush)
    bad = []

    def read(i):
        body = s3.get_object(Bucket="data", Key="cold/eight.bin")["Body"].read()
        if body != data:
            bad.append(i)

    errors = run_threads(64, read)
    assert not errors, errors[:5]
    assert not bad, f"{len(bad)} clients got wrong bytes"
    assert w.ufs_reads() == 8, "each page must be fetched from the UFS once"
    if mounted.kind == "s3":
        assert mounted.ufs_gets("cold/eight.bin", mark) == 8
    assert w.metric("ferry_cache_hit_bytes_total") + w.metric("ferry_cache_miss_bytes_total") == 64 * len(data)


def test_concurrent_random_ranges_cold(mounted):
    w = mounted.worker
    size = 16 * PAGE + 333
    data = rand_bytes(size, 16)
    mounted.put("cold/ranges.bin", data)
    mark = mounted.mark()
    s3 = w.s3(max_pool_connections=32)
    s3.head_bucket(Bucket="data")
    bad = []

    def read(i):
        rnd = random.Random(i)
        for _ in range(6):
            a = rnd.randrange(size)
            b = min(size - 1, a + rnd.randrange(3 * PAGE))
            body = s3.get_object(Bucket="data", Key="cold/ranges.bin", Range=f"bytes={a}-{b}")["Body"].read()
            if body != data[a:b + 1]:
                bad.append((i, a, b))

    errors = run_threads(32, read)
    assert not errors, errors[:5]
    assert not bad, bad[:5]
    # Read-ahead may fetch pages nobody asked for, but never one page twice.
    assert w.ufs_reads() <= 17
    if mounted.kind == "s3":
        assert mounted.ufs_gets("cold/ranges.bin", mark) == w.ufs_reads()


def test_1000_keepalive_connections(make_worker, data_dir):
    (data_dir / "small.txt").write_bytes(b"hello")
    w = make_worker(mounts={"data": data_dir})
    n = 1000
    socks = []
    req = f"HEAD /data/small.txt HTTP/1.1\r\nHost: {w.s3_host}:{w.s3_port}\r\n\r\n".encode()
    try:
        for _ in range(n):
            s = socket.create_connection((w.s3_host, w.s3_port), timeout=10)
            socks.append(s)
        for rnd in range(2):  # the second round reuses every connection
            for s in socks:
                s.sendall(req)
            answered = 0
            for s in socks:
                status, hdrs, _ = read_response(s, timeout=30, head=True)
                assert status == 200, (rnd, status)
                assert hdrs["content-length"] == "5"
                answered += 1
            assert answered == n
        assert w.metric("ferry_connections_rejected_total") == 0
    finally:
        for s in socks:
            s.close()
    w.assert_alive()
    # After they all close, the worker still serves.
    assert w.s3().get_object(Bucket="data", Key="small.txt")["Body"].read() == b"hello"


def test_connection_cap_rejects_with_503_only_when_all_busy(make_worker, data_dir):
    (data_dir / "small.txt").write_bytes(b"hello")
    (data_dir / "big.bin").write_bytes(rand_bytes(48 << 20, 48))
    w = make_worker(mounts={"data": data_dir}, args=["--max-connections", "8"])
    socks = []
    try:
        # eight slow readers: each holds its connection in a request
        for _ in range(8):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(10)
            s.connect((w.s3_host, w.s3_port))
            s.sendall(b"GET /data/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            socks.append(s)
        wait_for(lambda: w.metric("ferry_connections_open", server="s3") == 8 and
                 w.metric("ferry_connections_idle", server="s3") == 0, what="8 busy connections")
        extra = socket.create_connection((w.s3_host, w.s3_port), timeout=10)
        socks.append(extra)
        try:
            # Answered at once, or after the request: either is fine.
            status, _, _ = read_response(extra, timeout=2, head=True)
        except socket.timeout:
            extra.sendall(b"HEAD /data/small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, _ = read_response(extra, head=True)
        assert status == 503
        assert w.metric("ferry_connections_rejected_total") >= 1
    finally:
        for s in socks:
            s.close()
    # Once they are gone, new connections are served again.
    w.assert_alive()
    wait_for(lambda: w.metric("ferry_connections_open", server="s3") == 0, what="connections closed")
    assert w.s3().get_object(Bucket="data", Key="small.txt")["Body"].read() == b"hello"


def test_connection_cap_sheds_idle_connections(make_worker, data_dir):
    (data_dir / "small.txt").write_bytes(b"hello")
    w = make_worker(mounts={"data": data_dir}, args=["--max-connections", "8"])
    socks = []
    try:
        for i in range(9):  # the ninth closes the oldest idle one
            if i == 8:
                wait_for(lambda: w.metric("ferry_connections_idle", server="s3") == 8,
                         what="8 idle connections")
            s = socket.create_connection((w.s3_host, w.s3_port), timeout=10)
            s.sendall(b"HEAD /data/small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(s, head=True)[0] == 200
            socks.append(s)
        assert socks[0].recv(1) == b""
        assert w.metric("ferry_connections_shed_total") == 1
        assert w.metric("ferry_connections_rejected_total") == 0
    finally:
        for s in socks:
            s.close()
