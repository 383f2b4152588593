#!/usr/bin/env bash
# The benchmarks (docs/cost.md): builds the release binaries, installs the Python
# peer's packages (msal, requests, boto3) into .venv, starts moto on loopback and runs
# `poll-bench` (in-process figures) and `poll-bench --e2e` (whole processes beside the Python
# peer). Options go to the e2e run, e.g.  bash infra/scripts/bench.sh --sizes 20000,100000
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x .venv/bin/moto_server ]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-test.txt
fi
profile=${BENCH_PROFILE:-release}
case "$profile" in dev) dir=debug ;; *) dir=$profile ;; esac
cargo build --quiet --profile "$profile" --bin poll-bench --bin m365-ingest --bin tenant-sim
started_moto=
if [ -z "${AWS_ENDPOINT_URL:-}" ]; then
  eval "$(infra/scripts/moto.sh start)"
  started_moto=1
fi
trap '[ -z "$started_moto" ] || infra/scripts/moto.sh stop' EXIT
bench="${CARGO_TARGET_DIR:-target}/$dir/poll-bench"
if [ -z "${BENCH_E2E_ONLY:-}" ]; then "$bench"; echo; fi
BENCH_PYTHON="$PWD/.venv/bin/python" "$bench" --e2e "$@"
