"""Other clients than Debian's boto3: the newer boto3/botocore of the
default `python3` on PATH (it sends x-amz-checksum-mode and other new
headers, and validates response checksums when it can), and the aws cli
(s3 cp, s3api)."""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import PAGE, rand_bytes

AK, SK = "AKIDCLIENTS", "clients-secret/+="

NEW_BOTO_SCRIPT = textwrap.dedent("""
    import json, sys, hashlib
    import boto3, botocore
    from botocore.config import Config
    from boto3.s3.transfer import TransferConfig
    endpoint, ak, sk, out = sys.argv[1:5]
    cfg = Config(signature_version="s3v4", s3={"addressing_style": "path"},
                 retries={"total_max_attempts": 1})
    s3 = boto3.session.Session(aws_access_key_id=ak, aws_secret_access_key=sk,
                               region_name="us-east-1").client("s3", endpoint_url=endpoint, config=cfg)
    res = {"botocore": botocore.__version__}
    body = s3.get_object(Bucket="data", Key="big.bin")["Body"].read()
    res["whole"] = hashlib.sha256(body).hexdigest()
    body = s3.get_object(Bucket="data", Key="big.bin", Range="bytes=1000-200000")["Body"].read()
    res["range"] = hashlib.sha256(body).hexdigest()
    res["head_len"] = s3.head_object(Bucket="data", Key="big.bin")["ContentLength"]
    keys = []
    for p in s3.get_paginator("list_objects_v2").paginate(Bucket="data", PaginationConfig={"PageSize": 2}):
        keys += [c["Key"] for c in p.get("Contents", [])]
    res["keys"] = keys
    s3.download_file("data", "big.bin", out, Config=TransferConfig(
        multipart_threshold=128 * 1024, multipart_chunksize=128 * 1024, max_concurrency=4))
    print(json.dumps(res))
""")


@pytest.fixture
def keyed(make_worker, data_dir):
    data = rand_bytes(10 * PAGE + 5, 1010)
    (data_dir / "big.bin").write_bytes(data)
    for i in range(5):
        (data_dir / "d" / f"k{i}").parent.mkdir(exist_ok=True)
        (data_dir / "d" / f"k{i}").write_bytes(b"k" * i)
    w = make_worker(mounts={"data": data_dir}, args=["--s3-access-key", AK, "--s3-secret-key", SK])
    w.data = data
    return w


def newer_python():
    py = shutil.which("python3")
    if not py or os.path.realpath(py) == os.path.realpath(sys.executable):
        return None
    p = subprocess.run([py, "-c", "import botocore; print(botocore.__version__)"],
                       capture_output=True, timeout=60)
    if p.returncode != 0:
        return None
    return py


def test_newer_boto3(keyed, tmp_path):
    import hashlib
    py = newer_python()
    if not py:
        pytest.skip("no other python3 with boto3 on PATH")
    out = tmp_path / "dl.bin"
    script = tmp_path / "newboto.py"
    script.write_text(NEW_BOTO_SCRIPT)
    p = subprocess.run([py, str(script), keyed.s3_url, AK, SK, str(out)],
                       capture_output=True, timeout=120, env=dict(os.environ, PYTHONNOUSERSITE="1"))
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    res = json.loads(p.stdout.decode().strip().splitlines()[-1])
    data = keyed.data
    assert res["whole"] == hashlib.sha256(data).hexdigest()
    assert res["range"] == hashlib.sha256(data[1000:200001]).hexdigest()
    assert res["head_len"] == len(data)
    assert res["keys"] == ["big.bin"] + [f"d/k{i}" for i in range(5)]
    assert out.read_bytes() == data


def aws(w, *args, timeout=60):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=AK, AWS_SECRET_ACCESS_KEY=SK,
               AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true", AWS_PAGER="")
    return subprocess.run(["/usr/bin/aws", "--endpoint-url", w.s3_url] + list(args),
                          capture_output=True, timeout=timeout, env=env)


def test_aws_cli_cp_and_s3api(keyed, tmp_path):
    if not os.path.exists("/usr/bin/aws"):
        pytest.skip("no /usr/bin/aws")
    out = tmp_path / "cp.bin"
    p = aws(keyed, "s3", "cp", "s3://data/big.bin", str(out))
    assert p.returncode == 0, p.stderr
    assert out.read_bytes() == keyed.data
    dest = tmp_path / "sync"
    p = aws(keyed, "s3", "sync", "s3://data/d/", str(dest))
    assert p.returncode == 0, p.stderr
    assert sorted(x.name for x in dest.iterdir()) == [f"k{i}" for i in range(5)]
    assert all((dest / f"k{i}").read_bytes() == b"k" * i for i in range(5))
    p = aws(keyed, "s3api", "head-object", "--bucket", "data", "--key", "big.bin")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["ContentLength"] == len(keyed.data)
    p = aws(keyed, "s3api", "get-object", "--bucket", "data", "--key", "big.bin",
            "--range", "bytes=10-19", str(tmp_path / "r.bin"))
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "r.bin").read_bytes() == keyed.data[10:20]
    # Uploads: test_s3_writes.py.
