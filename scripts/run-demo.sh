#!/usr/bin/env bash
# `make run`: starts one worker in the foreground with a small generated
# sample dataset mounted as bucket "sample".  Ctrl-C stops it.
# Ports: $FERRY_S3_PORT (default 29998) and $FERRY_CONTROL_PORT (default
# 29999), on loopback; the data and cache go to $FERRY_DEMO_DIR (default
# build/demo).  Arguments are passed to `ferry worker`.
set -euo pipefail
cd "$(dirname "$0")/.."
S3_PORT=${FERRY_S3_PORT:-29998}
CTL_PORT=${FERRY_CONTROL_PORT:-29999}
for p in "$S3_PORT" "$CTL_PORT"; do
	case $p in
	''|*[!0-9]*) echo "run-demo: port '$p' is not a number (FERRY_S3_PORT, FERRY_CONTROL_PORT)" >&2; exit 2 ;;
	esac
done
DEMO=${FERRY_DEMO_DIR:-$PWD/build/demo}
DATA=$DEMO/data
mkdir -p "$DATA/images" "$DATA/shards" "$DEMO/cache"
if [ ! -f "$DEMO/.generated" ]; then
	echo "generating sample dataset in $DATA ..."
	for i in $(seq -w 0 99); do head -c 65536 /dev/urandom > "$DATA/images/img_$i.bin"; done
	for i in 0 1 2 3; do head -c $((32 * 1024 * 1024)) /dev/urandom > "$DATA/shards/shard-$i.bin"; done
	printf 'ferry sample dataset: 100 small files (64 KiB) and 4 shards (32 MiB)\n' > "$DATA/README.txt"
	touch "$DEMO/.generated"
fi
cat <<MSG

ferry demo worker: bucket "sample" is $DATA
  S3 gateway   http://127.0.0.1:$S3_PORT   (path-style; any keys, as it listens on loopback only)
  control API  http://127.0.0.1:$CTL_PORT   (/metrics, /v1/...)

Try, in another terminal:
  aws s3 ls --endpoint-url http://127.0.0.1:$S3_PORT s3://sample/
  aws s3 cp --endpoint-url http://127.0.0.1:$S3_PORT s3://sample/shards/shard-0.bin /tmp/shard-0.bin
  build/ferry --worker 127.0.0.1:$CTL_PORT ls -l /sample/images | head
  build/ferry --worker 127.0.0.1:$CTL_PORT stats
  curl -s http://127.0.0.1:$CTL_PORT/metrics | grep ferry_cache

(aws needs some credentials, any will do: AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x)
MSG
exec build/ferry worker --cache-dir "$DEMO/cache" --cache-size 2G --mount "sample=file://$DATA" \
	--s3-address "127.0.0.1:$S3_PORT" --control-address "127.0.0.1:$CTL_PORT" "$@"
