"""Virtual-host addressing (--s3-domain): boto3 configured with
addressing_style "virtual" and the endpoint http://s3.localhost:PORT sends
Host: BUCKET.s3.localhost:PORT and the key as the whole path; the worker
must route it and verify its signatures (SigV4 header and presigned, SigV2)
over the path as sent.  Path-style keeps working on the same worker, for a
Host of the domain itself or an address.

Names under s3.localhost do not resolve here, so name resolution is
patched in the client process (socket.getaddrinfo: *.s3.localhost ->
127.0.0.1); the worker sees the Host as the client wrote it.  The client
checks run under pytest (Debian's botocore) and, as this file run as a
script against the same worker, under the default python3's newer
botocore.
"""
import os
import shutil
import socket
import subprocess
import sys

import requests

DOMAIN = "s3.localhost"
AK = "AKIDVHOST0001"
SK = "vhost/secret+key"
FILES = {"a.txt": b"alpha", "dir/b c.bin": bytes(range(256)) * 300, "dir/sub/c": b"c" * 70000}

_orig_getaddrinfo = socket.getaddrinfo


def _resolve(host, *a, **kw):
    if isinstance(host, bytes):
        host = host.decode()
    if host and (host == DOMAIN or host.endswith("." + DOMAIN)):
        host = "127.0.0.1"
    return _orig_getaddrinfo(host, *a, **kw)


def client(port, style="virtual", sig="s3v4", ak=AK, sk=SK):
    import boto3
    from botocore.config import Config
    socket.getaddrinfo = _resolve
    sess = boto3.session.Session(aws_access_key_id=ak, aws_secret_access_key=sk,
                                 region_name="us-east-1")
    c = sess.client("s3", endpoint_url="http://%s:%d" % (DOMAIN, port),
                    config=Config(signature_version=sig, s3={"addressing_style": style},
                                  retries={"total_max_attempts": 1}))
    c.hosts = []

    def record(request, **kw):
        c.hosts.append((request.headers.get("host") or request.url.split("/")[2],
                        request.url))
    c.meta.events.register("before-send", record)
    return c


def error_code(exc):
    return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]


def exercise(port):
    """The client checks (plain asserts: they also run as a script)."""
    from botocore.exceptions import ClientError
    import botocore
    for sig in ("s3v4", "s3"):  # SigV4 and SigV2
        c = client(port, sig=sig)
        keys = [o["Key"] for o in c.list_objects_v2(Bucket="data")["Contents"]]
        assert keys == sorted(FILES), keys
        # botocore really went virtual-host style
        host, url = c.hosts[-1]
        host = host.decode() if isinstance(host, bytes) else host
        assert host.startswith("data." + DOMAIN), (host, url)
        assert "/data" not in url.split(DOMAIN, 1)[1], url
        r = c.list_objects_v2(Bucket="data", Prefix="dir/", Delimiter="/")
        assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["dir/sub/"]
        assert [o["Key"] for o in r["Contents"]] == ["dir/b c.bin"]
        assert [o["Key"] for o in c.list_objects(Bucket="data")["Contents"]] == sorted(FILES)
        for k, v in FILES.items():
            assert c.get_object(Bucket="data", Key=k)["Body"].read() == v, k
            assert c.head_object(Bucket="data", Key=k)["ContentLength"] == len(v)
        got = c.get_object(Bucket="data", Key="dir/sub/c", Range="bytes=10-19")["Body"].read()
        assert got == FILES["dir/sub/c"][10:20]
        c.head_bucket(Bucket="data")
        if sig == "s3v4":
            # (botocore 1.29 signs GetBucketLocation's SigV2 resource as
            # "/data?location?location", which S3 refuses too.)
            assert c.get_bucket_location(Bucket="data").get("LocationConstraint") in (None, "")
        for bad, want in (({"Bucket": "nope", "Key": "a.txt"}, ("NoSuchBucket", 404)),
                          ({"Bucket": "data", "Key": "missing"}, ("NoSuchKey", 404))):
            try:
                c.get_object(**bad)
                raise AssertionError("no error for %r" % bad)
            except ClientError as e:
                assert error_code(e) == want, (bad, e.response)
        # a wrong secret is refused, virtual-host style too
        try:
            client(port, sig=sig, sk=SK + "x").get_object(Bucket="data", Key="a.txt")
            raise AssertionError("wrong secret accepted")
        except ClientError as e:
            assert error_code(e) == ("SignatureDoesNotMatch", 403), e.response
    # presigned URLs (SigV4), fetched by another client
    c = client(port)
    url = c.generate_presigned_url("get_object", Params={"Bucket": "data", "Key": "dir/b c.bin"},
                                   ExpiresIn=300)
    assert "//data." + DOMAIN in url, url
    r = requests.get(url, timeout=10)
    assert r.status_code == 200 and r.content == FILES["dir/b c.bin"], (r.status_code, r.text)
    r = requests.get(url.replace("b%20c.bin", "b%20d.bin"), timeout=10)
    assert r.status_code == 403
    # path-style still works on the same worker, through the domain itself
    p = client(port, style="path")
    assert p.get_object(Bucket="data", Key="a.txt")["Body"].read() == b"alpha"
    assert p.hosts[-1][1].split(DOMAIN, 1)[1].split("/")[1] == "data"
    return botocore.__version__


def test_virtual_host_boto3(make_worker, data_dir):
    for rel, data in FILES.items():
        p = data_dir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    w = make_worker(mounts={"data": data_dir},
                    args=["--s3-access-key", AK, "--s3-secret-key", SK,
                          "--s3-domain", "other.test," + DOMAIN])
    try:
        exercise(w.s3_port)
    finally:
        socket.getaddrinfo = _orig_getaddrinfo
    # the newer botocore, as this file run as a script
    py = shutil.which("python3")
    if py and os.path.realpath(py) != os.path.realpath(sys.executable) and \
            subprocess.run([py, "-c", "import boto3"], capture_output=True).returncode == 0:
        p = subprocess.run([py, os.path.abspath(__file__), str(w.s3_port)],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "virtual-host checks passed" in p.stdout, p.stdout


def test_host_header_routes(make_worker, data_dir):
    """Raw requests (no signatures: a loopback worker without keys): the
    Host alone decides the style."""
    (data_dir / "f").write_bytes(b"file f")
    (data_dir / "data").mkdir()
    (data_dir / "data" / "f").write_bytes(b"data/f")
    w = make_worker(mounts={"data": data_dir}, args=["--s3-domain", DOMAIN])
    base = "http://127.0.0.1:%d" % w.s3_port

    def get(path, host):
        return requests.get(base + path, headers={"Host": host}, timeout=10)
    port = w.s3_port
    for host in ("data.%s:%d" % (DOMAIN, port), "DATA.S3.LocalHost", "data.%s." % DOMAIN):
        r = get("/f", host)
        assert (r.status_code, r.content) == (200, b"file f"), host
        r = get("/data/f", host)  # the whole path is the key
        assert (r.status_code, r.content) == (200, b"data/f"), host
    for host in ("%s:%d" % (DOMAIN, port), "127.0.0.1:%d" % port, "localhost", "data.other.test"):
        r = get("/data/f", host)
        assert (r.status_code, r.content) == (200, b"file f"), host
    r = get("/f", "nope.%s" % DOMAIN)
    assert r.status_code == 404 and b"<Code>NoSuchBucket</Code>" in r.content
    assert b"<BucketName>nope</BucketName>" in r.content
    r = get("/?list-type=2", "data.%s" % DOMAIN)
    assert r.status_code == 200 and b"<Key>f</Key>" in r.content and b"<Key>data/f</Key>" in r.content
    r = get("/", DOMAIN)
    assert r.status_code == 200 and b"<Name>data</Name>" in r.content  # ListBuckets
    # without --s3-domain, every Host is path-style
    w2 = make_worker(mounts={"data": data_dir})
    r = requests.get("http://127.0.0.1:%d/f" % w2.s3_port, headers={"Host": "data." + DOMAIN},
                     timeout=10)
    assert r.status_code == 404 and b"NoSuchBucket" in r.content


def test_bad_domain_refused():
    from conftest import FERRY
    p = subprocess.run([str(FERRY), "worker", "--s3-domain", "s3.localhost:29998"],
                       capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert p.returncode != 0 and "bad --s3-domain" in p.stderr, p.stderr


if __name__ == "__main__":
    v = exercise(int(sys.argv[1]))
    print("virtual-host checks passed (%s, botocore %s)" % (sys.executable, v))
