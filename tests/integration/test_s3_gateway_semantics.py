"""S3 semantics clients rely on beyond bytes: ETag and Last-Modified,
conditional requests, response-* overrides, ListBuckets, HeadBucket,
GetBucketLocation, error documents."""
import datetime
import os
import time

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import PAGE, http_get, rand_bytes, s3_error_code

MTIME = 1_650_000_000
DATA = rand_bytes(2 * PAGE + 1, 8)


@pytest.fixture
def w(make_worker, data_dir):
    f = data_dir / "obj.bin"
    f.write_bytes(DATA)
    os.utime(f, (MTIME, MTIME))
    (data_dir / "d").mkdir()
    (data_dir / "d" / "x").write_bytes(b"x")
    return make_worker(mounts={"data": data_dir}, args=["--sync-interval", "500ms"])


def http_date(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")


def test_etag_and_last_modified(w, data_dir):
    s3 = w.s3()
    h = s3.head_object(Bucket="data", Key="obj.bin")
    assert int(h["LastModified"].timestamp()) == MTIME
    etag = h["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert s3.head_object(Bucket="data", Key="obj.bin")["ETag"] == etag
    r = requests.head(f"{w.s3_url}/data/obj.bin", timeout=10)
    assert r.headers["Last-Modified"] == http_date(MTIME)
    assert r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["Content-Length"] == str(len(DATA))
    listed = s3.list_objects_v2(Bucket="data", Prefix="obj")["Contents"][0]
    assert listed["ETag"] == etag
    assert int(listed["LastModified"].timestamp()) == MTIME
    # File ETags follow mtime and size: a touch changes it (after the sync interval).
    os.utime(data_dir / "obj.bin", (MTIME + 60, MTIME + 60))
    time.sleep(0.8)
    h2 = s3.head_object(Bucket="data", Key="obj.bin")
    assert h2["ETag"] != etag
    assert int(h2["LastModified"].timestamp()) == MTIME + 60


def test_conditional_requests(w):
    url = f"{w.s3_url}/data/obj.bin"
    etag = requests.head(url, timeout=10).headers["ETag"]
    cases = [
        ({"If-None-Match": etag}, 304),
        ({"If-None-Match": '"other"'}, 200),
        ({"If-None-Match": "*"}, 304),
        ({"If-Match": etag}, 200),
        ({"If-Match": '"other"'}, 412),
        ({"If-Match": f'"other", {etag}'}, 200),
        ({"If-Modified-Since": http_date(MTIME)}, 304),
        ({"If-Modified-Since": http_date(MTIME + 3600)}, 304),
        ({"If-Modified-Since": http_date(MTIME - 3600)}, 200),
        ({"If-Unmodified-Since": http_date(MTIME - 3600)}, 412),
        ({"If-Unmodified-Since": http_date(MTIME)}, 200),
        # If-Match wins over If-Unmodified-Since; If-None-Match over If-Modified-Since.
        ({"If-Match": etag, "If-Unmodified-Since": http_date(MTIME - 3600)}, 200),
        ({"If-None-Match": '"other"', "If-Modified-Since": http_date(MTIME + 3600)}, 200),
        ({"If-Modified-Since": "not a date"}, 200),
    ]
    for hdrs, want in cases:
        st, h, body = http_get(url, hdrs)
        assert st == want, (hdrs, st)
        if want == 200:
            assert body == DATA
        elif want == 304:
            assert body == b"" and h["etag"] == etag
        else:
            assert s3_error_code(body) == "PreconditionFailed"
    with pytest.raises(ClientError) as ei:
        w.s3().get_object(Bucket="data", Key="obj.bin", IfMatch='"nope"')
    assert ei.value.response["Error"]["Code"] in ("PreconditionFailed", "412")


def test_response_overrides(w):
    r = w.s3().get_object(Bucket="data", Key="obj.bin", ResponseContentType="text/plain",
                          ResponseContentDisposition='attachment; filename="x.bin"',
                          ResponseCacheControl="no-cache", ResponseContentLanguage="en",
                          ResponseContentEncoding="identity")
    assert r["ContentType"] == "text/plain"
    assert r["ContentDisposition"] == 'attachment; filename="x.bin"'
    assert r["CacheControl"] == "no-cache"
    assert r["ContentLanguage"] == "en"
    assert r["Body"].read() == DATA
    # No header injection through an override.
    st, h, _ = http_get(f"{w.s3_url}/data/obj.bin?response-content-type=text/plain%0d%0aX-Evil:%201")
    assert st == 200 and "x-evil" not in h
    assert requests.get(f"{w.s3_url}/data/obj.bin", timeout=10).headers["Content-Type"] == "application/octet-stream"


def test_bucket_operations(w, data_dir):
    s3 = w.s3()
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["data"]
    h = s3.head_bucket(Bucket="data")
    assert h["ResponseMetadata"]["HTTPStatusCode"] == 200
    loc = s3.get_bucket_location(Bucket="data")
    assert loc.get("LocationConstraint") in (None, "")
    with pytest.raises(ClientError) as ei:
        s3.head_bucket(Bucket="nosuch")
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as ei:
        s3.list_objects_v2(Bucket="nosuch")
    assert ei.value.response["Error"]["Code"] == "NoSuchBucket"
    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket="data", Key="nokey")
    assert ei.value.response["Error"]["Code"] == "NoSuchKey"
    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket="data", Key="d")  # a directory is not an object
    assert ei.value.response["Error"]["Code"] == "NoSuchKey"
    # Error documents carry a request id, also in a header.
    r = requests.get(f"{w.s3_url}/data/nokey", timeout=10)
    assert r.headers.get("x-amz-request-id") and b"<RequestId>" in r.content
    assert r.headers["Content-Type"].startswith("application/xml")


def test_list_buckets_follows_mounts(w, tmp_path):
    other = tmp_path / "zeta"
    other.mkdir()
    w.mount("zeta", f"file://{other}")
    w.mount("alpha", f"file://{other}")
    assert [b["Name"] for b in w.s3().list_buckets()["Buckets"]] == ["alpha", "data", "zeta"]
    assert w.ctl("DELETE", "/v1/mounts/zeta").status_code == 200
    assert [b["Name"] for b in w.s3().list_buckets()["Buckets"]] == ["alpha", "data"]
