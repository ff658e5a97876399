"""`ferry worker` options: the config file, --help, and the start-up
refusals that keep an open port from being an open door."""
import re
import subprocess

import requests

from conftest import FERRY


def run_worker(*args, timeout=20):
    return subprocess.run([str(FERRY), "worker", *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_help_documents_every_option():
    out = run_worker("--help").stdout
    documented = set(re.findall(r"--([a-z0-9-]+)", out))
    # Every option the parser knows (from an unknown-option probe of each
    # documented name, and the list below) appears in --help.
    expected = {"cache-dir", "cache-size", "page-size", "page-verify", "sync-interval",
                "metadata-entries", "ufs-parallelism", "window", "read-ahead",
                "max-inflight", "s3-address", "s3-access-key", "s3-secret-key",
                "s3-anonymous", "s3-region", "max-connections", "control-address",
                "control-token", "mount", "state-dir", "config", "log-level", "help",
                "s3-secret-key-file", "control-token-file", "stale-if-error"}
    assert expected <= documented, expected - documented
    for opt in documented - {"help"}:
        r = run_worker(f"--{opt}=", "--help") if opt not in ("s3-anonymous",) else run_worker(f"--{opt}", "--help")
        assert "unrecognized option" not in r.stderr, opt


def test_config_file_and_command_line_override(make_worker, data_dir, tmp_path):
    (data_dir / "f.txt").write_bytes(b"from config")
    cfg = tmp_path / "ferry.conf"
    cfg.write_text(f"""# a ferry worker config
s3-region = eu-west-1
sync-interval = 2s
page-size = 128K
mount = conf=file://{data_dir}
log-level = info
""")
    w = make_worker(args=["--config", str(cfg), "--s3-region", "us-west-2"])
    assert requests.get(f"{w.s3_url}/conf/f.txt", timeout=10).content == b"from config"
    loc = requests.get(f"{w.s3_url}/conf?location", timeout=10).text
    assert "us-west-2" in loc  # the command line wins over the file


def test_config_file_errors_name_the_line(tmp_path):
    cfg = tmp_path / "bad.conf"
    cfg.write_text("cache-size = 1G\nno-such-option = 3\n")
    r = run_worker("--config", str(cfg), "--cache-dir", str(tmp_path / "c"))
    assert r.returncode == 2
    assert "bad.conf:2" in r.stderr and "no-such-option" in r.stderr
    r = run_worker("--config", str(tmp_path / "missing.conf"))
    assert r.returncode == 2 and "missing.conf" in r.stderr


def test_bad_option_values_are_refused(tmp_path):
    for args in (["--cache-size", "lots"], ["--page-size", "1K"], ["--sync-interval", "soon"],
                 ["--s3-address", "nonsense"], ["--page-verify", "sometimes"],
                 ["--s3-access-key", "only-the-key"]):
        r = run_worker("--cache-dir", str(tmp_path / "c"), *args)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.strip(), args


def test_no_open_gateway_beyond_loopback_without_credentials(tmp_path):
    r = run_worker("--cache-dir", str(tmp_path / "c"), "--s3-address", "0.0.0.0:0",
                   "--control-address", "127.0.0.1:0")
    assert r.returncode == 2 and "--s3-access-key" in r.stderr


def test_no_open_control_api_beyond_loopback_without_token(tmp_path):
    r = run_worker("--cache-dir", str(tmp_path / "c"), "--s3-address", "127.0.0.1:0",
                   "--control-address", "0.0.0.0:0")
    assert r.returncode == 2 and "--control-token" in r.stderr


def test_second_worker_on_a_cache_dir_is_refused(make_worker, data_dir, tmp_path):
    """Two workers on one cache dir would evict each other's pages and
    share one worker id (one place in a cluster): the second one is refused
    before it touches the directory, and the first keeps serving."""
    (data_dir / "a").write_bytes(b"x" * 1000)
    w = make_worker(mounts={"data": data_dir})
    r = run_worker("--cache-dir", str(w.cache_dir), "--s3-address", "127.0.0.1:0",
                   "--control-address", "127.0.0.1:0")
    assert r.returncode == 1 and "in use by another running worker" in r.stderr, r.stderr
    assert w.s3().get_object(Bucket="data", Key="a")["Body"].read() == b"x" * 1000
