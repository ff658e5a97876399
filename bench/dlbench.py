#!/usr/bin/python3
"""A training job's input pipeline, for bench/dataloader.sh (MLPerf Storage's way
of judging storage for training: the accelerators must not wait for data).

usage: dlbench.py DIR [--workers 4] [--batch 32] [--sample-ms 2] [--seed 0]
                      [--expect-files N] [--expect-bytes B]

A torch.utils.data.Dataset lists DIR (os.listdir, sorted: the listing is part
of the pass, as a loader enumerating its dataset does) and reads each file
whole (open, read, close) into a uint8 tensor; a DataLoader (num_workers,
batch_size, shuffle=True with a torch.Generator seeded with --seed, so every
pass reads the files in the same order) batches them.  After each batch the
main process sleeps len(batch) x --sample-ms: the emulated accelerator's
compute time for the batch (while it "computes", the workers read ahead:
prefetch_factor 2, the DataLoader's default).

Prints one JSON line: samples, bytes, batches, wall_s (from the creation of
the loader's iterator, worker start-up included, to the last batch
consumed), compute_s (the sleeps, as measured), utilisation (compute_s /
wall_s: MLPerf Storage's accelerator utilisation), samples_per_s
(samples / wall_s), first_batch_s (iterator creation to the first batch
delivered), steady_utilisation (compute_s / (wall_s - first_batch_s)), quarter_rates (samples/s by
quarter of the batches after the first), list_s (the Dataset's listing), and the settings.  Exits 1 when
the files or bytes read are not what --expect-files / --expect-bytes say
(a short read is an error, not a faster result).
"""
import argparse
import json
import os
import sys
import time
import warnings

import torch
from torch.utils.data import DataLoader, Dataset


class FileDataset(Dataset):
    def __init__(self, root):
        t0 = time.perf_counter()
        self.root = root
        self.names = sorted(n for n in os.listdir(root) if not n.startswith("."))
        self.list_s = time.perf_counter() - t0

    def __len__(self):
        return len(self.names)

    def __getitem__(self, i):
        with open(os.path.join(self.root, self.names[i]), "rb") as f:
            data = f.read()
        return torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)


def collate(items):
    # Stacked when the samples are the same size (one shared-memory tensor
    # per batch, as the default collate makes), a list otherwise.
    if len({t.numel() for t in items}) == 1:
        return torch.stack(items)
    return items


def quarters(arrivals, batch):
    n = len(arrivals)
    if n < 8:
        return []
    cut = [0, n // 4, n // 2, 3 * n // 4, n - 1]
    return [round((cut[i + 1] - cut[i]) * batch / (arrivals[cut[i + 1]] - arrivals[cut[i]]), 2)
            if arrivals[cut[i + 1]] > arrivals[cut[i]] else 0.0 for i in range(4)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--sample-ms", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--expect-files", type=int, default=-1)
    ap.add_argument("--expect-bytes", type=int, default=-1)
    a = ap.parse_args()
    torch.set_num_threads(1)
    # On a machine with fewer cores than --workers the DataLoader warns; the
    # setting is the benchmark's (the issue's: 4 workers), said in the report.
    warnings.filterwarnings("ignore", message="This DataLoader will create")

    ds = FileDataset(a.dir)
    g = torch.Generator()
    g.manual_seed(a.seed)
    loader = DataLoader(ds, batch_size=a.batch, shuffle=True, generator=g, num_workers=a.workers,
                        collate_fn=collate, drop_last=False, persistent_workers=False)
    samples = nbytes = batches = 0
    compute = 0.0
    first = None
    arrivals = []   # seconds from t0 at which each batch was delivered
    t0 = time.perf_counter()
    for b in loader:
        arrivals.append(time.perf_counter() - t0)
        if first is None:
            first = arrivals[0]
        n = b.shape[0] if torch.is_tensor(b) else len(b)
        samples += n
        nbytes += b.numel() if torch.is_tensor(b) else sum(t.numel() for t in b)
        batches += 1
        c0 = time.perf_counter()
        time.sleep(n * a.sample_ms / 1000.0)   # the accelerator's step on this batch
        compute += time.perf_counter() - c0
    wall = time.perf_counter() - t0
    out = {
        "samples": samples, "bytes": nbytes, "batches": batches,
        "wall_s": round(wall, 4), "compute_s": round(compute, 4),
        "utilisation": round(compute / wall, 4) if wall > 0 else 0.0,
        "samples_per_s": round(samples / wall, 2) if wall > 0 else 0.0,
        "first_batch_s": round(first if first is not None else wall, 4),
        # After the first batch: the steady state, without the workers'
        # start-up and the first fetches.
        "steady_utilisation": round(compute / (wall - first), 4) if first is not None and wall > first else 0.0,
        "list_s": round(ds.list_s, 4),
        "workers": a.workers, "batch": a.batch, "sample_ms": a.sample_ms, "seed": a.seed,
        "torch": torch.__version__,
        # The delivery rate by quarter of the pass (samples/s between the
        # arrivals of the batches at 0, 1/4, 1/2, 3/4 and the last): a
        # rate that falls as the pass goes on shows there.
        "quarter_rates": quarters(arrivals, a.batch),
    }
    print(json.dumps(out))
    if a.expect_files >= 0 and samples != a.expect_files:
        print("dlbench: read %d files, expected %d" % (samples, a.expect_files), file=sys.stderr)
        return 1
    if a.expect_bytes >= 0 and nbytes != a.expect_bytes:
        print("dlbench: read %d bytes, expected %d" % (nbytes, a.expect_bytes), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
