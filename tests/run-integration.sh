#!/usr/bin/env bash
# Runs the integration tests (pytest) against build/ferry with real clients
# and real servers (s3rver from .deps/npm).  Uses Debian's /usr/bin/python3.
set -euo pipefail
cd "$(dirname "$0")/.."
export FERRY_BIN=${FERRY_BIN:-$PWD/build/ferry}
export PYTHONDONTWRITEBYTECODE=1
/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration "$@"
