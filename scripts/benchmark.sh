#!/usr/bin/env bash
# Every quality number in docs/benchmark.md (and the headline table of README.md and model_card.md): the shipped model and the classical
# baselines on every benchmark set, then the tables regenerated from the JSON.
#   bash scripts/benchmark.sh                       # everything (BM3D makes it slow)
#   bash scripts/benchmark.sh --methods model,noisy,median3,median5,gblur,nlm,nlm5 --update
#                                                   # a new model, keeping the BM3D rows
# Extra arguments go to each `cleanvision eval`. Sets (../shared/data, see its README):
#   colour CBSD68, Kodak24: the seven frozen conditions, the four extended ones, undamaged photos
#   (the clean photo as input), paper protocol;
#   real PolyU, CC15: real noisy photos against their ground truth;
#   grey BSD68, Set12: paper protocol on grey images (grey in, grey out), undamaged grey photos.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DATA=${DATA:-../shared/data}
"$PY" -m cleanvision.bench --clean "$DATA/CBSD68" --clean "$DATA/Kodak24" --conditions all "$@"
"$PY" -m cleanvision.bench --clean "$DATA/real/PolyU" --clean "$DATA/real/CC15" --figure-conditions real "$@"
"$PY" -m cleanvision.bench --clean "$DATA/BSD68" --clean "$DATA/Set12" --conditions undamaged --figure-images 0 "$@"
"$PY" scripts/update_tables.py
