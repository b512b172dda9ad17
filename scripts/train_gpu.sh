#!/usr/bin/env bash
# One-GPU training run with a fixed wall-clock budget (default 8 minutes), for a lent H100:
#   bash scripts/train_gpu.sh OUTDIR [MINUTES]
# Copies CBSD432 + Sun_Hays80 (~45 MB) from ../shared/data/train into the git-ignored
# .train_data/ (run it once here so the folder travels with the working tree), then trains
# with bf16 autocast, channels-last and the degradations computed on the GPU. Needs only
# torch, accelerate, numpy, opencv, safetensors and huggingface_hub. Resumable: run it again
# with the same OUTDIR and it continues from the last checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: scripts/train_gpu.sh OUTDIR [MINUTES]}
MINUTES=${2:-8}
SRC=${SRC:-../shared/data/train}
if [ ! -d .train_data/CBSD432 ] && [ -d "$SRC" ]; then
  mkdir -p .train_data && cp -r "$SRC/CBSD432" "$SRC/Sun_Hays80" .train_data/
fi
[ -d .train_data/CBSD432 ] || { echo "no training images in .train_data/ (and no $SRC to copy from)" >&2; exit 1; }
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" train_accelerate.py \
  --train_data_dir .train_data/CBSD432 .train_data/Sun_Hays80 \
  --validation_fraction 0.05 --max_validation_images 24 \
  --depth "${DEPTH:-15}" --width "${WIDTH:-96}" --pixel_unshuffle 2 \
  --patch_size 96 --train_batch_size "${BATCH:-128}" --patches_per_image 64 --dataloader_num_workers 8 \
  --max_train_steps "${STEPS:-200000}" --max_train_minutes "$MINUTES" \
  --learning_rate 1e-3 --lr_warmup_steps 500 \
  --mixed_precision bf16 --channels_last \
  --checkpointing_steps 2000 --checkpoints_total_limit 2 --validation_steps 2000 \
  --report_to none --resume_from_checkpoint latest --output_dir "$OUT" ${EXTRA_ARGS:-}
