#!/usr/bin/env bash
# The CPU training run behind the shipped model (cleanvision/weights/default).
# Resumable: run it again after an interruption and it continues from the last checkpoint.
#   nice -n 19 bash scripts/train_cpu.sh runs/cpu-ffdnet12 > runs/cpu-ffdnet12.log 2>&1 &
# Stage 2 of the shipped model: a warm restart from stage 1 for a fixed 85 minutes (the cosine
# schedule ends with the time budget; the step limit is only a ceiling):
#   STEPS=30000 EXTRA_ARGS="--init_from runs/cpu-ffdnet12 --learning_rate 5e-4 --lr_warmup_steps 200 \
#     --max_train_minutes 85" nice -n 19 bash scripts/train_cpu.sh runs/cpu-ffdnet12-stage2
# Stages 3 and 4 (real-photo damage, fp32 on an AVX2 CPU) ran train_accelerate.py directly; their
# exact commands are in cleanvision/weights/default/training_info.json (and the model card).
# Stage 4, as run (one thread pinned to one core, about 2.9 s a step):
#   OMP_NUM_THREADS=1 taskset -c 1 python train_accelerate.py --train_data_dir ../shared/data/train/CBSD432 \
#     ../shared/data/train/Sun_Hays80 ../shared/data/train/wikipedia-photos --validation_fraction 0.05 \
#     --max_validation_images 24 --depth 12 --width 96 --pixel_unshuffle 2 --patch_size 64 \
#     --train_batch_size 32 --patches_per_image 64 --init_from cleanvision/weights/default \
#     --learning_rate 1e-4 --lr_warmup_steps 100 --lr_scheduler cosine --min_lr_ratio 0.02 \
#     --max_train_steps 1900 --max_train_minutes 95 --mixed_precision no --checkpointing_steps 250 \
#     --checkpoints_total_limit 2 --validation_steps 500 --real_fraction 0.35 --grey_fraction 0.15 \
#     --resume_from_checkpoint latest --output_dir runs/stage4
# Stage 5, as run: the same from stage 4's weights with --learning_rate 8e-5 --lr_warmup_steps 50
# --max_train_steps 5000 --real_fraction 0.3 --output_dir runs/stage5, first on one thread
# (OMP_NUM_THREADS=1 taskset -c 1, --max_train_minutes 110) for 500 steps, then stopped at that
# checkpoint and resumed on both cores (OMP_NUM_THREADS=2, --max_train_minutes 96: the cosine
# schedule ends with that budget), 4,055 steps in all (about 1.5 s a step on two threads).
# Stage 6, as run: the same from stage 5's weights on both cores throughout (OMP_NUM_THREADS=2
# taskset -c 0,1) with --learning_rate 1e-4 --max_train_steps 6000 --max_train_minutes 105
# --output_dir runs/stage6: 4,510 steps, about 1.35 s a step.
# Stage 7, as run: the same from stage 6's run folder (--init_from runs/stage6, the weights shipped
# as stage 6) with --lr_warmup_steps 200 --max_train_steps 16000 --max_train_minutes 95
# --output_dir runs/stage7: 4,306 steps, about 1.32 s a step.
# Stage 8, as run: the same from runs/stage7 with --max_train_minutes 95 --real_ranges
# p_spatial=0.3,0.3,0.15,0.25 p_sigma_log=0.5 channel_gain=0.7,1.4 (since then the RealRanges
# defaults) --output_dir runs/stage10: 3,645 steps, about 1.56 s a step.
# Stage 9, as run: the same from runs/stage10 with --max_train_steps 4000 and no time budget
# (the cosine schedule over exactly 4,000 steps, resumed once) --output_dir runs/stage11:
# about 1.4 s a step.
# Stage 10, as run on an Intel Xeon with AMX: bf16 autocast on both cores, about 0.22 s a step, from
# the stage-9 weights then shipped (--init_from cleanvision/weights/default) with the same mix:
#   OMP_NUM_THREADS=2 taskset -c 0,1 python train_accelerate.py <stage 4's data, model and batch
#     flags> --init_from cleanvision/weights/default --learning_rate 1e-4 --lr_warmup_steps 200 \
#     --max_train_steps 40000 --max_train_minutes 85 --mixed_precision bf16 --channels_last \
#     --checkpointing_steps 500 --checkpoints_total_limit 2 --validation_steps 1000 \
#     --real_fraction 0.3 --grey_fraction 0.15 --real_ranges p_spatial=0.3,0.3,0.15,0.25 \
#     p_sigma_log=0.5 channel_gain=0.7,1.4 --report_to tensorboard --resume_from_checkpoint latest \
#     --output_dir runs/stage12
# (22,828 steps in the 85 minutes; the cosine schedule follows the budget).
# Stage 11: the same command from the stage-10 weights, with --max_train_steps 23000
# --max_train_minutes 90 --output_dir runs/stage13, so the step limit rather than the budget
# ends the cosine schedule (all 23,000 steps ran in 89 minutes, about 0.23 s a step).
# Stage 12: stage 11's command from the stage-11 weights with --output_dir runs/stage14 (all
# 23,000 steps in 67 minutes, about 0.18 s a step). Stage 13: the same from the
# stage-12 weights with --max_train_steps 16000 --max_train_minutes 52 --output_dir runs/stage15
# (all 16,000 steps in 48 minutes). Stage 14: stage 12's command from the stage-13
# weights with --clean_fraction 0.1 --max_train_steps 28000 --max_train_minutes 50
# --output_dir runs/stage18 (14,630 steps). Stage 15 (shipped): stage 14's command from the
# stage-14 weights with --grey_fraction 0.2, --real_ranges ... jpeg_quality=10,75 p_jpeg=0.7
# p_channels=0.3,0.45,0.25, --lr_warmup_steps 100 --max_train_minutes 95 --output_dir
# runs/stage20 (9,922 steps on an AMD EPYC in bf16), then the mean of its weights and stage
# 14's: python scripts/average_weights.py runs/stage20 cleanvision/weights/default -o runs/stage20-avg.
# The run scripts of stages 9 to 15 are not in the repository; training_info.json beside the
# shipped weights records each stage's full command.
set -euo pipefail
OUT=${1:-runs/cpu-ffdnet12}
DATA=${DATA:-../shared/data/train}
PY=${PYTHON:-python}
exec "$PY" train_accelerate.py \
  --train_data_dir "$DATA/CBSD432" "$DATA/Sun_Hays80" "$DATA/wikipedia-photos" \
  --validation_fraction 0.05 --max_validation_images 24 \
  --depth 12 --width 96 --pixel_unshuffle 2 \
  --patch_size 64 --train_batch_size 32 --patches_per_image 64 \
  --max_train_steps "${STEPS:-13000}" --learning_rate 1e-3 --lr_warmup_steps 300 \
  --mixed_precision bf16 --channels_last \
  --checkpointing_steps 500 --checkpoints_total_limit 2 --validation_steps 1000 \
  --report_to tensorboard --resume_from_checkpoint latest \
  --output_dir "$OUT" ${EXTRA_ARGS:-}
