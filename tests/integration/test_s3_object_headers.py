"""The headers S3 keeps with an object (Content-Type, Content-Encoding,
Content-Language, Content-Disposition, Cache-Control, Expires and
x-amz-meta-*) through the gateway, with real clients: Debian's boto3
(/usr/bin/python3) and the newer boto3 of the default python3.

What a user relies on: what a PutObject (or a multipart upload) stored is
what get_object and head_object answer, on a file:// and an s3:// mount, in
every write mode (write=back before the upload too), from the cache as
from the store, after a worker restart; objects others put into the store
with headers show theirs; the response-* overrides of a signed GET replace
them; CopyObject carries the source's (COPY) or the request's (REPLACE),
across mounts too; an object with none answers as before.
"""
import datetime
import json
import os
import subprocess
import textwrap

import pytest
import requests

from conftest import rand_bytes

AK, SK = "AKIDHEADERS", "headers-secret"
KEYED = ["--s3-access-key", AK, "--s3-secret-key", SK]
EXPIRES = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
EXPIRES_HTTP = "Wed, 02 Jan 2030 03:04:05 GMT"

PUT_HEADERS = dict(ContentType="text/csv; charset=utf-8", ContentLanguage="de-CH",
                   CacheControl="max-age=60", ContentDisposition='attachment; filename="a b.csv"',
                   ContentEncoding="identity", Expires=EXPIRES,
                   Metadata={"owner": "Alice", "Run-Id": "r 7"})


def assert_headers(r, ctype="text/csv; charset=utf-8", meta=None):
    """r: a get_object or head_object answer carrying PUT_HEADERS."""
    h = r["ResponseMetadata"]["HTTPHeaders"]
    assert r["ContentType"] == ctype
    assert r["ContentLanguage"] == "de-CH"
    assert r["CacheControl"] == "max-age=60"
    assert r["ContentDisposition"] == 'attachment; filename="a b.csv"'
    assert r["ContentEncoding"] == "identity"
    assert h["expires"] == EXPIRES_HTTP
    # x-amz-meta-* names come back lowercase, as S3 answers them.
    assert r["Metadata"] == (meta or {"owner": "Alice", "run-id": "r 7"})


def assert_none_stored(r):
    h = r["ResponseMetadata"]["HTTPHeaders"]
    # What ferry answered before (file://), or what the store keeps for an
    # object put without one (S3 and s3rver: binary/octet-stream).
    assert r["ContentType"] in ("application/octet-stream", "binary/octet-stream")
    assert r["Metadata"] == {}
    for name in ("content-language", "cache-control", "content-disposition", "expires"):
        assert name not in h, name


class Mounted:
    def __init__(self, kind, w, store_dir=None, s3rver=None, bucket=None):
        self.kind, self.w, self.dir, self.s3rver, self.bucket = kind, w, store_dir, s3rver, bucket
        self.s3 = w.s3(AK, SK)


def mount_data(w, kind, mode, tmp_path, s3rver_factory, name="data"):
    if kind == "file":
        d = tmp_path / f"store-{name}"
        d.mkdir()
        w.mount(name, f"file://{d}", write=mode)
        return Mounted(kind, w, store_dir=d)
    s = s3rver_factory()
    bucket = s.new_bucket()
    w.mount(name, f"s3://{bucket}/pfx", write=mode, **s.mount_options())
    return Mounted(kind, w, s3rver=s, bucket=bucket)


def stats_asked(w):
    return w.metric("ferry_ufs_requests_total", op="stat") or 0


def pending(w):
    r = w.ctl("GET", "/v1/writeback")
    assert r.status_code == 200, r.text
    return sum(m["objects"] for m in r.json()["mounts"])


@pytest.mark.parametrize("mode", ["through", "back", "around"])
@pytest.mark.parametrize("kind", ["file", "s3"])
def test_put_headers_are_answered(kind, mode, make_worker, tmp_path, request):
    # write=back: uploads crawl (1 KiB/s), so the reads below come before
    # the persister stored the object, from the staged record.
    args = KEYED + (["--writeback-bandwidth", "1K"] if mode == "back" else [])
    w = make_worker(args=args)
    m = mount_data(w, kind, mode, tmp_path, lambda: request.getfixturevalue("s3rver"))
    body = rand_bytes(70_000, 3)
    r = m.s3.put_object(Bucket="data", Key="h/a.csv", Body=body, **PUT_HEADERS)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    m.s3.put_object(Bucket="data", Key="h/plain.bin", Body=b"plain")
    if mode == "back":
        assert pending(w) >= 1
    # Right after the write, then again from the metadata cache (no stat).
    for round_ in range(2):
        asked = stats_asked(w)
        assert_headers(m.s3.head_object(Bucket="data", Key="h/a.csv"))
        g = m.s3.get_object(Bucket="data", Key="h/a.csv")
        assert g["Body"].read() == body
        assert_headers(g)
        ranged = m.s3.get_object(Bucket="data", Key="h/a.csv", Range="bytes=10-19")
        assert ranged["Body"].read() == body[10:20]
        assert_headers(ranged)
        assert_none_stored(m.s3.head_object(Bucket="data", Key="h/plain.bin"))
        if round_ == 1:
            assert stats_asked(w) == asked, "a cache hit asked the under-store"
    if mode == "back":
        assert pending(w) >= 1
    # The store holds them too (file: the user.ferry.* xattrs).
    if kind == "file" and mode != "back":
        assert os.getxattr(m.dir / "h" / "a.csv", "user.ferry.content-type") == b"text/csv; charset=utf-8"
        assert os.getxattr(m.dir / "h" / "a.csv", "user.ferry.x-amz-meta-run-id") == b"r 7"
    elif kind == "s3" and mode != "back":
        o = m.s3rver.client.head_object(Bucket=m.bucket, Key="pfx/h/a.csv")
        assert o["ContentType"] == "text/csv; charset=utf-8" and o["Metadata"]["run-id"] == "r 7"
    # A restarted worker (empty metadata cache) answers the same.
    w.drop_mount_args()
    w.restart()
    s3 = w.s3(AK, SK)
    assert_headers(s3.head_object(Bucket="data", Key="h/a.csv"))
    g = s3.get_object(Bucket="data", Key="h/a.csv")
    assert g["Body"].read() == body
    assert_headers(g)
    assert_none_stored(s3.get_object(Bucket="data", Key="h/plain.bin"))
    w.assert_alive()


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_headers_others_stored_show(kind, make_worker, tmp_path, request):
    w = make_worker(args=KEYED)
    m = mount_data(w, kind, "through", tmp_path, lambda: request.getfixturevalue("s3rver"))
    if kind == "file":
        for name in ("x.json", "y.json"):
            p = m.dir / "ext" / name
            p.parent.mkdir(exist_ok=True)
            p.write_bytes(b"{}")
            os.setxattr(p, "user.ferry.content-type", b"application/json")
            os.setxattr(p, "user.ferry.x-amz-meta-src", b"elsewhere")
            # Not headers an object keeps, or not printable: left out.
            os.setxattr(p, "user.ferry.x-other", b"no")
            os.setxattr(p, "user.ferry.x-amz-meta-bin", b"\x01\x02")
    else:
        for name in ("x.json", "y.json"):
            m.s3rver.client.put_object(Bucket=m.bucket, Key=f"pfx/ext/{name}", Body=b"{}",
                                       ContentType="application/json", Metadata={"src": "elsewhere"})
    # A cold GET learns them with its one request.
    g = m.s3.get_object(Bucket="data", Key="ext/x.json")
    assert g["Body"].read() == b"{}"
    assert g["ContentType"] == "application/json" and g["Metadata"] == {"src": "elsewhere"}
    # An object first seen in a listing: its first GET asks for them.
    keys = [c["Key"] for c in m.s3.list_objects_v2(Bucket="data", Prefix="ext/")["Contents"]]
    assert keys == ["ext/x.json", "ext/y.json"]
    for op in (m.s3.head_object, m.s3.get_object):
        r = op(Bucket="data", Key="ext/y.json")
        assert r["ContentType"] == "application/json" and r["Metadata"] == {"src": "elsewhere"}


def test_response_overrides(make_worker, data_dir, tmp_path):
    w = make_worker(mounts={"data": data_dir}, args=KEYED + ["--s3-anonymous"])
    s3 = w.s3(AK, SK)
    s3.put_object(Bucket="data", Key="o.csv", Body=b"a,b", **PUT_HEADERS)
    r = s3.get_object(Bucket="data", Key="o.csv", ResponseContentType="image/png",
                      ResponseCacheControl="no-store", ResponseContentDisposition="inline",
                      ResponseContentLanguage="fr", ResponseContentEncoding="gzip",
                      ResponseExpires=datetime.datetime(2031, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc))
    h = r["ResponseMetadata"]["HTTPHeaders"]
    assert r["Body"].read() == b"a,b"
    assert (r["ContentType"], r["CacheControl"], r["ContentDisposition"], r["ContentLanguage"],
            r["ContentEncoding"]) == ("image/png", "no-store", "inline", "fr", "gzip")
    assert h["expires"] == "Tue, 06 May 2031 07:08:09 GMT"
    # Each header once: the override replaces the stored value.
    assert r["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "image/png"
    assert r["Metadata"] == {"owner": "Alice", "run-id": "r 7"}
    # Only the ones asked for are replaced.
    r = s3.get_object(Bucket="data", Key="o.csv", ResponseContentType="text/plain")
    assert r["ContentType"] == "text/plain" and r["CacheControl"] == "max-age=60"
    # A presigned GET with an override (what browsers download through).
    url = s3.generate_presigned_url("get_object", Params={
        "Bucket": "data", "Key": "o.csv", "ResponseContentDisposition": "attachment; filename=x.csv"},
        ExpiresIn=300)
    p = requests.get(url, timeout=10)
    assert p.status_code == 200 and p.headers["Content-Disposition"] == "attachment; filename=x.csv"
    assert p.headers["Content-Type"] == "text/csv; charset=utf-8"
    # Anonymous: the stored headers, but no overrides (as S3).
    a = requests.get(f"{w.s3_url}/data/o.csv", timeout=10)
    assert a.status_code == 200 and a.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert a.headers["x-amz-meta-owner"] == "Alice"
    a = requests.get(f"{w.s3_url}/data/o.csv?response-content-type=text/html", timeout=10)
    assert a.status_code == 400 and "<Code>InvalidRequest</Code>" in a.text


def test_copy_carries_headers(make_worker, tmp_path, request):
    w = make_worker(args=KEYED)
    f = mount_data(w, "file", "through", tmp_path, None, name="data")
    s = mount_data(w, "s3", "through", tmp_path, lambda: request.getfixturevalue("s3rver"), name="other")
    s3 = f.s3
    s3.put_object(Bucket="data", Key="src.csv", Body=b"1,2,3", **PUT_HEADERS)
    # Within a mount and across mounts (both ways), COPY: the source's.
    s3.copy_object(Bucket="data", Key="in.csv", CopySource="data/src.csv")
    s3.copy_object(Bucket="other", Key="across.csv", CopySource="data/src.csv")
    s3.copy_object(Bucket="data", Key="back.csv", CopySource="other/across.csv")
    for b, k in (("data", "in.csv"), ("other", "across.csv"), ("data", "back.csv")):
        assert_headers(s3.head_object(Bucket=b, Key=k))
        g = s3.get_object(Bucket=b, Key=k)
        assert g["Body"].read() == b"1,2,3"
        assert_headers(g)
    o = s.s3rver.client.head_object(Bucket=s.bucket, Key="pfx/across.csv")
    assert o["ContentType"] == "text/csv; charset=utf-8" and o["Metadata"] == {"owner": "Alice", "run-id": "r 7"}
    # REPLACE: the request's, and nothing of the source's.
    for b in ("data", "other"):
        s3.copy_object(Bucket=b, Key="repl.csv", CopySource="data/src.csv", MetadataDirective="REPLACE",
                       ContentType="text/plain", Metadata={"new": "1"})
        r = s3.head_object(Bucket=b, Key="repl.csv")
        assert r["ContentType"] == "text/plain" and r["Metadata"] == {"new": "1"}, b
        assert "cache-control" not in r["ResponseMetadata"]["HTTPHeaders"], b
    # A worker restart: the same, from the stores.
    w.drop_mount_args()
    w.restart()
    s3 = w.s3(AK, SK)
    assert_headers(s3.head_object(Bucket="other", Key="across.csv"))
    assert s3.head_object(Bucket="other", Key="repl.csv")["Metadata"] == {"new": "1"}


def test_multipart_upload_headers(make_worker, data_dir):
    w = make_worker(mounts={"data": data_dir}, args=KEYED)
    s3 = w.s3(AK, SK)
    up = s3.create_multipart_upload(Bucket="data", Key="mp.bin", ContentType="application/x-ferry",
                                    Metadata={"parts": "2"})
    a, b = rand_bytes(5 << 20, 1), rand_bytes(1000, 2)
    e1 = s3.upload_part(Bucket="data", Key="mp.bin", UploadId=up["UploadId"], PartNumber=1, Body=a)["ETag"]
    e2 = s3.upload_part(Bucket="data", Key="mp.bin", UploadId=up["UploadId"], PartNumber=2, Body=b)["ETag"]
    s3.complete_multipart_upload(Bucket="data", Key="mp.bin", UploadId=up["UploadId"], MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    r = s3.head_object(Bucket="data", Key="mp.bin")
    assert r["ContentType"] == "application/x-ferry" and r["Metadata"] == {"parts": "2"}
    assert r["ContentLength"] == len(a) + len(b)


NEW_BOTO_SCRIPT = textwrap.dedent("""
    import json, sys
    import boto3, botocore
    from botocore.config import Config
    endpoint, ak, sk = sys.argv[1:4]
    s3 = boto3.session.Session(aws_access_key_id=ak, aws_secret_access_key=sk,
                               region_name="us-east-1").client("s3", endpoint_url=endpoint,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                      retries={"total_max_attempts": 1}))
    s3.put_object(Bucket="data", Key="nb.txt", Body=b"new", ContentType="text/plain",
                  CacheControl="no-cache", Metadata={"Who": "newer botocore"}, ChecksumAlgorithm="SHA256")
    res = {"botocore": botocore.__version__}
    for name in ("head", "get", "get2"):
        r = s3.head_object(Bucket="data", Key="nb.txt") if name == "head" else \\
            s3.get_object(Bucket="data", Key="nb.txt")
        res[name] = [r["ContentType"], r.get("CacheControl"), r["Metadata"]]
    r = s3.get_object(Bucket="data", Key="nb.txt", ResponseContentType="application/x-over")
    res["override"] = r["ContentType"]
    print(json.dumps(res))
""")


def test_newer_botocore(make_worker, data_dir, tmp_path):
    from test_clients import newer_python
    py = newer_python()
    if not py:
        pytest.skip("no other python3 with boto3 on PATH")
    w = make_worker(mounts={"data": data_dir}, args=KEYED)
    (tmp_path / "nb.py").write_text(NEW_BOTO_SCRIPT)
    p = subprocess.run([py, str(tmp_path / "nb.py"), w.s3_url, AK, SK],
                       capture_output=True, timeout=120, env=dict(os.environ, PYTHONNOUSERSITE="1"))
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    res = json.loads(p.stdout.decode().strip().splitlines()[-1])
    want = ["text/plain", "no-cache", {"who": "newer botocore"}]
    assert res["head"] == want and res["get"] == want and res["get2"] == want, res
    assert res["override"] == "application/x-over"
