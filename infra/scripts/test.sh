#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs every check and test.
# Works on a fresh machine with the Rust toolchain and Python 3 (CI runs it from .ci/run).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

# Python side: Microsoft's MSAL, the client the tenant simulator must satisfy.
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-test.txt
export TENANT_SIM_PYTHON="$root/.venv/bin/python"

# AWS side: moto's server on loopback, stopped whatever happens.
eval "$(infra/scripts/moto.sh start)"
trap 'infra/scripts/moto.sh stop' EXIT
echo "== moto at $AWS_ENDPOINT_URL"

echo "== cfn-lint template.yaml"
AWS_DEFAULT_REGION=us-east-1 .venv/bin/cfn-lint template.yaml

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
