#!/usr/bin/env bash
# Side-by-side benchmark of pytest-swarm's load generators against Locust, hey, autocannon and wrk.
#   bash benchmarks/run.sh [generators.py options, e.g. --rounds 5 --skip-memory]
#
# Installs (if missing) nginx, wrk and hey (Go; run with GOMAXPROCS=1) from Debian packages,
# autocannon (Node.js) from npm into $BENCH/node (Node.js itself from Debian if missing;
# AUTOCANNON_VERSION pins it), a virtualenv with this checkout
# (pytest-swarm) and a separate one with Locust (Locust auto-loads a pytest plugin of its own,
# so the two must not share an environment), all under $BENCH_DIR (default
# ~/.cache/pytest-swarm-bench). Starts nginx with one worker pinned to CPU 1 on
# 127.0.0.1:$PORT; generators run pinned to CPU 0. Only the nginx started here is stopped,
# by its pid, on any exit. Needs root for apt-get, and 2 CPUs.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${BENCH_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pytest-swarm-bench}
PORT=${PORT:-18080}
mkdir -p "$BENCH"

need=""
for b in nginx wrk hey taskset node npm; do command -v "$b" >/dev/null || need=1; done
if [ -n "$need" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk hey util-linux nodejs npm \
    >"$BENCH/apt.log"
fi
AUTOCANNON="$BENCH/node/node_modules/autocannon/autocannon.js"
if [ ! -f "$AUTOCANNON" ]; then
  npm install --silent --no-audit --no-fund --prefix "$BENCH/node" \
    "autocannon@${AUTOCANNON_VERSION:-8}" >"$BENCH/npm.log" 2>&1
fi
if [ ! -x "$BENCH/venv-swarm/bin/pytest" ]; then
  python3 -m venv "$BENCH/venv-swarm"
  "$BENCH/venv-swarm/bin/pip" install -q -U pip
fi
"$BENCH/venv-swarm/bin/pip" install -q -e "$REPO"
if [ ! -x "$BENCH/venv-locust/bin/locust" ]; then
  python3 -m venv "$BENCH/venv-locust"
  "$BENCH/venv-locust/bin/pip" install -q -U pip
  "$BENCH/venv-locust/bin/pip" install -q "locust${LOCUST_VERSION:+==$LOCUST_VERSION}"
fi

mkdir -p "$BENCH/nginx/logs" "$BENCH/nginx/tmp"
cat >"$BENCH/nginx/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile 30000;
daemon off;
pid $BENCH/nginx/nginx.pid;
error_log $BENCH/nginx/logs/error.log warn;
events { worker_connections 20000; multi_accept on; }
http {
    access_log off;
    client_body_temp_path $BENCH/nginx/tmp/body;
    proxy_temp_path $BENCH/nginx/tmp/proxy;
    fastcgi_temp_path $BENCH/nginx/tmp/fastcgi;
    uwsgi_temp_path $BENCH/nginx/tmp/uwsgi;
    scgi_temp_path $BENCH/nginx/tmp/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 120s;
    server {
        listen 127.0.0.1:$PORT backlog=8192;
        location / { default_type text/plain; return 200 "ok"; }
    }
}
EOF
if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/"; then
  echo "something already listens on 127.0.0.1:$PORT; set PORT=..." >&2; exit 1
fi
ulimit -n 30000 2>/dev/null || true
rm -f "$BENCH/nginx/nginx.pid"
taskset -c 1 nginx -c "$BENCH/nginx/nginx.conf" -p "$BENCH/nginx/" &
NGINX_PID=$!
cleanup() {
  if kill -0 "$NGINX_PID" 2>/dev/null; then
    kill -QUIT "$NGINX_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
    kill -TERM "$NGINX_PID" 2>/dev/null || true
  fi
  wait "$NGINX_PID" 2>/dev/null || true
}
trap cleanup EXIT INT TERM
for _ in $(seq 100); do curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/" && break; sleep 0.1; done

{
  echo "date: $(date -u +%FT%TZ)  cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) x $(nproc)"
  echo "nginx $(nginx -v 2>&1 | sed 's/.*: //'), wrk $(dpkg-query -W -f='${Version}' wrk 2>/dev/null), hey $(dpkg-query -W -f='${Version}' hey 2>/dev/null), node $(node --version), autocannon $(node -p "require('$BENCH/node/node_modules/autocannon/package.json').version")"
  echo "swarm venv: $("$BENCH/venv-swarm/bin/pip" freeze | grep -iE '^(pytest|gevent|requests|httptools|pyzmq)==' | tr '\n' ' ')"
  echo "locust venv: $("$BENCH/venv-locust/bin/pip" freeze | grep -iE '^(locust|gevent|geventhttpclient|requests)==' | tr '\n' ' ')"
}
python3 "$REPO/benchmarks/generators.py" --port "$PORT" \
  --swarm-venv "$BENCH/venv-swarm" --locust-venv "$BENCH/venv-locust" \
  --autocannon "$AUTOCANNON" "$@"
