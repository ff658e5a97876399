#!/usr/bin/python3
"""Reads every byte of a list of objects or files, for bench/xregion.sh.

usage: xread.py s3 ENDPOINT BUCKET KEYS THREADS
       xread.py fs DIR KEYS THREADS

KEYS is a file with one key (a path relative to the bucket or DIR) a line.
THREADS readers take the keys in order, each reading one object or file
whole at a time (1 MiB reads), discarding the bytes.  s3: boto3 get_object
(signed with s3rver's S3RVER/S3RVER; path-style addressing, one connection
per thread), the same client for the remote s3rver, ferry's gateway, nginx.
fs: first lists each directory the keys are in (os.listdir, as a data loader
enumerates its dataset; timed), then open/read/close through whatever file
system DIR is on.
Prints one line: files bytes seconds.  Exits 1 on any error (a short read
or a failed request is an error, not a slower result).
"""
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

CHUNK = 1 << 20


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("s3", "fs"):
        print(__doc__, file=sys.stderr)
        return 2
    mode = sys.argv[1]
    if mode == "s3":
        if len(sys.argv) != 6:
            print(__doc__, file=sys.stderr)
            return 2
        endpoint, bucket, keyfile, threads = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
        import boto3
        from botocore.config import Config
        client = boto3.session.Session(aws_access_key_id="S3RVER", aws_secret_access_key="S3RVER",
                                       region_name="us-east-1").client(
            "s3", endpoint_url=endpoint,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                          max_pool_connections=max(threads, 1),
                          retries={"total_max_attempts": 1}, read_timeout=300, connect_timeout=30))

        def read(key):
            r = client.get_object(Bucket=bucket, Key=key)
            want = r["ContentLength"]
            body, n = r["Body"], 0
            while True:
                b = body.read(CHUNK)
                if not b:
                    break
                n += len(b)
            if n != want:
                raise IOError("%s: read %d of %d bytes" % (key, n, want))
            return n
    else:
        if len(sys.argv) != 5:
            print(__doc__, file=sys.stderr)
            return 2
        root, keyfile, threads = sys.argv[2], sys.argv[3], int(sys.argv[4])

        def read(key):
            path = os.path.join(root, key)
            n = 0
            with open(path, "rb", buffering=0) as f:
                want = os.fstat(f.fileno()).st_size
                while True:
                    b = f.read(CHUNK)
                    if not b:
                        break
                    n += len(b)
            if n != want:
                raise IOError("%s: read %d of %d bytes" % (path, n, want))
            return n

    keys = [k.strip() for k in open(keyfile) if k.strip()]
    t0 = time.monotonic()
    if mode == "fs":
        for d in sorted({os.path.dirname(k) for k in keys}):
            os.listdir(os.path.join(root, d))
    with ThreadPoolExecutor(max(threads, 1)) as ex:
        total = sum(ex.map(read, keys))
    t1 = time.monotonic()
    print(len(keys), total, "%.6f" % (t1 - t0))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # one clear line, not a traceback per thread
        print("xread: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
