#!/usr/bin/env bash
# Installs what ferry needs, if missing, and is quiet when all is present.
#
#   install-deps.sh           everything: building, testing, benchmarking
#                             (`make deps`, `make test`, CI): Debian packages
#                             (apt-get) and the npm packages of the local test
#                             servers (s3rver; @duckdb/node-api for the FUSE
#                             application tests) into .deps/npm
#   install-deps.sh --build   only what building and running ferry need
#                             (`make build-deps`, `make run`): no test servers,
#                             no benchmark tools, no npm
#   --print                   (with either) print what would be checked,
#                             one package a line, and install nothing
set -euo pipefail
cd "$(dirname "$0")/.."

mode=all print=0
for a in "$@"; do
	case $a in
	--build) mode=build ;;
	--print) print=1 ;;
	*) echo "install-deps: unknown argument '$a' (--build, --print)" >&2; exit 2 ;;
	esac
done

BUILD_PKGS=(gcc make pkg-config libcurl4-openssl-dev libssl-dev libfuse3-dev fuse3)
TEST_PKGS=(clang libclang-rt-14-dev python3 python3-pytest python3-boto3 python3-requests
	awscli curl nginx-light procps psmisc iproute2
	fio python3-torch etcd-server s3fs rclone s3cmd wrk hyperfine gnuplot-nox iperf3 iputils-ping linux-perf)
NPM_PKGS=(s3rver@3.7.1 @duckdb/node-api@1.5.6-r.1)

APT_PKGS=("${BUILD_PKGS[@]}")
if [ "$mode" = all ]; then
	APT_PKGS+=("${TEST_PKGS[@]}")
	# Node.js may come from elsewhere than Debian; only install it if absent.
	command -v npm >/dev/null 2>&1 || APT_PKGS+=(nodejs npm)
fi

if [ "$print" = 1 ]; then
	printf 'apt %s\n' "${APT_PKGS[@]}"
	[ "$mode" = all ] && printf 'npm %s\n' "${NPM_PKGS[@]}"
	exit 0
fi

missing=()
for p in "${APT_PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "install-deps: apt-get install ${missing[*]}"
	SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ "$mode" = build ] && exit 0

# npm test servers, pinned, installed locally (never globally).
NPM_DIR=.deps/npm
if [ ! -x "$NPM_DIR/node_modules/.bin/s3rver" ]; then
	echo "install-deps: npm install s3rver into $NPM_DIR"
	mkdir -p "$NPM_DIR"
	[ -f "$NPM_DIR/package.json" ] || echo '{"name":"ferry-test-deps","private":true}' > "$NPM_DIR/package.json"
	(cd "$NPM_DIR" && npm install --no-audit --no-fund --loglevel=error "${NPM_PKGS[0]}" >/dev/null)
fi
# DuckDB for tests/integration/test_fuse_apps.py: a prebuilt binary with
# Parquet built in, so it runs offline once installed.
if [ ! -f "$NPM_DIR/node_modules/@duckdb/node-api/package.json" ]; then
	echo "install-deps: npm install @duckdb/node-api into $NPM_DIR"
	mkdir -p "$NPM_DIR"
	[ -f "$NPM_DIR/package.json" ] || echo '{"name":"ferry-test-deps","private":true}' > "$NPM_DIR/package.json"
	(cd "$NPM_DIR" && npm install --no-audit --no-fund --loglevel=error "${NPM_PKGS[1]}" >/dev/null)
fi
