"""Uploading tools against the gateway: `aws s3 sync` (multipart above
8 MiB), `rclone copy`, s3fs-fuse writing through a mount of the gateway,
and s3cmd (SigV4 and SigV2: put, multipart put, put from stdin, sync both
ways, get, cp, mv, ls over several pages, del, keys it escapes its own
way, a wrong secret), each checked byte for byte in the under-store (a
directory; for s3cmd also an s3rver bucket) and read back.

What a user relies on: the tools they already use to fill a bucket work
against ferry unchanged, and what they upload is exactly what lands.
"""
import hashlib
import os
import time
import shutil
import signal
import subprocess

import pytest

from conftest import make_mounted, rand_bytes, wait_for
from test_fuse import FUSERMOUNT, mounted_at
from test_s3_writes import src_get

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


# --- s3cmd ---------------------------------------------------------------------
#
# s3cmd signs differently from botocore: a real x-amz-content-sha256 of
# each body, Content-MD5 on every part, x-amz-meta-s3cmd-attrs on uploads,
# ListObjects v1 with markers, ?delete for a recursive del.

S3CMD = shutil.which("s3cmd")


def s3cmd_conf(path, url, ak=AK, sk=SK, v2=False):
    """A config file for s3cmd: path-style (host_bucket without a
    %(bucket)s), SigV4 (or v2), plain HTTP, no ~/.s3cfg."""
    host = url.split("://", 1)[1]
    path.write_text(f"[default]\naccess_key = {ak}\nsecret_key = {sk}\nhost_base = {host}\n"
                    f"host_bucket = {host}\nuse_https = False\nsignature_v2 = {v2}\n"
                    "bucket_location = us-east-1\nproxy_host = \nproxy_port = 0\n"
                    "check_ssl_certificate = False\nmultipart_chunk_size_mb = 5\n")
    return path


def s3cmd(conf, *args, check=True, timeout=300):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    p = subprocess.run([S3CMD, "--config", str(conf), "--no-progress"] + [str(a) for a in args],
                       capture_output=True, timeout=timeout, env=env, text=True)
    if check:
        assert p.returncode == 0, f"s3cmd {args}: rc {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


@pytest.fixture(params=["file", "s3"])
def sm(request, make_worker, tmp_path):
    """A keyed worker with mount "data" on a directory or on s3rver, and an
    s3cmd config for it."""
    if not S3CMD:
        pytest.skip("no s3cmd (scripts/install-deps.sh installs it)")
    m = make_mounted(request.param, make_worker, tmp_path,
                     lambda: request.getfixturevalue("s3rver"), args=KEYED)
    m.conf = s3cmd_conf(tmp_path / "s3cmd.cfg", m.worker.s3_url)
    return m


def puts(m):
    mx = m.worker.metrics()
    return sum(mx.get(("ferry_s3_requests_total", frozenset({("op", op)})), 0)
               for op in ("PutObject", "UploadPart", "CreateMultipartUpload", "CompleteMultipartUpload"))


def test_s3cmd_put_get_ls_del(sm, tmp_path):
    small, big = b"small s3cmd object\n", rand_bytes(12 * MiB + 5, 51)
    (tmp_path / "small.txt").write_bytes(small)
    (tmp_path / "big.bin").write_bytes(big)
    s3cmd(sm.conf, "put", tmp_path / "small.txt", "s3://data/sc/small.txt")
    before = sm.worker.metric("ferry_s3_requests_total", op="UploadPart") or 0
    s3cmd(sm.conf, "put", "--multipart-chunk-size-mb=5", tmp_path / "big.bin", "s3://data/sc/big.bin")
    assert sm.worker.metric("ferry_s3_requests_total", op="UploadPart") - before == 3
    assert src_get(sm, "sc/small.txt") == small
    assert src_get(sm, "sc/big.bin") == big
    for name, b in (("small.txt", small), ("big.bin", big)):
        out = tmp_path / f"got-{name}"
        p = s3cmd(sm.conf, "get", f"s3://data/sc/{name}", out)
        assert out.read_bytes() == b, name
        assert "WARNING" not in p.stderr, p.stderr  # e.g. an MD5 that does not match
    ls = s3cmd(sm.conf, "ls", "s3://data/sc/").stdout
    assert "s3://data/sc/small.txt" in ls and "s3://data/sc/big.bin" in ls, ls
    assert f" {len(big)} " in ls, ls
    errs = {k: v for k, v in sm.worker.metrics().items() if k[0] == "ferry_s3_errors_total" and v}
    assert not errs, errs  # no request of put, get or ls was refused
    # s3cmd keeps the file's MD5 in x-amz-meta-s3cmd-attrs: a multipart
    # ETag is no MD5, so `info` (and sync) read it back from there.
    info = s3cmd(sm.conf, "info", "s3://data/sc/big.bin").stdout
    assert hashlib.md5(big).hexdigest() in info, info
    s3cmd(sm.conf, "del", "s3://data/sc/small.txt")
    assert src_get(sm, "sc/small.txt") is None
    ls = s3cmd(sm.conf, "ls", "s3://data/sc/").stdout
    assert "small.txt" not in ls and "s3://data/sc/big.bin" in ls, ls
    before = sm.worker.metric("ferry_s3_requests_total", op="DeleteObjects") or 0
    s3cmd(sm.conf, "del", "--recursive", "--force", "s3://data/sc/")  # POST ?delete
    assert sm.worker.metric("ferry_s3_requests_total", op="DeleteObjects") - before == 1
    assert src_get(sm, "sc/big.bin") is None
    assert "s3://data/sc/" not in s3cmd(sm.conf, "ls", "--recursive", "s3://data/").stdout


def test_s3cmd_sync(sm, tmp_path):
    files = tree_files()
    make_src(tmp_path / "src", files)
    s3cmd(sm.conf, "sync", "--multipart-chunk-size-mb=5", f"{tmp_path / 'src'}/", "s3://data/synced/")
    for rel, b in files.items():
        assert src_get(sm, "synced/" + rel) == b, rel
    # A second sync uploads nothing; a changed file goes up again, alone.
    before = puts(sm)
    p = s3cmd(sm.conf, "sync", "--multipart-chunk-size-mb=5", f"{tmp_path / 'src'}/", "s3://data/synced/")
    assert puts(sm) == before, p.stdout
    assert "upload:" not in p.stdout, p.stdout
    (tmp_path / "src" / "a.txt").write_bytes(b"changed, and longer")
    p = s3cmd(sm.conf, "sync", f"{tmp_path / 'src'}/", "s3://data/synced/")
    assert "a.txt" in p.stdout and "b.bin" not in p.stdout, p.stdout
    assert puts(sm) == before + 1, p.stdout
    assert src_get(sm, "synced/a.txt") == b"changed, and longer"
    # And back down: a sync into an empty directory gets every byte.
    s3cmd(sm.conf, "sync", "s3://data/synced/", f"{tmp_path / 'down'}/")
    for rel, b in dict(files, **{"a.txt": b"changed, and longer"}).items():
        assert (tmp_path / "down" / rel).read_bytes() == b, rel
    # A file gone from the source goes from the bucket too.
    (tmp_path / "src" / "d" / "e" / "c.bin").unlink()
    p = s3cmd(sm.conf, "sync", "--delete-removed", f"{tmp_path / 'src'}/", "s3://data/synced/")
    assert "delete: 's3://data/synced/d/e/c.bin'" in p.stdout, p.stdout
    assert src_get(sm, "synced/d/e/c.bin") is None
    assert src_get(sm, "synced/d/b.bin") == files["d/b.bin"]


def test_s3cmd_wrong_secret_is_refused(sm, tmp_path):
    (tmp_path / "x.txt").write_bytes(b"x")
    bad = s3cmd_conf(tmp_path / "bad.cfg", sm.worker.s3_url, sk="not-the-secret")
    for args in (("put", tmp_path / "x.txt", "s3://data/denied.txt"), ("ls", "s3://data/")):
        p = s3cmd(bad, *args, check=False, timeout=120)
        assert p.returncode != 0, (args, p.stdout, p.stderr)
        assert "SignatureDoesNotMatch" in p.stderr or "AccessDenied" in p.stderr, (args, p.stderr)
    assert src_get(sm, "denied.txt") is None


def test_s3cmd_ls_pages_with_markers(make_worker, data_dir, tmp_path):
    """More keys than one page (1,000): s3cmd asks ListObjects v1 again
    with marker= the NextMarker (with a delimiter) or its last key (without
    one), and lists every key once.  (A directory only: 1,000 objects in
    s3rver cost more than they show.)"""
    if not S3CMD:
        pytest.skip("no s3cmd (scripts/install-deps.sh installs it)")
    names = [f"many/f{i:04d}" for i in range(1003)] + [f"many/d{i}/x" for i in range(3)]
    for n in names:
        (data_dir / n).parent.mkdir(parents=True, exist_ok=True)
        (data_dir / n).write_bytes(n.encode())
    w = make_worker(mounts={"data": data_dir}, args=KEYED)
    conf = s3cmd_conf(tmp_path / "s3cmd.cfg", w.s3_url)
    before = w.metric("ferry_s3_requests_total", op="ListObjects") or 0
    out = s3cmd(conf, "ls", "--recursive", "s3://data/many/").stdout
    got = [l.split()[-1] for l in out.splitlines() if l.strip()]
    assert sorted(got) == sorted("s3://data/" + n for n in names), out[-2000:]
    assert w.metric("ferry_s3_requests_total", op="ListObjects") - before == 2
    out = s3cmd(conf, "ls", "s3://data/many/").stdout
    got = [l.split()[-1] for l in out.splitlines() if l.strip()]
    want = [f"s3://data/many/f{i:04d}" for i in range(1003)] + [f"s3://data/many/d{i}/" for i in range(3)]
    assert sorted(got) == sorted(want), out[-2000:]
    assert w.metric("ferry_s3_requests_total", op="ListObjects") - before == 4


def test_s3cmd_keys_with_characters_to_escape(sm, tmp_path):
    """s3cmd escapes a key in the URL its own way (and signs that); every
    key goes up, lists, comes down and goes under its own name."""
    names = ["dir with space/\u00fc+x&y=z.txt", "a~b!c'(d)*e.txt", "pct%41.txt",
             "semi;colon,comma@at$.txt", "[br]{ce}^`|.txt"]
    for i, n in enumerate(names):
        (tmp_path / f"src{i}").write_bytes(n.encode())
        s3cmd(sm.conf, "put", tmp_path / f"src{i}", "s3://data/k/" + n)
        assert src_get(sm, "k/" + n) == n.encode(), n
    out = s3cmd(sm.conf, "ls", "--recursive", "s3://data/k/").stdout
    got = sorted(l.split("s3://data/k/", 1)[1] for l in out.splitlines() if "s3://" in l)
    assert got == sorted(names), out
    s3cmd(sm.conf, "sync", "s3://data/k/", f"{tmp_path / 'down'}/")
    for n in names:
        assert (tmp_path / "down" / n).read_bytes() == n.encode(), n
    s3cmd(sm.conf, "del", "--recursive", "--force", "s3://data/k/")
    # (s3rver answers a GET of a gone non-ASCII key with a bare 404, not
    # NoSuchKey, even from boto3 directly: its listing says what is left.)
    if sm.kind == "file":
        left = [p for p in (sm.data_dir / "k").rglob("*") if p.is_file()]
    else:
        left = sm.s3rver.client.list_objects_v2(Bucket=sm.src_bucket, Prefix=sm.prefix + "k/").get("Contents", [])
    assert not left, left


def test_s3cmd_stdin_cp_mv(sm, tmp_path):
    """`s3cmd put -` reads stdin into multipart parts of unknown count (12
    MiB: 5 + 5 + 2; exactly 10 MiB: two parts, then EOF), `cp` and `mv` are
    server-side copies; each byte-exact in the under-store.  An empty
    stdin completes an upload of no parts, which S3 refuses (MalformedXML;
    s3tools/s3cmd#465), and so does ferry: nothing lands."""
    for name, data in (("big", rand_bytes(12 * MiB + 3, 61)), ("exact", rand_bytes(10 * MiB, 62)),
                       ("small", b"tiny")):
        p = subprocess.run([S3CMD, "--config", str(sm.conf), "--no-progress", "put", "-",
                            f"s3://data/in/{name}.bin"], input=data, capture_output=True, timeout=300)
        assert p.returncode == 0, p.stderr
        assert src_get(sm, f"in/{name}.bin") == data, name
    p = subprocess.run([S3CMD, "--config", str(sm.conf), "put", "-", "s3://data/in/empty.bin"],
                       input=b"", capture_output=True, timeout=120, text=False)
    assert p.returncode != 0 and b"MalformedXML" in p.stderr, p.stderr
    assert src_get(sm, "in/empty.bin") is None
    big = src_get(sm, "in/big.bin")
    s3cmd(sm.conf, "cp", "s3://data/in/big.bin", "s3://data/in/cp.bin")
    assert src_get(sm, "in/cp.bin") == big
    s3cmd(sm.conf, "mv", "s3://data/in/cp.bin", "s3://data/in/mv.bin")
    assert src_get(sm, "in/mv.bin") == big and src_get(sm, "in/cp.bin") is None
    # What ferry does not do, it says: a bucket is a mount, and no ACLs.
    p = s3cmd(sm.conf, "mb", "s3://newbucket", check=False)
    assert p.returncode != 0 and "ferry mount" in p.stderr, p.stderr
    p = s3cmd(sm.conf, "setacl", "--acl-public", "s3://data/in/mv.bin", check=False)
    assert p.returncode != 0 and "NotImplemented" in p.stderr, p.stderr


def test_s3cmd_signature_v2(make_worker, data_dir, tmp_path):
    """s3cmd with signature_v2 = True signs every request with SigV2
    (also the multipart ones and ?delete): the same work, the same bytes,
    and a wrong secret is refused all the same."""
    if not S3CMD:
        pytest.skip("no s3cmd (scripts/install-deps.sh installs it)")
    w = make_worker(mounts={"data": data_dir}, args=KEYED)
    conf = s3cmd_conf(tmp_path / "v2.cfg", w.s3_url, v2=True)
    big, odd = rand_bytes(12 * MiB + 1, 71), "sp ace+\u00fc.txt"
    (tmp_path / "big.bin").write_bytes(big)
    (tmp_path / "odd").write_bytes(b"odd")
    s3cmd(conf, "put", tmp_path / "big.bin", "s3://data/v2/big.bin")
    s3cmd(conf, "put", tmp_path / "odd", "s3://data/v2/" + odd)
    assert (data_dir / "v2" / "big.bin").read_bytes() == big
    assert (data_dir / "v2" / odd).read_bytes() == b"odd"
    assert w.metric("ferry_s3_requests_total", op="UploadPart") == 3
    s3cmd(conf, "get", "s3://data/v2/big.bin", tmp_path / "got")
    assert (tmp_path / "got").read_bytes() == big
    out = s3cmd(conf, "ls", "s3://data/v2/").stdout
    assert "s3://data/v2/big.bin" in out and "s3://data/v2/" + odd in out, out
    s3cmd(conf, "del", "--recursive", "--force", "s3://data/v2/")
    assert not [p for p in (data_dir / "v2").rglob("*") if p.is_file()]
    bad = s3cmd_conf(tmp_path / "bad.cfg", w.s3_url, sk="not-the-secret", v2=True)
    p = s3cmd(bad, "put", tmp_path / "odd", "s3://data/v2/denied", check=False)
    assert p.returncode != 0 and "SignatureDoesNotMatch" in p.stderr, p.stderr
    assert not (data_dir / "v2" / "denied").exists()
