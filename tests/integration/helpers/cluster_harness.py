"""Pieces for the cluster integration tests (test_cluster.py): a real etcd
(/usr/bin/etcd, installed by scripts/install-deps.sh), a ferry worker that
may run inside a network namespace, and a small network of namespaces
(one veth per namespace into a bridge of the root namespace).

Nothing here outlives a test: etcd and namespaced workers die with the
pytest process (PR_SET_PDEATHSIG) as well as at teardown, and the network's
teardown deletes its namespaces, veths and bridge even when setup failed
half way.  All ports are loopback or inside the namespaces' own subnet.
"""
import ctypes
import json
import os
import random
import signal
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

from conftest import FERRY, Worker, wait_for

ETCD_BIN = "/usr/bin/etcd"
IP = "/usr/sbin/ip" if os.path.exists("/usr/sbin/ip") else "/sbin/ip"

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """preexec_fn: the child is SIGKILLed if pytest dies, so that a crashed
    test run never leaves an etcd or a worker behind."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port(host="127.0.0.1"):
    import socket
    s = socket.socket()
    s.bind((host, 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Etcd:
    """One single-member etcd.  restart() keeps its ports and data dir."""

    def __init__(self, workdir, host="127.0.0.1"):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.client_port = free_port(host)
        self.peer_port = free_port(host)
        self.url = f"http://{host}:{self.client_port}"
        self.proc = None
        self.log_path = self.dir / "etcd.log"

    def start(self, timeout=20):
        if not os.access(ETCD_BIN, os.X_OK):
            raise AssertionError(f"{ETCD_BIN} missing: run scripts/install-deps.sh")
        peer = f"http://{self.host}:{self.peer_port}"
        cmd = [ETCD_BIN, "--name", "t", "--data-dir", str(self.dir / "data"),
               "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
               "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
               "--initial-cluster", f"t={peer}",
               # a single member elects itself fast
               "--heartbeat-interval", "50", "--election-timeout", "500",
               "--logger", "zap", "--log-level", "error"]
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         preexec_fn=_die_with_parent)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"etcd exited {self.proc.returncode}:\n{self.log_tail()}")
            return self.answers()
        wait_for(up, timeout, interval=0.05, what="etcd to answer")
        return self

    def answers(self):
        try:
            req = urllib.request.Request(self.url + "/v3/maintenance/status", data=b"{}",
                                         method="POST")
            with urllib.request.urlopen(req, timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def signal(self, sig):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # in case it was stopped
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc:
            self.proc.wait(10)

    def _post(self, path, body):
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.load(r)

    def _kvs(self, prefix):
        import base64
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        return self._post("/v3/kv/range", {"key": base64.b64encode(prefix.encode()).decode(),
                                           "range_end": base64.b64encode(end.encode()).decode()}
                          ).get("kvs", [])

    def range_prefix(self, prefix):
        """{key: value} of every key under prefix (etcd's JSON gateway)."""
        import base64
        return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")).decode()
                for kv in self._kvs(prefix)}

    def leases(self, prefix):
        """{key: lease id (0: none)} of every key under prefix."""
        import base64
        return {base64.b64decode(kv["key"]).decode(): int(kv.get("lease", 0)) for kv in self._kvs(prefix)}

    def lease_ttl(self, lease):
        """Whole seconds left on a lease as etcd counts them now: 0 or less
        once it has expired (until etcd revokes it), -1 when unknown."""
        try:
            r = self._post("/v3/lease/timetolive", {"ID": str(lease)})
        except OSError:  # HTTPError included
            return -1
        # etcd's JSON gateway leaves out fields that are 0
        return int(r.get("TTL", 0 if "ID" in r else -1))

    def log_tail(self, n=30):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


class NsWorker(Worker):
    """A conftest Worker whose process may run in a network namespace
    (`ip netns exec NS`, which execs, so the pid and process group are the
    worker's own) and listens on the addresses its args give."""

    def __init__(self, tmp_path, cache_dir, args, netns=None, env=None):
        super().__init__(tmp_path, cache_dir, args, env)
        self.netns = netns

    def start(self, timeout=20):
        import re
        self.log_path = self.tmp / f"worker{self.n}-{int(time.time() * 1000)}.log"
        prefix = [IP, "netns", "exec", self.netns] if self.netns else []
        cmd = prefix + [str(FERRY), "worker", "--cache-dir", str(self.cache_dir)] + self.args
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=logf,
                                         stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True, preexec_fn=_die_with_parent)
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


def _ip(*args, check=True):
    p = subprocess.run([IP] + [str(a) for a in args], capture_output=True, text=True, timeout=20)
    if check and p.returncode != 0:
        raise AssertionError(f"ip {' '.join(map(str, args))}: rc {p.returncode}: {p.stderr.strip()}")
    return p


class NetLab:
    """A bridge in the root namespace (10.77.S.1/24, S picked free) and n
    namespaces, each with a veth into the bridge and address 10.77.S.(10+i).
    Names carry a random tag so that concurrent runs never collide."""

    def __init__(self):
        self.tag = uuid.uuid4().hex[:6]
        self.bridge = f"fbr{self.tag}"
        self.namespaces = []
        self.veths = []
        self.subnet = None

    def _pick_subnet(self):
        used = _ip("-4", "-o", "addr").stdout
        for s in random.sample(range(1, 250), 249):
            if f" 10.77.{s}." not in used:
                return s
        raise AssertionError("no free 10.77.x.0/24 subnet")

    def setup(self, n):
        self.subnet = self._pick_subnet()
        self.gateway = f"10.77.{self.subnet}.1"
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for _ in range(n):
            self.add_namespace()
        return self

    def add_namespace(self):
        i = len(self.namespaces)
        ns = f"fns-{self.tag}-{i}"
        host_end, ns_end = f"fvh{self.tag}{i}", f"fvn{self.tag}{i}"
        _ip("netns", "add", ns)
        self.namespaces.append(ns)
        _ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
        self.veths.append(host_end)
        _ip("link", "set", ns_end, "netns", ns)
        _ip("link", "set", host_end, "master", self.bridge)
        _ip("link", "set", host_end, "up")
        addr = self.addr(i)
        _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", ns_end)
        _ip("-n", ns, "link", "set", ns_end, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "route", "add", "default", "via", self.gateway)
        return ns

    def addr(self, i):
        return f"10.77.{self.subnet}.{10 + i}"

    def teardown(self):
        problems = []
        for ns in self.namespaces:
            # nothing of ours may still run in there
            pids = _ip("netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            p = _ip("netns", "del", ns, check=False)
            if p.returncode != 0:
                problems.append(f"ip netns del {ns}: {p.stderr.strip()}")
        for v in self.veths:  # gone with their namespace's end; make sure
            _ip("link", "del", v, check=False)
        p = _ip("link", "show", self.bridge, check=False)
        if p.returncode == 0:
            _ip("link", "del", self.bridge, check=False)
        left = _ip("-o", "link", check=False).stdout
        if self.tag in left:
            problems.append(f"links left behind: {[l for l in left.splitlines() if self.tag in l]}")
        ns_left = _ip("netns", "list", check=False).stdout
        if self.tag in ns_left:
            problems.append(f"namespaces left behind: {ns_left}")
        return problems
