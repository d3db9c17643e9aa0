#!/usr/bin/env bash
# Rebuild the bundled default model (apucodec/models/default) from the project's development audio.
#
#   bash scripts/train_default_model.sh [TRAIN_DIR] [CALIB_DIR] [OUT_DIR]
#
# Defaults: ../shared/audio/train (31.5 min of freely licensed recordings, see its MANIFEST.md),
# ../shared/audio/dev for calibration, ./apucodec-model for the result. The bundled model was trained this way on one
# NVIDIA H100 (about 4.7 minutes of training, 1782 steps of 32 x 1 s); on a CPU the same 1782 steps take hours
# (about 13 s per step on 2 cores). `--device auto` uses a CUDA GPU when torch sees one.
set -euo pipefail
TRAIN_DIR=${1:-../shared/audio/train}
CALIB_DIR=${2:-../shared/audio/dev}
OUT_DIR=${3:-apucodec-model}
CKPT=${CKPT:-default-small.pt}

apucodec train "$TRAIN_DIR" --out "$CKPT" --preset small --steps 1782 --batch-size 32 --segment-seconds 1.0 \
    --lr 1e-3 --warmup-steps 300 --l1-weight 10 --stft-weight 1 --mel-weight 1 --commitment-weight 0.25 \
    --val-every 1000 --checkpoint-every 500 --log-every 250 --seed 0 --device auto
apucodec export --checkpoint "$CKPT" --out "$OUT_DIR" --codebooks-dtype float16 --force
apucodec quantize-encoder --model "$OUT_DIR" --calib "$CALIB_DIR" --preset xint8 --steps 64 --seed 0
python benchmarks/quality.py "$CALIB_DIR" --model "$OUT_DIR"
