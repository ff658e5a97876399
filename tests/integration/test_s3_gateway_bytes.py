"""Bytes through the S3 gateway equal the source's: whole objects, ranges
(cold and warm, crossing page boundaries), parallel multi-part downloads
and curl, for both a file:// mount and an s3:// mount (s3rver).  Pages are
64 KiB so that small objects span several pages."""
import random
import subprocess

from boto3.s3.transfer import TransferConfig

from conftest import PAGE, rand_bytes

SIZES = [0, 1, PAGE - 1, PAGE, PAGE + 1, int(5.5 * PAGE)]


def key_for(n):
    return f"sizes/obj-{n}.bin"


def test_whole_objects(mounted):
    objs = {key_for(n): rand_bytes(n, n) for n in SIZES}
    mounted.put_many(objs)
    s3 = mounted.worker.s3()
    for rnd in ("cold", "warm"):
        for k, v in objs.items():
            r = s3.get_object(Bucket="data", Key=k)
            body = r["Body"].read()
            assert r["ContentLength"] == len(v), (rnd, k)
            assert body == v, (rnd, k)
            h = s3.head_object(Bucket="data", Key=k)
            assert h["ContentLength"] == len(v)
            assert h["ETag"].startswith('"') and h["ETag"].endswith('"') and len(h["ETag"]) > 2
            assert h["ETag"] == r["ETag"]
            assert h["AcceptRanges"] == "bytes"
            assert h["LastModified"] is not None


def check_range(s3, key, data, rng):
    """Reads Range rng; checks status, Content-Range and bytes."""
    size = len(data)
    spec = rng[len("bytes="):]
    a, _, b = spec.partition("-")
    if a == "":
        n = int(b)
        lo, hi = max(0, size - n), size - 1
    else:
        lo = int(a)
        hi = min(int(b), size - 1) if b else size - 1
    r = s3.get_object(Bucket="data", Key=key, Range=rng)
    body = r["Body"].read()
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 206, rng
    assert r["ContentRange"] == f"bytes {lo}-{hi}/{size}", rng
    assert r["ContentLength"] == hi - lo + 1, rng
    assert body == data[lo:hi + 1], rng


def test_ranges(mounted):
    size = int(5.5 * PAGE)
    data = rand_bytes(size, 55)
    small = rand_bytes(PAGE + 1, 56)
    mounted.put_many({"r/big.bin": data, "r/small.bin": small})
    s3 = mounted.worker.s3()
    ranges = [
        "bytes=0-0", f"bytes={PAGE - 1}-{PAGE}", f"bytes={PAGE - 10}-{3 * PAGE + 10}",
        f"bytes={5 * PAGE}-{size - 1}", "bytes=-100", f"bytes=-{size + 100}",
        f"bytes={3 * PAGE}-", f"bytes={size - 1}-", f"bytes=0-{size + 1000}",
        f"bytes={2 * PAGE}-{3 * PAGE - 1}", f"bytes=-{PAGE + 1}",
    ]
    rnd = random.Random(7)
    for _ in range(20):
        a = rnd.randrange(size)
        ranges.append(f"bytes={a}-{rnd.randrange(a, size)}")
    # Cold pages (partly: earlier ranges warm some), then all warm.
    for rng in ranges:
        check_range(s3, "r/big.bin", data, rng)
    for rng in ranges:
        check_range(s3, "r/big.bin", data, rng)
    for rng in ("bytes=0-0", f"bytes={PAGE}-{PAGE}", "bytes=-1", f"bytes={PAGE - 1}-"):
        check_range(s3, "r/small.bin", small, rng)


def test_download_file_parallel_ranges(mounted, tmp_path):
    size = 24 * PAGE + 123
    data = rand_bytes(size, 24)
    mounted.put("dl/file.bin", data)
    w = mounted.worker
    before = w.metric("ferry_s3_requests_total", op="GetObject")
    cfg = TransferConfig(multipart_threshold=128 * 1024, multipart_chunksize=96 * 1024,
                         max_concurrency=8, use_threads=True)
    out = tmp_path / "out.bin"
    w.s3().download_file("data", "dl/file.bin", str(out), Config=cfg)
    assert out.read_bytes() == data
    gets = w.metric("ferry_s3_requests_total", op="GetObject") - before
    assert gets >= size // (96 * 1024), f"download_file made {gets} GETs: not a ranged download"
    # Again, warm.
    out.unlink()
    w.s3().download_file("data", "dl/file.bin", str(out), Config=cfg)
    assert out.read_bytes() == data


def curl(*args, timeout=60):
    return subprocess.run(["curl", "-sS", "--noproxy", "*", "--max-time", "30"] + list(args),
                          capture_output=True, timeout=timeout)


def test_curl(mounted, tmp_path):
    size = 3 * PAGE + 17
    data = rand_bytes(size, 3)
    mounted.put("c/obj.bin", data)
    url = f"{mounted.worker.s3_url}/data/c/obj.bin"
    out = tmp_path / "c.bin"
    p = curl("--fail", "-o", str(out), url)
    assert p.returncode == 0, p.stderr
    assert out.read_bytes() == data
    p = curl("--fail", "-r", f"{PAGE - 5}-{2 * PAGE + 5}", url)
    assert p.returncode == 0, p.stderr
    assert p.stdout == data[PAGE - 5:2 * PAGE + 6]
    p = curl("-I", "--fail", url)
    assert p.returncode == 0
    assert f"content-length: {size}".encode() in p.stdout.lower()

