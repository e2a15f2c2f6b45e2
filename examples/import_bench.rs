//! Import benchmark: wall time of ONNX import (protobuf decode, then import with folding,
//! shape inference, dead-value elimination and verification) of the two real models of the
//! conformance corpus, MiniLM-L3 and YOLOv8n, as the median of N runs.
//!
//! `cargo run --release --example import_bench [-- RUNS]` (corpus from `bash
//! tests/corpus/fetch.sh`; `TAHOMA_CORPUS_DIR` points elsewhere). Symbolic input dims are
//! bound from each model's `test_data_set_0` inputs. The goal is under 200 ms per model.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tahoma_compiler::conformance::decode_test_tensor;
use tahoma_compiler::onnx::{decode_model, import_model, ImportOptions, NoExternalData};

fn corpus_dir() -> PathBuf {
    std::env::var_os("TAHOMA_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/corpus"))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn bench(name: &str, dir: &Path, runs: usize) -> Result<(), String> {
    let bytes = std::fs::read(dir.join("model.onnx"))
        .map_err(|e| format!("{}: {e} (run `bash tests/corpus/fetch.sh`)", dir.display()))?;
    let model = decode_model(&bytes).map_err(|d| d.to_string())?;
    // Bind every runtime input's shape from the first data set, as `tahoma conformance` does.
    let g = model.graph.as_ref().ok_or("no graph")?;
    let inits: Vec<&str> = g
        .initializer
        .iter()
        .filter_map(|t| t.name.as_deref())
        .collect();
    let names: Vec<String> = g
        .input
        .iter()
        .filter_map(|v| v.name.clone())
        .filter(|n| !inits.contains(&n.as_str()))
        .collect();
    let mut opts = ImportOptions::default();
    for (k, n) in names.iter().enumerate() {
        let p = dir.join(format!("test_data_set_0/input_{k}.pb"));
        let b = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let t = decode_test_tensor(&b)?.ok_or(format!("{}: unsupported dtype", p.display()))?;
        opts.shapes.insert(n.clone(), t.shape().to_vec());
    }
    let (mut dec, mut imp, mut tot) = (Vec::new(), Vec::new(), Vec::new());
    let mut nodes = 0;
    for _ in 0..runs {
        let t0 = Instant::now();
        let m = decode_model(&bytes).map_err(|d| d.to_string())?;
        let t1 = Instant::now();
        let graph = import_model(&m, &opts, &NoExternalData).map_err(|d| d.to_string())?;
        let t2 = Instant::now();
        nodes = graph.nodes.len();
        dec.push(t1 - t0);
        imp.push(t2 - t1);
        tot.push(t2 - t0);
    }
    println!(
        "{name:<10} {:>6.1} MB  {nodes:>4} nodes  decode {:>9}  import+shapes {:>9}  total {:>9}  (median of {runs})",
        bytes.len() as f64 / 1e6,
        ms(median(dec)),
        ms(median(imp)),
        ms(median(tot)),
    );
    Ok(())
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(11);
    let c = corpus_dir().join("models");
    let mut failed = false;
    for (name, rel) in [
        ("MiniLM-L3", "minilm-0.2.1/minilm_l3"),
        ("YOLOv8n", "nudenet-3.4.2/yolov8n_320"),
    ] {
        if let Err(e) = bench(name, &c.join(rel), runs) {
            eprintln!("{name}: {e}");
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
}
