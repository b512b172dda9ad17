#!/usr/bin/env bash
# The noise-map model's training run: the shipped blind weights with a zero-weighted noise-level
# map input and a fresh estimator, trained on the shipped model's mix for one long cosine
# schedule of STEPS steps. Resumable, across machines too: it continues from the newest
# checkpoint in OUT, or else from the one committed in checkpoints/noise-map/ (the run's state
# as the last session left it), so stopping and starting again changes nothing but wall time.
#   nice -n 19 bash scripts/train_noise_map.sh > runs/noise-map.log 2>&1 &
# Before a machine goes away, keep its newest checkpoint for the next one:
#   bash scripts/train_noise_map.sh --keep
# A later run from the finished model names itself and adds its flags (they override the ones
# below), e.g. the run whose map also counts JPEG (docs/training_history.md):
#   NAME=noise-map-jpeg STEPS=12000 nice -n 19 bash scripts/train_noise_map.sh --map_jpeg_level \
#     --learning_rate 5e-5 --lr_warmup_steps 100 > runs/noise-map-jpeg.log 2>&1 &
#   NAME=noise-map-jpeg bash scripts/train_noise_map.sh --keep
set -euo pipefail
NAME=${NAME:-noise-map}
OUT=${OUT:-runs/$NAME}
KEPT=checkpoints/$NAME
DATA=${DATA:-../shared/data/train}
PY=${PYTHON:-python}
newest() { ls -d "$1"/checkpoint-* 2>/dev/null | sort -t- -k2 -n | tail -1; }
if [ "${1:-}" = "--keep" ]; then
  src=$(newest "$OUT"); [ -n "$src" ] || { echo "no checkpoint in $OUT" >&2; exit 1; }
  rm -rf "$KEPT.tmp" && mkdir -p "$KEPT.tmp" && cp -r "$src" "$KEPT.tmp/"
  rm -rf "$KEPT" && mv "$KEPT.tmp" "$KEPT"
  echo "kept $src in $KEPT"; exit 0
fi
RESUME=latest
if [ -z "$(newest "$OUT")" ] && [ -n "$(newest "$KEPT")" ]; then RESUME=$(newest "$KEPT"); fi
exec "$PY" train_accelerate.py \
  --train_data_dir "$DATA/CBSD432" "$DATA/Sun_Hays80" "$DATA/wikipedia-photos" \
  --validation_fraction 0.05 --max_validation_images 24 \
  --init_from cleanvision/weights/default --noise_map 1 \
  --patch_size 64 --train_batch_size 32 --patches_per_image 64 \
  --learning_rate 1e-4 --estimator_learning_rate 1e-3 --lr_warmup_steps 200 \
  --lr_scheduler cosine --min_lr_ratio 0.02 --max_train_steps "${STEPS:-40000}" \
  --mixed_precision bf16 --channels_last \
  --checkpointing_steps 250 --checkpoints_total_limit 2 --validation_steps 1000 \
  --report_to tensorboard --resume_from_checkpoint "$RESUME" --output_dir "$OUT" "$@"
