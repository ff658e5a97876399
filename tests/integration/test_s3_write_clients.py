"""Uploading tools against the gateway: `aws s3 sync` (multipart above
8 MiB), `rclone copy` and s3fs-fuse writing through a mount of the gateway,
each checked byte for byte in the under-store (a directory) and read back.

What a user relies on: the tools they already use to fill a bucket work
against ferry unchanged, and what they upload is exactly what lands.
"""
import os
import time
import shutil
import signal
import subprocess

import pytest

from conftest import rand_bytes, wait_for
from test_fuse import FUSERMOUNT, mounted_at

AK, SK = "AKIDWCLIENTS", "wclients-secret"
KEYED = ["--s3-access-key", AK, "--s3-secret-key", SK]
MiB = 1 << 20


def tree_files():
    return {"a.txt": b"a" * 100, "d/b.bin": rand_bytes(9 * MiB + 3, 41),
            "d/e/c.bin": rand_bytes(70000, 42), "empty": b""}


def make_src(root, files):
    """The files, dated 10 s ago: a sync compares a local file's mtime with
    the object's LastModified, which has whole seconds; a file made in the
    second it was uploaded would look newer than its upload and go up
    again (test_aws_s3_sync_upload failed so, one run in many)."""
    old = time.time() - 10
    for rel, b in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b)
        os.utime(root / rel, (old, old))


@pytest.fixture
def w(make_worker, data_dir):
    return make_worker(mounts={"data": data_dir}, args=KEYED)


def test_aws_s3_sync_upload(w, data_dir, tmp_path):
    if not os.path.exists("/usr/bin/aws"):
        pytest.skip("no /usr/bin/aws")
    files = tree_files()
    make_src(tmp_path / "src", files)
    env = dict(os.environ, AWS_ACCESS_KEY_ID=AK, AWS_SECRET_ACCESS_KEY=SK, AWS_DEFAULT_REGION="us-east-1",
               AWS_EC2_METADATA_DISABLED="true", AWS_PAGER="")
    cmd = ["/usr/bin/aws", "--endpoint-url", w.s3_url, "s3", "sync", str(tmp_path / "src"), "s3://data/synced/"]
    p = subprocess.run(cmd, capture_output=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr
    for rel, b in files.items():
        assert (data_dir / "synced" / rel).read_bytes() == b, rel
    # A second sync finds nothing to do; a changed file goes up again.
    (tmp_path / "src" / "a.txt").write_bytes(b"changed, and longer")
    p = subprocess.run(cmd, capture_output=True, timeout=300, env=env, text=True)
    assert p.returncode == 0, p.stderr
    assert "a.txt" in p.stdout and "b.bin" not in p.stdout, p.stdout
    assert (data_dir / "synced" / "a.txt").read_bytes() == b"changed, and longer"


def test_rclone_copy(w, data_dir, tmp_path):
    if not shutil.which("rclone"):
        pytest.skip("no rclone")
    files = tree_files()
    make_src(tmp_path / "src", files)
    # rclone's S3 client refuses a CA bundle variable on a plain-HTTP
    # endpoint: leave the AWS ones out.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    conf = tmp_path / "rclone.conf"
    conf.write_text(f"[f]\ntype = s3\nprovider = Other\naccess_key_id = {AK}\nsecret_access_key = {SK}\n"
                    f"endpoint = {w.s3_url}\nregion = us-east-1\nforce_path_style = true\n")
    p = subprocess.run(["rclone", "--config", str(conf), "copy", str(tmp_path / "src"), "f:data/rc",
                        "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M"],
                       capture_output=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr
    for rel, b in files.items():
        assert (data_dir / "rc" / rel).read_bytes() == b, rel
    p = subprocess.run(["rclone", "--config", str(conf), "check", str(tmp_path / "src"), "f:data/rc"],
                       capture_output=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr


S3FS = shutil.which("s3fs")


@pytest.mark.skipif(not (S3FS and FUSERMOUNT and os.path.exists("/dev/fuse")), reason="needs s3fs and FUSE")
def test_s3fs_writes_through_the_gateway(w, data_dir, tmp_path):
    mnt = tmp_path / "s3fs"
    mnt.mkdir()
    pw = tmp_path / "passwd"
    pw.write_text(f"{AK}:{SK}\n")
    pw.chmod(0o600)
    log = open(tmp_path / "s3fs.log", "wb")
    p = subprocess.Popen([S3FS, "data", str(mnt), "-f", "-o", f"url={w.s3_url}", "-o", "use_path_request_style",
                          "-o", f"passwd_file={pw}", "-o", "stat_cache_expire=1"],
                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: mounted_at(mnt), 15, what="s3fs to mount")
        data = rand_bytes(3 * MiB + 7, 43)
        (mnt / "s3fs-file.bin").write_bytes(data)
        os.mkdir(mnt / "s3fs-dir")
        (mnt / "s3fs-dir" / "x").write_bytes(b"x")
        assert (data_dir / "s3fs-file.bin").read_bytes() == data
        assert (data_dir / "s3fs-dir" / "x").read_bytes() == b"x"
        os.remove(mnt / "s3fs-file.bin")
        assert not (data_dir / "s3fs-file.bin").exists()
    finally:
        subprocess.run([FUSERMOUNT, "-u", str(mnt)], capture_output=True, timeout=10)
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
        subprocess.run([FUSERMOUNT, "-u", "-z", str(mnt)], capture_output=True, timeout=10)
        log.close()
