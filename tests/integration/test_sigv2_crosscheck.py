"""Cross-checks the gateway's SigV2 verifier (src/s3/sigv2.c) against
botocore's own SigV2 signers: HmacV1Auth (the Authorization header) and
HmacV1QueryAuth (presigned URLs, what generate_presigned_url makes unless
told otherwise) on a few hundred random requests: keys that need escaping,
sub-resources and response-* overrides (signed) mixed with other query
parameters (not signed), Content-Type and Content-MD5, x-amz-* headers
(which the query form moves into the URL), repeated headers.  Each signed
request head is fed to build/tests-tools/sigv2_verify_tool (built here when
missing or stale).  Signed requests must verify OK; one flipped byte of the
signature, the path, a sub-resource, a signed header or the date must give
MISMATCH.

Runs under pytest (/usr/bin/python3, Debian's botocore), which also runs
this file as a plain script under the default python3 (a newer botocore),
so both signers are checked.  SIGV2_SEED=<n> replays one random run.
"""
import glob
import os
import random
import shutil
import string
import subprocess
import sys
import time
from urllib.parse import quote, urlsplit

try:
    import pytest
except ImportError:  # plain-script mode
    pytest = None

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "build", "tests-tools", "sigv2_verify_tool")
AK = "AKIDEXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SEED = int(os.environ.get("SIGV2_SEED", str(int(time.time()))))
CFLAGS = ("-std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Wshadow "
          "-Wno-format-truncation -Wstrict-prototypes -Wmissing-prototypes -Werror -O1 -g "
          "-Iinclude -Isrc").split()


def _sources():
    srcs = [os.path.join(ROOT, p) for p in ("tests/tools/sigv2_verify_tool.c",
                                            "src/s3/sigv2.c", "src/http/http_parse.c")]
    return srcs + sorted(glob.glob(os.path.join(ROOT, "src/common/*.c")))


def ensure_tool():
    deps = _sources() + glob.glob(os.path.join(ROOT, "src/common/*.h")) + \
        glob.glob(os.path.join(ROOT, "src/s3/*.h")) + glob.glob(os.path.join(ROOT, "src/http/*.h"))
    newest = max(os.path.getmtime(p) for p in deps)
    if os.path.exists(TOOL) and os.path.getmtime(TOOL) >= newest:
        return TOOL
    os.makedirs(os.path.dirname(TOOL), exist_ok=True)
    try:
        libs = subprocess.run(["pkg-config", "--cflags", "--libs", "libcurl", "openssl"], check=True,
                              capture_output=True, text=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        libs = ["-lcurl", "-lcrypto"]
    tmp = "%s.%d.tmp" % (TOOL, os.getpid())
    cmd = ["gcc"] + CFLAGS + ["-o", tmp] + _sources() + libs + ["-lpthread"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError("building the tool failed:\n%s\n%s" % (" ".join(cmd), r.stderr))
    os.replace(tmp, TOOL)
    return TOOL


def verify_many(heads, now=None):
    """[(status name, message)] for raw request heads, in one tool run."""
    now = int(time.time()) if now is None else now
    r = subprocess.run([ensure_tool(), SK, str(now)], input=b"".join(heads), capture_output=True,
                       timeout=120)
    assert r.returncode == 0, "tool failed rc=%d: %r %r" % (r.returncode, r.stdout[-500:], r.stderr)
    out = [tuple((l + "\t").split("\t")[:2]) for l in r.stdout.decode().split("\n") if l]
    assert len(out) == len(heads), out[-3:]
    return out


def verify(head, now=None):
    return verify_many([head], now)[0]


def serialize(method, target, headers):
    lines = ["%s %s HTTP/1.1" % (method, target)] + ["%s: %s" % (k, v) for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


KEYCHARS = string.ascii_letters + string.digits + " !$&'()*+,-.:;=@_~"
UNICODE = ["é", "日本語", "Ω", "😀", "ß", "ü"]
SUBRES = [("acl", None), ("versionId", "v1/2"), ("response-content-type", "text/plain; charset=utf-8"),
          ("response-content-disposition", 'attachment; filename="a b.txt"'), ("uploads", None),
          ("tagging", ""), ("response-cache-control", "no-cache")]
OTHER = [("prefix", "a/b c"), ("list-type", "2"), ("max-keys", "7"), ("delimiter", "/"),
         ("marker", "x+y"), ("x-id", "GetObject")]


def rand_key(rng):
    parts = []
    for _ in range(rng.randint(1, 3)):
        s = "".join(rng.choice(KEYCHARS) for _ in range(rng.randint(1, 8)))
        if rng.random() < 0.3:
            s += rng.choice(UNICODE)
        parts.append(s.strip("/") or "x")
    return "/".join(parts)


def signed(rng, presign):
    """(head bytes, description) of one request signed by botocore."""
    from botocore.auth import HmacV1Auth, HmacV1QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    method = rng.choice(["GET", "GET", "HEAD", "PUT", "DELETE"])
    path = "/bucket/" + quote(rand_key(rng).encode(), safe="/~")
    params = rng.sample(SUBRES, rng.randint(0, 2)) + rng.sample(OTHER, rng.randint(0, 2))
    rng.shuffle(params)
    query = "&".join(k if v is None else "%s=%s" % (k, quote(v, safe="")) for k, v in params)
    url = "http://127.0.0.1:29998" + path + ("?" + query if query else "")
    req = AWSRequest(method=method, url=url)
    extra = []
    if rng.random() < 0.4:
        req.headers["Content-Type"] = rng.choice(["application/octet-stream", "text/plain; charset=utf-8"])
    if rng.random() < 0.3:
        req.headers["Content-MD5"] = "1B2M2Y8AsgTpgAmY7PhCfg=="
    for i in range(rng.randint(0, 3)):
        req.headers["X-Amz-Meta-K%d" % i] = rng.choice(["v", " spaced value ", "a,b", "ünï"])
    if not presign and rng.random() < 0.3:
        req.headers["x-amz-request-payer"] = "requester"
    if rng.random() < 0.3:
        extra.append(("Range", "bytes=0-9"))  # never signed
    creds = Credentials(AK, SK)
    if presign:
        HmacV1QueryAuth(creds, expires=rng.choice([1, 60, 3600, 604800, 9999999])).add_auth(req)
        # What a browser sends: the URL, and none of the signed headers.
        headers = [("Host", "127.0.0.1:29998")] + extra
    else:
        HmacV1Auth(creds).add_auth(req)
        headers = [("Host", "127.0.0.1:29998")] + list(req.headers.items()) + extra
    u = urlsplit(req.url)
    target = u.path + ("?" + u.query if u.query else "")
    return method, target, headers, req.url


def check_all(n, presign):
    rng = random.Random(SEED * 2 + presign)
    cases = []  # (head, want, what)
    for i in range(n):
        method, target, headers, url = signed(rng, presign)
        cases.append((serialize(method, target, headers), ("OK",), "#%d" % i))
        # Tampering: each must be refused.
        muts = []
        if presign:
            at = target.index("Signature=") + len("Signature=") + 3
            c = target[at]
            muts.append((method, target[:at] + ("A" if c != "A" else "B") + target[at + 1:], headers))
        else:
            h = []
            for k, v in headers:
                if k == "Authorization":
                    at = v.index(":") + 4
                    v = v[:at] + ("A" if v[at] != "A" else "B") + v[at + 1:]
                h.append((k, v))
            muts.append((method, target, h))
            h = [(k, v.replace(" 0", " 1", 1) if k == "Date" else v) for k, v in headers]
            muts.append((method, target, h))
            if any(k.lower().startswith("x-amz-meta") for k, _ in headers):
                h = [(k, v + "x" if k.lower().startswith("x-amz-meta") else v) for k, v in headers]
                muts.append((method, target, h))
        p, _, q = target.partition("?")
        muts.append((method, p.replace("/bucket/", "/bucket/z", 1) + ("?" + q if q else ""), headers))
        muts.append((method, target + ("&" if q else "?") + "versionId=other", headers))
        for mm, mt, mh in muts:
            cases.append((serialize(mm, mt, mh), ("MISMATCH", "SKEWED", "NO_DATE"),
                          "tampered #%d: %s %s %r" % (i, mm, mt, mh)))
    got = verify_many([c[0] for c in cases])
    failures = ["%s gave %s (%s)\n%s" % (what, st, msg, head.decode(errors="replace"))
                for (head, want, what), (st, msg) in zip(cases, got) if st not in want]
    assert not failures, "seed %d (%s): %d failures:\n%s" % (SEED, sys.executable, len(failures),
                                                            "\n".join(failures[:5]))


def _need_botocore():
    try:
        import botocore  # noqa: F401
    except ImportError:
        if pytest is not None:
            pytest.skip("botocore is not importable by %s" % sys.executable)
        raise


def test_botocore_header_form():
    _need_botocore()
    check_all(200, False)


def test_botocore_presigned():
    _need_botocore()
    check_all(200, True)


def test_boto3_generate_presigned_url():
    """generate_presigned_url with signature_version "s3" (what an
    unconfigured newer botocore picks for presigning with no region)."""
    _need_botocore()
    import boto3
    from botocore.config import Config
    s3 = boto3.session.Session(aws_access_key_id=AK, aws_secret_access_key=SK, region_name="us-east-1").client(
        "s3", endpoint_url="http://127.0.0.1:29998",
        config=Config(signature_version="s3", s3={"addressing_style": "path"}))
    for params in ({"Bucket": "data", "Key": "a b/ü+c.bin"},
                   {"Bucket": "data", "Key": "k", "ResponseContentType": "text/plain",
                    "ResponseContentDisposition": "inline"},
                   {"Bucket": "data", "Key": "k", "RequestPayer": "requester"}):
        url = s3.generate_presigned_url("get_object", Params=params, ExpiresIn=600)
        u = urlsplit(url)
        st, msg = verify(serialize("GET", u.path + "?" + u.query, [("Host", u.netloc)]))
        assert st == "OK", (url, st, msg)
        st, _ = verify(serialize("GET", u.path + "?" + u.query, [("Host", u.netloc)]),
                       now=int(time.time()) + 601)
        assert st == "EXPIRED", url


def test_newer_botocore_too():
    """This file as a script under the default python3 (another botocore)."""
    if pytest is None:
        return
    py = shutil.which("python3")
    if not py or os.path.realpath(py) == os.path.realpath(sys.executable):
        pytest.skip("no other python3 on PATH")
    if subprocess.run([py, "-c", "import boto3"], capture_output=True).returncode != 0:
        pytest.skip("%s has no boto3" % py)
    ensure_tool()
    p = subprocess.run([py, os.path.abspath(__file__)], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, SIGV2_SEED=str(SEED)))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "all passed" in p.stdout


if __name__ == "__main__":
    import botocore
    print("seed %d (%s, botocore %s)" % (SEED, sys.executable, botocore.__version__))
    test_botocore_header_form()
    test_botocore_presigned()
    test_boto3_generate_presigned_url()
    print("all passed")
