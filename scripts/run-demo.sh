#!/usr/bin/env bash
# `make run`: starts one worker in the foreground with a small generated
# sample dataset mounted as bucket "sample".  Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
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
  S3 gateway   http://127.0.0.1:29998   (path-style; any keys, as it listens on loopback only)
  control API  http://127.0.0.1:29999   (/metrics, /v1/...)

Try, in another terminal:
  aws s3 ls --endpoint-url http://127.0.0.1:29998 s3://sample/
  aws s3 cp --endpoint-url http://127.0.0.1:29998 s3://sample/shards/shard-0.bin /tmp/shard-0.bin
  build/ferry ls -l /sample/images | head
  build/ferry stats
  curl -s http://127.0.0.1:29999/metrics | grep ferry_cache

(aws needs some credentials, any will do: AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x)
MSG
exec build/ferry worker --cache-dir "$DEMO/cache" --cache-size 2G --mount "sample=file://$DATA" "$@"
