"""The worker's request path calls downward only (docs/architecture.md,
"Read path"): no two object files of the worker call each other, and the
lower layers never call the higher ones (the refactor's point: meta.c and
reader.c used to call each other, and four places invalidated metadata)."""
import itertools
import subprocess
from collections import defaultdict
from pathlib import Path

from conftest import FERRY

OBJ = Path(FERRY).parent / "obj" / "src"
DIRS = ("worker", "s3", "ufs", "store", "common", "cluster")


def symbols():
    """{object name: (functions defined, symbols used, data defined)}."""
    files = [str(o) for d in DIRS for o in sorted((OBJ / d).glob("*.o"))]
    out = subprocess.run(["nm", "-A", *files], capture_output=True, text=True, check=True).stdout
    syms = defaultdict(lambda: (set(), set(), set()))
    for line in out.splitlines():
        path, _, rest = line.partition(": ")
        if not rest:
            path, _, rest = line.partition(":")
        f = rest.split()
        name = Path(path).name
        if len(f) == 3 and f[1] == "T":
            syms[name][0].add(f[2])
        elif len(f) == 3 and f[1] in "DBR":
            syms[name][2].add(f[2])
        elif len(f) == 2 and f[0] == "U":
            syms[name][1].add(f[1])
    return syms


SYMS = None


def calls(a, b):
    return bool(SYMS[a][1] & SYMS[b][0])


def setup_module(module):
    global SYMS
    SYMS = symbols()


def test_no_two_files_call_each_other():
    both = [(a, b) for a, b in itertools.combinations(sorted(SYMS), 2) if calls(a, b) and calls(b, a)]
    assert not both, both


def test_lower_layers_never_call_up():
    rules = {  # each service, and what it must never call
        "objkey.o": ["meta.o", "reader.o", "router.o", "objget.o"],
        "meta.o": ["reader.o", "router.o", "objget.o", "pagestore.o"],
        "reader.o": ["meta.o", "router.o", "objget.o"],
        "router.o": ["meta.o", "objget.o"],
        "pagestore.o": ["reader.o", "meta.o", "ufs.o"],
        "ufs.o": ["meta.o", "reader.o", "objget.o"],
    }
    bad = [(low, high, sorted(SYMS[low][1] & SYMS[high][0]))
           for low, highs in rules.items() for high in highs if calls(low, high)]
    assert not bad, bad


def test_backends_only_through_ufs_c():
    tables = {"ufs_file_ops", "ufs_s3_ops"}
    users = sorted(o for o, (_, used, _) in SYMS.items() if used & tables)
    assert users == ["ufs.o"], users
