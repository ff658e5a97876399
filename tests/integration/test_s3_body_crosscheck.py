"""Cross-checks the upload-body path (http_body_read in src/http/http_server.c
and src/s3/s3_body.c, after SigV4 verification) against real clients.

build/tests-tools/s3_body_tool (built here when missing or stale) is an HTTP
server that verifies each request's signature, streams its body in reads
of random sizes through s3_body and answers 200 with the decoded payload's
length, SHA-256 and MD5 ETag (plus the verified x-amz-checksum-*), or S3's
error document.

- botocore's own uploads, live: put_object (plain; each checksum algorithm
  this botocore has; unsigned payload), aws-chunked with a checksum trailer
  (what botocore sends over https, forced here over http; anonymous too),
  upload_part; bodies of 0 bytes to 3 MiB.  Every one must decode to the
  bytes sent, with the checksum botocore computed.
- the same requests captured raw and replayed, then tampered (a payload
  byte, the trailer's checksum, the aws-chunked framing): refused with
  S3's code.
- signed chunks (STREAMING-AWS4-HMAC-SHA256-PAYLOAD and -TRAILER), which no
  botocore sends: the seed signature by botocore's signer, the chunk and
  trailer signatures by an implementation here that follows AWS's document
  (its chunked-upload example is checked first); tampered data, chunk
  signatures, trailer signatures, reordered and truncated chunks are
  refused.

Runs under pytest (/usr/bin/python3, Debian's botocore), which also runs
this file as a plain script under the default python3 (a newer botocore,
which adds CRC32 checksums by default), so both clients are checked.
"""
import base64
import contextlib
import glob
import hashlib
import hmac
import io
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from urllib.parse import urlsplit

try:
    import pytest
except ImportError:  # plain-script mode
    pytest = None

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, "build", "tests-tools", "s3_body_tool")
AK = "AKIDEXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
CFLAGS = ("-std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Wshadow "
          "-Wno-format-truncation -Wstrict-prototypes -Wmissing-prototypes -Werror -O1 -g "
          "-Iinclude -Isrc").split()
EMPTY_SHA = hashlib.sha256(b"").hexdigest()


class Skipped(Exception):
    pass


def skip(msg):
    if pytest is not None:
        pytest.skip(msg)
    raise Skipped(msg)


# --------------------------------------------------------------------------
# The tool.

def _sources():
    srcs = [os.path.join(ROOT, p) for p in (
        "tests/tools/s3_body_tool.c", "src/http/http_parse.c", "src/http/http_server.c",
        "src/s3/s3_body.c")]
    return srcs + sorted(glob.glob(os.path.join(ROOT, "src/common/*.c")))


def ensure_tool():
    deps = _sources()
    for d in ("src/common", "src/http", "src/s3"):
        deps += glob.glob(os.path.join(ROOT, d, "*.h"))
    newest = max(os.path.getmtime(p) for p in deps)
    if os.path.exists(TOOL) and os.path.getmtime(TOOL) >= newest:
        return TOOL
    os.makedirs(os.path.dirname(TOOL), exist_ok=True)
    try:
        libs = subprocess.run(["pkg-config", "--cflags", "--libs", "libcurl", "openssl"],
                              check=True, capture_output=True, text=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        libs = ["-lcurl", "-lcrypto"]
    tmp = "%s.%d.tmp" % (TOOL, os.getpid())
    cmd = ["gcc"] + CFLAGS + ["-o", tmp] + _sources() + libs + ["-lpthread"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError("building the tool failed:\n%s\n%s" % (" ".join(cmd), r.stderr))
    os.replace(tmp, TOOL)
    return TOOL


class Tool:
    """One s3_body_tool process on 127.0.0.1."""

    def __init__(self, max_size=0):
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([ensure_tool(), SK, str(max_size)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log)
        line = self.proc.stdout.readline().decode()
        assert line.startswith("port "), line
        self.port = int(line.split()[1])
        self.url = "http://127.0.0.1:%d" % self.port

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("s3_body_tool did not stop")
        self.log.seek(0)
        log = self.log.read().decode(errors="replace")
        self.log.close()
        assert self.proc.returncode == 0, "s3_body_tool exited %d; its log ends:\n%s" % (
            self.proc.returncode, log[-3000:])


@contextlib.contextmanager
def tool(max_size=0):
    t = Tool(max_size)
    try:
        yield t
    finally:
        t.close()


# --------------------------------------------------------------------------
# Raw HTTP: a capture server (what a client sends, byte for byte) and a
# replaying client.

def read_http_body(sock, buf, head):
    """The raw body after head (bytes, HTTP framing kept) from buf + sock."""
    m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
    chunked = re.search(rb"\r\ntransfer-encoding:\s*chunked", head, re.I)
    if m:
        n = int(m.group(1))
        while len(buf) < n:
            d = sock.recv(1 << 20)
            if not d:
                break
            buf += d
        return buf[:n], buf[n:]
    if not chunked:
        return b"", buf
    pos = 0
    while True:  # chunk-size lines and data, then trailers
        while b"\r\n" not in buf[pos:]:
            buf += sock.recv(1 << 20)
        eol = buf.index(b"\r\n", pos)
        size = int(buf[pos:eol].split(b";")[0], 16)
        pos = eol + 2
        if size == 0:
            while not buf[pos:].startswith(b"\r\n") and b"\r\n\r\n" not in buf[pos - 2:]:
                buf += sock.recv(1 << 20)
            end = buf.index(b"\r\n\r\n", pos - 2) + 4 if not buf[pos:].startswith(b"\r\n") \
                else pos + 2
            return buf[:end], buf[end:]
        while len(buf) < pos + size + 2:
            buf += sock.recv(1 << 20)
        pos += size + 2


class Capture:
    """Records each request (head, raw body) and answers 200 with an ETag."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.reqs = []
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
                c.settimeout(10)
                buf = b""
                try:
                    while True:
                        while b"\r\n\r\n" not in buf:
                            d = c.recv(65536)
                            if not d:
                                raise EOFError
                            buf += d
                        end = buf.index(b"\r\n\r\n") + 4
                        head, buf = buf[:end], buf[end:]
                        if re.search(rb"\r\nexpect:\s*100-continue", head, re.I):
                            c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                        body, buf = read_http_body(c, buf, head)
                        self.reqs.append((head, body))
                        c.sendall(b"HTTP/1.1 200 OK\r\nETag: \"0\"\r\nContent-Length: 0\r\n\r\n")
                except (OSError, EOFError, ValueError):
                    pass

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


def replay(port, head, body):
    """Sends a raw request; (status, headers dict, body) of the final answer."""
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    with s:
        data = head + body
        try:
            s.sendall(data)
        except OSError:
            pass  # refused mid-body: the answer may still be there
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                d = s.recv(65536)
                if not d:
                    raise AssertionError("no answer; got %r" % buf[:200])
                buf += d
            end = buf.index(b"\r\n\r\n") + 4
            rhead, buf = buf[:end], buf[end:]
            status = int(rhead.split(b" ")[1])
            if status == 100:
                continue
            hdrs = {}
            for line in rhead.decode("latin-1").split("\r\n")[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    hdrs[k.strip().lower()] = v.strip()
            n = int(hdrs.get("content-length", "0"))
            while len(buf) < n:
                d = s.recv(65536)
                if not d:
                    break
                buf += d
            return status, hdrs, buf[:n]


def error_code(body):
    m = re.search(rb"<Code>([^<]*)</Code>", body)
    return m.group(1).decode() if m else None


def te_decode(raw):
    """HTTP chunked framing off: the payload it carries."""
    out, pos = b"", 0
    while True:
        eol = raw.index(b"\r\n", pos)
        size = int(raw[pos:eol].split(b";")[0], 16)
        pos = eol + 2
        if size == 0:
            return out
        out += raw[pos:pos + size]
        pos += size + 2


def with_body(head, payload, chunked):
    """head and payload as one request: Content-Length, or HTTP chunked in
    pieces of 1000 bytes."""
    head = re.sub(rb"\r\ncontent-length:[^\r]*", b"", head, flags=re.I)
    head = re.sub(rb"\r\ntransfer-encoding:[^\r]*", b"", head, flags=re.I)
    head = re.sub(rb"\r\nexpect:[^\r]*", b"", head, flags=re.I)
    if not chunked:
        return head[:-2] + b"Content-Length: %d\r\n\r\n" % len(payload), payload
    body = b"".join(b"%x\r\n%s\r\n" % (len(payload[i:i + 1000]), payload[i:i + 1000])
                    for i in range(0, len(payload), 1000)) + b"0\r\n\r\n"
    return head[:-2] + b"Transfer-Encoding: chunked\r\n\r\n", body


# --------------------------------------------------------------------------
# Checksums as S3 spells them.

_C32C = []


def crc32c(data):
    if not _C32C:
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            _C32C.append(c)
    c = 0xFFFFFFFF
    t = _C32C
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def checksum_b64(alg, data):
    alg = alg.lower()
    if alg == "crc32":
        d = zlib.crc32(data).to_bytes(4, "big")
    elif alg == "crc32c":
        d = crc32c(data).to_bytes(4, "big")
    elif alg == "sha1":
        d = hashlib.sha1(data).digest()
    elif alg == "sha256":
        d = hashlib.sha256(data).digest()
    else:
        raise ValueError(alg)
    return base64.b64encode(d).decode()


# --------------------------------------------------------------------------
# botocore.

def _boto():
    try:
        import boto3
        import botocore
        import botocore.httpchecksum
        from botocore import UNSIGNED
        from botocore.config import Config
    except ImportError:
        skip("boto3 is not importable by %s" % sys.executable)
    return boto3, botocore, UNSIGNED, Config


def client(url, anonymous=False, **s3cfg):
    boto3, botocore, UNSIGNED, Config = _boto()
    sess = boto3.session.Session(aws_access_key_id=AK, aws_secret_access_key=SK,
                                 region_name="us-east-1")
    cfg = Config(signature_version=UNSIGNED if anonymous else "s3v4",
                 s3=dict({"addressing_style": "path"}, **s3cfg),
                 retries={"total_max_attempts": 1}, connect_timeout=10, read_timeout=60)
    c = sess.client("s3", endpoint_url=url, config=cfg)
    c.sent = []  # the headers of each request botocore sent

    def record(request, **kw):
        c.sent.append({k.lower(): (v.decode() if isinstance(v, bytes) else v)
                       for k, v in request.headers.items()})
    c.meta.events.register("before-send", record)
    return c


@contextlib.contextmanager
def trailer_checksums():
    """botocore puts checksums in an aws-chunked trailer over https only;
    this makes it decide as if the endpoint were https (the encoding and
    the signing are botocore's own)."""
    _, botocore, _, _ = _boto()
    hc = botocore.httpchecksum
    orig = hc.resolve_request_checksum_algorithm

    def as_https(request, *a, **kw):
        url = request["url"]
        if url.startswith("http:"):
            request["url"] = "https:" + url[5:]
        try:
            return orig(request, *a, **kw)
        finally:
            request["url"] = url
    hc.resolve_request_checksum_algorithm = as_https
    try:
        yield
    finally:
        hc.resolve_request_checksum_algorithm = orig


def algorithms():
    """The checksum algorithms this botocore can compute (without awscrt
    some are missing); CRC64NVME is left out (no Python reference here)."""
    _, botocore, _, _ = _boto()
    out = []
    for alg in ("CRC32", "CRC32C", "SHA1", "SHA256"):
        try:
            botocore.httpchecksum.create_checksum_for_algorithm(alg.lower())
            out.append(alg)
        except Exception:  # MissingDependencyException, FlexibleChecksumError
            pass
    return out


def check_answer(resp, data, sent, alg=None):
    h = resp["ResponseMetadata"]["HTTPHeaders"]
    assert int(h["x-ferry-decoded-length"]) == len(data)
    assert h["x-ferry-decoded-sha256"] == hashlib.sha256(data).hexdigest()
    assert resp["ETag"] == '"%s"' % hashlib.md5(data).hexdigest()
    if alg:
        name = "x-amz-checksum-" + alg.lower()
        assert h.get(name) == checksum_b64(alg, data), (name, h)
    if "x-amz-checksum-crc32" in sent:  # botocore's default (1.36+)
        assert h.get("x-amz-checksum-crc32") == sent["x-amz-checksum-crc32"]


SIZES = (0, 1, 70000, 3 * 1024 * 1024 + 5)


def test_botocore_uploads_live():
    with tool() as t:
        c = client(t.url)
        algs = algorithms()
        for i, n in enumerate(SIZES):
            data = random.Random(n).randbytes(n)
            check_answer(c.put_object(Bucket="b", Key="k", Body=data), data, c.sent[-1])
            check_answer(c.put_object(Bucket="b", Key="k", Body=io.BytesIO(data)), data,
                         c.sent[-1])
            check_answer(c.upload_part(Bucket="b", Key="k", UploadId="u", PartNumber=1,
                                       Body=data), data, c.sent[-1])
            for alg in algs:
                check_answer(c.put_object(Bucket="b", Key="k", Body=data,
                                          ChecksumAlgorithm=alg), data, c.sent[-1], alg)
                assert c.sent[-1]["x-amz-checksum-" + alg.lower()]
            u = client(t.url, payload_signing_enabled=False)
            check_answer(u.put_object(Bucket="b", Key="k", Body=data), data, u.sent[-1])
            assert u.sent[-1]["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
            with trailer_checksums():
                for alg in algs:
                    r = c.put_object(Bucket="b", Key="k", Body=io.BytesIO(data),
                                     ChecksumAlgorithm=alg)
                    sent = c.sent[-1]
                    assert sent["content-encoding"] == "aws-chunked", sent
                    assert sent["x-amz-content-sha256"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
                    assert sent["x-amz-trailer"] == "x-amz-checksum-" + alg.lower()
                    check_answer(r, data, sent, alg)
                a = client(t.url, anonymous=True)
                r = a.put_object(Bucket="b", Key="k", Body=data, ChecksumAlgorithm="CRC32")
                assert a.sent[-1]["content-encoding"] == "aws-chunked"
                assert "authorization" not in a.sent[-1]
                check_answer(r, data, a.sent[-1], "CRC32")


def test_limits_live():
    """EntityTooLarge before the body, from Content-Length or
    x-amz-decoded-content-length."""
    _, botocore, _, _ = _boto()
    from botocore.exceptions import ClientError
    with tool(max_size=1000) as t:
        c = client(t.url)
        check_answer(c.put_object(Bucket="b", Key="k", Body=b"x" * 1000), b"x" * 1000,
                     c.sent[-1])
        for trailer in (False, True):
            with trailer_checksums() if trailer else contextlib.nullcontext():
                try:
                    c.put_object(Bucket="b", Key="k", Body=io.BytesIO(b"x" * 1001),
                                 ChecksumAlgorithm="SHA256")
                    raise AssertionError("accepted")
                except ClientError as e:
                    assert e.response["Error"]["Code"] == "EntityTooLarge", e.response
                    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400


# --------------------------------------------------------------------------
# Captured, replayed, tampered.

def captured_requests(cap_url, data):
    """(label, head, raw body, kind) of the requests botocore sends for
    data; kind says what checks the body: 'sha256' (x-amz-content-sha256 a
    hash), 'checksum' (a header), 'trailer' (aws-chunked), 'md5'."""
    c = client(cap_url)
    u = client(cap_url, payload_signing_enabled=False)
    cases = []

    def take(label, fn, kind):
        fn()
        cases.append((label, kind))
    take("put", lambda: c.put_object(Bucket="b", Key="k", Body=data), "sha256")
    take("upload_part", lambda: c.upload_part(Bucket="b", Key="k", UploadId="u", PartNumber=2,
                                              Body=data), "sha256")
    for alg in algorithms():
        take("unsigned+" + alg, lambda: u.put_object(Bucket="b", Key="k", Body=data,
                                                     ChecksumAlgorithm=alg), "checksum")
    with trailer_checksums():
        for alg in algorithms():
            take("trailer+" + alg, lambda: c.put_object(Bucket="b", Key="k",
                                                        Body=io.BytesIO(data),
                                                        ChecksumAlgorithm=alg), "trailer")
    return cases


def flip_payload_byte(body, data):
    """The raw body with one payload byte changed (found by a window of the
    payload around offset 1000)."""
    win = data[1000:1032]
    at = body.index(win)
    assert body.count(win) == 1
    b = bytearray(body)
    b[at + 5] ^= 0x20
    return bytes(b)


def test_tampered_botocore_requests():
    data = random.Random(5).randbytes(5000)
    cap = Capture()
    try:
        cases = captured_requests(cap.url, data)
        wait_until = time.time() + 10
        while len(cap.reqs) < len(cases) and time.time() < wait_until:
            time.sleep(0.01)
        assert len(cap.reqs) == len(cases)
    finally:
        cap.close()
    with tool() as t:
        for (label, kind), (head, body) in zip(cases, cap.reqs):
            st, h, rb = replay(t.port, head, body)
            assert st == 200, (label, st, rb, head)
            assert h["x-ferry-decoded-sha256"] == hashlib.sha256(data).hexdigest(), label
            chunked = b"transfer-encoding: chunked" in head.lower()
            # one payload byte
            st, h, rb = replay(t.port, head, flip_payload_byte(body, data))
            want = {"sha256": "XAmzContentSHA256Mismatch", "checksum": "BadDigest",
                    "trailer": "BadDigest", "md5": "BadDigest"}[kind]
            assert (st, error_code(rb)) == (400, want), (label, st, rb)
            if kind != "trailer":
                continue
            # the trailer's checksum (not covered by any signature)
            m = re.search(rb"(x-amz-checksum-[a-z0-9]+:)([A-Za-z0-9+/]+=*)", body)
            v = bytearray(m.group(2))
            v[0] = ord("B") if v[0] != ord("B") else ord("C")
            bad = body[:m.start(2)] + bytes(v) + body[m.end(2):]
            st, h, rb = replay(t.port, head, bad)
            assert (st, error_code(rb)) == (400, "BadDigest"), (label, st, rb)
            # the aws-chunked stream itself, re-framed for HTTP
            stream = te_decode(body) if chunked else body
            assert stream.endswith(b"\r\n\r\n") and b"\r\n0\r\n" in stream
            cut = stream[:stream.rindex(b"\r\n0\r\n") + 2]  # no last chunk
            st, h, rb = replay(t.port, *with_body(head, cut, chunked))
            assert (st, error_code(rb)) == (400, "IncompleteBody"), (label, st, rb)
            more = stream + b"5\r\nhello\r\n"  # bytes after the end
            st, h, rb = replay(t.port, *with_body(head, more, chunked))
            assert st == 400, (label, st, rb)
            # re-framed (HTTP chunks of another size) but intact: fine
            st, h, rb = replay(t.port, *with_body(head, stream, chunked))
            assert st == 200, (label, st, rb)


# --------------------------------------------------------------------------
# Signed chunks: the seed by botocore, the chain by AWS's document.

def signing_key(secret, date8, region="us-east-1"):
    k = ("AWS4" + secret).encode()
    for part in (date8, region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def chunk_sig(key, amz_date, scope, prev, data):
    sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, EMPTY_SHA,
                     hashlib.sha256(data).hexdigest()])
    return hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()


def trailer_sig(key, amz_date, scope, prev, lines):
    sts = "\n".join(["AWS4-HMAC-SHA256-TRAILER", amz_date, scope, prev,
                     hashlib.sha256(lines).hexdigest()])
    return hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()


def test_chain_matches_aws_example():
    """The chain here reproduces AWS's published example."""
    key = signing_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524")
    scope = "20130524/us-east-1/s3/aws4_request"
    prev = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    for data, want in ((b"a" * 65536, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"),
                       (b"a" * 1024, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"),
                       (b"", "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9")):
        prev = chunk_sig(key, "20130524T000000Z", scope, prev, data)
        assert prev == want


def signed_upload(url, data, chunk=65536, trailer=None, chunked_http=False,
                  path="/bkt/chunked%20key", ak=AK, sk=SK):
    """A STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER] upload of data, the
    seed signed by botocore: (head, raw HTTP body, the aws-chunked stream,
    the stream's chunks)."""
    _boto()
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    value = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" + ("-TRAILER" if trailer else "")

    class Streaming(S3SigV4Auth):
        def payload(self, request):
            return value

        def _should_sha256_sign_payload(self, request):
            return True

    chunks = [data[i:i + chunk] for i in range(0, len(data), chunk)] + [b""]
    sig_len = 64
    enc_len = sum(len("%x;chunk-signature=" % len(c)) + sig_len + 2 + len(c) + 2 for c in chunks)
    tline = b""
    if trailer:  # the trailer lines come before the final empty line
        tline = ("x-amz-checksum-%s:%s" % (trailer.lower(), checksum_b64(trailer, data))).encode()
        enc_len += len(tline) + 2 + len("x-amz-trailer-signature:") + 64 + 2
    headers = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data)),
               "x-amz-storage-class": "STANDARD"}
    if trailer:
        headers["x-amz-trailer"] = "x-amz-checksum-" + trailer.lower()
    if chunked_http:
        headers["Transfer-Encoding"] = "chunked"
    else:
        headers["Content-Length"] = str(enc_len)
    req = AWSRequest(method="PUT", url=url + path, headers=headers)
    Streaming(Credentials(ak, sk), "s3", "us-east-1").add_auth(req)
    amz_date = req.headers["X-Amz-Date"]
    seed = re.search(r"Signature=([0-9a-f]{64})", req.headers["Authorization"]).group(1)
    scope = "%s/us-east-1/s3/aws4_request" % amz_date[:8]
    key = signing_key(sk, amz_date[:8])
    pieces, prev = [], seed
    for c in chunks:
        prev = chunk_sig(key, amz_date, scope, prev, c)
        pieces.append(b"%x;chunk-signature=%s\r\n%s\r\n" % (len(c), prev.encode(), c))
    if trailer:  # between the last chunk's line and the final empty line
        pieces[-1] = pieces[-1][:-2] + tline + b"\r\n" + b"x-amz-trailer-signature:" + \
            trailer_sig(key, amz_date, scope, prev, tline + b"\n").encode() + b"\r\n\r\n"
    body = b"".join(pieces)
    if not chunked_http:
        assert len(body) == enc_len, (len(body), enc_len)
    parts = urlsplit(req.url)
    lines = ["PUT %s HTTP/1.1" % parts.path, "Host: %s" % parts.netloc]
    lines += ["%s: %s" % (k, v) for k, v in req.headers.items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    if chunked_http:
        te = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7777]), body[i:i + 7777])
                      for i in range(0, len(body), 7777)) + b"0\r\n\r\n"
        return head, te, body, pieces
    return head, body, body, pieces


def test_signed_chunks():
    with tool() as t:
        for n in (0, 100, 200000):
            data = random.Random(n + 1).randbytes(n)
            for trailer in (None, "CRC32", "SHA256"):
                for chunked_http in (False, True):
                    for size in (8192, 65536):
                        head, raw, _, _ = signed_upload(t.url, data, size, trailer,
                                                        chunked_http)
                        st, h, rb = replay(t.port, head, raw)
                        assert st == 200, (n, trailer, chunked_http, rb)
                        assert h["x-ferry-decoded-sha256"] == hashlib.sha256(data).hexdigest()
                        assert h["etag"] == '"%s"' % hashlib.md5(data).hexdigest()
                        if trailer:
                            assert h["x-amz-checksum-" + trailer.lower()] == \
                                checksum_b64(trailer, data)


def test_signed_chunks_tampered():
    """Each change is refused.  The framing is kept (Content-Length is
    signed; botocore 1.29 signs Transfer-Encoding too), so changes that
    would change the length are made on HTTP-chunked requests only."""
    data = random.Random(3).randbytes(30000)

    def refused(t, head, stream, chunked_http, code, status):
        st, h, rb = replay(t.port, *with_body(head, stream, chunked_http))
        assert (st, error_code(rb)) == (status, code), (code, st, rb)

    def flip(stream, at, to=None):
        b = bytearray(stream)
        b[at] = to if to is not None else b[at] ^ 1
        return bytes(b)
    with tool() as t:
        for trailer in (None, "CRC32"):
            for chunked_http in (False, True):
                head, raw, stream, pieces = signed_upload(t.url, data, 8192, trailer,
                                                          chunked_http)
                assert replay(t.port, head, raw)[0] == 200
                refused_sig = lambda s: refused(t, head, s, chunked_http,
                                                "SignatureDoesNotMatch", 403)
                # a data byte of each chunk
                off = 0
                for p in pieces[:-1]:
                    refused_sig(flip(stream, off + p.index(b"\r\n") + 2 + 100))
                    off += len(p)
                # a digit of each chunk signature
                for m in re.finditer(rb"chunk-signature=([0-9a-f]{64})", stream):
                    at = m.start(1) + 7
                    refused_sig(flip(stream, at, ord("0") if stream[at] != ord("0") else ord("1")))
                # two chunks swapped, each with its own signature
                refused_sig(b"".join([pieces[1], pieces[0]] + pieces[2:]))
                # a chunk signature with a misspelt name: malformed
                refused(t, head, stream.replace(b";chunk-signature=", b";chunk-signaturE=", 1),
                        chunked_http, "InvalidRequest", 400)
                if chunked_http:
                    # the last chunk missing: incomplete
                    refused(t, head, b"".join(pieces[:-1]), True, "IncompleteBody", 400)
                    # no chunk signatures at all
                    refused(t, head, re.sub(rb";chunk-signature=[0-9a-f]{64}", b"", stream),
                            True, "InvalidRequest", 400)
                    # a chunk after the end
                    refused(t, head, stream + pieces[0], True, "InvalidRequest", 400)
                if trailer:
                    m = re.search(rb"x-amz-trailer-signature:([0-9a-f]{64})", stream)
                    refused_sig(flip(stream, m.start(1), ord("0") if stream[m.start(1)] != ord("0")
                                     else ord("1")))
                    m = re.search(rb"x-amz-checksum-crc32:([A-Za-z0-9+/=]+)", stream)
                    refused_sig(flip(stream, m.start(1), ord("B") if stream[m.start(1)] != ord("B")
                                     else ord("C")))
                    unsigned = stream.replace(b"x-amz-trailer-signature:", b"x-amz-trailer-signaturX:")
                    refused(t, head, unsigned, chunked_http, "InvalidRequest", 400)
                    if chunked_http:
                        nosig = re.sub(rb"x-amz-trailer-signature:[0-9a-f]{64}\r\n", b"", stream)
                        refused(t, head, nosig, True, "InvalidRequest", 400)
                # the head changed: the seed no longer verifies
                bad_head = head.replace(b"x-amz-decoded-content-length: 30000",
                                        b"x-amz-decoded-content-length: 30001")
                assert bad_head != head
                st, h, rb = replay(t.port, bad_head, raw)
                assert (st, error_code(rb)) == (403, "SignatureDoesNotMatch")


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
    p = subprocess.run([py, os.path.abspath(__file__)], capture_output=True, text=True,
                       timeout=900)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "all passed" in p.stdout, p.stdout


if __name__ == "__main__":
    import botocore
    print("%s, botocore %s" % (sys.executable, botocore.__version__))
    failed = 0
    for name, fn in list(globals().items()):
        if name.startswith("test_") and name != "test_newer_botocore_too" and callable(fn):
            try:
                fn()
                print("ok   %s" % name)
            except Skipped as e:
                print("skip %s: %s" % (name, e))
            except Exception as e:  # report every test, then fail
                failed += 1
                import traceback
                traceback.print_exc()
                print("FAIL %s: %s" % (name, e))
    print("all passed" if not failed else "%d failed" % failed)
    sys.exit(1 if failed else 0)
