#!/usr/bin/env bash
# Starts moto's server behind the IAM gate (infra/aws-gate: every call signed with a function's
# key is authorized against that function's policy in template.yaml) on a free loopback port and
# prints the export lines for it. `report` fails when IAM would have denied a call no test asked
# to be denied, naming the function, the action and the resource.
# Usage: eval "$(infra/scripts/moto.sh start)"   ...   infra/scripts/moto.sh report; infra/scripts/moto.sh stop
set -euo pipefail
cd "$(dirname "$0")/../.."
pidfile=.venv/moto.pid
case "${1:-}" in
  start)
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
    denials=$PWD/.venv/aws-gate-denials.ndjson
    : >"$denials"
    .venv/bin/python infra/aws-gate/gate.py serve --port "$port" --template template.yaml --denials "$denials" \
      >.venv/moto.log 2>&1 &
    echo $! >"$pidfile"
    # Bounded wait: 30 s at most for the server to answer.
    for _ in $(seq 1 150); do
      if curl -sf "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1; then
        echo "export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true AWS_GATE_DENIALS=$denials"
        exit 0
      fi
      sleep 0.2
    done
    echo "moto did not start; see .venv/moto.log" >&2
    exit 1
    ;;
  report)
    .venv/bin/python infra/aws-gate/gate.py report --denials "${AWS_GATE_DENIALS:-$PWD/.venv/aws-gate-denials.ndjson}"
    ;;
  stop)
    if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; rm -f "$pidfile"; fi
    ;;
  *) echo "usage: $0 start|report|stop" >&2; exit 2 ;;
esac
