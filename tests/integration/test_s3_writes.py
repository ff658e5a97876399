"""S3 gateway writes (PutObject, CopyObject, DeleteObject, DeleteObjects)
through objput, against a directory and against s3rver, with real clients:
Debian's boto3, the newer boto3 of the default python3 (checksums, aws-chunked
with trailers), the aws cli, curl --aws-sigv4, and raw requests for what no
client sends (signed chunks, tampered bodies, a client that goes away).

What a user relies on: the bytes written are the bytes the under-store holds
and every later read returns; in write-through the next GET is served from
the cache (the under-store is not asked); a delete or an overwrite is seen
at once; a body that fails a check, or never arrives whole, leaves no object
and no temporary file; a read-only mount and anonymous clients cannot write.
"""
import hashlib
import json
import os
import socket
import subprocess
import textwrap
import time

import pytest
import requests
from botocore.exceptions import ClientError

import test_s3_body_crosscheck as xc
from conftest import PAGE, make_mounted, rand_bytes, raw_request, s3_error_code, sign_sigv4, wait_for

AK, SK = "AKIDWRITES", "writes-secret/+="
KEYED = ["--s3-access-key", AK, "--s3-secret-key", SK]


@pytest.fixture(params=["file", "s3"])
def wm(request, make_worker, tmp_path):
    """A worker with credentials and mount "data" on a directory or s3rver."""
    m = make_mounted(request.param, make_worker, tmp_path,
                     lambda: request.getfixturevalue("s3rver"), args=KEYED)
    m.s3 = m.worker.s3(AK, SK)
    return m


def src_get(m, key):
    """The object as the under-store holds it, or None."""
    if m.kind == "file":
        p = m.data_dir / key
        return p.read_bytes() if p.is_file() else None
    try:
        return m.s3rver.client.get_object(Bucket=m.src_bucket, Key=m.prefix + key)["Body"].read()
    except ClientError as e:
        assert e.response["Error"]["Code"] == "NoSuchKey", e
        return None


def no_temp_files(m):
    if m.kind == "file":
        left = [p for p in m.data_dir.rglob("*") if p.name.startswith(".ferry-tmp.")]
        assert not left, left
    # (s3rver has no ListMultipartUploads; these bodies are single PUTs.)


def ufs_reads_of(m, key):
    """How often the under-store was asked for key's bytes so far."""
    if m.kind == "s3":
        m.s3rver.settle()
        return len(m.s3rver.gets(m.src_bucket, m.prefix + key))
    return m.worker.ufs_reads()


def get(m, key):
    return m.s3.get_object(Bucket="data", Key=key)["Body"].read()


def code_of(ei):
    return ei.value.response["Error"]["Code"]


SIZES = [0, 1, PAGE - 1, PAGE, 3 * PAGE + 17, (1 << 20) + 5]


def test_put_then_get_is_a_cache_hit(wm):
    objs = {f"w/obj{n}.bin": rand_bytes(n, n + 7) for n in SIZES}
    for k, v in objs.items():
        r = wm.s3.put_object(Bucket="data", Key=k, Body=v)
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert r["ETag"].startswith('"') and r["ETag"].endswith('"')
        assert src_get(wm, k) == v
    before = {k: ufs_reads_of(wm, k) for k in objs}
    for k, v in objs.items():
        assert get(wm, k) == v
        h = wm.s3.head_object(Bucket="data", Key=k)
        assert h["ContentLength"] == len(v)
    # Written through: every byte came from the cache.
    assert {k: ufs_reads_of(wm, k) for k in objs} == before
    keys = [c["Key"] for c in wm.s3.list_objects_v2(Bucket="data", Prefix="w/")["Contents"]]
    assert keys == sorted(objs)
    assert wm.worker.metric("ferry_s3_requests_total", op="PutObject") >= len(objs)
    assert wm.worker.metric("ferry_put_requests_total", mode="through") >= len(objs)
    no_temp_files(wm)


def test_overwrite_is_seen_at_once(wm):
    a, b = rand_bytes(3 * PAGE + 5, 1), rand_bytes(PAGE + 9, 2)
    wm.s3.put_object(Bucket="data", Key="ow.bin", Body=a)
    assert get(wm, "ow.bin") == a
    etag_a = wm.s3.head_object(Bucket="data", Key="ow.bin")["ETag"]
    r = wm.s3.put_object(Bucket="data", Key="ow.bin", Body=b)
    assert r["ETag"] != etag_a
    assert get(wm, "ow.bin") == b
    h = wm.s3.head_object(Bucket="data", Key="ow.bin")
    assert (h["ContentLength"], h["ETag"]) == (len(b), r["ETag"])
    got = wm.s3.get_object(Bucket="data", Key="ow.bin", Range="bytes=%d-" % PAGE)["Body"].read()
    assert got == b[PAGE:]
    listed = wm.s3.list_objects_v2(Bucket="data")["Contents"]
    assert [(c["Key"], c["Size"]) for c in listed] == [("ow.bin", len(b))]
    assert src_get(wm, "ow.bin") == b


def test_write_around_caches_nothing(make_worker, tmp_path):
    d = tmp_path / "around"
    d.mkdir()
    w = make_worker(args=KEYED)
    w.mount("data", f"file://{d}", write="around")
    s3 = w.s3(AK, SK)
    old = rand_bytes(2 * PAGE, 3)
    (d / "x.bin").write_bytes(old)
    assert s3.get_object(Bucket="data", Key="x.bin")["Body"].read() == old
    new = rand_bytes(2 * PAGE + 1, 4)
    s3.put_object(Bucket="data", Key="x.bin", Body=new)
    assert (d / "x.bin").read_bytes() == new
    reads = w.ufs_reads()
    assert s3.get_object(Bucket="data", Key="x.bin")["Body"].read() == new
    assert w.ufs_reads() > reads  # from the under-store, not from a cache
    assert w.metric("ferry_put_requests_total", mode="around") == 1


def test_delete(wm):
    v = rand_bytes(2 * PAGE, 5)
    wm.s3.put_object(Bucket="data", Key="del/a.bin", Body=v)
    wm.s3.put_object(Bucket="data", Key="del/b.bin", Body=b"b")
    assert get(wm, "del/a.bin") == v  # cached
    r = wm.s3.delete_object(Bucket="data", Key="del/a.bin")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as ei:
        get(wm, "del/a.bin")
    assert code_of(ei) == "NoSuchKey"
    with pytest.raises(ClientError) as ei:
        wm.s3.head_object(Bucket="data", Key="del/a.bin")
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert [c["Key"] for c in wm.s3.list_objects_v2(Bucket="data", Prefix="del/")["Contents"]] == ["del/b.bin"]
    assert src_get(wm, "del/a.bin") is None
    # Deleting what is not there succeeds, as on S3.
    r = wm.s3.delete_object(Bucket="data", Key="del/never")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert src_get(wm, "del/b.bin") == b"b"


def test_delete_objects(wm):
    for i in range(6):
        wm.s3.put_object(Bucket="data", Key=f"m/k{i}", Body=b"%d" % i)
    r = wm.s3.delete_objects(Bucket="data", Delete={"Objects": [
        {"Key": "m/k0"}, {"Key": "m/k1"}, {"Key": "m/nokey"}]})
    assert sorted(d["Key"] for d in r["Deleted"]) == ["m/k0", "m/k1", "m/nokey"]
    assert not r.get("Errors")
    r = wm.s3.delete_objects(Bucket="data", Delete={"Objects": [{"Key": "m/k2"}], "Quiet": True})
    assert not r.get("Deleted") and not r.get("Errors")
    r = wm.s3.delete_objects(Bucket="data", Delete={"Objects": [{"Key": "m/../k3"}, {"Key": "m/k3"}]})
    assert [d["Key"] for d in r["Deleted"]] == ["m/k3"]
    assert [(e["Key"], e["Code"]) for e in r["Errors"]] == [("m/../k3", "InvalidArgument")]
    left = [c["Key"] for c in wm.s3.list_objects_v2(Bucket="data", Prefix="m/")["Contents"]]
    assert left == ["m/k4", "m/k5"]
    assert [src_get(wm, f"m/k{i}") for i in range(6)] == [None] * 4 + [b"4", b"5"]
    # A malformed document deletes nothing, not even its first keys.
    for doc in (b"<Delete><Object><Key>m/k4</Key></Object><Object></Object></Delete>",
                b"<Delete><Object><Key>m/k4</Key></Object>",
                b"<Delete></Delete>",
                b"<NotDelete><Object><Key>m/k4</Key></Object></NotDelete>",
                b"<!DOCTYPE x [<!ENTITY a 'b'>]><Delete><Object><Key>m/k4</Key></Object></Delete>",
                b"<Delete>" + b"<Object><Key>m/k4</Key></Object>" * 1001 + b"</Delete>"):
        req = requests.Request("POST", wm.worker.s3_url + "/data?delete", data=doc,
                               headers={"Content-MD5": __import__("base64").b64encode(
                                   hashlib.md5(doc).digest()).decode()}).prepare()
        sign_sigv4(req, AK, SK)
        with requests.Session() as s:
            resp = s.send(req, timeout=30)
        assert resp.status_code == 400, (doc[:60], resp.text)
        assert s3_error_code(resp.content) == "MalformedXML"
    assert src_get(wm, "m/k4") == b"4"


def test_copy_within_and_across_mounts(wm, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    wm.worker.mount("other", f"file://{other}")
    v = rand_bytes(3 * PAGE + 99, 6)
    wm.s3.put_object(Bucket="data", Key="c/src.bin", Body=v)
    r = wm.s3.copy_object(Bucket="data", Key="c/dst.bin", CopySource={"Bucket": "data", "Key": "c/src.bin"})
    assert r["CopyObjectResult"]["ETag"].startswith('"')
    assert get(wm, "c/dst.bin") == v and src_get(wm, "c/dst.bin") == v
    assert wm.s3.head_object(Bucket="data", Key="c/dst.bin")["ETag"] == r["CopyObjectResult"]["ETag"]
    # Across mounts, through the cache: the source's store is not asked.
    get(wm, "c/src.bin")
    reads = ufs_reads_of(wm, "c/src.bin")
    r = wm.s3.copy_object(Bucket="other", Key="x/y.bin", CopySource="data/c/src.bin")
    assert (other / "x" / "y.bin").read_bytes() == v
    assert wm.s3.get_object(Bucket="other", Key="x/y.bin")["Body"].read() == v
    if wm.kind == "s3":
        assert ufs_reads_of(wm, "c/src.bin") == reads
    # Overwriting a copy's target with a copy shows the new bytes.
    w2 = rand_bytes(PAGE, 7)
    wm.s3.put_object(Bucket="data", Key="c/src.bin", Body=w2)
    wm.s3.copy_object(Bucket="other", Key="x/y.bin", CopySource="/data/c/src.bin")
    assert wm.s3.get_object(Bucket="other", Key="x/y.bin")["Body"].read() == w2
    # What S3 refuses.
    with pytest.raises(ClientError) as ei:
        wm.s3.copy_object(Bucket="data", Key="c/src.bin", CopySource="data/c/src.bin")
    assert code_of(ei) == "InvalidRequest"
    with pytest.raises(ClientError) as ei:
        wm.s3.copy_object(Bucket="data", Key="c/z", CopySource="data/c/nosuch")
    assert code_of(ei) == "NoSuchKey"
    with pytest.raises(ClientError) as ei:
        wm.s3.copy_object(Bucket="data", Key="c/z", CopySource="nobucket/c/src.bin")
    assert code_of(ei) == "NoSuchBucket"
    for kw in ({"CopySourceIfMatch": '"nope"'}, {"CopySourceIfNoneMatch": "*"}):
        for dst in ("data", "other"):
            with pytest.raises(ClientError) as ei:
                wm.s3.copy_object(Bucket=dst, Key="c/z", CopySource="data/c/src.bin", **kw)
            assert code_of(ei) == "PreconditionFailed", (dst, kw)
    assert src_get(wm, "c/z") is None and not (other / "c" / "z").exists()
    etag = wm.s3.head_object(Bucket="data", Key="c/src.bin")["ETag"]
    wm.s3.copy_object(Bucket="other", Key="c/z", CopySource="data/c/src.bin", CopySourceIfMatch=etag)
    assert (other / "c" / "z").read_bytes() == w2


def put_raw(m, key, body, headers):
    """A signed PUT sent raw: (status, headers, body)."""
    req = requests.Request("PUT", f"{m.worker.s3_url}/data/{key}", data=body, headers=headers).prepare()
    sign_sigv4(req, AK, SK)
    lines = [f"PUT /data/{key} HTTP/1.1", f"Host: {m.worker.s3_host}:{m.worker.s3_port}"]
    lines += [f"{k}: {v}" for k, v in req.headers.items() if k.lower() != "host"]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return xc.replay(m.worker.s3_port, head, body)


def test_bad_bodies_leave_nothing(wm):
    data = rand_bytes(PAGE * 2 + 3, 8)
    wm.s3.put_object(Bucket="data", Key="keep.bin", Body=b"old")
    b64 = __import__("base64").b64encode
    cases = [
        ({"Content-MD5": b64(hashlib.md5(b"other").digest()).decode()}, "BadDigest"),
        ({"Content-MD5": "not-base64!"}, "InvalidDigest"),
        ({"x-amz-checksum-crc32": b64(b"\0\0\0\0").decode()}, "BadDigest"),
        ({"x-amz-checksum-sha256": b64(hashlib.sha256(b"x").digest()).decode()}, "BadDigest"),
    ]
    for hdrs, code in cases:
        for key in ("bad.bin", "keep.bin"):
            st, _, body = put_raw(wm, key, data, hdrs)
            assert st == 400 and s3_error_code(body) == code, (hdrs, st, body)
    # A signed payload hash that is not the body's.
    req = requests.Request("PUT", f"{wm.worker.s3_url}/data/bad.bin", data=data).prepare()
    sign_sigv4(req, AK, SK)  # signs sha256(data)...
    lines = ["PUT /data/bad.bin HTTP/1.1", f"Host: {wm.worker.s3_host}:{wm.worker.s3_port}"]
    lines += [f"{k}: {v}" for k, v in req.headers.items()]
    flipped = bytes([data[0] ^ 1]) + data[1:]  # ...and another body is sent
    st, _, body = xc.replay(wm.worker.s3_port, ("\r\n".join(lines) + "\r\n\r\n").encode(), flipped)
    assert st == 400 and s3_error_code(body) == "XAmzContentSHA256Mismatch", body
    # Signed chunks: intact is stored; one flipped payload byte is refused.
    head, raw, _, _ = xc.signed_upload(wm.worker.s3_url, data, 8192, "CRC32", path="/data/chunked.bin",
                                       ak=AK, sk=SK)
    st, h, body = xc.replay(wm.worker.s3_port, head, raw)
    assert st == 200, body
    assert h["x-amz-checksum-crc32"] == xc.checksum_b64("CRC32", data)
    assert src_get(wm, "chunked.bin") == data and get(wm, "chunked.bin") == data
    head, raw, _, _ = xc.signed_upload(wm.worker.s3_url, data, 8192, None, path="/data/bad.bin",
                                       ak=AK, sk=SK)
    i = raw.index(b"\r\n") + 2 + 5000
    st, _, body = xc.replay(wm.worker.s3_port, head, raw[:i] + bytes([raw[i] ^ 1]) + raw[i + 1:])
    assert st == 403 and s3_error_code(body) == "SignatureDoesNotMatch", body
    assert src_get(wm, "bad.bin") is None
    with pytest.raises(ClientError):
        wm.s3.head_object(Bucket="data", Key="bad.bin")
    assert get(wm, "keep.bin") == b"old" and src_get(wm, "keep.bin") == b"old"
    no_temp_files(wm)
    wm.worker.assert_alive()


def test_client_gone_mid_upload_leaves_nothing(wm):
    data = rand_bytes(4 << 20, 9)
    req = requests.Request("PUT", f"{wm.worker.s3_url}/data/gone.bin", data=data).prepare()
    sign_sigv4(req, AK, SK)
    lines = ["PUT /data/gone.bin HTTP/1.1", f"Host: {wm.worker.s3_host}:{wm.worker.s3_port}"]
    lines += [f"{k}: {v}" for k, v in req.headers.items()]
    s = socket.create_connection((wm.worker.s3_host, wm.worker.s3_port), timeout=10)
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + data[:1 << 20])
    time.sleep(0.3)
    s.close()
    # The worker notices, aborts the store's session, and keeps serving.
    wait_for(lambda: wm.worker.metric("ferry_s3_errors_total", op="PutObject") >= 1,
             what="the cut upload to end")
    assert src_get(wm, "gone.bin") is None
    with pytest.raises(ClientError):
        wm.s3.head_object(Bucket="data", Key="gone.bin")
    wait_for(lambda: no_temp_files(wm) is None, what="temp files to go")
    wm.s3.put_object(Bucket="data", Key="gone.bin", Body=data[:1000])
    assert get(wm, "gone.bin") == data[:1000]


def test_put_above_s3_limit_is_refused_before_the_body(wm):
    """S3 takes at most 5 GiB in one PutObject: an announced 6 GiB body is
    refused at once (EntityTooLarge), not after the client sent it."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    url = f"{wm.worker.s3_url}/data/huge.bin"
    hdrs = {"Content-Length": str(6 << 30), "x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
    aws = AWSRequest(method="PUT", url=url, data=b"", headers=hdrs)
    SigV4Auth(Credentials(AK, SK), "s3", "us-east-1").add_auth(aws)
    lines = ["PUT /data/huge.bin HTTP/1.1", f"Host: {wm.worker.s3_host}:{wm.worker.s3_port}"]
    lines += [f"{k}: {v}" for k, v in aws.headers.items() if k.lower() != "host"]
    t0 = time.monotonic()
    st, _, body = xc.replay(wm.worker.s3_port, ("\r\n".join(lines) + "\r\n\r\n").encode(), b"x" * 1000)
    assert st == 400 and s3_error_code(body) == "EntityTooLarge", (st, body)
    assert time.monotonic() - t0 < 10
    assert src_get(wm, "huge.bin") is None
    no_temp_files(wm)
    wm.worker.assert_alive()


def test_conditional_writes(make_worker, data_dir):
    w = make_worker(mounts={"data": data_dir}, args=KEYED)
    s3 = w.s3(AK, SK)
    def put(body, **h):
        req = requests.Request("PUT", f"{w.s3_url}/data/c.bin", data=body, headers=h).prepare()
        sign_sigv4(req, AK, SK)
        with requests.Session() as sess:
            return sess.send(req, timeout=30)
    r = put(b"one", **{"If-None-Match": "*"})
    assert r.status_code == 200, r.text
    r = put(b"two", **{"If-None-Match": "*"})
    assert r.status_code == 412 and s3_error_code(r.content) == "PreconditionFailed"
    etag = s3.head_object(Bucket="data", Key="c.bin")["ETag"]
    r = put(b"three", **{"If-Match": '"0123"'})
    assert r.status_code == 412
    assert (data_dir / "c.bin").read_bytes() == b"one"
    r = put(b"four", **{"If-Match": etag})
    assert r.status_code == 200, r.text
    assert (data_dir / "c.bin").read_bytes() == b"four"
    assert s3.get_object(Bucket="data", Key="c.bin")["Body"].read() == b"four"


def test_readonly_mount_and_anonymous_clients_cannot_write(make_worker, tmp_path, data_dir):
    (data_dir / "r.bin").write_bytes(b"r")
    w = make_worker(args=KEYED + ["--s3-anonymous"])
    w.mount("ro", f"file://{data_dir}", readonly="true")
    w.mount("rw", f"file://{data_dir}")
    s3 = w.s3(AK, SK)
    for call in (lambda: s3.put_object(Bucket="ro", Key="n.bin", Body=b"n"),
                 lambda: s3.delete_object(Bucket="ro", Key="r.bin"),
                 lambda: s3.copy_object(Bucket="ro", Key="n.bin", CopySource="rw/r.bin")):
        with pytest.raises(ClientError) as ei:
            call()
        assert code_of(ei) == "AccessDenied"
    r = s3.delete_objects(Bucket="ro", Delete={"Objects": [{"Key": "r.bin"}]})
    assert [e["Code"] for e in r["Errors"]] == ["AccessDenied"]
    # --s3-anonymous lets unsigned clients read, never write.
    assert requests.get(f"{w.s3_url}/rw/r.bin", timeout=10).content == b"r"
    for method in ("PUT", "DELETE"):
        r = requests.request(method, f"{w.s3_url}/rw/r.bin", data=b"x", timeout=10)
        assert r.status_code == 403 and s3_error_code(r.content) == "AccessDenied", r.text
    assert sorted(p.name for p in data_dir.iterdir()) == ["r.bin"]
    assert (data_dir / "r.bin").read_bytes() == b"r"


def test_metadata_limits(make_worker, data_dir):
    w = make_worker(mounts={"data": data_dir}, args=KEYED)
    s3 = w.s3(AK, SK)
    with pytest.raises(ClientError) as ei:
        s3.put_object(Bucket="data", Key="m.bin", Body=b"m", Metadata={"big": "x" * 2100})
    assert code_of(ei) == "MetadataTooLarge"
    assert not (data_dir / "m.bin").exists()
    s3.put_object(Bucket="data", Key="m.bin", Body=b"m", Metadata={"small": "y"},
                  ContentType="text/x-ferry")
    assert (data_dir / "m.bin").read_bytes() == b"m"


def test_writes_cannot_leave_the_root(make_worker, tmp_path, data_dir):
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"secret")
    os.symlink(secret, data_dir / "link-out")
    os.symlink(tmp_path, data_dir / "dirlink")
    w = make_worker(mounts={"data": data_dir})  # loopback, no credentials: anyone writes
    for target in ("/data/dirlink/evil", "/data/dirlink/secret.txt", "/data/../evil",
                   "/data/%2e%2e/evil", "/data/a//b", "/data/.ferry-tmp.0123456789abcdef"):
        for method in (b"PUT", b"DELETE"):
            st, _, body = raw_request(w.s3_host, w.s3_port, method + b" " + target.encode() +
                                      b" HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nevil")
            assert st in (400, 403, 404), (method, target, st, body)
    r = requests.put(w.s3_url + "/data/link-out", data=b"replaced", timeout=10)
    assert secret.read_bytes() == b"secret"
    assert not (tmp_path / "evil").exists()
    assert not os.path.lexists(data_dir / "a")
    w.assert_alive()


NEW_BOTO_SCRIPT = textwrap.dedent("""
    import hashlib, json, sys
    import boto3, botocore
    from botocore.config import Config
    endpoint, ak, sk, path = sys.argv[1:5]
    s3 = boto3.session.Session(aws_access_key_id=ak, aws_secret_access_key=sk,
                               region_name="us-east-1").client("s3", endpoint_url=endpoint,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                      retries={"total_max_attempts": 1}))
    data = open(path, "rb").read()
    res = {"botocore": botocore.__version__, "etags": []}
    res["etags"].append(s3.put_object(Bucket="data", Key="nb/plain.bin", Body=data)["ETag"])
    for alg in ("CRC32", "SHA1", "SHA256"):  # CRC32C needs awscrt
        r = s3.put_object(Bucket="data", Key="nb/%s.bin" % alg, Body=data, ChecksumAlgorithm=alg)
        res["etags"].append(r["ETag"])
    with open(path, "rb") as f:  # a stream of unknown length: aws-chunked
        s3.upload_fileobj(f, "data", "nb/fileobj.bin")
    res["get"] = hashlib.sha256(s3.get_object(Bucket="data", Key="nb/fileobj.bin")["Body"].read()).hexdigest()
    print(json.dumps(res))
""")


def test_newer_botocore_uploads(make_worker, data_dir, tmp_path):
    from test_clients import newer_python
    py = newer_python()
    if not py:
        pytest.skip("no other python3 with boto3 on PATH")
    w = make_worker(mounts={"data": data_dir}, args=KEYED)
    data = rand_bytes(3 * PAGE + 11, 10)
    (tmp_path / "in.bin").write_bytes(data)
    (tmp_path / "nb.py").write_text(NEW_BOTO_SCRIPT)
    p = subprocess.run([py, str(tmp_path / "nb.py"), w.s3_url, AK, SK, str(tmp_path / "in.bin")],
                       capture_output=True, timeout=120, env=dict(os.environ, PYTHONNOUSERSITE="1"))
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    res = json.loads(p.stdout.decode().strip().splitlines()[-1])
    for name in ("plain", "CRC32", "SHA1", "SHA256", "fileobj"):
        assert (data_dir / "nb" / f"{name}.bin").read_bytes() == data, name
    assert res["get"] == hashlib.sha256(data).hexdigest()


def test_aws_cli_and_curl_uploads(make_worker, data_dir, tmp_path):
    from test_clients import aws
    w = make_worker(mounts={"data": data_dir}, args=["--s3-access-key", "AKIDCLIENTS",
                                                      "--s3-secret-key", "clients-secret/+="])
    data = rand_bytes(5 * PAGE + 1, 11)
    (tmp_path / "up.bin").write_bytes(data)
    if os.path.exists("/usr/bin/aws"):
        p = aws(w, "s3", "cp", str(tmp_path / "up.bin"), "s3://data/cli/up.bin")
        assert p.returncode == 0, p.stderr
        assert (data_dir / "cli" / "up.bin").read_bytes() == data
        p = aws(w, "s3", "cp", "s3://data/cli/up.bin", "s3://data/cli/copy.bin")
        assert p.returncode == 0, p.stderr
        assert (data_dir / "cli" / "copy.bin").read_bytes() == data
        p = aws(w, "s3", "rm", "--recursive", "s3://data/cli/")
        assert p.returncode == 0, p.stderr
        assert not (data_dir / "cli").exists() or not any((data_dir / "cli").iterdir())
    p = subprocess.run(["curl", "-sS", "-f", "--aws-sigv4", "aws:amz:us-east-1:s3",
                        "--user", "AKIDCLIENTS:clients-secret/+=",
                        "-H", "x-amz-content-sha256: " + hashlib.sha256(data).hexdigest(),
                        "-T", str(tmp_path / "up.bin"), w.s3_url + "/data/curl/up.bin"],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert (data_dir / "curl" / "up.bin").read_bytes() == data
