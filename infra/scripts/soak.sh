#!/usr/bin/env bash
# The soak (docs/reliability.md): builds the functions' bootstrap, the simulator and the soak
# program, starts moto on loopback behind the IAM gate, and runs the soak with the options given, e.g.
#   bash infra/scripts/soak.sh --seconds 900 --alerts 12000 --tenants 6
# SOAK_PROFILE=dev uses debug builds; SOAK_PREBUILT=1 skips the build (the caller made it).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x .venv/bin/moto_server ] || ! .venv/bin/python -c 'import principalmapper' 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-test.txt
fi
profile=${SOAK_PROFILE:-release}
case "$profile" in dev) dir=debug ;; *) dir=$profile ;; esac
if [ -z "${SOAK_PREBUILT:-}" ]; then
  cargo build --quiet --profile "$profile" --bin soak --bin tenant-sim --bin bootstrap
fi
started_moto=
if [ -z "${AWS_ENDPOINT_URL:-}" ]; then
  eval "$(infra/scripts/moto.sh start)"
  started_moto=1
fi
trap '[ -z "$started_moto" ] || infra/scripts/moto.sh stop' EXIT
"${CARGO_TARGET_DIR:-target}/$dir/soak" "$@"
# The functions ran under their roles (infra/aws-gate): fail on any call IAM would have denied.
if [ -n "$started_moto" ]; then infra/scripts/moto.sh report; fi
