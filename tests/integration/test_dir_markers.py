"""Directory markers: zero-byte objects whose key ends in '/', which the S3
console, s3fs-fuse and Spark create for folders.  One rule for both kinds
of under-store, so that list, HEAD and GET agree: a key ending in '/' is an
object like any other (an s3:// store's markers are listed, HEAD and GET
answer them), and an empty directory of a file:// store *is* such a marker
("dir/", zero bytes), while a directory with anything in it is only a
prefix.  The same tree therefore looks the same through either kind.  The
control API, `ferry fuse`, s3fs-fuse and the aws cli see each directory
once, never a nameless or doubled entry."""
import os
import shutil
import signal
import subprocess
import time

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import http_get, make_mounted, s3_error_code, wait_for
from test_fuse import FUSERMOUNT, fuse_mount, mounted_at  # noqa: F401 (a fixture)

EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"


def make_empty_dir(m, name):
    """An empty folder: a directory (file://) or a marker object (s3://)."""
    if m.kind == "file":
        (m.data_dir / name).mkdir(parents=True)
    else:
        m.put(name + "/", b"")


@pytest.fixture(params=["file", "s3"])
def tree(request, make_worker, tmp_path):
    m = make_mounted(request.param, make_worker, tmp_path,
                     lambda: request.getfixturevalue("s3rver"),
                     args=["--sync-interval", "500ms"])
    m.put("top", b"t")
    m.put("full/x", b"xx")
    make_empty_dir(m, "empty")
    make_empty_dir(m, "full/sub")
    return m


def keys_of(r):
    return [c["Key"] for c in r.get("Contents", [])]


def cps_of(r):
    return [c["Prefix"] for c in r.get("CommonPrefixes", [])]


def code(ei):
    return ei.value.response["Error"]["Code"]


def test_listings_show_markers(tree):
    s3 = tree.worker.s3()
    r = s3.list_objects_v2(Bucket="data")
    assert keys_of(r) == ["empty/", "full/sub/", "full/x", "top"]
    sizes = {c["Key"]: c["Size"] for c in r["Contents"]}
    assert sizes["empty/"] == 0 and sizes["full/sub/"] == 0 and sizes["full/x"] == 2
    r = s3.list_objects_v2(Bucket="data", Delimiter="/")
    assert (keys_of(r), cps_of(r)) == (["top"], ["empty/", "full/"])
    # A marker equal to the prefix is one of its keys, as on S3.
    r = s3.list_objects_v2(Bucket="data", Prefix="empty/", Delimiter="/")
    assert (keys_of(r), cps_of(r)) == (["empty/"], [])
    r = s3.list_objects_v2(Bucket="data", Prefix="full/", Delimiter="/")
    assert (keys_of(r), cps_of(r)) == (["full/x"], ["full/sub/"])
    r = s3.list_objects_v2(Bucket="data", Prefix="full/sub/")
    assert keys_of(r) == ["full/sub/"]
    r = s3.list_objects(Bucket="data", Prefix="full/", Delimiter="/")
    assert (keys_of(r), cps_of(r)) == (["full/x"], ["full/sub/"])
    # Page by page, with a marker at a page boundary.
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="data", PaginationConfig={"PageSize": 1})
    assert [k for p in pages for k in keys_of(p)] == ["empty/", "full/sub/", "full/x", "top"]


def test_head_and_get_agree_with_the_listing(tree):
    s3 = tree.worker.s3()
    listed = {c["Key"]: c for c in s3.list_objects_v2(Bucket="data")["Contents"]}
    for key in ("empty/", "full/sub/"):
        h = s3.head_object(Bucket="data", Key=key)
        assert h["ContentLength"] == 0
        assert h["ETag"] == listed[key]["ETag"]
        g = s3.get_object(Bucket="data", Key=key)
        assert g["Body"].read() == b""
        assert g["ETag"] == h["ETag"]
        if tree.kind == "s3":
            assert h["ETag"] == f'"{EMPTY_MD5}"'
        r = requests.get(f"{tree.worker.s3_url}/data/{key}", timeout=10)
        assert r.status_code == 200 and r.content == b"" and r.headers["Content-Length"] == "0"
    # A prefix that is no object, a directory's own name, a missing
    # marker: 404 NoSuchKey, as on S3.
    for key in ("full/", "full", "empty", "nothing/", "top/"):
        with pytest.raises(ClientError) as ei:
            s3.head_object(Bucket="data", Key=key)
        assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404, key
        with pytest.raises(ClientError) as ei:
            s3.get_object(Bucket="data", Key=key)
        assert code(ei) == "NoSuchKey", key
    # Traversal stays refused with a trailing '/' (http.client: no
    # normalisation of the path on the way).
    for target in ("/data/../", "/data/full//", "/data/./", "/data/full/../"):
        status, _, body = http_get(tree.worker.s3_url + target)
        assert status == 400 and s3_error_code(body) == "InvalidArgument", target


def test_file_marker_goes_when_the_directory_fills(make_worker, data_dir):
    (data_dir / "later").mkdir()
    w = make_worker(mounts={"data": data_dir}, args=["--sync-interval", "300ms"])
    s3 = w.s3()
    assert s3.head_object(Bucket="data", Key="later/")["ContentLength"] == 0
    assert keys_of(s3.list_objects_v2(Bucket="data")) == ["later/"]
    (data_dir / "later" / "f").write_bytes(b"f")
    time.sleep(0.7)
    assert keys_of(s3.list_objects_v2(Bucket="data")) == ["later/f"]
    with pytest.raises(ClientError) as ei:
        s3.get_object(Bucket="data", Key="later/")
    assert code(ei) == "NoSuchKey"
    # Nothing listable in it (a FIFO, a name with a control character):
    # empty again.
    os.unlink(data_dir / "later" / "f")
    os.mkfifo(data_dir / "later" / "fifo")
    (data_dir / "later" / "ctl\x01").write_bytes(b"c")
    time.sleep(0.7)
    assert keys_of(s3.list_objects_v2(Bucket="data")) == ["later/"]
    assert s3.get_object(Bucket="data", Key="later/")["Body"].read() == b""


def test_s3_marker_over_keys(make_worker, tmp_path, s3rver):
    """A console-made "full/" over keys: a key of its own, listed first
    under its prefix, while "full/" stays a common prefix at the top."""
    m = make_mounted("s3", make_worker, tmp_path, lambda: s3rver)
    m.put("full/", b"")
    m.put("full/x", b"xx")
    s3 = m.worker.s3()
    assert keys_of(s3.list_objects_v2(Bucket="data")) == ["full/", "full/x"]
    r = s3.list_objects_v2(Bucket="data", Delimiter="/")
    assert (keys_of(r), cps_of(r)) == ([], ["full/"])
    r = s3.list_objects_v2(Bucket="data", Prefix="full/", Delimiter="/")
    assert keys_of(r) == ["full/", "full/x"]
    assert s3.head_object(Bucket="data", Key="full/")["ContentLength"] == 0
    # The control API lists the directory once, without its own marker.
    assert [e["name"] for e in m.worker.ctl("GET", "/v1/list", params={"path": "/data"}).json()["entries"]] \
        == ["full"]
    assert [e["name"] for e in m.worker.ctl("GET", "/v1/list", params={"path": "/data/full"}).json()["entries"]] \
        == ["x"]


def names(w, path, **params):
    r = w.ctl("GET", "/v1/list", params=dict(path=path, **params))
    assert r.status_code == 200, r.text
    return r.json()


def test_control_api_sees_directories(tree):
    w = tree.worker
    top = names(w, "/data")
    assert [(e["name"], e["is_dir"]) for e in top["entries"]] == [
        ("empty", True), ("full", True), ("top", False)]
    assert names(w, "/data/empty")["entries"] == []
    assert [(e["name"], e["is_dir"]) for e in names(w, "/data/full")["entries"]] == [
        ("sub", True), ("x", False)]
    assert names(w, "/data/full/sub")["entries"] == []
    # One entry a page: the marker never takes a page of its own.
    seen, after = [], ""
    for _ in range(10):
        page = names(w, "/data/full", max="1", start_after=after)
        seen += [e["name"] for e in page["entries"]]
        if not page["truncated"]:
            break
        after = page["next"]
    assert seen == ["sub", "x"]
    for p in ("/data/empty", "/data/full/sub"):
        st = w.stat(p)
        assert st["is_dir"] is True, p


FUSE_OK = os.path.exists("/dev/fuse") and FUSERMOUNT is not None


@pytest.mark.skipif(not FUSE_OK, reason="FUSE unavailable")
def test_fuse_sees_each_directory_once(tree, fuse_mount):
    if tree.kind == "s3":
        tree.put("full/", b"")  # a marker over keys, too
    m = fuse_mount(tree.worker)
    root = m.mnt / "data"
    assert sorted(os.listdir(root)) == ["empty", "full", "top"]
    assert sorted(os.listdir(root / "full")) == ["sub", "x"]
    assert os.listdir(root / "empty") == []
    assert os.listdir(root / "full" / "sub") == []
    assert os.path.isdir(root / "empty") and os.path.isdir(root / "full" / "sub")
    out = subprocess.run(["find", str(root)], capture_output=True, timeout=30, text=True)
    assert out.returncode == 0, out.stderr
    found = sorted(os.path.relpath(p, root) for p in out.stdout.split("\n") if p)
    assert found == [".", "empty", "full", "full/sub", "full/x", "top"]
    assert (root / "full" / "x").read_bytes() == b"xx"


S3FS = shutil.which("s3fs")


@pytest.mark.skipif(not (S3FS and FUSE_OK), reason="needs s3fs and FUSE")
def test_s3fs_find_walks_the_tree(tree, tmp_path):
    """s3fs-fuse over the gateway: `find` walks every folder, the empty
    ones included (it asks HEAD "dir/" of each common prefix)."""
    w = tree.worker
    mnt = tmp_path / "s3fs"
    mnt.mkdir()
    pw = tmp_path / "passwd"
    pw.write_text("AKID:SECRET\n")
    pw.chmod(0o600)
    log = open(tmp_path / "s3fs.log", "wb")
    p = subprocess.Popen([S3FS, "data", str(mnt), "-f", "-o", f"url={w.s3_url}", "-o", "use_path_request_style",
                          "-o", f"passwd_file={pw}", "-o", "ro", "-o", "stat_cache_expire=1"],
                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: mounted_at(mnt), 15, what="s3fs to mount")
        out = subprocess.run(["find", str(mnt)], capture_output=True, timeout=60, text=True)
        assert out.returncode == 0, out.stderr
        found = sorted(os.path.relpath(x, mnt) for x in out.stdout.split("\n") if x)
        assert found == [".", "empty", "full", "full/sub", "full/x", "top"]
        assert os.path.isdir(mnt / "empty") and os.listdir(mnt / "empty") == []
        assert (mnt / "full" / "x").read_bytes() == b"xx"
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


def test_aws_cli_copies_the_tree(tree, tmp_path):
    """`aws s3 cp --recursive` (and sync) take the markers as folders."""
    if not os.path.exists("/usr/bin/aws"):
        pytest.skip("no /usr/bin/aws")
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true", AWS_PAGER="")
    for verb in ("cp", "sync"):
        dst = tmp_path / verb
        args = ["/usr/bin/aws", "--endpoint-url", tree.worker.s3_url, "s3", verb, "s3://data/", str(dst)]
        if verb == "cp":
            args.append("--recursive")
        p = subprocess.run(args, capture_output=True, timeout=120, env=env)
        assert p.returncode == 0, (verb, p.stdout, p.stderr)
        assert (dst / "top").read_bytes() == b"t"
        assert (dst / "full" / "x").read_bytes() == b"xx"
        assert not (dst / "empty").is_file()
