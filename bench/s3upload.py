#!/usr/bin/python3
"""Uploads benchmark objects to an S3 endpoint (s3rver in bench/worker.sh, bench/fuse.sh, bench/xregion.sh).

usage: s3upload.py ENDPOINT BUCKET DATADIR KEY...

Each KEY is the file DATADIR/KEY, uploaded as one PUT (no multipart, so the
ETag is the object's md5).  An object already there with the same size and
md5 is skipped, so the dataset is uploaded once and reused across runs.
Uses s3rver's built-in credentials (S3RVER/S3RVER).
"""
import hashlib
import os
import sys

import boto3
from botocore.config import Config


def md5_file(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main():
    if len(sys.argv) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    endpoint, bucket, datadir, keys = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    s3 = boto3.session.Session(aws_access_key_id="S3RVER", aws_secret_access_key="S3RVER",
                               region_name="us-east-1").client(
        "s3", endpoint_url=endpoint,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                      retries={"total_max_attempts": 3}, read_timeout=120))
    uploaded = skipped = 0
    for key in keys:
        path = os.path.join(datadir, key)
        size = os.path.getsize(path)
        md5 = md5_file(path)
        try:
            head = s3.head_object(Bucket=bucket, Key=key)
            if head["ContentLength"] == size and head["ETag"].strip('"') == md5:
                skipped += 1
                continue
        except s3.exceptions.ClientError:
            pass
        with open(path, "rb") as f:
            s3.put_object(Bucket=bucket, Key=key, Body=f, ContentLength=size)
        head = s3.head_object(Bucket=bucket, Key=key)
        if head["ContentLength"] != size or head["ETag"].strip('"') != md5:
            print(f"s3upload: {key}: stored object does not match the file", file=sys.stderr)
            return 1
        uploaded += 1
    print(f"s3upload: {uploaded} uploaded, {skipped} already there (same size and md5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
