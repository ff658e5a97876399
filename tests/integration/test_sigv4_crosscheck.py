"""Cross-checks ferry's SigV4 verifier (src/common/sigv4.c + sigv4_verify.c) against independent
signers: botocore's S3SigV4Auth (header form, what boto3 uses for S3) and
S3SigV4QueryAuth (presigned URLs) on a few hundred random requests, and
curl --aws-sigv4 against a loopback capture server.  Each signed request
head is fed to build/tests-tools/sigv4_verify_tool (built here when missing
or stale), which parses it with http_parse_request and runs sigv4_verify.
Signed requests must verify OK; one flipped byte in the signature, path,
query, a signed header or the date must give MISMATCH.

Runs under pytest (/usr/bin/python3) and also as a plain script
(`python3 tests/integration/test_sigv4_crosscheck.py`) for interpreters
without pytest, such as the default python3 with a newer botocore.
SIGV4_SEED=<n> replays one random run.
"""
import glob
import os
import random
import shutil
import socket
import string
import subprocess
import sys
import threading
import time
from urllib.parse import quote, urlsplit

try:
    import pytest
except ImportError:  # plain-script mode
    pytest = None

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "build", "tests-tools", "sigv4_verify_tool")
AK = "AKIDEXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SEED = int(os.environ.get("SIGV4_SEED", str(int(time.time()))))
CFLAGS = ("-std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Wshadow "
          "-Wno-format-truncation "
          "-Wstrict-prototypes -Wmissing-prototypes -Werror -O1 -g "
          "-Iinclude -Isrc").split()


class Skipped(Exception):
    pass


def skip(msg):
    if pytest is not None:
        pytest.skip(msg)
    raise Skipped(msg)


# --------------------------------------------------------------------------
# The verifier tool.

def _tool_sources():
    srcs = [os.path.join(ROOT, p) for p in (
        "tests/tools/sigv4_verify_tool.c",
        "src/http/http_parse.c")]
    srcs += sorted(glob.glob(os.path.join(ROOT, "src/common/*.c")))
    return srcs


def _tool_inputs():
    deps = _tool_sources()
    for d in ("src/common", "src/http", "src/s3"):
        deps += glob.glob(os.path.join(ROOT, d, "*.h"))
    return deps


_built = False


def ensure_tool():
    """Builds the tool when missing or older than any of its inputs."""
    global _built
    if _built:
        return TOOL
    newest = max(os.path.getmtime(p) for p in _tool_inputs())
    if not os.path.exists(TOOL) or os.path.getmtime(TOOL) < newest:
        os.makedirs(os.path.dirname(TOOL), exist_ok=True)
        try:
            libs = subprocess.run(
                ["pkg-config", "--cflags", "--libs", "libcurl", "openssl"],
                check=True, capture_output=True, text=True).stdout.split()
        except (OSError, subprocess.CalledProcessError):
            libs = ["-lcurl", "-lcrypto"]
        tmp = "%s.%d.tmp" % (TOOL, os.getpid())
        cmd = ["gcc"] + CFLAGS + ["-o", tmp] + _tool_sources() + libs + ["-lpthread"]
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if r.returncode != 0:
            raise AssertionError("building the tool failed:\n%s\n%s"
                                 % (" ".join(cmd), r.stderr))
        os.replace(tmp, TOOL)  # atomic: parallel runs never see half a file
    _built = True
    return TOOL


def verify(head, now=None):
    """Returns (status name, message) for a raw request head (bytes)."""
    now = int(time.time()) if now is None else now
    r = subprocess.run([ensure_tool(), SK, str(now)], input=head,
                       capture_output=True, timeout=10)
    assert r.returncode == 0, "tool failed rc=%d: %r %r" % (
        r.returncode, r.stdout, r.stderr)
    return r.stdout.decode().strip(), r.stderr.decode().strip()


def serialize(method, target, host, headers):
    lines = ["%s %s HTTP/1.1" % (method, target), "Host: %s" % host]
    lines += ["%s: %s" % (k, v) for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# --------------------------------------------------------------------------
# Random requests.

ASCII = string.ascii_letters + string.digits + " !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
UNICODE = ["é", "日本語", "Ω", "😀", "ß", "\u00a0", "ü", "€", "\u200b"]
QNAMES = ["prefix", "delimiter", "max-keys", "list-type", "continuation-token",
          "start-after", "versionId", "x-id", "partNumber", "uploadId",
          "encoding-type", "response-content-disposition", "fetch-owner"]
FLAGS = ["uploads", "acl", "tagging", "versions", "delete", "location"]


def rand_text(rng, lo, hi):
    return "".join(rng.choice(ASCII) if rng.random() < 0.85 else rng.choice(UNICODE)
                   for _ in range(rng.randint(lo, hi)))


def rand_key(rng):
    key = "/".join(rand_text(rng, 1, 12) for _ in range(rng.randint(1, 4)))
    if rng.random() < 0.15:  # S3 does not normalise dot segments or "//"
        key = rng.choice(["./", "../", "a//b/", "x/../", "."]) + key
    return key


def rand_spaced(rng):
    words = ["".join(rng.choice(string.ascii_letters + string.digits + "-_.,;=/")
                     for _ in range(rng.randint(1, 8)))
             for _ in range(rng.randint(1, 4))]
    out = ""
    for w in words:
        out += w + "".join(rng.choice(" \t") for _ in range(rng.randint(1, 4)))
    return rng.choice(["", " ", "  "]) + out


def rand_case(rng, name):
    return "".join(c.upper() if rng.random() < 0.3 else c for c in name)


def rand_headers(rng):
    h = []
    if rng.random() < 0.6:
        a = rng.randint(0, 10 ** 9)
        h.append((rand_case(rng, "range"), rng.choice([
            "bytes=%d-%d" % (a, a + rng.randint(0, 10 ** 6)), "bytes=%d-" % a,
            "bytes=-%d" % (a + 1)])))
    for i in range(rng.randint(0, 3)):
        h.append((rand_case(rng, "x-amz-meta-k%d" % i), rand_spaced(rng)))
    if rng.random() < 0.2:  # a repeated header: values join with ','
        h.append(("x-amz-meta-multi", rand_spaced(rng)))
        h.append(("X-Amz-Meta-Multi", rand_spaced(rng)))
    if rng.random() < 0.3:
        h.append(("Content-Type", rng.choice(["application/octet-stream",
                                              "text/plain; charset=utf-8"])))
    if rng.random() < 0.2:
        h.append(("x-amz-storage-class", "STANDARD"))
    if rng.random() < 0.2:
        h.append(("If-None-Match", '"%08x"' % rng.getrandbits(32)))
    if rng.random() < 0.3:
        h.append(("User-Agent", "Boto3/1.0 %s" % rand_spaced(rng).strip()))  # not signed
    return h


def rand_params(rng):
    """A list of (name, value-or-None) pairs; None means a bare flag."""
    ps = []
    for _ in range(rng.randint(0, 5)):
        r = rng.random()
        if r < 0.15:
            ps.append((rng.choice(FLAGS), None))
        elif r < 0.3:
            ps.append((rand_text(rng, 1, 6), rand_text(rng, 0, 10)))
        else:
            ps.append((rng.choice(QNAMES), rand_text(rng, 0, 16)))
    if ps and rng.random() < 0.2:  # repeated name, different value
        ps.append((ps[0][0], rand_text(rng, 1, 5)))
    return ps


def enc(s):
    return quote(s.encode("utf-8"), safe="-_.~")


def query_string(ps):
    return "&".join(enc(k) if v is None else "%s=%s" % (enc(k), enc(v)) for k, v in ps)


def rand_endpoint(rng):
    """(scheme://netloc, path prefix); path-style or virtual-hosted."""
    bucket = "".join(rng.choice(string.ascii_lowercase + string.digits + "-")
                     for _ in range(rng.randint(3, 12))).strip("-") or "bkt"
    base = rng.choice(["http://127.0.0.1:9000", "http://localhost:8080",
                       "https://s3.us-west-2.amazonaws.com", "https://127.0.0.1:8443",
                       "http://[::1]:9000"])
    if rng.random() < 0.3 and "amazonaws" in base:
        return base.replace("://", "://%s." % bucket), ""
    return base, "/" + bucket


def _botocore():
    try:
        from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
        from botocore.awsrequest import AWSRequest
        from botocore.config import Config
        from botocore.credentials import Credentials
    except ImportError:
        skip("botocore is not importable by %s" % sys.executable)
    return S3SigV4Auth, S3SigV4QueryAuth, AWSRequest, Config, Credentials


def botocore_request(rng, presign):
    """Signs one random request; returns (head bytes, info dict)."""
    S3SigV4Auth, S3SigV4QueryAuth, AWSRequest, Config, Credentials = _botocore()
    base, prefix = rand_endpoint(rng)
    path = prefix + "/" + quote(rand_key(rng).encode("utf-8"), safe="/~")
    method = rng.choice(["GET", "GET", "HEAD", "PUT", "DELETE", "POST"])
    params = rand_params(rng)
    headers = rand_headers(rng)
    body = b""
    if method in ("PUT", "POST") and not presign and rng.random() < 0.7:
        body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200)))
    token = None
    if rng.random() < 0.25:
        token = "".join(rng.choice(string.ascii_letters + string.digits + "/+=")
                        for _ in range(rng.randint(20, 80)))
    creds = Credentials(AK, SK, token)
    region = rng.choice(["us-east-1", "eu-west-3", "ap-southeast-2", "local"])

    use_params = (not presign) and params and all(v is not None for _, v in params) \
        and len({k for k, _ in params}) == len(params) and rng.random() < 0.4
    url = base + path
    if params and not use_params:
        url += "?" + query_string(params)
    req = AWSRequest(method=method, url=url, data=body)
    if use_params:
        req.params = dict(params)
    for k, v in headers:
        req.headers[k] = v
    if not presign and rng.random() < 0.15:
        req.headers["Date"] = "now"  # botocore then signs Date, not X-Amz-Date
    mode = "hash"
    if not presign:
        r = rng.random()
        if r < 0.25:
            mode = "unsigned"
            req.context["client_config"] = Config(s3={"payload_signing_enabled": False})
        elif r < 0.4:
            mode = "trailer"
            req.context["checksum"] = {"request_algorithm": {
                "in": "trailer", "name": "x-amz-checksum-crc32", "algorithm": "crc32"}}
        S3SigV4Auth(creds, "s3", region).add_auth(req)
    else:
        expires = rng.choice([1, 60, 3600, 86400, 604800, rng.randint(1, 604800)])
        S3SigV4QueryAuth(creds, "s3", region, expires=expires).add_auth(req)

    auth = S3SigV4Auth(creds, "s3", region)
    host = auth.headers_to_sign(req)["host"]
    parts = urlsplit(req.url)
    target = parts.path or "/"
    query = parts.query
    if use_params:
        query = query_string(list(req.params.items()))
    if query:
        target += "?" + query
    head = serialize(method, target, host, list(req.headers.items()))
    return head, {"url": req.url, "mode": mode, "presign": presign}


def _check_all_ok(presign, n):
    rng = random.Random(SEED + (1 if presign else 0))
    failures = []
    for i in range(n):
        head, info = botocore_request(rng, presign)
        st, msg = verify(head)
        if st != "OK":
            failures.append("#%d %s %s (%s)\n%s" % (i, st, msg, info, head.decode("latin-1")))
    assert not failures, "seed %d: %d/%d failed:\n%s" % (
        SEED, len(failures), n, "\n".join(failures[:5]))


def test_botocore_header_form():
    _check_all_ok(False, 300)


def test_botocore_presigned():
    _check_all_ok(True, 150)


# --------------------------------------------------------------------------
# One flipped byte.

def _flip_hex(c, rng):
    return rng.choice([d for d in "0123456789abcdef" if d != c.lower()])


def _flip_alnum(c, rng):
    return rng.choice([d for d in string.ascii_letters + string.digits if d != c])


def _alnum_positions(s, start, end):
    """Alphanumeric positions in s[start:end] that are not inside a %XX."""
    out, i = [], start
    while i < end:
        if s[i] == "%":
            i += 3
            continue
        if s[i].isalnum():
            out.append(i)
        i += 1
    return out


def tamper(head, kind, rng):
    """Flips one byte of the given kind; None if the request has none."""
    text = head.decode("latin-1")
    line_end = text.index("\r\n")
    target_start = text.index(" ") + 1
    target_end = text.index(" ", target_start)
    qpos = text.find("?", target_start, target_end)
    pos, new = None, None
    if kind == "signature":
        for marker in ("Signature=", "X-Amz-Signature="):
            p = text.find(marker)
            if p >= 0:
                pos = p + len(marker) + rng.randrange(64)
                new = _flip_hex(text[pos], rng)
                break
    elif kind == "path":
        cands = _alnum_positions(text, target_start + 1, qpos if qpos >= 0 else target_end)
        if cands:
            pos = rng.choice(cands)
            new = _flip_alnum(text[pos], rng)
    elif kind == "query" and qpos >= 0:
        # Only in operation params: X-Amz-* values have their own checks.
        cands = []
        q0 = qpos + 1
        for part in text[q0:target_end].split("&"):
            if not part.startswith("X-Amz-"):
                cands += _alnum_positions(text, q0, q0 + len(part))
            q0 += len(part) + 1
        if cands:
            pos = rng.choice(cands)
            new = _flip_alnum(text[pos], rng)
    elif kind == "header":
        lines = text[line_end + 2:].split("\r\n")
        off = line_end + 2
        cands = []
        for ln in lines:
            name = ln.split(":", 1)[0].lower()
            if name == "range" or name.startswith("x-amz-meta-"):
                v0 = off + len(name) + 1
                cands += [i for i in range(v0, off + len(ln)) if text[i].isalnum()]
            off += len(ln) + 2
        if cands:
            pos = rng.choice(cands)
            new = _flip_alnum(text[pos], rng)
    elif kind == "date":
        p = text.find("X-Amz-Date: ")
        if p >= 0:
            pos = p + len("X-Amz-Date: ") + 14  # the seconds' last digit
            new = str((int(text[pos]) + 1) % 10)
    if pos is None:
        return None
    return (text[:pos] + new + text[pos + 1:]).encode("latin-1")


def test_botocore_tampered():
    rng = random.Random(SEED + 2)
    done = {}
    kinds = ["signature", "path", "query", "header", "date"]
    tries = 0
    while min(done.get(k, 0) for k in kinds) < 6:
        tries += 1
        assert tries < 2000, "could not build tampered requests: %s" % done
        head, info = botocore_request(rng, presign=rng.random() < 0.4)
        st, msg = verify(head)
        assert st == "OK", "seed %d: %s %s\n%s" % (SEED, st, msg, head.decode("latin-1"))
        kind = rng.choice(kinds)
        bad = tamper(head, kind, rng)
        if bad is None:
            continue
        st, msg = verify(bad)
        assert st == "MISMATCH", "seed %d, %s flip: %s %s\n%s" % (
            SEED, kind, st, msg, bad.decode("latin-1"))
        done[kind] = done.get(kind, 0) + 1


def test_aws_example_via_tool():
    """AWS's GET-with-Range example, through the parser and the tool."""
    head = (b"GET /test.txt HTTP/1.1\r\n"
            b"Host: examplebucket.s3.amazonaws.com\r\n"
            b"Range: bytes=0-9\r\n"
            b"x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\r\n"
            b"x-amz-date: 20130524T000000Z\r\n"
            b"Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20130524/us-east-1/s3/"
            b"aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
            b"Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41\r\n\r\n")
    t0 = 1369353600
    assert verify(head, t0)[0] == "OK"
    assert verify(head, t0 + 901)[0] == "SKEWED"
    assert verify(head.replace(b"bytes=0-9", b"bytes=0-8"), t0)[0] == "MISMATCH"
    assert verify(head.replace(b"AKIDEXAMPLE", b"AKIDUNKNOWN"), t0)[0] == "UNKNOWN_KEY"
    anon = b"GET /test.txt HTTP/1.1\r\nHost: x\r\n\r\n"
    assert verify(anon, t0)[0] == "ANONYMOUS"


# --------------------------------------------------------------------------
# curl --aws-sigv4 against a loopback capture server.

class CaptureServer:
    """Accepts connections on 127.0.0.1, records each request head, answers
    200 with an empty body and closes."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.heads = []
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            with c:
                c.settimeout(5)
                buf = b""
                try:
                    while b"\r\n\r\n" not in buf and len(buf) < 65536:
                        d = c.recv(65536)
                        if not d:
                            break
                        buf += d
                    end = buf.find(b"\r\n\r\n")
                    if end >= 0:
                        self.heads.append(buf[:end + 4])
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
                              b"Connection: close\r\n\r\n")
                except OSError:
                    pass

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


def test_curl_aws_sigv4():
    curl = shutil.which("curl")
    if not curl:
        skip("curl not installed")
    if "--aws-sigv4" not in subprocess.run([curl, "--help", "all"],
                                           capture_output=True, text=True).stdout:
        skip("curl has no --aws-sigv4")
    ensure_tool()
    srv = CaptureServer()
    # curl (7.88) signs the path and query as written, unsorted and without
    # re-encoding; AWS would reject anything else too, so give it URLs in
    # canonical form (sorted params, each with '=', RFC 3986 escapes).
    cases = [
        ("/bucket/key.txt", []),
        ("/bucket/dir/a%20b%2Bc%E2%82%AC.bin", []),
        ("/bucket/k", ["-H", "Range: bytes=0-9"]),
        ("/bucket?list-type=2&max-keys=10&prefix=a%2Fb%20c", []),
        ("/bucket/k?partNumber=1&uploadId=abc", ["-X", "PUT", "--data-binary", "hello"]),
        ("/bucket/k", ["-H", "x-amz-meta-note: a   b", "-H", "X-Amz-Storage-Class: STANDARD"]),
        ("/bucket/k", ["-I"]),
    ]
    try:
        for i, (path, extra) in enumerate(cases):
            r = subprocess.run(
                [curl, "-s", "-o", "/dev/null", "--max-time", "10", "--noproxy", "*",
                 "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", "%s:%s" % (AK, SK),
                 "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"] + extra +
                ["http://127.0.0.1:%d%s" % (srv.port, path)],
                capture_output=True, timeout=20)
            assert r.returncode == 0, r.stderr
            deadline = time.time() + 5
            while len(srv.heads) <= i and time.time() < deadline:
                time.sleep(0.01)
            assert len(srv.heads) == i + 1, "no request captured for %s" % path
            head = srv.heads[i]
            st, msg = verify(head)
            assert st == "OK", "%s: %s %s\n%s" % (path, st, msg, head.decode("latin-1"))
            p = head.index(b"Signature=") + 10 + i  # flip one hex digit
            new = b"1" if head[p:p + 1] == b"0" else b"0"
            bad = head[:p] + new + head[p + 1:]
            assert verify(bad)[0] == "MISMATCH", bad.decode("latin-1")
    finally:
        srv.close()


if __name__ == "__main__":
    failed = 0
    for name, fn in sorted(globals().items()):
        if name.startswith("test_") and callable(fn):
            try:
                fn()
                print("ok   %s" % name)
            except Skipped as e:
                print("skip %s: %s" % (name, e))
            except Exception as e:  # report every test, then fail
                failed += 1
                print("FAIL %s: %s" % (name, e))
    print("seed %d (%s)" % (SEED, sys.executable))
    sys.exit(1 if failed else 0)
