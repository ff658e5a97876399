"""The first hour of a new user with the CLI: errors that say their cause
(the worker's and the under-store's own words, the control token apart from
the under-store's refusal, the S3 port taken for the control API), mounts
checked when they are made, "did you mean", --version, --json, directory
mtimes in `ls -l`, the man page and bash completion generated from the
tables --help prints, the example config file, and `make run`'s ports."""
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import threading
from pathlib import Path

import pytest
import requests

from conftest import FERRY, ROOT, free_port, wait_for


def run(*args, env=None, timeout=60, input=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([str(FERRY)] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=timeout, env=e, input=input)


def err_line(p, rc=1):
    """The one line of stderr of a failed command."""
    assert p.returncode == rc, (p.returncode, p.stdout, p.stderr)
    err = p.stderr.decode() if isinstance(p.stderr, bytes) else p.stderr
    lines = err.strip().splitlines()
    assert len(lines) == 1, p.stderr
    return lines[0]


@pytest.fixture
def w(make_worker, data_dir):
    (data_dir / "dir").mkdir()
    (data_dir / "dir" / "a.txt").write_bytes(b"aaa")
    (data_dir / "f.bin").write_bytes(b"x" * 100)
    os.utime(data_dir / "dir", (1_700_000_000, 1_700_000_000))
    return make_worker(mounts={"data": data_dir})


# --- 13: the cause reaches the user ------------------------------------------

def test_mount_errors_say_which_cause(w, tmp_path):
    missing = tmp_path / "no-such-dir"
    p = w.cli("mount", "/x", f"file://{missing}", check=False)
    assert err_line(p) == (f"ferry: mount: /x: file: cannot open root directory '{missing}': "
                           "No such file or directory")
    p = w.cli("mount", "/x", "ftp://example/x", check=False)
    assert err_line(p) == ("ferry: mount: /x: unsupported URI scheme 'ftp' in 'ftp://example/x' "
                           "(use file:///path or s3://bucket/prefix)")
    p = w.cli("mount", "/x", "s3://bucket", "-o", "s3.regoin=us-east-1", check=False)
    assert err_line(p) == ("ferry: mount: /x: s3: unknown option 's3.regoin' "
                           "(did you mean 's3.region'?)")
    p = w.cli("mount", "/x", "s3://bucket", "-o", "colour=blue", check=False)
    assert err_line(p) == "ferry: mount: /x: s3: unknown option 'colour' (see `ferry mount --help`)"
    assert "/x" not in w.cli("mounts").stdout.decode()


class RefusingS3(http.server.BaseHTTPRequestHandler):
    """An S3 store that refuses everything, as one does with the wrong keys."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def refuse(self):
        body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
                b'<Message>Access Denied</Message></Error>')
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = refuse


@pytest.fixture
def refusing_s3():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RefusingS3)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()
    t.join(10)


def test_control_token_and_under_store_refusal_are_told_apart(make_worker, data_dir, refusing_s3):
    tok = "tok-0123456789"
    w = make_worker(mounts={"data": data_dir}, args=["--control-token", tok])
    opts = ["-o", f"s3.endpoint={refusing_s3}", "-o", "s3.access_key=AK", "-o", "s3.secret_key=SK",
            "-o", "s3.retries=0"]
    # No token: the worker's reason, and how to give one.
    p = w.cli("mount", "/deny", "s3://bkt/p", *opts, check=False)
    assert err_line(p) == ("ferry: mount: /deny: this call needs the control token "
                           "(Authorization: Bearer <token>); give it with --token or $FERRY_TOKEN")
    # The token, but the store refuses the keys: its answer, at mount time.
    p = w.cli("--token", tok, "mount", "/deny", "s3://bkt/p", *opts, check=False)
    assert err_line(p) == ("ferry: mount: /deny: s3://bkt: AccessDenied: Access Denied (HTTP 403)")
    # Mounted unchecked, the refusal shows at the first read, in the
    # store's words, and is not taken for the token.
    w.cli("--token", tok, "mount", "/deny", "s3://bkt/p", *opts, "--no-check")
    p = w.cli("--token", tok, "ls", "/deny", check=False)
    assert err_line(p) == "ferry: ls: /deny: s3://bkt: AccessDenied: Access Denied (HTTP 403)"
    p = w.cli("--token", tok, "stat", "/deny/k.bin", check=False)
    assert err_line(p) == "ferry: stat: /deny/k.bin: s3://bkt/p/k.bin: HTTP 403"
    r = w.ctl("GET", "/v1/stat", params={"path": "/deny/k.bin"})
    assert r.status_code == 403 and r.json()["code"] == "AccessDenied"


def test_under_store_failure_reason_reaches_the_cli(w):
    port = free_port()  # nothing listens there
    w.cli("mount", "/dead", "s3://bkt/p", "-o", f"s3.endpoint=http://127.0.0.1:{port}",
          "-o", "s3.retries=0", "--no-check")
    p = w.cli("ls", "/dead", check=False)
    line = err_line(p)
    assert line.startswith(f"ferry: ls: /dead: s3://bkt: Failed to connect to 127.0.0.1 port {port}"), line
    assert line.endswith("(1 attempt)"), line
    assert "I/O error" not in line
    p = w.cli("cat", "/dead/a/b.bin", check=False)
    assert err_line(p).startswith(f"ferry: cat: /dead/a/b.bin: s3://bkt/p/a/b.bin: Failed to connect")
    # The control API's JSON has it too, for any client.
    r = w.ctl("GET", "/v1/list", params={"path": "/dead"})
    assert r.status_code == 502 and "Failed to connect" in r.json()["error"]


def test_the_s3_port_is_not_the_control_api(w):
    s3 = f"{w.s3_host}:{w.s3_port}"
    want = f"{s3} is not a ferry control API (is it the S3 port?)"
    for args in (("ls", "/"), ("stat", "/data/f.bin"), ("mounts",), ("stats",),
                 ("mount", "/x", "file:///tmp"), ("cat", "/data/f.bin")):
        p = run("--worker", s3, *args)
        assert err_line(p) == f"ferry: {args[0]}: {want}", args
    # Nothing was mounted through the gateway either.
    assert "/x" not in w.cli("mounts").stdout.decode()


def test_a_missing_file_is_named_once(w):
    p = w.cli("stat", "/data/nope", check=False)
    assert err_line(p) == "ferry: stat: /data/nope: No such file or directory"
    p = w.cli("ls", "/nomount", check=False)
    assert err_line(p) == "ferry: ls: /nomount: no such mount"


# --- 14: a mount is checked when it is made -----------------------------------

def test_mount_of_a_bucket_that_does_not_exist_is_refused(w, s3rver):
    opts = []
    for k, v in s3rver.mount_options(**{"s3.retries": "0"}).items():
        opts += ["-o", f"{k}={v}"]
    p = w.cli("mount", "/nb", "s3://nosuch-bucket-4d1c/pfx", *opts, check=False)
    assert err_line(p) == ("ferry: mount: /nb: s3://nosuch-bucket-4d1c: NoSuchBucket: "
                           "The specified bucket does not exist (HTTP 404)")
    assert "/nb" not in w.cli("mounts").stdout.decode()
    # The API says the same to any client, with its own code.
    r = w.ctl("POST", "/v1/mounts", json={"name": "nb", "uri": "s3://nosuch-bucket-4d1c",
                                          "options": s3rver.mount_options()})
    assert r.status_code == 502 and r.json()["code"] == "MountCheckFailed"
    assert "NoSuchBucket" in r.json()["error"]
    # An existing bucket, empty or not, passes.
    bucket = s3rver.new_bucket()
    w.cli("mount", "/empty", f"s3://{bucket}/nothing-here", *opts)
    assert w.cli("ls", "/empty").stdout == b""


def test_mount_of_a_host_that_does_not_resolve_is_refused(w):
    opts = ["-o", "s3.endpoint=http://nosuch-host.invalid:9000", "-o", "s3.retries=0"]
    p = w.cli("mount", "/nh", "s3://bkt", *opts, check=False)
    line = err_line(p)
    assert line.startswith("ferry: mount: /nh: s3://bkt: Could not resolve host: nosuch-host.invalid"), line
    assert "/nh" not in w.cli("mounts").stdout.decode()
    # --no-check (for a store that is not there yet) saves it as it is...
    w.cli("mount", "/nh", "s3://bkt", *opts, "--no-check")
    assert "/nh" in w.cli("mounts").stdout.decode()
    # A name taken is said at once, before any check of the store.
    p = w.cli("mount", "/nh", "s3://bkt", *opts, check=False)
    assert err_line(p) == "ferry: mount: /nh: a mount with this name exists"
    # ...and a restart restores it without a check (it fails at reads).
    w.restart()
    assert "/nh" in w.cli("mounts").stdout.decode()
    assert "Could not resolve host" in err_line(w.cli("ls", "/nh", check=False))


def test_mount_check_field_of_the_api(w, tmp_path):
    d = tmp_path / "o"
    d.mkdir()
    for bad in ('"no"', "0", "null"):
        r = w.ctl("POST", "/v1/mounts", data=f'{{"name":"o","uri":"file://{d}","check":{bad}}}',
                  headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["code"] == "BadMount", bad
    r = w.ctl("POST", "/v1/mounts", json={"name": "o", "uri": f"file://{d}", "check": True})
    assert r.status_code == 200
    r = w.ctl("POST", "/v1/mounts", json={"name": "s", "uri": "s3://b",
                                          "options": {"s3.endpoint": "http://nosuch-host.invalid:1",
                                                      "s3.retries": "0"}, "check": False})
    assert r.status_code == 200, r.text


# --- 17: conventions ------------------------------------------------------------

def test_version():
    outs = {run(*a).stdout for a in (["-V"], ["--version"], ["version"], ["ls", "--version"])}
    assert len(outs) == 1, outs
    v = outs.pop()
    assert re.fullmatch(r"ferry \S+\n", v), v
    if shutil.which("git") and (ROOT / ".git").exists():
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
        tags = subprocess.run(["git", "-C", str(ROOT), "tag"], capture_output=True, text=True).stdout
        if head and not tags.strip():
            # The build may be of an earlier commit than HEAD: a hash, at least.
            assert re.fullmatch(r"ferry 0\.1\.0-g[0-9a-f]{7,}(-dirty)?\n", v), v


@pytest.mark.parametrize("args,want", [
    (["mout", "/x", "file:///tmp"], "ferry: unknown command 'mout' (did you mean 'mount'?)"),
    (["wokrers"], "ferry: unknown command 'wokrers' (did you mean 'workers'?)"),
    (["frobnicate"], "ferry: unknown command 'frobnicate' (try `ferry help`)"),
    (["help", "stst"], "ferry: help: unknown command 'stst' (did you mean 'stat'?)"),
    (["--wroker", "127.0.0.1:1", "ls"], "ferry: unknown option '--wroker' (did you mean '--worker'?)"),
    (["ls", "--jsno", "/"], "ferry: ls: unknown option '--jsno' (did you mean '--json'?)"),
    (["ls", "--lnog"], "ferry: ls: unknown option '--lnog' (did you mean '--long'?)"),
    (["ls", "-x"], "ferry: ls: unknown option '-x'"),
    (["mount", "/x", "file:///tmp", "--no-chek"],
     "ferry: mount: unknown option '--no-chek' (did you mean '--no-check'?)"),
    (["stats", "--jason"], "ferry: stats: unknown option '--jason' (did you mean '--json'?)"),
    (["fuse", "/mnt", "--forground"],
     "ferry: fuse: unknown option '--forground' (did you mean '--foreground'?)"),
    (["worker", "--cache-sise", "1G"],
     "ferry worker: unknown option '--cache-sise' (did you mean '--cache-size'?)"),
])
def test_did_you_mean(args, want):
    p = run(*args)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stderr.splitlines()[0] == want


def test_worker_option_abbreviations_still_work(tmp_path):
    # getopt takes an unambiguous prefix; the "did you mean" check must too.
    p = run("worker", "--cache-d", str(tmp_path / "c"), "--help")
    assert p.returncode == 0 and "usage: ferry worker" in p.stdout


def test_json_outputs(w):
    lines = [json.loads(l) for l in w.cli("ls", "--json", "/data").stdout.decode().splitlines()]
    assert [e["name"] for e in lines] == ["dir", "f.bin"]
    assert lines[0]["is_dir"] is True and lines[0]["mtime"] == 1_700_000_000
    assert lines[1] == {"name": "f.bin", "is_dir": False, "size": 100, "mtime": lines[1]["mtime"],
                        "etag": lines[1]["etag"]}
    assert lines[1]["etag"] and lines[1]["mtime"] > 1_600_000_000
    root = [json.loads(l) for l in w.cli("ls", "--json").stdout.decode().splitlines()]
    # A mount's time is the worker's start, as `stat /` says.
    started = json.loads(w.cli("stat", "--json", "/").stdout.decode().splitlines()[0])["mtime"]
    assert root == [{"name": "data", "is_dir": True, "size": 0, "mtime": started, "etag": ""}]
    assert started > 1_600_000_000
    st = [json.loads(l) for l in w.cli("stat", "--json", "/data/f.bin", "/data/dir").stdout.decode().splitlines()]
    assert st[0]["path"] == "/data/f.bin" and st[0]["size"] == 100 and st[0]["cached_bytes"] == 0
    assert st[1]["path"] == "/data/dir" and st[1]["is_dir"] is True
    assert json.loads(w.cli("mounts", "--json").stdout) == w.ctl("GET", "/v1/mounts").json()
    s = json.loads(w.cli("stats", "--json").stdout)
    assert s["mounts"] == 1 and "hit_bytes" in s and "capacity_bytes" in s
    wk = json.loads(w.cli("workers", "--json").stdout)
    assert wk["cluster"] is None and len(wk["workers"]) == 1
    me = wk["workers"][0]
    assert me["ctl"] == w.ctl_addr and me["up"] is True and me["self"] is True
    assert me["capacity_bytes"] == 256 * 1024 * 1024


def test_ls_long_shows_directory_mtimes_never_1970(w, s3rver):
    rows = {l.split()[-1]: l for l in w.cli("ls", "-l", "/data").stdout.decode().splitlines()}
    assert "2023-11-14 22:13:20" in rows["dir"] and rows["dir"].startswith("d")
    bucket = s3rver.new_bucket()
    s3rver.client.put_object(Bucket=bucket, Key="p/sub/x.bin", Body=b"x")
    opts = []
    for k, v in s3rver.mount_options().items():
        opts += ["-o", f"{k}={v}"]
    w.cli("mount", "/s3", f"s3://{bucket}/p", *opts)
    for path in ("/", "/s3", "/data"):
        out = w.cli("ls", "-l", path).stdout.decode()
        assert "1970" not in out, out
    # An S3 prefix has no time: "-"; the mounts at / show the worker's start.
    s3row = w.cli("ls", "-l", "/s3").stdout.decode().splitlines()[0].split()
    assert s3row[0] == "d" and s3row[3] == "-" and s3row[-1] == "sub"
    for row in w.cli("ls", "-l", "/").stdout.decode().splitlines():
        assert re.match(r"\d{4}-\d\d-\d\d", row.split()[3]), row


# --- the man page and completion: generated from --help's tables ------------

def help_texts():
    texts = {"": run("--help").stdout}
    for name in re.findall(r"^  (\w+) ", texts[""], re.M):
        texts[name] = run(name, "--help").stdout
    return texts


def options_in(text):
    opts = set(re.findall(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*)", text))
    opts |= set(re.findall(r"^\s+(-[a-zA-Z]),", text, re.M))
    return opts


def test_man_page_and_completion_list_every_option_of_help():
    texts = help_texts()
    assert {"worker", "ls", "stat", "cat", "mount", "unmount", "fuse", "mounts", "stats",
            "workers", "version", "help"} <= set(texts)
    assert "--cache-dir" in texts["worker"] and "--no-check" in texts["mount"]
    man = run("--help-man").stdout
    comp = run("--help-completion").stdout
    plain_man = man.replace("\\-", "-").replace("\\fB", "").replace("\\fR", "").replace("\\fI", "")
    for cmd, text in texts.items():
        for opt in options_in(text):
            assert opt in plain_man, f"{opt} ({cmd or 'ferry'} --help) not in the man page"
            assert re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", comp), \
                f"{opt} ({cmd or 'ferry'} --help) not in the completion"
        if cmd:
            assert f"ferry {cmd}" in plain_man
            assert re.search(rf"(?<![\w-]){cmd}(?![\w-])", comp), cmd
    # Every s3.* option the s3:// backend takes is in `ferry mount --help`,
    # the man page and the completion.
    src = (ROOT / "src" / "ufs" / "ufs_s3.c").read_text()
    keys = set(re.findall(r'"(s3\.[a-z_]+)"', src))
    assert len(keys) >= 10, keys
    for k in keys:
        assert f"{k}=" in texts["mount"], k
        assert f"{k}=" in plain_man, k
        assert f"{k}=" in comp, k
    # What `make` built is what the binary prints.
    for f, text in (("ferry.1", man), ("ferry.bash", comp)):
        p = Path(FERRY).parent / f
        if p.exists():
            assert p.read_text() == text, f"{p} is stale"


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff not installed")
def test_man_page_renders_without_warnings(tmp_path):
    man = tmp_path / "ferry.1"
    man.write_text(run("--help-man").stdout)
    p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(man)], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    p = subprocess.run(["groff", "-man", "-Tutf8", str(man)], capture_output=True, text=True,
                       timeout=30)
    page = re.sub(r".\x08", "", p.stdout)  # bold and underline by overstrike
    assert "ferry mount /NAME URI" in page and "s3.region=REGION" in page


def test_bash_completion_completes(tmp_path):
    script = tmp_path / "ferry.bash"
    script.write_text(run("--help-completion").stdout)
    probe = tmp_path / "probe.sh"
    probe.write_text(f"""source {script}
c() {{ COMP_WORDS=("$@"); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 )); COMPREPLY=(); _ferry; echo "${{COMPREPLY[*]}}"; }}
c ferry mou
c ferry --worker 127.0.0.1:1 st
c ferry ls --j
c ferry mount /x s3://b -o s3.reg
c ferry mount /x s3://b --no
c ferry worker --cache-s
c ferry fuse --att
c ferry help wor
""")
    p = subprocess.run(["bash", str(probe)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["mount mounts", "stat stats", "--json", "s3.region=",
                                     "--no-check", "--cache-size", "--attr-timeout",
                                     "worker workers"]


# --- the example config file ---------------------------------------------------

EXAMPLE = ROOT / "docs" / "ferry.conf.example"


def test_example_config_documents_every_worker_option(tmp_path):
    help_opts = {o[2:] for o in options_in(run("worker", "--help").stdout)
                 if o.startswith("--")} - {"help", "config"}
    assert len(help_opts) > 25, help_opts
    text = EXAMPLE.read_text()
    keys = set(re.findall(r"^#? ?([a-z0-9-]+)(?: = |$)", text, re.M))
    missing = help_opts - keys
    assert not missing, f"not in {EXAMPLE.name}: {sorted(missing)}"
    # Every example value, uncommented, is one the worker takes (it reads
    # the whole file before --help returns).
    conf = tmp_path / "all.conf"
    lines = "\n".join(re.sub(r"^# ", "", l) for l in text.splitlines()
                      if re.match(r"^# [a-z0-9-]+( = .*)?$", l) or re.match(r"^[a-z]", l))
    # The secret files it names, made here (mode 0600).
    for name in re.findall(r"^[a-z0-9-]+-file = (\S+)$", lines, re.M):
        f = tmp_path / Path(name).name
        f.write_text("a-secret-of-some-length\n")
        f.chmod(0o600)
        lines = lines.replace(f" = {name}", f" = {f}")
    conf.write_text(lines)
    p = run("worker", "--config", conf, "--help")
    assert p.returncode == 0, p.stderr
    # A worker starts from the file as it is.
    p = run("worker", "--config", EXAMPLE, "--help")
    assert p.returncode == 0, p.stderr


def test_worker_starts_from_the_example_config(make_worker):
    w = make_worker(args=["--config", str(EXAMPLE)])
    assert w.stats()["sync_interval_ms"] == 60000


# --- make run ------------------------------------------------------------------

def test_make_run_takes_its_ports_from_the_environment(tmp_path):
    demo = tmp_path / "demo"
    (demo / "data" / "images").mkdir(parents=True)
    (demo / "data" / "images" / "img_00.bin").write_bytes(b"i" * 1000)
    (demo / ".generated").touch()  # no 128 MiB of sample data for a test
    s3p, ctlp = free_port(), free_port()
    env = dict(os.environ, FERRY_S3_PORT=str(s3p), FERRY_CONTROL_PORT=str(ctlp),
               FERRY_DEMO_DIR=str(demo))
    proc = subprocess.Popen([str(ROOT / "scripts" / "run-demo.sh")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: run("--worker", f"127.0.0.1:{ctlp}", "ls", "/sample/images").returncode == 0,
                 20, interval=0.2, what="the demo worker")
        assert run("--worker", f"127.0.0.1:{ctlp}", "ls", "/sample/images").stdout == "img_00.bin\n"
        r = requests.get(f"http://127.0.0.1:{s3p}/sample/images/img_00.bin", timeout=10)
        assert r.status_code == 200 and r.content == b"i" * 1000
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out = proc.communicate(timeout=20)[0].decode()
    assert f"http://127.0.0.1:{s3p}" in out and f"--worker 127.0.0.1:{ctlp}" in out
    p = subprocess.run([str(ROOT / "scripts" / "run-demo.sh")], capture_output=True, text=True,
                       env=dict(env, FERRY_S3_PORT="x1"), timeout=20)
    assert p.returncode == 2 and "FERRY_S3_PORT" in p.stderr


def test_build_dependencies_leave_out_the_test_servers():
    script = ROOT / "scripts" / "install-deps.sh"
    build = subprocess.run([str(script), "--build", "--print"], capture_output=True, text=True,
                           timeout=30)
    full = subprocess.run([str(script), "--print"], capture_output=True, text=True, timeout=30)
    assert build.returncode == 0 and full.returncode == 0
    b, f = set(build.stdout.split("\n")), set(full.stdout.split("\n"))
    assert {"apt gcc", "apt libcurl4-openssl-dev", "apt libfuse3-dev"} <= b
    assert not any(l.startswith("npm ") for l in b)
    for test_only in ("npm s3rver@3.7.1", "apt etcd-server", "apt python3-pytest", "apt fio"):
        assert test_only not in b and test_only in f, test_only
    assert b <= f
    mk = (ROOT / "Makefile").read_text()
    assert re.search(r"^run: build-deps all$", mk, re.M)
    assert re.search(r"^test: deps$", mk, re.M)
