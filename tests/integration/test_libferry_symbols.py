"""libferry.so is the client library: it exports exactly the functions of
include/ferry.h, and holds none of the worker (the issue found worker_main,
pagestore_open, s3_gateway_handle in it, exported through a ferry_* glob)."""
import re
import subprocess
from pathlib import Path

from conftest import FERRY

ROOT = Path(__file__).resolve().parents[2]
LIB = Path(FERRY).parent / "libferry.so"


def header_functions():
    text = (ROOT / "include" / "ferry.h").read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return set(re.findall(r"\b(ferry_[a-z0-9_]+)\s*\(", text))


def symbols(*nm_args):
    out = subprocess.run(["nm", *nm_args, str(LIB)], capture_output=True, text=True, check=True).stdout
    return [l.split() for l in out.splitlines() if l.strip()]


def test_exports_exactly_the_header():
    exported = {s[-1] for s in symbols("-D", "--defined-only") if s[-2] in ("T", "W", "D", "B")}
    exported = {e.split("@")[0] for e in exported}
    assert exported == header_functions(), (exported ^ header_functions())


def test_no_worker_code_inside():
    names = {s[-1] for s in symbols() if len(s) >= 2}
    for worker_only in ("worker_main", "worker_start", "pagestore_open", "s3_gateway_handle",
                        "control_handle", "http_server_start", "meta_open", "reader_open",
                        "objget_serve", "ufs_open", "cluster_open", "etcd_open",
                        "sigv4_verify", "sigv4_verify_region", "sigv2_verify"):
        assert worker_only not in names, worker_only
