"""One epoch of a PyTorch DataLoader over a directory tree of files.

Usage: /usr/bin/python3 torch_epoch.py ROOT [--drop-page-cache]
Prints one JSON line: {"items": [[relative path, sha256 hex, size], ...]}
in the order the DataLoader yielded them (shuffled).  The Dataset reads
each file by path in the loader's worker processes (num_workers=2,
batch_size=32, shuffle=True).  --drop-page-cache asks the kernel to drop
each file's cached pages before reading it (POSIX_FADV_DONTNEED), so that
the read reaches the file system instead of the page cache.  With --probe
it only imports torch.  Called by tests/integration/test_fuse_apps.py.
"""
import hashlib
import json
import os
import sys

import torch
from torch.utils.data import DataLoader, Dataset


class FileDataset(Dataset):
    def __init__(self, root, drop_cache):
        self.root = root
        self.drop_cache = drop_cache
        self.paths = sorted(
            os.path.relpath(os.path.join(d, f), root)
            for d, _, files in os.walk(root) for f in files)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        rel = self.paths[i]
        with open(os.path.join(self.root, rel), "rb") as f:
            if self.drop_cache:
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            data = f.read()
        return rel, hashlib.sha256(data).hexdigest(), len(data)


def main():
    if sys.argv[1] == "--probe":
        print(json.dumps({"torch": torch.__version__}))
        return
    ds = FileDataset(sys.argv[1], "--drop-page-cache" in sys.argv[2:])
    loader = DataLoader(ds, batch_size=32, shuffle=True, num_workers=2)
    items = []
    for rels, digests, sizes in loader:
        items += [[r, d, int(n)] for r, d, n in zip(rels, digests, sizes)]
    print(json.dumps({"items": items}))


if __name__ == "__main__":
    main()
