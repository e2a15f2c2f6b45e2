//! Real models end to end on the emulator against onnxruntime's golden outputs (the corpora built
//! by `tests/corpus/fetch.sh`; a missing corpus fails loudly): MiniLM-L3, YOLOv8n at 320x320 and
//! the light ResNet-50, compiled at fp32 with and without the optimizer (must match within the
//! goldens' rtol 1e-3 / atol 1e-5) and at bf16 (cosine similarity >= 0.999 per output).

use std::path::{Path, PathBuf};
use tahoma_compiler::conformance::decode_test_tensor;
use tahoma_compiler::driver::{compile_graph_opt, CompileOptions};
use tahoma_compiler::lower::{LowerOptions, Precision};
use tahoma_compiler::onnx::{import_bytes, ImportOptions, NoExternalData};
use tahoma_compiler::opt::OptLevel;
use tahoma_compiler::tensor::Tensor as HostTensor;
use tahoma_runtime::emulator::{Emulator, RunOptions};
use tahoma_runtime::tensor::Tensor;

fn corpus() -> PathBuf {
    let dir = std::env::var_os("TAHOMA_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/corpus"));
    assert!(
        dir.is_dir(),
        "corpus {} is missing: run `bash tests/corpus/fetch.sh` (tests/run.sh does)",
        dir.display()
    );
    dir
}

fn tensor(path: &Path) -> HostTensor {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    decode_test_tensor(&bytes)
        .unwrap()
        .expect("a supported dtype")
}

/// Runs `model` (a backend-style test folder) at `precision` and `level`; returns (output,
/// golden) pairs.
fn run(
    folder: &Path,
    shapes: &[(&str, Vec<usize>)],
    precision: Precision,
    level: OptLevel,
) -> Vec<(Vec<f32>, Vec<f32>)> {
    let bytes = std::fs::read(folder.join("model.onnx")).unwrap();
    let mut opts = ImportOptions::default();
    for (name, s) in shapes {
        opts.shapes.insert(name.to_string(), s.clone());
    }
    let g = import_bytes(&bytes, &opts, &NoExternalData)
        .unwrap_or_else(|e| panic!("{}: {e}", folder.display()));
    let opts = CompileOptions {
        lower: LowerOptions { precision },
        opt_level: level,
        keep_phase_graphs: false,
    };
    let (compiled, _) =
        compile_graph_opt(&g, &opts).unwrap_or_else(|e| panic!("{}: {e}", folder.display()));
    let mut emu = Emulator::new(compiled.program).unwrap();
    let data = folder.join("test_data_set_0");
    for (k, &v) in g.inputs.iter().enumerate() {
        let t = tensor(&data.join(format!("input_{k}.pb")));
        let name = &g.value(v).name;
        let dtype = emu
            .program()
            .io
            .iter()
            .find(|e| &e.name == name)
            .unwrap()
            .dtype;
        emu.set_input(
            name,
            &Tensor::new(
                dtype,
                t.shape().iter().map(|&d| d as u64).collect(),
                t.to_f32_vec(),
            ),
        )
        .unwrap();
    }
    let r = emu
        .run(&RunOptions::functional())
        .unwrap_or_else(|e| panic!("{}: {e}", folder.display()));
    g.outputs
        .iter()
        .enumerate()
        .map(|(k, &v)| {
            (
                r.outputs[&g.value(v).name].data.clone(),
                tensor(&data.join(format!("output_{k}.pb"))).to_f32_vec(),
            )
        })
        .collect()
}

/// fp32 at -O0 and -O2 within the goldens' tolerance, bf16 (at the default -O2) by cosine.
fn check(folder: &Path, shapes: &[(&str, Vec<usize>)]) {
    let fp32 = [OptLevel::O0, OptLevel::O2]
        .into_iter()
        .flat_map(|level| run(folder, shapes, Precision::Fp32, level));
    for (got, want) in fp32 {
        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            let bound = 1e-5 + 1e-3 * f64::from(w).abs();
            assert!(
                (f64::from(g) - f64::from(w)).abs() <= bound,
                "{}: fp32 element {i}: got {g}, onnxruntime {w}",
                folder.display()
            );
        }
    }
    for (got, want) in run(folder, shapes, Precision::Bf16, OptLevel::O2) {
        let dot: f64 = got
            .iter()
            .zip(&want)
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum();
        let na: f64 = got
            .iter()
            .map(|&a| f64::from(a).powi(2))
            .sum::<f64>()
            .sqrt();
        let nb: f64 = want
            .iter()
            .map(|&b| f64::from(b).powi(2))
            .sum::<f64>()
            .sqrt();
        let cosine = dot / (na * nb).max(f64::MIN_POSITIVE);
        assert!(
            cosine >= 0.999,
            "{}: bf16 cosine {cosine}",
            folder.display()
        );
    }
}

#[test]
fn yolov8n_320_matches_onnxruntime_on_the_emulator() {
    check(
        &corpus().join("models/nudenet-3.4.2/yolov8n_320"),
        &[("images", vec![1, 3, 320, 320])],
    );
}

#[test]
fn light_resnet50_matches_onnxruntime_on_the_emulator() {
    check(&corpus().join("onnx-1.23.2/light/light_resnet50"), &[]);
}

#[test]
fn minilm_l3_matches_onnxruntime_on_the_emulator() {
    // The golden inputs are [2, 16] token ids and mask (int64, held as i32 on the chip); the
    // embedding lookup is a run-time Gather lowered as a one-hot matmul.
    let ids = vec![2, 16];
    check(
        &corpus().join("models/minilm-0.2.1/minilm_l3"),
        &[("input_ids", ids.clone()), ("attention_mask", ids)],
    );
}
