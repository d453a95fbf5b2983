#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py): cost table fp32 vs bf16 at ResNet-18 width 64 on
# CREMA-D shapes, a short joint and MCR run, nvidia-smi utilisation; a few minutes on one GPU.
# Usage: benchmarks/gpu_check.sh [OUT_DIR]   (writes OUT_DIR/gpu_check.json; default: .)
set -euo pipefail
cd "$(dirname "$0")/.."
out_dir="${1:-${OUT:-.}}"
python -m benchmarks.gpu_check --out "$out_dir/gpu_check.json"
