"""Fixtures for ferry's integration tests.

Every test runs real processes on 127.0.0.1 only: build/ferry workers started
on port 0 (they print their ports on a "ferry worker ready" line), and one
s3rver (the npm S3 test server from .deps/npm) shared by the session, whose
request log counts what the worker asked the under-store for.  Each worker
is stopped by a finalizer (SIGTERM, then SIGKILL after 10 s); a worker that
died during a test, or did not exit 0 on SIGTERM, fails the test.
"""
import http.client
import json
import os
import random
import re
import resource
import selectors
import signal
import socket
import subprocess
import time
import urllib.parse
import uuid
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[2]
FERRY = Path(os.environ.get("FERRY_BIN", str(ROOT / "build" / "ferry")))
S3RVER_BIN = ROOT / ".deps" / "npm" / "node_modules" / ".bin" / "s3rver"
PAGE = 64 * 1024
CHUNK = 32 * 1024  # the page store checks pages in chunks of this size


def page_hdr(page_size=PAGE):
    """The size of a page file's header (format 2: 64 bytes and a CRC32C
    per chunk of a full page); the data follows it."""
    return 64 + 4 * -(-page_size // CHUNK)


def page_files(cache_dir):
    """The page files under a cache dir (format 2, "*.pg2")."""
    return sorted(p for p in Path(cache_dir).rglob("*.pg2") if p.is_file())


S3RVER_KEY = "S3RVER"  # s3rver's built-in credentials
ANSI = re.compile(r"\x1b\[[0-9;]*m")

# Loopback only: no proxy may get in the way; no ~/.aws file may change what
# boto3 or the aws cli do.
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
for _v in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(_v, None)
os.environ["AWS_CONFIG_FILE"] = "/dev/null"
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

# Raise the fd limit before any worker starts, so that workers inherit it
# (the 1,000-connection test needs it on both sides).
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
_want = 65536 if _hard == resource.RLIM_INFINITY else min(_hard, 65536)
if _soft < _want:
    resource.setrlimit(resource.RLIMIT_NOFILE, (_want, _hard))


def rand_bytes(n, seed):
    return random.Random(seed).randbytes(n)


def wait_for(pred, timeout=10.0, interval=0.05, what="condition"):
    """Polls pred() until it returns a truthy value; fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def s3_config(**kw):
    base = dict(signature_version="s3v4", s3={"addressing_style": "path"},
                retries={"total_max_attempts": 1}, connect_timeout=5,
                read_timeout=60, max_pool_connections=64)
    base.update(kw)
    return Config(**base)


def s3_client(endpoint, access_key="test", secret_key="test", **cfg):
    sess = boto3.session.Session(aws_access_key_id=access_key,
                                 aws_secret_access_key=secret_key,
                                 region_name="us-east-1")
    return sess.client("s3", endpoint_url=endpoint, config=s3_config(**cfg))


def sign_sigv4(prepared, access_key, secret_key, region="us-east-1"):
    """Signs a prepared requests.Request in place with SigV4 (botocore)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    body = prepared.body or b""
    if isinstance(body, str):
        body = body.encode()
    headers = {k: v for k, v in prepared.headers.items()}
    headers["x-amz-content-sha256"] = __import__("hashlib").sha256(body).hexdigest()
    aws = AWSRequest(method=prepared.method, url=prepared.url, data=body, headers=headers)
    SigV4Auth(Credentials(access_key, secret_key), "s3", region).add_auth(aws)
    for k, v in aws.headers.items():
        prepared.headers[k] = v


def parse_metrics(text):
    """Prometheus text -> {(name, frozenset(labels)): value}."""
    out = {}
    line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = line_re.match(line)
        assert m, f"malformed metrics line: {line!r}"
        labels = frozenset(label_re.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


class Worker:
    """One build/ferry worker process."""

    _seq = 0

    def __init__(self, tmp_path, cache_dir, args, env=None):
        Worker._seq += 1
        self.n = Worker._seq
        self.tmp = Path(tmp_path)
        self.cache_dir = Path(cache_dir)
        self.args = list(args)
        self.env = env
        self.proc = None
        self.log_path = None
        self.stopped = True
        self.expect_death = False

    def start(self, timeout=20):
        self.log_path = self.tmp / f"worker{self.n}-{int(time.time() * 1000)}.log"
        cmd = [str(FERRY), "worker", "--cache-dir", str(self.cache_dir),
               "--s3-address", "127.0.0.1:0", "--control-address", "127.0.0.1:0"] + self.args
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=logf,
                                         stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True)
        self.stopped = False
        line = self._read_ready(timeout)
        m = re.match(r"ferry worker ready s3=([0-9.]+):(\d+) control=([0-9.]+):(\d+)$", line)
        assert m, f"unexpected ready line {line!r}; log:\n{self.log_tail()}"
        self.s3_host, self.s3_port = m.group(1), int(m.group(2))
        self.ctl_host, self.ctl_port = m.group(3), int(m.group(4))
        self.s3_url = f"http://{self.s3_host}:{self.s3_port}"
        self.ctl_addr = f"{self.ctl_host}:{self.ctl_port}"
        self.ctl_url = f"http://{self.ctl_addr}"
        return self

    def _read_ready(self, timeout):
        sel = selectors.DefaultSelector()
        fd = self.proc.stdout.fileno()
        sel.register(fd, selectors.EVENT_READ)
        buf = b""
        deadline = time.monotonic() + timeout
        try:
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.kill()
                    raise AssertionError(f"worker not ready after {timeout}s; log:\n{self.log_tail()}")
                if sel.select(min(left, 0.2)):
                    chunk = os.read(fd, 4096)
                    if not chunk:
                        rc = self.proc.wait(5)
                        self.stopped = True
                        raise AssertionError(f"worker exited (rc {rc}) before ready; log:\n{self.log_tail()}")
                    buf += chunk
        finally:
            sel.close()
        return buf.split(b"\n", 1)[0].decode()

    # --- lifecycle ----------------------------------------------------

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def assert_alive(self):
        assert self.alive(), f"worker died (rc {self.proc.returncode}); log:\n{self.log_tail()}"

    def stop(self, timeout=10):
        """SIGTERM; returns the exit status (fails if it needs SIGKILL)."""
        if self.stopped:
            return self.proc.returncode if self.proc else 0
        self.stopped = True
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"worker did not exit within {timeout}s of SIGTERM; log:\n{self.log_tail()}")
        finally:
            self.proc.stdout.close()
        return rc

    def kill(self):
        self.stopped = True
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)

    def drop_mount_args(self):
        """Forgets the --mount options, so that a restart relies on the
        persisted mount table alone."""
        a, out = self.args, []
        i = 0
        while i < len(a):
            if a[i] == "--mount":
                i += 2
                continue
            out.append(a[i])
            i += 1
        self.args = out

    def restart(self):
        rc = self.stop()
        assert rc == 0, f"worker exited {rc} on SIGTERM; log:\n{self.log_tail()}"
        return self.start()

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except (OSError, AttributeError):
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log().splitlines()[-n:])

    # --- clients ------------------------------------------------------

    def s3(self, access_key="test", secret_key="test", **cfg):
        return s3_client(self.s3_url, access_key, secret_key, **cfg)

    def credentials(self):
        """(token, access_key, secret_key) this worker was started with."""
        a = self.args
        def opt(name):
            for i, x in enumerate(a):
                if x == name and i + 1 < len(a):
                    return a[i + 1]
                if x.startswith(name + "="):
                    return x.split("=", 1)[1]
            return (self.env or {}).get({"--control-token": "FERRY_CONTROL_TOKEN",
                                         "--s3-access-key": "FERRY_S3_ACCESS_KEY",
                                         "--s3-secret-key": "FERRY_S3_SECRET_KEY"}[name])
        return opt("--control-token"), opt("--s3-access-key"), opt("--s3-secret-key")

    def ctl(self, method, path, auth=True, **kw):
        """A control API call, with this worker's credentials (the control
        token, else a SigV4 signature by its S3 keys) unless auth=False."""
        kw.setdefault("timeout", 30)
        token, ak, sk = self.credentials() if auth else (None, None, None)
        headers = dict(kw.pop("headers", None) or {})
        if token and "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {token}"
        elif ak and sk and "Authorization" not in headers:
            req = requests.Request(method, self.ctl_url + path, headers=headers,
                                   params=kw.pop("params", None), json=kw.pop("json", None),
                                   data=kw.pop("data", None)).prepare()
            sign_sigv4(req, ak, sk)
            with requests.Session() as sess:
                return sess.send(req, **kw)
        return requests.request(method, self.ctl_url + path, headers=headers, **kw)

    def metrics(self):
        r = self.ctl("GET", "/metrics")
        assert r.status_code == 200, r.text
        return parse_metrics(r.text)

    def metric(self, name, **labels):
        return self.metrics().get((name, frozenset(labels.items())))

    def ufs_reads(self):
        return self.metric("ferry_ufs_requests_total", op="read")

    def stats(self):
        r = self.ctl("GET", "/v1/stats")
        assert r.status_code == 200, r.text
        return r.json()

    def stat(self, path):
        r = self.ctl("GET", "/v1/stat", params={"path": path})
        assert r.status_code == 200, r.text
        return r.json()

    def wait_cached(self, path, n, timeout=10):
        """Pages are written to disk after the bytes went to the client:
        waits until path has at least n bytes cached; returns its stat."""
        return wait_for(lambda: (lambda st: st if st["cached_bytes"] >= n else None)(self.stat(path)),
                        timeout, what=f"{n} bytes of {path} cached")

    def mount(self, name, uri, headers=None, check=True, **options):
        body = {"name": name, "uri": uri, "options": options}
        if not check:
            body["check"] = False  # an under-store that is not there (yet)
        r = self.ctl("POST", "/v1/mounts", json=body, headers=headers or {})
        assert r.status_code == 200, r.text
        return r

    def cli(self, *args, check=True, timeout=60, input=None):
        p = subprocess.run([str(FERRY), "--worker", self.ctl_addr] + [str(a) for a in args],
                           capture_output=True, timeout=timeout, input=input)
        if check:
            assert p.returncode == 0, f"ferry {args}: rc {p.returncode}, stderr {p.stderr!r}"
        return p


@pytest.fixture
def make_worker(tmp_path):
    """make_worker(mounts={"name": Path}, cache_dir=..., cache_size=..., args=[...])."""
    workers = []

    def make(mounts=None, cache_dir=None, cache_size="256M", page_size="64K", args=(),
             env=None, start=True):
        cd = Path(cache_dir) if cache_dir else tmp_path / f"cache{len(workers)}"
        a = ["--cache-size", cache_size, "--page-size", page_size]
        for name, d in (mounts or {}).items():
            a += ["--mount", f"{name}=file://{Path(d).resolve()}"]
        a += list(args)
        w = Worker(tmp_path, cd, a, env)
        workers.append(w)
        if start:
            w.start()
        return w

    yield make
    problems = []
    for w in workers:
        if w.proc is None:
            continue
        if not w.stopped and not w.alive() and not w.expect_death:
            problems.append(f"worker {w.n} died during the test (rc {w.proc.returncode}); log:\n{w.log_tail()}")
            w.stopped = True
            continue
        try:
            rc = w.stop()
        except AssertionError as e:
            problems.append(str(e))
            continue
        if rc != 0 and not w.expect_death:
            problems.append(f"worker {w.n} exited {rc} on SIGTERM; log:\n{w.log_tail()}")
    if problems:
        pytest.fail("\n".join(problems))


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    return d


# --- s3rver ------------------------------------------------------------------

class S3rver:
    """One s3rver process; its stdout (colours forced, so that koa-logger's
    lines keep their method) is the request log."""

    def __init__(self, workdir):
        self.dir = Path(workdir)
        self.proc = None

    def start(self):
        if not S3RVER_BIN.exists():
            pytest.fail(f"{S3RVER_BIN} missing: run scripts/install-deps.sh")
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / "s3rver.log"
        env = dict(os.environ, NODE_OPTIONS="--openssl-legacy-provider", FORCE_COLOR="1")
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(
                [str(S3RVER_BIN), "-d", str(self.dir / "data"), "-a", "127.0.0.1", "-p", "0",
                 "--configure-bucket", "ferry-probe"],
                stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True)
        m = wait_for(lambda: re.search(r"listening on 127\.0\.0\.1:(\d+)", ANSI.sub("", self._raw())),
                     timeout=30, what="s3rver to listen")
        self.port = int(m.group(1))
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = s3_client(self.url, S3RVER_KEY, S3RVER_KEY)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def _raw(self):
        return self.log_path.read_text(errors="replace")

    def requests(self):
        """[(method, decoded path, query, status)] of every answered request."""
        out = []
        for line in ANSI.sub("", self._raw()).splitlines():
            m = re.match(r"^\S+: (GET|HEAD|PUT|POST|DELETE|OPTIONS|PATCH) (\S+) (\d{3}) ", line)
            if m:
                path, _, query = m.group(2).partition("?")
                out.append((m.group(1), urllib.parse.unquote(path), query, int(m.group(3))))
        return out

    def mark(self):
        return len(self.requests())

    def gets(self, bucket, key, since=0):
        """GETs of object bucket/key logged after mark `since`."""
        want = f"/{bucket}/{key}"
        return [r for r in self.requests()[since:] if r[0] == "GET" and r[1] == want]

    def settle(self, pause=0.4):
        """Waits until the log stops growing (lines are written on response end)."""
        n = -1
        for _ in range(50):
            cur = len(self._raw())
            if cur == n:
                return
            n = cur
            time.sleep(pause)

    def new_bucket(self):
        name = "b" + uuid.uuid4().hex[:16]
        self.client.create_bucket(Bucket=name)
        return name

    def mount_options(self, **extra):
        o = {"s3.endpoint": self.url, "s3.region": "us-east-1", "s3.access_key": S3RVER_KEY,
             "s3.secret_key": S3RVER_KEY, "s3.path_style": "true"}
        o.update(extra)
        return o


@pytest.fixture(scope="session")
def s3rver(tmp_path_factory):
    s = S3rver(tmp_path_factory.mktemp("s3rver")).start()
    yield s
    s.stop()


# --- raw HTTP ----------------------------------------------------------------

def _recv_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(min(1 << 20, n - len(out)))
        if not chunk:
            raise ConnectionError(f"closed after {len(out)} of {n} bytes")
        out += chunk
    return out


def read_response(sock, timeout=10.0, head=False):
    """Reads exactly one HTTP/1.1 response from sock (bytes of responses
    pipelined after it stay in the socket): (status, headers, body)."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    seen = -1
    while True:
        buf = sock.recv(1 << 20, socket.MSG_PEEK)
        if not buf:
            raise ConnectionError(f"closed before a full response head: {seen} bytes")
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            break
        if len(buf) == seen:  # nothing new yet: don't spin
            if time.monotonic() > deadline:
                raise socket.timeout("response head incomplete")
            time.sleep(0.005)
        seen = len(buf)
    head_b = _recv_exact(sock, end + 4)[:-4]
    lines = head_b.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    hdrs = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    n = 0 if head or status in (204, 304) else int(hdrs.get("content-length", "0"))
    return status, hdrs, _recv_exact(sock, n)


def raw_request(host, port, data, timeout=10.0, head=False):
    """Sends raw bytes on a new connection and reads one response."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        return read_response(s, timeout, head)


def http_get(url, headers=None, timeout=30):
    """GET through http.client (no normalisation of the path)."""
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        target = u.path + ("?" + u.query if u.query else "")
        c.request("GET", target, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def s3_error_code(body):
    m = re.search(rb"<Code>([^<]*)</Code>", body)
    return m.group(1).decode() if m else None


def put_tree(root, files):
    """Writes {relative path: bytes} under root."""
    for rel, data in files.items():
        p = Path(root) / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def json_lines(text):
    return [json.loads(l) for l in text.splitlines() if l.strip()]



# --- one mount of either kind ------------------------------------------------

class Mounted:
    """A worker with mount "data" backed by a directory (kind "file") or by
    a bucket of s3rver under prefix "pfx/" (kind "s3").  put() writes to the
    source before the worker has seen the object."""

    def __init__(self, kind, worker, data_dir=None, s3rver=None, bucket=None, prefix=""):
        self.kind = kind
        self.worker = worker
        self.bucket = "data"
        self.data_dir = data_dir
        self.s3rver = s3rver
        self.src_bucket = bucket
        self.prefix = prefix

    def put(self, key, data):
        if self.kind == "file":
            p = self.data_dir / key
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        else:
            self.s3rver.client.put_object(Bucket=self.src_bucket, Key=self.prefix + key, Body=data)

    def put_many(self, objs):
        for k, v in objs.items():
            self.put(k, v)

    def ufs_gets(self, key, since=0):
        """GETs the UFS logged for key (s3 only; None for file mounts)."""
        if self.kind != "s3":
            return None
        self.s3rver.settle()
        return len(self.s3rver.gets(self.src_bucket, self.prefix + key, since))

    def mark(self):
        return self.s3rver.mark() if self.kind == "s3" else 0


def make_mounted(kind, make_worker, tmp_path, s3rver_factory, **worker_kw):
    if kind == "file":
        d = tmp_path / "data"
        d.mkdir(exist_ok=True)
        w = make_worker(mounts={"data": d}, **worker_kw)
        return Mounted("file", w, data_dir=d)
    s3 = s3rver_factory()
    bucket = s3.new_bucket()
    w = make_worker(**worker_kw)
    w.mount("data", f"s3://{bucket}/pfx", **s3.mount_options())
    return Mounted("s3", w, s3rver=s3, bucket=bucket, prefix="pfx/")


@pytest.fixture(params=["file", "s3"])
def mounted(request, make_worker, tmp_path):
    """A fresh worker with mount "data", once per kind of under-store."""
    return make_mounted(request.param, make_worker, tmp_path,
                        lambda: request.getfixturevalue("s3rver"))
