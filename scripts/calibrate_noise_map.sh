#!/usr/bin/env bash
# Calibrate a finished noise-map model's auto mode, on held-out training photos only:
#   1. refit its estimator (denoiser frozen) on a mix where most damage is real-photo noise and
#      most of that is the same in every colour, as camera pipelines leave it: the model's own
#      estimator, fitted on the training mix, reads such noise at about half its level;
#   2. fit the level curve from the estimator's reading to the level the denoiser restores best
#      with (scripts/fit_level_curve.py).
#   bash scripts/calibrate_noise_map.sh runs/noise-map runs/noise-map-calibrated
# Options after the two folders go to step 1's train_accelerate.py, e.g. --map_jpeg_level for a
# model whose map counts JPEG (its estimator must read JPEG as that model's training did).
# docs/training_history.md ("Refitting the estimator", "A level curve") has the measurements
# behind the mix and the curve. OUT-estimator keeps step 1's run; OUT is the model to ship.
set -euo pipefail
MODEL=${1:?usage: calibrate_noise_map.sh MODEL OUT}
OUT=${2:?usage: calibrate_noise_map.sh MODEL OUT}
shift 2
DATA=${DATA:-../shared/data/train}
PY=${PYTHON:-python}
if [ -e "$OUT" ] || [ -e "$OUT-estimator" ]; then
  echo "$OUT or $OUT-estimator exists already: choose a new name" >&2; exit 1
fi
"$PY" train_accelerate.py \
  --train_data_dir "$DATA/CBSD432" "$DATA/Sun_Hays80" "$DATA/wikipedia-photos" \
  --validation_fraction 0.05 --max_validation_images 8 \
  --init_from "$MODEL" --train_only estimator --estimator_fit map \
  --real_fraction 0.8 --clean_fraction 0.15 \
  --real_ranges p_channels=0.1,0.8,0.1 p_camera=0.5 p_gaussian=0.3 p_speckle=0.05 \
  --patch_size 64 --train_batch_size 32 --patches_per_image 64 \
  --estimator_learning_rate 3e-4 --lr_warmup_steps 0 --lr_scheduler cosine --min_lr_ratio 0.02 \
  --max_train_steps "${STEPS:-3000}" --mixed_precision bf16 --channels_last \
  --checkpointing_steps 1000 --checkpoints_total_limit 1 --validation_steps "${STEPS:-3000}" --seed 7 \
  --output_dir "$OUT-estimator" "$@"
# shellcheck disable=SC2086  # CURVE_ARGS: extra options for the curve fit, word-split on purpose
"$PY" scripts/fit_level_curve.py "$OUT-estimator" --output_dir "$OUT" ${CURVE_ARGS:-}
