"""Who may call the control API (docs/control-api.md, "Access").

Regression for the review's finding: with S3 keys and a control token, a
client the S3 gateway refuses with 403 read the same bytes from
GET /v1/data on the control port.  Now nothing is readable on the control
port that the gateway would refuse; libferry and the CLI authenticate with
the control token or the S3 keys; peers and FUSE with the token."""
import os
import subprocess

import pytest

from conftest import FERRY, s3_error_code

AK, SK = "AKIDCONTROLTEST", "control-secret-key-0123"
TOK = "control-token-0123456789"
DATA_CALLS = [("GET", "/v1/data", {"path": "/data/f.bin"}), ("GET", "/v1/stat", {"path": "/data/f.bin"}),
              ("GET", "/v1/list", {"path": "/data"}), ("GET", "/v1/stats", None),
              ("GET", "/v1/mounts", None), ("GET", "/v1/cluster", None), ("GET", "/v1/local", None),
              ("HEAD", "/v1/data", {"path": "/data/f.bin"})]
SECRET = b"private bytes of a private bucket\n" * 100


@pytest.fixture
def tree(data_dir):
    (data_dir / "f.bin").write_bytes(SECRET)
    return data_dir


def cli(w, *args, env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    e.update(env or {})
    return subprocess.run([str(FERRY), "--worker", w.ctl_addr, *args], capture_output=True,
                          timeout=60, env=e)


def assert_refused(w, bad_headers=({},)):
    for hdrs in bad_headers:
        for method, path, params in DATA_CALLS:
            r = w.ctl(method, path, auth=False, params=params, headers=hdrs)
            assert r.status_code == 401, (method, path, hdrs, r.status_code)
            assert SECRET[:20] not in r.content
        r = w.ctl("POST", "/v1/mounts", auth=False, headers=hdrs,
                  json={"name": "etc", "uri": "file:///etc", "options": {}})
        assert r.status_code == 401, hdrs
        r = w.ctl("DELETE", "/v1/mounts/data", auth=False, headers=hdrs)
        assert r.status_code == 401, hdrs
    # Public: health and metrics (no object data in them).
    assert w.ctl("GET", "/healthz", auth=False).status_code == 200
    assert w.ctl("GET", "/metrics", auth=False).status_code == 200


def test_control_data_needs_what_the_gateway_needs(make_worker, tree):
    """The finding, as reported: S3 keys and a control token."""
    w = make_worker(mounts={"data": tree}, args=["--s3-access-key", AK, "--s3-secret-key", SK,
                                                  "--control-token", TOK])
    # The gateway refuses an unsigned client...
    import requests
    r = requests.get(f"{w.s3_url}/data/f.bin", timeout=10)
    assert r.status_code == 403 and s3_error_code(r.content) == "AccessDenied"
    # ...and so does the control port, for every call but health/metrics.
    assert_refused(w, ({}, {"Authorization": "Bearer wrong-token-0123456789"},
                       {"Authorization": f"Bearer {TOK}x"}, {"Authorization": f"Bearer {TOK[:-1]}"},
                       {"Authorization": TOK}))
    # The token opens it; so does a SigV4 signature by the S3 keys.
    r = w.ctl("GET", "/v1/data", params={"path": "/data/f.bin"})
    assert r.status_code == 200 and r.content == SECRET
    from conftest import sign_sigv4
    req = requests.Request("GET", w.ctl_url + "/v1/data", params={"path": "/data/f.bin"}).prepare()
    sign_sigv4(req, AK, SK)
    with requests.Session() as s:
        assert s.send(req, timeout=10).content == SECRET
    req = requests.Request("GET", w.ctl_url + "/v1/data", params={"path": "/data/f.bin"}).prepare()
    sign_sigv4(req, AK, "not-the-secret")
    with requests.Session() as s:
        r = s.send(req, timeout=10)
    assert r.status_code == 401 and "signature" in r.json()["error"]
    # The CLI (libferry): refused without credentials, with the reason;
    # served with the token, or with the S3 keys in the environment.
    p = cli(w, "cat", "/data/f.bin")
    assert p.returncode != 0 and SECRET[:20] not in p.stdout
    assert cli(w, "cat", "/data/f.bin", env={"FERRY_TOKEN": TOK}).stdout == SECRET
    assert cli(w, "cat", "/data/f.bin", env={"FERRY_S3_ACCESS_KEY": AK,
                                             "FERRY_S3_SECRET_KEY": SK}).stdout == SECRET
    p = cli(w, "cat", "/data/f.bin", env={"FERRY_S3_ACCESS_KEY": AK, "FERRY_S3_SECRET_KEY": "wrong"})
    assert p.returncode != 0 and SECRET[:20] not in p.stdout


def test_keys_only_worker_control_port_signed(make_worker, tree):
    """S3 keys, no token: the control port takes SigV4 by those keys."""
    w = make_worker(mounts={"data": tree}, args=["--s3-access-key", AK, "--s3-secret-key", SK])
    assert_refused(w)
    assert w.ctl("GET", "/v1/data", params={"path": "/data/f.bin"}).content == SECRET
    env = {"FERRY_S3_ACCESS_KEY": AK, "FERRY_S3_SECRET_KEY": SK}
    assert cli(w, "cat", "/data/f.bin", env=env).stdout == SECRET
    p = cli(w, "mount", "/o", f"file://{tree}", env=env)
    assert p.returncode == 0, p.stderr
    assert cli(w, "unmount", "/o", env=env).returncode == 0


def test_token_only_worker(make_worker, tree):
    w = make_worker(mounts={"data": tree}, args=["--control-token", TOK])
    assert_refused(w)
    assert cli(w, "cat", "/data/f.bin", env={"FERRY_TOKEN": TOK}).stdout == SECRET


def test_anonymous_gateway_reads_open_admin_closed(make_worker, tree):
    """--s3-anonymous, no token: the gateway serves anyone, so data calls on
    the control port are open too; changing the mount table is not."""
    w = make_worker(mounts={"data": tree}, args=["--s3-access-key", AK, "--s3-secret-key", SK,
                                                  "--s3-anonymous"])
    r = w.ctl("GET", "/v1/data", auth=False, params={"path": "/data/f.bin"})
    assert r.status_code == 200 and r.content == SECRET
    r = w.ctl("POST", "/v1/mounts", auth=False, json={"name": "etc", "uri": "file:///etc", "options": {}})
    assert r.status_code == 401
    assert w.ctl("POST", "/v1/mounts", json={"name": "o", "uri": f"file://{tree}", "options": {}}).status_code == 200


def test_open_loopback_worker_unchanged(make_worker, tree):
    """No keys, no token (loopback only): nothing is checked, as before."""
    w = make_worker(mounts={"data": tree})
    assert w.ctl("GET", "/v1/data", auth=False, params={"path": "/data/f.bin"}).content == SECRET
    assert cli(w, "cat", "/data/f.bin").stdout == SECRET
