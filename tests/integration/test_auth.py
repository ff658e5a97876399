"""Gateway authentication with keys configured: SigV4 in the header and
presigned, checked against real clients (boto3, requests, curl
--aws-sigv4); wrong secrets, unknown keys, unsigned, expired, tampered and
skewed requests are refused with S3's error codes."""
import datetime
import subprocess
import time
import types
import urllib.parse
from unittest import mock

import boto3
import botocore.auth
import pytest
import requests
from botocore import UNSIGNED
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import FERRY, PAGE, rand_bytes, s3_client, s3_config, s3_error_code

AK = "AKIDFERRYTEST0001"
SK = "sekret/with+chars=and-more"
DATA = rand_bytes(3 * PAGE + 11, 77)
ODD_KEY = "dir with space/ünïcode+plus&amp.bin"


@pytest.fixture
def keyed(make_worker, data_dir):
    (data_dir / "obj.bin").write_bytes(DATA)
    (data_dir / "other.bin").write_bytes(b"other")
    odd = data_dir / ODD_KEY
    odd.parent.mkdir(parents=True)
    odd.write_bytes(b"odd key bytes")
    return make_worker(mounts={"data": data_dir}, args=["--s3-access-key", AK, "--s3-secret-key", SK])


def code_of(exc_info):
    e = exc_info.value
    return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]


def test_right_keys_work(keyed, tmp_path):
    s3 = keyed.s3(AK, SK)
    assert s3.get_object(Bucket="data", Key="obj.bin")["Body"].read() == DATA
    assert s3.get_object(Bucket="data", Key="obj.bin", Range="bytes=5-70000")["Body"].read() == DATA[5:70001]
    assert s3.get_object(Bucket="data", Key=ODD_KEY)["Body"].read() == b"odd key bytes"
    assert s3.head_object(Bucket="data", Key="obj.bin")["ContentLength"] == len(DATA)
    keys = [c["Key"] for c in s3.list_objects_v2(Bucket="data")["Contents"]]
    assert keys == sorted(["obj.bin", "other.bin", ODD_KEY], key=str.encode)
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["data"]
    s3.head_bucket(Bucket="data")
    out = tmp_path / "o.bin"
    s3.download_file("data", "obj.bin", str(out))
    assert out.read_bytes() == DATA


def test_wrong_secret(keyed):
    with pytest.raises(ClientError) as ei:
        keyed.s3(AK, SK + "x").get_object(Bucket="data", Key="obj.bin")
    assert code_of(ei) == ("SignatureDoesNotMatch", 403)
    with pytest.raises(ClientError) as ei:
        keyed.s3(AK, "wrong").list_objects_v2(Bucket="data")
    assert code_of(ei) == ("SignatureDoesNotMatch", 403)


def test_unknown_key(keyed):
    with pytest.raises(ClientError) as ei:
        keyed.s3("AKIDNOBODY", SK).get_object(Bucket="data", Key="obj.bin")
    assert code_of(ei) == ("InvalidAccessKeyId", 403)


def test_unsigned_is_denied(keyed):
    for path in ("/data/obj.bin", "/data?list-type=2", "/"):
        r = requests.get(keyed.s3_url + path, timeout=10)
        assert r.status_code == 403, path
        assert s3_error_code(r.content) == "AccessDenied"
        assert DATA[:64] not in r.content
    unsigned = boto3.session.Session().client("s3", endpoint_url=keyed.s3_url, region_name="us-east-1",
                                              config=s3_config(signature_version=UNSIGNED))
    with pytest.raises(ClientError) as ei:
        unsigned.get_object(Bucket="data", Key="obj.bin")
    assert code_of(ei) == ("AccessDenied", 403)
    r = requests.head(keyed.s3_url + "/data/obj.bin", timeout=10)
    assert r.status_code == 403


def test_presigned_url(keyed):
    s3 = keyed.s3(AK, SK)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "data", "Key": "obj.bin"}, ExpiresIn=300)
    r = requests.get(url, timeout=10)
    assert r.status_code == 200 and r.content == DATA
    r = requests.get(url, headers={"Range": "bytes=100-199"}, timeout=10)
    assert r.status_code == 206 and r.content == DATA[100:200]
    p = subprocess.run(["curl", "-sS", "--fail", "--noproxy", "*", "--max-time", "20", url],
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout == DATA
    # A key that needs encoding in the canonical URI.
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "data", "Key": ODD_KEY}, ExpiresIn=300)
    r = requests.get(url, timeout=10)
    assert r.status_code == 200 and r.content == b"odd key bytes"
    # response-* overrides are part of what is signed.
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "data", "Key": "other.bin",
                                                          "ResponseContentType": "text/plain"}, ExpiresIn=300)
    r = requests.get(url, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/plain"


def test_presigned_tampered(keyed):
    s3 = keyed.s3(AK, SK)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "data", "Key": "obj.bin"}, ExpiresIn=300)
    r = requests.get(url.replace("/obj.bin?", "/other.bin?"), timeout=10)
    assert r.status_code == 403
    assert s3_error_code(r.content) == "SignatureDoesNotMatch"
    u = urllib.parse.urlsplit(url)
    q = urllib.parse.parse_qs(u.query)
    q["X-Amz-Expires"] = ["604800"]
    r = requests.get(f"{keyed.s3_url}{u.path}?{urllib.parse.urlencode(q, doseq=True)}", timeout=10)
    assert r.status_code == 403
    assert b"other" not in r.content and DATA[:64] not in r.content


def test_presigned_expired(keyed):
    url = keyed.s3(AK, SK).generate_presigned_url(
        "get_object", Params={"Bucket": "data", "Key": "obj.bin"}, ExpiresIn=1)
    time.sleep(2.2)
    r = requests.get(url, timeout=10)
    assert r.status_code == 403
    assert s3_error_code(r.content) == "AccessDenied"
    assert DATA[:64] not in r.content


def signed_request(url, method="GET", headers=None, when=None, secret=SK):
    """Signs with botocore's SigV4 signer, at time `when` (UTC) if given."""
    req = AWSRequest(method=method, url=url, headers=dict(headers or {}))
    signer = S3SigV4Auth(Credentials(AK, secret), "s3", "us-east-1")
    if when is None:
        signer.add_auth(req)
    else:
        class Past(datetime.datetime):
            @classmethod
            def utcnow(cls):
                return when
        with mock.patch.object(botocore.auth, "datetime", types.SimpleNamespace(datetime=Past)):
            signer.add_auth(req)
    return dict(req.headers.items())


def test_request_time_too_skewed(keyed):
    url = keyed.s3_url + "/data/obj.bin"
    now = datetime.datetime.utcnow()
    ok = signed_request(url)
    assert requests.get(url, headers=ok, timeout=10).content == DATA
    for delta in (datetime.timedelta(minutes=-20), datetime.timedelta(minutes=20)):
        h = signed_request(url, when=now + delta)
        assert h["X-Amz-Date"] != ok["X-Amz-Date"]
        r = requests.get(url, headers=h, timeout=10)
        assert r.status_code == 403, delta
        assert s3_error_code(r.content) == "RequestTimeTooSkewed"
    # 5 minutes is within S3's 15-minute allowance.
    h = signed_request(url, when=now - datetime.timedelta(minutes=5))
    assert requests.get(url, headers=h, timeout=10).status_code == 200


def test_signed_header_tampered(keyed):
    url = keyed.s3_url + "/data/obj.bin"
    h = signed_request(url, headers={"Range": "bytes=0-9"})
    assert requests.get(url, headers=h, timeout=10).content == DATA[:10]
    h["Range"] = "bytes=0-99"
    r = requests.get(url, headers=h, timeout=10)
    assert r.status_code == 403
    assert s3_error_code(r.content) == "SignatureDoesNotMatch"
    h = signed_request(url)
    h["Authorization"] = h["Authorization"].replace("Signature=", "Signature=00")
    r = requests.get(url, headers=h, timeout=10)
    assert r.status_code in (400, 403)
    h = signed_request(url)
    h["Authorization"] = "AWS4-HMAC-SHA256 garbage"
    r = requests.get(url, headers=h, timeout=10)
    assert r.status_code in (400, 403)
    assert DATA[:64] not in r.content
    keyed.assert_alive()


def curl_sigv4(url, secret, *extra):
    return subprocess.run(["curl", "-sS", "--noproxy", "*", "--max-time", "20",
                           "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", f"{AK}:{secret}",
                           "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "-w", "\n%{http_code}",
                           *extra, url], capture_output=True, timeout=30)


def test_curl_aws_sigv4(keyed):
    p = curl_sigv4(keyed.s3_url + "/data/obj.bin", SK)
    assert p.returncode == 0, p.stderr
    body, _, code = p.stdout.rpartition(b"\n")
    assert code == b"200" and body == DATA
    p = curl_sigv4(keyed.s3_url + "/data/obj.bin", SK, "-r", "0-99")
    body, _, code = p.stdout.rpartition(b"\n")
    assert code == b"206" and body == DATA[:100]
    p = curl_sigv4(keyed.s3_url + "/data?list-type=2&prefix=o", SK)
    body, _, code = p.stdout.rpartition(b"\n")
    assert code == b"200" and b"<Key>obj.bin</Key>" in body and b"other.bin" in body
    p = curl_sigv4(keyed.s3_url + "/data/obj.bin", "wrong")
    body, _, code = p.stdout.rpartition(b"\n")
    assert code == b"403" and s3_error_code(body) == "SignatureDoesNotMatch"


def test_anonymous_mode(make_worker, data_dir):
    (data_dir / "pub.bin").write_bytes(b"public")
    w = make_worker(mounts={"data": data_dir},
                    args=["--s3-access-key", AK, "--s3-secret-key", SK, "--s3-anonymous"])
    assert requests.get(w.s3_url + "/data/pub.bin", timeout=10).content == b"public"
    assert w.s3(AK, SK).get_object(Bucket="data", Key="pub.bin")["Body"].read() == b"public"
    # A signature, if given, must still be right.
    with pytest.raises(ClientError) as ei:
        w.s3(AK, "wrong").get_object(Bucket="data", Key="pub.bin")
    assert code_of(ei) == ("SignatureDoesNotMatch", 403)


def test_no_keys_on_loopback_accepts_anything(make_worker, data_dir):
    (data_dir / "x").write_bytes(b"x")
    w = make_worker(mounts={"data": data_dir})
    assert requests.get(w.s3_url + "/data/x", timeout=10).content == b"x"
    assert s3_client(w.s3_url, "any", "thing").get_object(Bucket="data", Key="x")["Body"].read() == b"x"


def test_refuses_to_listen_beyond_loopback_without_keys(tmp_path):
    p = subprocess.run([str(FERRY), "worker", "--cache-dir", str(tmp_path / "c"),
                        "--s3-address", "0.0.0.0:0", "--control-address", "127.0.0.1:0"],
                       capture_output=True, timeout=20)
    assert p.returncode != 0
    assert b"ready" not in p.stdout
    p = subprocess.run([str(FERRY), "worker", "--cache-dir", str(tmp_path / "c"),
                        "--s3-address", "127.0.0.1:0", "--control-address", "0.0.0.0:0"],
                       capture_output=True, timeout=20)
    assert p.returncode != 0
    assert b"ready" not in p.stdout


# --- S3's answers to what real clients send (issue 10 items 5, 10) ---------

def raw_signed(url, region, headers=None, secret=SK):
    """Headers for a GET of url signed by botocore for region."""
    req = AWSRequest(method="GET", url=url, headers=dict(headers or {}))
    S3SigV4Auth(Credentials(AK, secret), "s3", region).add_auth(req)
    return dict(req.headers.items())


def region_of_error(body):
    import re
    m = re.search(rb"<Region>([^<]*)</Region>", body)
    return m.group(1).decode() if m else None


def message_of(body):
    import html
    import re
    m = re.search(rb"<Message>([^<]*)</Message>", body)
    return html.unescape(m.group(1).decode()) if m else None


@pytest.fixture
def regional(make_worker, data_dir):
    (data_dir / "obj.bin").write_bytes(DATA)
    return make_worker(mounts={"data": data_dir},
                       args=["--s3-access-key", AK, "--s3-secret-key", SK, "--s3-region", "eu-west-3"])


def test_wrong_region_header_form(regional):
    url = regional.s3_url + "/data/obj.bin"
    assert requests.get(url, headers=raw_signed(url, "eu-west-3"), timeout=10).content == DATA
    r = requests.get(url, headers=raw_signed(url, "us-east-1"), timeout=10)
    assert r.status_code == 400
    assert s3_error_code(r.content) == "AuthorizationHeaderMalformed"
    assert message_of(r.content) == ("The authorization header is malformed; the region 'us-east-1' "
                                     "is wrong; expecting 'eu-west-3'")
    assert region_of_error(r.content) == "eu-west-3"
    assert r.headers["x-amz-bucket-region"] == "eu-west-3"
    assert DATA[:64] not in r.content
    # The region is checked before the secret: a wrong one says so first.
    r = requests.get(url, headers=raw_signed(url, "ap-south-1", secret="wrong"), timeout=10)
    assert s3_error_code(r.content) == "AuthorizationHeaderMalformed"


def test_wrong_region_presigned(regional):
    for region, ok in (("eu-west-3", True), ("us-east-1", False)):
        s3 = boto3.session.Session(aws_access_key_id=AK, aws_secret_access_key=SK,
                                   region_name=region).client(
            "s3", endpoint_url=regional.s3_url, config=s3_config())
        url = s3.generate_presigned_url("get_object", Params={"Bucket": "data", "Key": "obj.bin"},
                                        ExpiresIn=300)
        r = requests.get(url, timeout=10)
        if ok:
            assert r.status_code == 200 and r.content == DATA
            continue
        assert r.status_code == 400
        assert s3_error_code(r.content) == "AuthorizationQueryParametersError"
        assert message_of(r.content) == ("Error parsing the X-Amz-Credential parameter; the region "
                                         "'us-east-1' is wrong; expecting 'eu-west-3'")
        assert region_of_error(r.content) == "eu-west-3"


def test_boto3_learns_the_region(regional):
    """boto3 configured for another region: S3's <Region> in the error
    lets botocore's redirector sign again for the right one."""
    s3 = boto3.session.Session(aws_access_key_id=AK, aws_secret_access_key=SK,
                               region_name="us-west-2").client(
        "s3", endpoint_url=regional.s3_url, config=s3_config())
    assert s3.get_object(Bucket="data", Key="obj.bin")["Body"].read() == DATA
    assert s3.head_object(Bucket="data", Key="obj.bin")["ContentLength"] == len(DATA)
    keys = [c["Key"] for c in s3.list_objects_v2(Bucket="data")["Contents"]]
    assert keys == ["obj.bin"]
    # The newer botocore of the default python3 as well.
    py = newer_python()
    if py:
        p = subprocess.run([py, "-c", NEW_BOTO_REGION, regional.s3_url, AK, SK], capture_output=True,
                           timeout=120, text=True)
        assert p.returncode == 0, p.stderr
        assert p.stdout.split() == [str(len(DATA)), str(len(DATA)), "obj.bin"]


NEW_BOTO_REGION = """
import hashlib, sys, boto3
from botocore.config import Config
url, ak, sk = sys.argv[1:4]
s3 = boto3.session.Session(aws_access_key_id=ak, aws_secret_access_key=sk, region_name="us-west-2").client(
    "s3", endpoint_url=url, config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                                          retries={"total_max_attempts": 1}))
print(len(s3.get_object(Bucket="data", Key="obj.bin")["Body"].read()))
print(s3.head_object(Bucket="data", Key="obj.bin")["ContentLength"])
print(" ".join(c["Key"] for c in s3.list_objects_v2(Bucket="data")["Contents"]))
"""


def newer_python():
    """The default python3 on PATH, if it is another interpreter than this
    one and has boto3 (it has a newer botocore)."""
    import os
    import shutil
    import sys
    py = shutil.which("python3")
    if not py or os.path.realpath(py) == os.path.realpath(sys.executable):
        return None
    p = subprocess.run([py, "-c", "import boto3"], capture_output=True, timeout=60)
    return py if p.returncode == 0 else None


def test_missing_date_is_access_denied(keyed):
    url = keyed.s3_url + "/data/obj.bin"
    h = signed_request(url)
    del h["X-Amz-Date"]
    r = requests.get(url, headers=h, timeout=10)
    assert r.status_code == 403
    assert s3_error_code(r.content) == "AccessDenied"
    assert message_of(r.content) == "AWS authentication requires a valid Date or x-amz-date header"
    h = signed_request(url)
    h["X-Amz-Date"] = "not-a-date"
    r = requests.get(url, headers=h, timeout=10)
    assert r.status_code == 403 and s3_error_code(r.content) == "AccessDenied"
    assert DATA[:64] not in r.content


@pytest.mark.parametrize("expires,msg", [
    (604801, "X-Amz-Expires must be less than a week (in seconds); that is, the given "
             "X-Amz-Expires must be less than 604800 seconds"),
    (2592000, "X-Amz-Expires must be less than a week (in seconds); that is, the given "
              "X-Amz-Expires must be less than 604800 seconds"),
    (-60, "X-Amz-Expires must be non-negative"),
])
def test_presigned_expires_out_of_range(keyed, expires, msg):
    """As S3: 400 AuthorizationQueryParametersError, whatever the rest."""
    s3 = keyed.s3(AK, SK)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "data", "Key": "obj.bin"},
                                    ExpiresIn=604800)
    u = urllib.parse.urlsplit(url)
    q = urllib.parse.parse_qs(u.query)
    q["X-Amz-Expires"] = [str(expires)]
    r = requests.get(f"{keyed.s3_url}{u.path}?{urllib.parse.urlencode(q, doseq=True)}", timeout=10)
    assert r.status_code == 400
    assert s3_error_code(r.content) == "AuthorizationQueryParametersError"
    assert message_of(r.content) == msg
    # A malformed presigned query is the query form's error, too.
    del q["X-Amz-Date"]
    r = requests.get(f"{keyed.s3_url}{u.path}?{urllib.parse.urlencode(q, doseq=True)}", timeout=10)
    assert r.status_code == 400
    assert s3_error_code(r.content) == "AuthorizationQueryParametersError"


# --- SigV2 (issue 10 item 9) --------------------------------------------------

def test_sigv2_header_form(keyed):
    """boto3 with signature_version "s3": Authorization "AWS AKID:sig"."""
    s3 = keyed.s3(AK, SK, signature_version="s3")
    assert s3.get_object(Bucket="data", Key="obj.bin")["Body"].read() == DATA
    assert s3.get_object(Bucket="data", Key="obj.bin", Range="bytes=5-70000")["Body"].read() == DATA[5:70001]
    assert s3.get_object(Bucket="data", Key=ODD_KEY)["Body"].read() == b"odd key bytes"
    assert s3.head_object(Bucket="data", Key="obj.bin")["ContentLength"] == len(DATA)
    r = s3.get_object(Bucket="data", Key="other.bin", ResponseContentType="text/plain")
    assert r["ContentType"] == "text/plain" and r["Body"].read() == b"other"
    keys = [c["Key"] for c in s3.list_objects_v2(Bucket="data")["Contents"]]
    assert keys == sorted(["obj.bin", "other.bin", ODD_KEY], key=str.encode)
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["data"]
    with pytest.raises(ClientError) as ei:
        keyed.s3(AK, SK + "x", signature_version="s3").get_object(Bucket="data", Key="obj.bin")
    assert code_of(ei) == ("SignatureDoesNotMatch", 403)
    with pytest.raises(ClientError) as ei:
        keyed.s3("AKIDNOBODY", SK, signature_version="s3").get_object(Bucket="data", Key="obj.bin")
    assert code_of(ei) == ("InvalidAccessKeyId", 403)


def test_sigv2_presigned_url(keyed):
    s3 = keyed.s3(AK, SK, signature_version="s3")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "data", "Key": "obj.bin"}, ExpiresIn=300)
    assert "AWSAccessKeyId=" in url and "X-Amz-" not in url
    r = requests.get(url, timeout=10)
    assert r.status_code == 200 and r.content == DATA
    r = requests.get(url, headers={"Range": "bytes=100-199"}, timeout=10)
    assert r.status_code == 206 and r.content == DATA[100:200]
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "data", "Key": ODD_KEY,
                                                          "ResponseContentType": "text/plain"}, ExpiresIn=300)
    r = requests.get(url, timeout=10)
    assert r.status_code == 200 and r.content == b"odd key bytes" and r.headers["Content-Type"] == "text/plain"
    # Another key with this signature, another override: refused.
    r = requests.get(url.replace("ResponseContentType", "x").replace("response-content-type=text%2Fplain",
                                                                       "response-content-type=text%2Fhtml"),
                     timeout=10)
    assert r.status_code == 403 and s3_error_code(r.content) == "SignatureDoesNotMatch"
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "data", "Key": "obj.bin"}, ExpiresIn=300)
    r = requests.get(url.replace("/obj.bin?", "/other.bin?"), timeout=10)
    assert r.status_code == 403 and s3_error_code(r.content) == "SignatureDoesNotMatch"
    # Missing pieces of the query form.
    r = requests.get(url.replace("Signature=", "Sig="), timeout=10)
    assert r.status_code == 403 and s3_error_code(r.content) == "AccessDenied"


def test_sigv2_presigned_expired(keyed):
    url = keyed.s3(AK, SK, signature_version="s3").generate_presigned_url(
        "get_object", Params={"Bucket": "data", "Key": "obj.bin"}, ExpiresIn=1)
    time.sleep(2.2)
    r = requests.get(url, timeout=10)
    assert r.status_code == 403
    assert s3_error_code(r.content) == "AccessDenied"
    assert message_of(r.content) == "Request has expired"
    assert DATA[:64] not in r.content


NEW_BOTO_PRESIGN = """
import sys, boto3
from botocore.config import Config
url, ak, sk = sys.argv[1:4]
# No signature_version: what the newer botocore picks for presigning.
s3 = boto3.session.Session(aws_access_key_id=ak, aws_secret_access_key=sk).client(
    "s3", endpoint_url=url, config=Config(s3={"addressing_style": "path"}))
print(s3.generate_presigned_url("get_object", Params={"Bucket": "data", "Key": "obj.bin"}, ExpiresIn=300))
s3 = boto3.session.Session(aws_access_key_id=ak, aws_secret_access_key=sk, region_name="us-east-1").client(
    "s3", endpoint_url=url, config=Config(signature_version="s3", s3={"addressing_style": "path"}))
print(len(s3.get_object(Bucket="data", Key="obj.bin")["Body"].read()))
"""


def test_sigv2_newer_botocore(keyed):
    py = newer_python()
    if not py:
        pytest.skip("no other python3 with boto3 on PATH")
    p = subprocess.run([py, "-c", NEW_BOTO_PRESIGN, keyed.s3_url, AK, SK], capture_output=True, timeout=120,
                       text=True)
    assert p.returncode == 0, p.stderr
    url, n = p.stdout.split()
    r = requests.get(url, timeout=10)
    assert r.status_code == 200 and r.content == DATA, (url, r.status_code, r.text[:300])
    assert int(n) == len(DATA)
