"""S3 semantics clients rely on beyond bytes: ETag and Last-Modified,
conditional requests, response-* overrides, ListBuckets, HeadBucket,
GetBucketLocation, error documents, fetch-owner, GetBucketAcl and
GetObjectAcl, and S3's answer to a CORS preflight."""
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


def test_bucket_configurations_answer_as_s3_does_for_a_bucket_without_one(make_worker, data_dir):
    """A mount keeps no policy, CORS rules, lifecycle, tags, ...: a GET of
    one answers what S3 answers for a bucket that has none (what awscli,
    s3cmd info and infrastructure tools expect), not 501; after the same
    checks as any request (signature, bucket)."""
    w = make_worker(mounts={"data": data_dir}, args=["--s3-access-key", "AKIDCFG",
                                                     "--s3-secret-key", "cfg-secret"])
    s3 = w.s3("AKIDCFG", "cfg-secret")
    missing = {
        s3.get_bucket_policy: "NoSuchBucketPolicy",
        s3.get_bucket_cors: "NoSuchCORSConfiguration",
        s3.get_bucket_lifecycle_configuration: "NoSuchLifecycleConfiguration",
        s3.get_bucket_website: "NoSuchWebsiteConfiguration",
        s3.get_bucket_tagging: "NoSuchTagSet",
        s3.get_bucket_encryption: "ServerSideEncryptionConfigurationNotFoundError",
        s3.get_bucket_replication: "ReplicationConfigurationNotFoundError",
        s3.get_object_lock_configuration: "ObjectLockConfigurationNotFoundError",
        s3.get_bucket_ownership_controls: "OwnershipControlsNotFoundError",
        s3.get_public_access_block: "NoSuchPublicAccessBlockConfiguration",
    }
    for call, code in missing.items():
        with pytest.raises(ClientError) as ei:
            call(Bucket="data")
        assert ei.value.response["Error"]["Code"] == code, call
        assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert "Status" not in s3.get_bucket_versioning(Bucket="data")  # never versioned
    assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket="data")
    assert s3.get_bucket_request_payment(Bucket="data")["Payer"] == "BucketOwner"
    assert "Status" not in s3.get_bucket_accelerate_configuration(Bucket="data")
    # The usual checks come first: no such bucket, a wrong signature.
    with pytest.raises(ClientError) as ei:
        s3.get_bucket_policy(Bucket="nosuch")
    assert ei.value.response["Error"]["Code"] == "NoSuchBucket"
    with pytest.raises(ClientError) as ei:
        w.s3("AKIDCFG", "wrong").get_bucket_cors(Bucket="data")
    assert ei.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert requests.get(f"{w.s3_url}/data?policy", timeout=10).status_code == 403
    assert w.metric("ferry_s3_requests_total", op="GetBucketConfiguration") >= len(missing) + 4


def test_list_buckets_follows_mounts(w, tmp_path):
    other = tmp_path / "zeta"
    other.mkdir()
    w.mount("zeta", f"file://{other}")
    w.mount("alpha", f"file://{other}")
    assert [b["Name"] for b in w.s3().list_buckets()["Buckets"]] == ["alpha", "data", "zeta"]
    assert w.ctl("DELETE", "/v1/mounts/zeta").status_code == 200
    assert [b["Name"] for b in w.s3().list_buckets()["Buckets"]] == ["alpha", "data"]


OWNER = {"ID": "ferry", "DisplayName": "ferry"}


def test_fetch_owner(w):
    s3 = w.s3()
    r = s3.list_objects_v2(Bucket="data", FetchOwner=True)
    assert [c["Key"] for c in r["Contents"]] == ["d/x", "obj.bin"]
    assert all(c["Owner"] == OWNER for c in r["Contents"])
    r = s3.list_objects_v2(Bucket="data")
    assert all("Owner" not in c for c in r["Contents"])
    r = s3.list_objects_v2(Bucket="data", FetchOwner=False)
    assert all("Owner" not in c for c in r["Contents"])
    # ListObjects (V1) always has it, as on S3.
    r = s3.list_objects(Bucket="data")
    assert all(c["Owner"] == OWNER for c in r["Contents"])
    assert s3.list_buckets()["Owner"] == OWNER


def test_acls(w):
    s3 = w.s3()
    for acl in (s3.get_bucket_acl(Bucket="data"), s3.get_object_acl(Bucket="data", Key="obj.bin")):
        assert acl["Owner"] == OWNER
        assert acl["Grants"] == [{"Grantee": dict(OWNER, Type="CanonicalUser"), "Permission": "FULL_CONTROL"}]
    with pytest.raises(ClientError) as ei:
        s3.get_object_acl(Bucket="data", Key="nokey")
    assert ei.value.response["Error"]["Code"] == "NoSuchKey"
    with pytest.raises(ClientError) as ei:
        s3.get_object_acl(Bucket="data", Key="d")
    assert ei.value.response["Error"]["Code"] == "NoSuchKey"
    with pytest.raises(ClientError) as ei:
        s3.get_bucket_acl(Bucket="nosuch")
    assert ei.value.response["Error"]["Code"] == "NoSuchBucket"
    # Changing one is not built (read-only gateway).
    with pytest.raises(ClientError) as ei:
        s3.put_object_acl(Bucket="data", Key="obj.bin", ACL="public-read")
    assert ei.value.response["Error"]["Code"] == "NotImplemented"
    with pytest.raises(ClientError) as ei:
        s3.put_bucket_acl(Bucket="data", ACL="public-read")
    assert ei.value.response["Error"]["Code"] == "NotImplemented"
    assert requests.head(f"{w.s3_url}/data?acl", timeout=10).status_code == 200


def test_cors_preflight(w):
    """No CORS configuration, so S3's answers: 403 AccessForbidden, or 400
    BadRequest for a preflight without Origin or with a bad method."""
    url = f"{w.s3_url}/data/obj.bin"
    r = requests.options(url, headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"},
                         timeout=10)
    assert r.status_code == 403
    assert s3_error_code(r.content) == "AccessForbidden"
    assert b"<Message>CORSResponse: CORS is not enabled for this bucket.</Message>" in r.content
    assert b"<Method>GET</Method><ResourceType>OBJECT</ResourceType>" in r.content
    assert "access-control-allow-origin" not in {k.lower() for k in r.headers}
    assert DATA[:64] not in r.content
    r = requests.options(f"{w.s3_url}/data", headers={"Origin": "x", "Access-Control-Request-Method": "PUT"},
                         timeout=10)
    assert r.status_code == 403 and b"<ResourceType>BUCKET</ResourceType>" in r.content
    r = requests.options(url, timeout=10)
    assert r.status_code == 400 and s3_error_code(r.content) == "BadRequest"
    assert b"Origin request header needed" in r.content
    r = requests.options(url, headers={"Origin": "x"}, timeout=10)
    assert r.status_code == 400 and b"Invalid Access-Control-Request-Method: null" in r.content
    r = requests.options(url, headers={"Origin": "x", "Access-Control-Request-Method": "BREW"}, timeout=10)
    assert r.status_code == 400 and b"Invalid Access-Control-Request-Method: BREW" in r.content


def test_cors_preflight_needs_no_signature(make_worker, data_dir):
    (data_dir / "obj.bin").write_bytes(DATA)
    wk = make_worker(mounts={"data": data_dir}, args=["--s3-access-key", "AK", "--s3-secret-key", "SK"])
    r = requests.options(f"{wk.s3_url}/data/obj.bin",
                         headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"},
                         timeout=10)
    assert r.status_code == 403 and s3_error_code(r.content) == "AccessForbidden"
    # ...while an unsigned GET is still refused, and an unsigned ACL read.
    assert s3_error_code(requests.get(f"{wk.s3_url}/data/obj.bin", timeout=10).content) == "AccessDenied"
    assert s3_error_code(requests.get(f"{wk.s3_url}/data?acl", timeout=10).content) == "AccessDenied"
