"""S3 multipart uploads through the gateway (mpu.c stages the parts on the
worker's disk; CompleteMultipartUpload streams them through objput), with
the clients that use them: awscli `s3 cp` (8 MiB parts), Debian's boto3
upload_file and the newer boto3 of the default python3, and low-level calls
for every error a client can meet.

What a user relies on: the object the under-store holds is the parts'
bytes in order; nothing is visible before the complete; the next GET is a
cache hit (write-through); a bad part list, a wrong ETag or a part that is
too small is refused with S3's error and leaves the upload to fix; an
abort leaves nothing; uploads in progress survive a worker restart.
"""
import hashlib
import os
import subprocess
import textwrap

import pytest
from botocore.exceptions import ClientError

from conftest import make_mounted, rand_bytes, sign_sigv4

AK, SK = "AKIDCLIENTS", "clients-secret/+="
KEYED = ["--s3-access-key", AK, "--s3-secret-key", SK]
MiB = 1 << 20


@pytest.fixture(params=["file", "s3"])
def mm(request, make_worker, tmp_path):
    m = make_mounted(request.param, make_worker, tmp_path,
                     lambda: request.getfixturevalue("s3rver"), args=KEYED)
    m.s3 = m.worker.s3(AK, SK)
    return m


def src_get(m, key):
    if m.kind == "file":
        p = m.data_dir / key
        return p.read_bytes() if p.is_file() else None
    try:
        return m.s3rver.client.get_object(Bucket=m.src_bucket, Key=m.prefix + key)["Body"].read()
    except ClientError:
        return None


def staged(w):
    """What the worker holds staged: upload dirs and their files."""
    d = w.cache_dir / "uploads"
    return sorted(str(p.relative_to(d)) for p in d.rglob("*")) if d.exists() else []


def code_of(ei):
    return ei.value.response["Error"]["Code"]


def test_low_level_upload_complete_and_read_back(mm):
    s3 = mm.s3
    parts = [rand_bytes(5 * MiB + 3, 1), rand_bytes(5 * MiB, 2), rand_bytes(777, 3)]
    up = s3.create_multipart_upload(Bucket="data", Key="mp/obj.bin", ContentType="text/x-ferry",
                                    Metadata={"run": "7"})
    uid = up["UploadId"]
    etags = {}
    for n in (3, 1, 2):  # any order
        r = s3.upload_part(Bucket="data", Key="mp/obj.bin", UploadId=uid, PartNumber=n, Body=parts[n - 1])
        assert r["ETag"] == '"%s"' % hashlib.md5(parts[n - 1]).hexdigest()
        etags[n] = r["ETag"]
    # A part sent again replaces the first one.
    s3.upload_part(Bucket="data", Key="mp/obj.bin", UploadId=uid, PartNumber=3, Body=b"x" * 10)
    etags[3] = s3.upload_part(Bucket="data", Key="mp/obj.bin", UploadId=uid, PartNumber=3,
                              Body=parts[2])["ETag"]
    lp = s3.list_parts(Bucket="data", Key="mp/obj.bin", UploadId=uid)
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in lp["Parts"]] == \
        [(n, etags[n], len(parts[n - 1])) for n in (1, 2, 3)]
    lp2 = s3.list_parts(Bucket="data", Key="mp/obj.bin", UploadId=uid, MaxParts=2)
    assert lp2["IsTruncated"] and [p["PartNumber"] for p in lp2["Parts"]] == [1, 2]
    lu = s3.list_multipart_uploads(Bucket="data")
    assert [(u["Key"], u["UploadId"]) for u in lu["Uploads"]] == [("mp/obj.bin", uid)]
    # Nothing is visible before the complete.
    with pytest.raises(ClientError):
        s3.head_object(Bucket="data", Key="mp/obj.bin")
    assert src_get(mm, "mp/obj.bin") is None
    r = s3.complete_multipart_upload(Bucket="data", Key="mp/obj.bin", UploadId=uid,
                                     MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]}
                                                                for n in (1, 2, 3)]})
    data = b"".join(parts)
    assert src_get(mm, "mp/obj.bin") == data
    head = s3.head_object(Bucket="data", Key="mp/obj.bin")
    assert head["ContentLength"] == len(data) and head["ETag"] == r["ETag"]
    reads = mm.worker.ufs_reads() if mm.kind == "file" else None
    assert s3.get_object(Bucket="data", Key="mp/obj.bin")["Body"].read() == data
    if reads is not None:
        assert mm.worker.ufs_reads() == reads  # written through: a hit
    # The upload is gone, with its parts.
    with pytest.raises(ClientError) as ei:
        s3.list_parts(Bucket="data", Key="mp/obj.bin", UploadId=uid)
    assert code_of(ei) == "NoSuchUpload"
    assert staged(mm.worker) == []
    assert s3.list_multipart_uploads(Bucket="data").get("Uploads", []) == []


def test_the_store_gets_the_clients_parts(make_worker, tmp_path, s3rver):
    """An s3:// store is sent the client's parts, not ferry's own 8 MiB
    ones, so the object's ETag is the "md5-of-md5s-N" that S3 gives the
    same upload done directly (a one-part upload included: "...-1")."""
    m = make_mounted("s3", make_worker, tmp_path, lambda: s3rver, args=KEYED)
    s3 = m.worker.s3(AK, SK)

    def upload(key, parts):
        uid = s3.create_multipart_upload(Bucket="data", Key=key)["UploadId"]
        tags = [s3.upload_part(Bucket="data", Key=key, UploadId=uid, PartNumber=i + 1,
                               Body=b)["ETag"] for i, b in enumerate(parts)]
        mark = s3rver.mark()
        s3.complete_multipart_upload(Bucket="data", Key=key, UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": i + 1, "ETag": t} for i, t in enumerate(tags)]})
        s3rver.settle()
        assert src_get(m, key) == b"".join(parts)
        return [(meth, q.split("&")[0] if q else "") for meth, path, q, st in s3rver.requests()[mark:]
                if path.endswith("/" + key)]

    three = [rand_bytes(5 * MiB + 3, 11), rand_bytes(5 * MiB, 12), rand_bytes(777, 13)]
    calls = upload("mp/three.bin", three)
    assert sorted(q for meth, q in calls if meth == "PUT") == \
        ["partNumber=1", "partNumber=2", "partNumber=3"], calls
    calls = upload("mp/one.bin", [b"one part" * 100])
    assert ("POST", "uploads") in [(meth, q.split("=")[0]) for meth, q in calls], calls
    assert [q for meth, q in calls if meth == "PUT"] == ["partNumber=1"], calls


def test_bad_completes_leave_the_upload_to_fix(make_worker, data_dir):
    w = make_worker(mounts={"data": data_dir}, args=KEYED)
    s3 = w.s3(AK, SK)
    uid = s3.create_multipart_upload(Bucket="data", Key="k")["UploadId"]
    small = s3.upload_part(Bucket="data", Key="k", UploadId=uid, PartNumber=1, Body=b"a" * 100)["ETag"]
    last = s3.upload_part(Bucket="data", Key="k", UploadId=uid, PartNumber=2, Body=b"b" * 100)["ETag"]

    def complete(parts):
        with pytest.raises(ClientError) as ei:
            s3.complete_multipart_upload(Bucket="data", Key="k", UploadId=uid,
                                         MultipartUpload={"Parts": parts})
        return code_of(ei)

    assert complete([{"PartNumber": 1, "ETag": small}, {"PartNumber": 2, "ETag": last}]) == "EntityTooSmall"
    assert complete([{"PartNumber": 2, "ETag": last}, {"PartNumber": 1, "ETag": small}]) == "InvalidPartOrder"
    assert complete([{"PartNumber": 1, "ETag": '"%s"' % ("0" * 32)}]) == "InvalidPart"
    assert complete([{"PartNumber": 3, "ETag": last}]) == "InvalidPart"
    assert not (data_dir / "k").exists()
    # Still there: a complete with the right list works.
    s3.complete_multipart_upload(Bucket="data", Key="k", UploadId=uid,
                                 MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": last}]})
    assert (data_dir / "k").read_bytes() == b"b" * 100
    # Unknown, malformed, another key's upload: NoSuchUpload.
    for key, bad in (("k", uid), ("k", "0" * 32), ("k", "../../etc"), ("other", uid)):
        with pytest.raises(ClientError) as ei:
            s3.upload_part(Bucket="data", Key=key, UploadId=bad, PartNumber=1, Body=b"x")
        assert code_of(ei) == "NoSuchUpload", (key, bad)
    uid2 = s3.create_multipart_upload(Bucket="data", Key="k2")["UploadId"]
    with pytest.raises(ClientError) as ei:
        s3.upload_part(Bucket="data", Key="k2", UploadId=uid2, PartNumber=10001, Body=b"x")
    assert code_of(ei) == "InvalidArgument"
    with pytest.raises(ClientError) as ei:
        s3.complete_multipart_upload(Bucket="data", Key="k2", UploadId=uid2,
                                     MultipartUpload={"Parts": []})
    assert code_of(ei) == "MalformedXML"
    # A part whose body fails its check is not staged.
    with pytest.raises(ClientError) as ei:
        s3.upload_part(Bucket="data", Key="k2", UploadId=uid2, PartNumber=1, Body=b"abc",
                       ContentMD5="1B2M2Y8AsgTpgAmY7PhCfg==")
    assert code_of(ei) == "BadDigest"
    assert s3.list_parts(Bucket="data", Key="k2", UploadId=uid2).get("Parts", []) == []
    # Abort: gone, its parts too.
    s3.upload_part(Bucket="data", Key="k2", UploadId=uid2, PartNumber=1, Body=b"x")
    s3.abort_multipart_upload(Bucket="data", Key="k2", UploadId=uid2)
    with pytest.raises(ClientError) as ei:
        s3.abort_multipart_upload(Bucket="data", Key="k2", UploadId=uid2)
    assert code_of(ei) == "NoSuchUpload"
    assert staged(w) == [] and not (data_dir / "k2").exists()
    w.assert_alive()


def test_upload_part_copy_with_ranges(make_worker, data_dir):
    src = rand_bytes(6 * MiB + 5, 4)
    (data_dir / "src.bin").write_bytes(src)
    w = make_worker(mounts={"data": data_dir}, args=KEYED)
    s3 = w.s3(AK, SK)
    uid = s3.create_multipart_upload(Bucket="data", Key="cp.bin")["UploadId"]
    e1 = s3.upload_part_copy(Bucket="data", Key="cp.bin", UploadId=uid, PartNumber=1,
                             CopySource="data/src.bin")["CopyPartResult"]["ETag"]
    e2 = s3.upload_part_copy(Bucket="data", Key="cp.bin", UploadId=uid, PartNumber=2,
                             CopySource="data/src.bin", CopySourceRange="bytes=10-109")["CopyPartResult"]["ETag"]
    assert e2 == '"%s"' % hashlib.md5(src[10:110]).hexdigest()
    s3.complete_multipart_upload(Bucket="data", Key="cp.bin", UploadId=uid,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1},
                                                            {"PartNumber": 2, "ETag": e2}]})
    assert (data_dir / "cp.bin").read_bytes() == src + src[10:110]
    uid = s3.create_multipart_upload(Bucket="data", Key="cp2.bin")["UploadId"]
    with pytest.raises(ClientError) as ei:
        s3.upload_part_copy(Bucket="data", Key="cp2.bin", UploadId=uid, PartNumber=1,
                            CopySource="data/missing.bin")
    assert code_of(ei) == "NoSuchKey"


def test_uploads_survive_a_restart_and_sweep_leftovers(make_worker, data_dir):
    w = make_worker(mounts={"data": data_dir}, args=KEYED)
    s3 = w.s3(AK, SK)
    uid = s3.create_multipart_upload(Bucket="data", Key="r.bin")["UploadId"]
    e1 = s3.upload_part(Bucket="data", Key="r.bin", UploadId=uid, PartNumber=1, Body=b"r" * 1000)["ETag"]
    (w.cache_dir / "uploads" / uid / "tmp.deadbeef").write_bytes(b"half a part")
    (w.cache_dir / "uploads" / ("f" * 32)).mkdir()  # a create cut before its info
    w.restart()
    assert staged(w) == [uid, f"{uid}/00001", f"{uid}/info"]
    s3 = w.s3(AK, SK)
    s3.complete_multipart_upload(Bucket="data", Key="r.bin", UploadId=uid,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}]})
    assert (data_dir / "r.bin").read_bytes() == b"r" * 1000


def test_readonly_mount_and_anonymous_refuse_uploads(make_worker, tmp_path, data_dir):
    w = make_worker(args=KEYED + ["--s3-anonymous"])
    w.mount("ro", f"file://{data_dir}", readonly="true")
    w.mount("rw", f"file://{data_dir}")
    with pytest.raises(ClientError) as ei:
        w.s3(AK, SK).create_multipart_upload(Bucket="ro", Key="x")
    assert code_of(ei) == "AccessDenied"
    import requests
    for target in ("/rw/x?uploads", "/rw/x?uploadId=" + "0" * 32):
        r = requests.post(w.s3_url + target, timeout=10)
        assert r.status_code == 403, (target, r.text)
    assert staged(w) == []


def test_aws_cli_multipart_cp(mm, tmp_path):
    if not os.path.exists("/usr/bin/aws"):
        pytest.skip("no /usr/bin/aws")
    from test_clients import aws
    data = rand_bytes(17 * MiB + 11, 5)  # three 8 MiB parts
    (tmp_path / "big.bin").write_bytes(data)
    p = aws(mm.worker, "s3", "cp", str(tmp_path / "big.bin"), "s3://data/cli/big.bin", timeout=300)
    assert p.returncode == 0, p.stderr
    assert src_get(mm, "cli/big.bin") == data
    assert mm.worker.metric("ferry_s3_requests_total", op="UploadPart") >= 3
    p = aws(mm.worker, "s3", "cp", "s3://data/cli/big.bin", str(tmp_path / "back.bin"), timeout=300)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "back.bin").read_bytes() == data
    assert staged(mm.worker) == []


BOTO_SCRIPT = textwrap.dedent("""
    import hashlib, sys
    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config
    endpoint, ak, sk, path = sys.argv[1:5]
    s3 = boto3.session.Session(aws_access_key_id=ak, aws_secret_access_key=sk,
                               region_name="us-east-1").client("s3", endpoint_url=endpoint,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                      retries={"total_max_attempts": 1}))
    cfg = TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20, max_concurrency=3)
    s3.upload_file(path, "data", "boto/up.bin", Config=cfg)
    with open(path, "rb") as f:
        s3.upload_fileobj(f, "data", "boto/fileobj.bin", Config=cfg)
    print(hashlib.sha256(s3.get_object(Bucket="data", Key="boto/up.bin")["Body"].read()).hexdigest())
""")


@pytest.mark.parametrize("which", ["debian", "newer"])
def test_boto3_multipart_uploads(make_worker, data_dir, tmp_path, which):
    py = "/usr/bin/python3"
    if which == "newer":
        from test_clients import newer_python
        py = newer_python()
        if not py:
            pytest.skip("no other python3 with boto3 on PATH")
    w = make_worker(mounts={"data": data_dir}, args=KEYED)
    data = rand_bytes(12 * MiB + 7, 6)
    (tmp_path / "in.bin").write_bytes(data)
    (tmp_path / "up.py").write_text(BOTO_SCRIPT)
    p = subprocess.run([py, str(tmp_path / "up.py"), w.s3_url, AK, SK, str(tmp_path / "in.bin")],
                       capture_output=True, timeout=300, env=dict(os.environ, PYTHONNOUSERSITE="1"))
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    assert p.stdout.decode().split()[-1] == hashlib.sha256(data).hexdigest()
    assert (data_dir / "boto" / "up.bin").read_bytes() == data
    assert (data_dir / "boto" / "fileobj.bin").read_bytes() == data
    assert w.metric("ferry_s3_requests_total", op="CompleteMultipartUpload") >= 2
    assert staged(w) == []


@pytest.fixture
def own_s3rver(tmp_path):
    """An s3rver of this test's own: the test stops it (the session's one
    serves every other test)."""
    from conftest import S3rver
    s = S3rver(tmp_path / "own-s3rver").start()
    yield s
    s.stop()


def test_complete_with_the_under_store_down(make_worker, tmp_path, own_s3rver):
    """The store fails during the complete: the client gets the error
    document after the 200 (what botocore reads as the call's error), and
    the upload is still there, to complete again or abort."""
    s3rver = own_s3rver
    m = make_mounted("s3", make_worker, tmp_path, lambda: s3rver, args=KEYED)
    s3 = m.worker.s3(AK, SK)
    uid = s3.create_multipart_upload(Bucket="data", Key="down.bin")["UploadId"]
    e1 = s3.upload_part(Bucket="data", Key="down.bin", UploadId=uid, PartNumber=1, Body=b"d" * 1000)["ETag"]
    s3rver.stop()
    parts = {"Parts": [{"PartNumber": 1, "ETag": e1}]}
    # On the wire: 200 at once, then the error document (S3's way).
    import requests
    doc = ('<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>%s</ETag></Part>'
           '</CompleteMultipartUpload>' % e1).encode()
    req = requests.Request("POST", f"{m.worker.s3_url}/data/down.bin?uploadId={uid}", data=doc).prepare()
    sign_sigv4(req, AK, SK)
    with requests.Session() as sess:
        r = sess.send(req, timeout=120)
    assert r.status_code == 200, r.text
    body = r.content.decode()
    assert body.startswith('<?xml') and body.count('<?xml') == 1, body
    assert "<Error><Code>ServiceUnavailable</Code>" in body, body
    assert "completing the upload failed" in body and "s3://" in body, body
    # botocore reads a 200 with an Error as a failure (older ones without
    # its code, as they do for S3 itself).
    with pytest.raises(ClientError) as ei:
        s3.complete_multipart_upload(Bucket="data", Key="down.bin", UploadId=uid, MultipartUpload=parts)
    if "Error" in ei.value.response:
        assert code_of(ei) == "ServiceUnavailable", ei.value.response
    assert [p["PartNumber"] for p in s3.list_parts(Bucket="data", Key="down.bin", UploadId=uid)["Parts"]] == [1]
    # (s3rver comes back on another port, so the mount cannot use it again;
    # the upload is aborted instead.)
    s3.abort_multipart_upload(Bucket="data", Key="down.bin", UploadId=uid)
    assert staged(m.worker) == []
