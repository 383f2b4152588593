#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs every check and test.
# Works on a fresh machine with the Rust toolchain and Python 3 (CI runs it from .ci/run).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
# No telemetry from the SAM CLI: nothing leaves this machine.
export SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1

# Each step is timed, and the times are printed at the end however the run ends: where the
# time goes is the first thing to know of a slow run.
timings=""
step_name=""
step_start=$SECONDS
moto_started=""
close_step() {
  if [ -n "$step_name" ]; then
    timings+="$(printf '%6d s  %s' $((SECONDS - step_start)) "$step_name")"$'\n'
  fi
  step_name=""
}
step() {
  close_step
  step_name=$1
  step_start=$SECONDS
  echo "== $1"
}
on_exit() {
  status=$?
  close_step
  # A background job still running (the run failed first) is stopped with every process it
  # started; it is its own process group.
  for job in "${arm64_build:-}" "${checkov_install:-}"; do
    if [ -n "$job" ] && kill -0 "$job" 2>/dev/null; then kill -- "-$job" 2>/dev/null || kill "$job" 2>/dev/null || true; fi
  done
  rm -f "${checkov_log:-}"
  if [ -n "$moto_started" ]; then infra/scripts/moto.sh stop || true; fi
  printf '== time per step (%d s in all, exit %d)\n%s' "$SECONDS" "$status" "$timings"
  exit "$status"
}
trap on_exit EXIT

step "tools"
# checkov installs in its own venv beside the rest (it waits on the network, not the CPU);
# its step waits for it.
checkov_log=$(mktemp)
setsid bash -c '
  if [ ! -x .venv-checkov/bin/checkov ]; then
    python3 -m venv .venv-checkov && .venv-checkov/bin/pip install --quiet --disable-pip-version-check checkov
  fi' >"$checkov_log" 2>&1 &
checkov_install=$!
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-test.txt
rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1 || echo "no arm64 standard library: the sam build step will fail"
export PATH="$root/.venv/bin:$PATH"
export TENANT_SIM_PYTHON="$root/.venv/bin/python"

step "cfn-lint template.yaml"
cfn-lint template.yaml
step "sam validate --lint"
sam validate --lint -t template.yaml
step "checkov (every skip is justified in template.yaml)"
wait "$checkov_install" || { cat "$checkov_log"; echo "checkov could not be installed"; checkov_install=""; exit 1; }
checkov_install=""
BC_SKIP_MAPPING=TRUE .venv-checkov/bin/checkov -f template.yaml --framework cloudformation --compact --quiet --skip-download

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy and the build (one compile: clippy lints each crate of the workspace as it is built)"
# `cargo clippy` only checks, and the tests would then compile every crate again: run as the
# workspace's compiler wrapper (as `cargo clippy` runs it), clippy-driver applies the same lints
# (-D warnings, every target) to the one debug build every later step uses. One build of every
# target, tests included, also means one feature resolution: a build without the tests' targets
# (`--bins`, `cargo run`) leaves out the dev-dependencies' features (serde's, serde_json's, …)
# and compiles every dependency again. The release build below runs without the wrapper.
clippy_driver=$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver || true)
[ -n "$clippy_driver" ] || { echo "clippy-driver is not installed: rustup component add clippy"; exit 1; }
export RUSTC_WORKSPACE_WRAPPER="$clippy_driver" CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
cargo build --quiet --workspace --all-targets

# AWS side: moto's server on loopback behind the IAM gate (infra/aws-gate), stopped whatever happens.
eval "$(infra/scripts/moto.sh start)"
moto_started=1
step "tests (moto at $AWS_ENDPOINT_URL)"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi

# The arm64 release build shares nothing with the debug build above and takes minutes of CPU;
# the steps until "sam build" mostly wait (the soak's faults and settling) or run for a fixed
# time (fuzz), so it runs beside them (release and debug builds lock different directories).
# It builds the one bootstrap every function runs; sam's own `cargo lambda build --release
# --arm64` then finds it built. Without the clippy wrapper: what is deployed is plain rustc's.
arm64_log=target/arm64-build.log
arm64_build=""
if rustup target list --installed 2>/dev/null | grep -q '^aarch64-unknown-linux-gnu$'; then
  mkdir -p target
  setsid env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS cargo lambda build --release --arm64 -p bootstrap >"$arm64_log" 2>&1 &
  arm64_build=$!
fi

# The soak and memory runs use the binaries built above (SOAK_PREBUILT: a build of only theirs
# would resolve features without the tests' and compile everything again).
step "soak (a short run on the moto above: docs/reliability.md has the long one)"
SOAK_PREBUILT=1 SOAK_PROFILE=dev bash infra/scripts/soak.sh --seconds 60 --alerts 1200 --tenants 3 --out target/soak

step "memory (the processor's worst batch, ten 30 MB quarantined emails, under a 256 MB limit)"
SOAK_PREBUILT=1 SOAK_PROFILE=dev bash infra/scripts/soak.sh --memory --out target/memory

step "IAM: every call the functions' code made above, as template.yaml's policies allow it"
infra/scripts/moto.sh report

step "poll-bench --e2e (a small run: the harness works; docs/cost.md has the figures)"
BENCH_PYTHON="$root/.venv/bin/python" "${CARGO_TARGET_DIR:-target}/debug/poll-bench" --e2e --sizes 1000

step "fuzz (a short run: 3 s per decoder; docs/security.md has the long one)"
"${CARGO_TARGET_DIR:-target}/debug/fuzz" --seconds 3

step "sam build (cargo-lambda, arm64, release; built beside the steps above)"
if [ -z "$arm64_build" ]; then
  echo "SKIPPED sam build: the aarch64-unknown-linux-gnu standard library is not installed and could not be added"
  exit 0
fi
arm64_status=0
wait "$arm64_build" || arm64_status=$?
arm64_build=""
if [ "$arm64_status" -ne 0 ]; then cat "$arm64_log"; echo "the arm64 build failed"; exit 1; fi
env -u RUSTC_WORKSPACE_WRAPPER -u CLIPPY_ARGS sam build -t template.yaml
# Every function of the template (a resource line followed by its Serverless::Function type).
functions=$(awk '/^  [A-Za-z]+:$/ {name=$1} /^    Type: AWS::Serverless::Function$/ {sub(":", "", name); print name}' template.yaml)
[ -n "$functions" ] || { echo "no functions found in template.yaml"; exit 1; }
for f in $functions; do
  test -x ".aws-sam/build/$f/bootstrap" || { echo "sam build produced no bootstrap for $f"; exit 1; }
  python3 -c 'import sys; h = open(sys.argv[1], "rb").read(20); sys.exit(0 if h[:4] == b"\x7fELF" and h[18] == 0xB7 else 1)' ".aws-sam/build/$f/bootstrap" \
    || { echo "$f's bootstrap is not an arm64 ELF binary"; exit 1; }
  echo "$f: $(stat -c %s ".aws-sam/build/$f/bootstrap") bytes"
done
