#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs every check and test.
# Works on a fresh machine with the Rust toolchain and Python 3 (CI runs it from .ci/run).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
# No telemetry from the SAM CLI: nothing leaves this machine.
export SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1

echo "== tools"
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-test.txt
if [ ! -x .venv-checkov/bin/checkov ]; then
  python3 -m venv .venv-checkov
  .venv-checkov/bin/pip install --quiet --disable-pip-version-check checkov
fi
rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1 || echo "no arm64 standard library: the sam build step will fail"
export PATH="$root/.venv/bin:$PATH"
export TENANT_SIM_PYTHON="$root/.venv/bin/python"

echo "== cfn-lint template.yaml"
cfn-lint template.yaml
echo "== sam validate --lint"
sam validate --lint -t template.yaml
echo "== checkov (every skip is justified in template.yaml)"
BC_SKIP_MAPPING=TRUE .venv-checkov/bin/checkov -f template.yaml --framework cloudformation --compact --quiet --skip-download

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

# AWS side: moto's server on loopback behind the IAM gate (infra/aws-gate), stopped whatever happens.
eval "$(infra/scripts/moto.sh start)"
trap 'infra/scripts/moto.sh stop' EXIT
echo "== tests (moto at $AWS_ENDPOINT_URL)"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi

echo "== soak (a short run on the moto above: README 'Reliability' has the long one)"
SOAK_PROFILE=dev bash infra/scripts/soak.sh --seconds 60 --alerts 1200 --tenants 3 --out target/soak

echo "== memory (the processor's worst batch, ten 30 MB quarantined emails, under a 256 MB limit)"
SOAK_PROFILE=dev bash infra/scripts/soak.sh --memory --out target/memory

echo "== IAM: every call the functions' code made above, as template.yaml's policies allow it"
infra/scripts/moto.sh report

echo "== poll-bench --e2e (a small run: the harness works; README 'Cost per alert' has the figures)"
cargo build -q --bin poll-bench --bin m365-ingest --bin tenant-sim
BENCH_PYTHON="$root/.venv/bin/python" "${CARGO_TARGET_DIR:-target}/debug/poll-bench" --e2e --sizes 1000

echo "== fuzz (a short run: 3 s per decoder; README 'Fuzzing' has the long one)"
cargo run -q --bin fuzz -- --seconds 3

echo "== sam build (cargo-lambda, arm64, release)"
if ! rustup target list --installed 2>/dev/null | grep -q '^aarch64-unknown-linux-gnu$'; then
  echo "SKIPPED sam build: the aarch64-unknown-linux-gnu standard library is not installed and could not be added"
  exit 0
fi
# One cargo invocation for every function first: their fat-LTO links run side by side (about
# 14 min cold on 2 cores for the six, against about 21 min for four when sam built them one
# after another); sam's own per-function `cargo lambda build --release --arm64` then finds
# them built (seconds).
packages=$(for d in functions/*/; do printf -- '-p %s ' "$(basename "$d")"; done)
# shellcheck disable=SC2086
cargo lambda build --release --arm64 $packages
sam build -t template.yaml
# Every function of the template (a resource line followed by its Serverless::Function type).
functions=$(awk '/^  [A-Za-z]+:$/ {name=$1} /^    Type: AWS::Serverless::Function$/ {sub(":", "", name); print name}' template.yaml)
[ -n "$functions" ] || { echo "no functions found in template.yaml"; exit 1; }
for f in $functions; do
  test -x ".aws-sam/build/$f/bootstrap" || { echo "sam build produced no bootstrap for $f"; exit 1; }
  python3 -c 'import sys; h = open(sys.argv[1], "rb").read(20); sys.exit(0 if h[:4] == b"\x7fELF" and h[18] == 0xB7 else 1)' ".aws-sam/build/$f/bootstrap" \
    || { echo "$f's bootstrap is not an arm64 ELF binary"; exit 1; }
  echo "$f: $(stat -c %s ".aws-sam/build/$f/bootstrap") bytes"
done
