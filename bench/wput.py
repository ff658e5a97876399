#!/usr/bin/python3
"""The client and the checker of bench/writes.sh.

usage: wput.py put ENDPOINT BUCKET PREFIX DATADIR KEYS THREADS
       wput.py get ENDPOINT BUCKET PREFIX KEYS THREADS [DATADIR]
       wput.py verify s3rver|file ROOT PREFIX DATADIR KEYS SAMPLE SHAFILE
       wput.py drain CONTROL MOUNT TIMEOUT [ENDFILE]

KEYS is a file with one key a line (a path under DATADIR); the object of
key K is PREFIX/K in BUCKET.  boto3, signed with s3rver's S3RVER/S3RVER,
path-style, no retries (a failed request fails the pass, it is not a slower
result), at most THREADS requests in flight:

put   uploads DATADIR/K for every key with boto3's upload_file and its
      default TransferConfig except max_concurrency=THREADS: a file above
      8 MiB is a multipart upload of 8 MiB parts, THREADS parts in flight,
      one file at a time; smaller files are one PutObject each, THREADS
      files at a time.  Prints: files bytes seconds.  With $WPUT_START set,
      writes the wall-clock time (unix seconds) the timed part began to
      that file (a write=back pass's drain is timed from it); with
      $WPUT_END, the time it ended (every PUT answered) to that one.
get   reads every object whole (get_object, 1 MiB reads), THREADS at a time;
      a short read is an error.  Prints: files bytes seconds.  With DATADIR,
      also compares the SHA-256 of every object read with its file's (done
      after the timed read, so hashing is not timed: the objects are read
      a second time, not timed).
verify checks the objects in the under-store's own files, without asking
      any server: s3rver's store (ROOT/BUCKET/PREFIX/K._S3rver_object,
      ROOT being the store dir and PREFIX starting with the bucket) or a
      directory (ROOT/PREFIX/K).  Every object must exist with its file's
      size; every SAMPLE-th one (and the last) must have its file's SHA-256,
      from SHAFILE (sha256sum output, relative to DATADIR).  Prints: objects
      size_ok sampled sha_ok, and the first mismatches on stderr.
drain polls a ferry worker's GET http://CONTROL/v1/writeback (every 50 ms)
      until the write=back mount MOUNT reports objects == 0 in an answer to
      a request made once ENDFILE exists (when given: started beside a put
      that writes it, $WPUT_END, so that the wait has no start-up delay of
      its own).  Prints: the wall-clock time (unix seconds) of the answer
      that said 0, then that answer's entry for MOUNT (JSON).  A mount
      missing from the answer, a control API not answering for 10 s or
      TIMEOUT seconds without draining is an error (the last answer on
      stderr).
"""
import hashlib
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

CHUNK = 1 << 20
MULTIPART = 8 << 20


def client(endpoint, threads):
    import boto3
    from botocore.config import Config
    return boto3.session.Session(aws_access_key_id="S3RVER", aws_secret_access_key="S3RVER",
                                 region_name="us-east-1").client(
        "s3", endpoint_url=endpoint,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                      max_pool_connections=max(threads, 1) + 2,
                      retries={"total_max_attempts": 1}, read_timeout=300, connect_timeout=30))


def read_keys(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def objkey(prefix, key):
    return prefix.strip("/") + "/" + key if prefix.strip("/") else key


def put(endpoint, bucket, prefix, datadir, keyfile, threads):
    from boto3.s3.transfer import TransferConfig
    keys = read_keys(keyfile)
    c = client(endpoint, threads)
    tc = TransferConfig(max_concurrency=threads)  # otherwise boto3's defaults: 8 MiB threshold and parts
    sizes = {k: os.path.getsize(os.path.join(datadir, k)) for k in keys}

    def one(k):
        c.upload_file(os.path.join(datadir, k), bucket, objkey(prefix, k), Config=tc)
        return sizes[k]

    large = [k for k in keys if sizes[k] > MULTIPART]
    small = [k for k in keys if sizes[k] <= MULTIPART]
    t0 = time.monotonic()
    if os.environ.get("WPUT_START"):
        with open(os.environ["WPUT_START"], "w") as f:
            f.write("%.6f\n" % time.time())
    total = 0
    for k in large:  # one at a time, THREADS parts in flight
        total += one(k)
    if small:
        with ThreadPoolExecutor(threads) as ex:
            for n in ex.map(one, small):
                total += n
    secs = time.monotonic() - t0
    if os.environ.get("WPUT_END"):
        with open(os.environ["WPUT_END"] + ".tmp", "w") as f:
            f.write("%.6f\n" % time.time())
        os.rename(os.environ["WPUT_END"] + ".tmp", os.environ["WPUT_END"])
    print(len(keys), total, "%.6f" % secs)


def get(endpoint, bucket, prefix, keyfile, threads, datadir=None):
    keys = read_keys(keyfile)
    c = client(endpoint, threads)

    def read(k, h=None):
        r = c.get_object(Bucket=bucket, Key=objkey(prefix, k))
        want, body, n = r["ContentLength"], r["Body"], 0
        while True:
            b = body.read(CHUNK)
            if not b:
                break
            n += len(b)
            if h is not None:
                h.update(b)
        if n != want:
            raise IOError("%s: read %d of %d bytes" % (k, n, want))
        if datadir is not None and n != os.path.getsize(os.path.join(datadir, k)):
            raise IOError("%s: %d bytes, its file has %d" % (k, n, os.path.getsize(os.path.join(datadir, k))))
        return n

    t0 = time.monotonic()
    with ThreadPoolExecutor(threads) as ex:
        total = sum(ex.map(read, keys))
    secs = time.monotonic() - t0
    if datadir is not None:
        def check(k):
            h = hashlib.sha256()
            read(k, h)
            return h.hexdigest() == sha_file(os.path.join(datadir, k))
        with ThreadPoolExecutor(threads) as ex:
            bad = [k for k, ok in zip(keys, ex.map(check, keys)) if not ok]
        if bad:
            print("wput: get: %d objects differ from their files, e.g. %s" % (len(bad), bad[:3]), file=sys.stderr)
            sys.exit(1)
    print(len(keys), total, "%.6f" % secs)


def sha_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(CHUNK), b""):
            h.update(b)
    return h.hexdigest()


def verify(kind, root, prefix, datadir, keyfile, sample, shafile):
    keys = read_keys(keyfile)
    shas = {}
    with open(shafile) as f:
        for line in f:
            s, name = line.split(None, 1)
            shas[name.strip().lstrip("*")] = s
    size_ok = sampled = sha_ok = 0
    bad = []
    for i, k in enumerate(keys):
        p = os.path.join(root, prefix.strip("/"), k)
        if kind == "s3rver":
            p += "._S3rver_object"
        want = os.path.getsize(os.path.join(datadir, k))
        try:
            got = os.path.getsize(p)
        except OSError as e:
            bad.append("%s: %s" % (k, e.strerror))
            continue
        if got == want:
            size_ok += 1
        else:
            bad.append("%s: %d bytes, sent %d" % (k, got, want))
        if i % sample == 0 or i == len(keys) - 1:
            sampled += 1
            if k not in shas:
                bad.append("%s: no SHA-256 of its file in %s" % (k, shafile))
            elif sha_file(p) == shas[k]:
                sha_ok += 1
            else:
                bad.append("%s: SHA-256 differs from its file's" % k)
    for b in bad[:5]:
        print("wput: verify: " + b, file=sys.stderr)
    print(len(keys), size_ok, sampled, sha_ok)


def drain(control, mount, timeout, endfile=None):
    import json
    import urllib.request
    url = "http://%s/v1/writeback" % control
    name = mount.strip("/")
    deadline = time.monotonic() + timeout
    last, last_ok = None, time.monotonic()
    while True:
        ended = endfile is None or os.path.exists(endfile)  # before the request
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                doc = json.load(r)
            t = time.time()
            last_ok = time.monotonic()
        except (OSError, ValueError) as e:
            if time.monotonic() - last_ok > 10:
                print("wput: drain: %s: %s" % (url, e), file=sys.stderr)
                return 1
            time.sleep(0.2)
            continue
        ms = [m for m in doc.get("mounts", []) if m.get("mount", "").strip("/") == name]
        if not ms:
            print("wput: drain: no mount %s in %s: %s" % (mount, url, json.dumps(doc)), file=sys.stderr)
            return 1
        last = ms[0]
        if ended and last.get("objects") == 0:
            print("%.6f" % t)
            print(json.dumps(last))
            return 0
        if time.monotonic() > deadline:
            print("wput: drain: %s not drained after %d s: %s" % (mount, timeout, json.dumps(last)), file=sys.stderr)
            return 1
        time.sleep(0.05)


def main():
    a = sys.argv[1:]
    if a[:1] == ["put"] and len(a) == 7:
        put(a[1], a[2], a[3], a[4], a[5], int(a[6]))
    elif a[:1] == ["get"] and len(a) in (6, 7):
        get(a[1], a[2], a[3], a[4], int(a[5]), a[6] if len(a) == 7 else None)
    elif a[:1] == ["verify"] and len(a) == 8 and a[1] in ("s3rver", "file"):
        verify(a[1], a[2], a[3], a[4], a[5], int(a[6]), a[7])
    elif a[:1] == ["drain"] and len(a) in (4, 5):
        return drain(a[1], a[2], int(a[3]), a[4] if len(a) == 5 else None)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
