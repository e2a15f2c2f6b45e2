//! The optimizer end to end over the conformance corpora: every case a manifest lists
//! (`tests/corpus/manifest/<set>.txt`, the cases that pass on the reference interpreter
//! unoptimised, i.e. at -O0) is imported as the conformance runner imports it, optimised at -O2
//! (cost model at fp32, the precision conformance compiles at, and at bf16, the CLI's default,
//! since extraction may differ), and the interpreter runs the original and the optimised graph
//! on the case's inputs. They must agree within [`EXACT`] (fp32 rtol 1e-5, atol 1e-6: no case
//! needs the looser rtol 1e-4 the rule tests allow the rounding-moving rules, batch-norm folding
//! and the division/scale rules with a C operand); the optimised graph must also still pass the
//! case's own golden outputs. A missing corpus fails loudly; nothing is skipped.

use std::fs;
use std::path::{Path, PathBuf};
use tahoma_compiler::conformance::{
    compare, interpreter, run_case_on, DataSet, ExecError, Status, Tolerance,
};
use tahoma_compiler::graph::{Graph, Op};
use tahoma_compiler::lower::Precision;
use tahoma_compiler::onnx::ExternalData;
use tahoma_compiler::opt::{optimize, OptLevel, OptOptions};
use tahoma_compiler::tensor::Tensor;

/// Optimised against unoptimised when no rule reassociated: fp32 rtol 1e-5 (atol for values
/// that cancel to about zero).
const EXACT: Tolerance = Tolerance {
    rtol: 1e-5,
    atol: 1e-6,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn corpus_dir() -> PathBuf {
    std::env::var_os("TAHOMA_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/corpus"))
}

/// External data files next to a case's `model.onnx`.
struct Folder(PathBuf);

impl ExternalData for Folder {
    fn len(&self, location: &str) -> Result<u64, String> {
        fs::metadata(self.0.join(location))
            .map(|m| m.len())
            .map_err(|e| format!("{location}: {e}"))
    }
    fn read(&self, location: &str, offset: u64, length: u64) -> Result<Vec<u8>, String> {
        let bytes = fs::read(self.0.join(location)).map_err(|e| format!("{location}: {e}"))?;
        let (a, b) = (offset as usize, (offset + length) as usize);
        bytes
            .get(a..b)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| format!("{location}: {a}..{b} is out of range"))
    }
}

/// Case folders (holding `model.onnx`) under `dir`, by folder name.
fn find_cases(dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    if dir.join("model.onnx").is_file() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        out.push((name, dir.to_path_buf()));
        return;
    }
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        if e.path().is_dir() {
            find_cases(&e.path(), out);
        }
    }
}

/// `prefix_K.pb` files of a data-set folder, read in K order.
fn numbered(dir: &Path, prefix: &str) -> Vec<Vec<u8>> {
    let mut v: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let k = p
                .file_name()?
                .to_str()?
                .strip_prefix(prefix)?
                .strip_suffix(".pb")?
                .parse()
                .ok()?;
            Some((k, p))
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, p)| fs::read(p).unwrap()).collect()
}

fn data_sets(case: &Path) -> Vec<DataSet> {
    let mut dirs: Vec<(u64, PathBuf)> = fs::read_dir(case)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let k = p
                .file_name()?
                .to_str()?
                .strip_prefix("test_data_set_")?
                .parse()
                .ok()?;
            Some((k, p))
        })
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|(_, d)| DataSet {
            inputs: numbered(&d, "input_"),
            outputs: numbered(&d, "output_"),
        })
        .collect()
}

/// The case's own tolerance (`tolerance.json`), as the conformance runner reads it.
fn golden_tolerance(case: &Path) -> Tolerance {
    let mut t = Tolerance::default();
    if let Ok(text) = fs::read_to_string(case.join("tolerance.json")) {
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        if let Some(r) = v.get("rtol").and_then(|x| x.as_f64()) {
            t.rtol = r;
        }
        if let Some(a) = v.get("atol").and_then(|x| x.as_f64()) {
            t.atol = a;
        }
    }
    t
}

/// Runs `g` unoptimised and optimised at -O2 (cost model at `precision`) on the interpreter,
/// compares the two and returns the optimised graph's outputs (checked against the golden
/// outputs by the conformance runner). Counts the graphs the optimizer changed.
fn o2_against_o0(
    g: &Graph,
    inputs: &[Tensor],
    precision: Precision,
    changed: &std::cell::Cell<usize>,
) -> Result<Vec<Tensor>, ExecError> {
    let want = interpreter(g, inputs)?;
    let opts = OptOptions {
        level: OptLevel::O2,
        precision,
        ..Default::default()
    };
    let o = optimize(g, &opts).map_err(|d| ExecError::Failed(format!("optimize: {d}")))?;
    if o.graph != *g {
        changed.set(changed.get() + 1);
    }
    let got = interpreter(&o.graph, inputs)?;
    if want.len() != got.len() {
        return Err(ExecError::Failed(format!(
            "-O2 has {} outputs, -O0 {}",
            got.len(),
            want.len()
        )));
    }
    for (i, (w, h)) in want.iter().zip(&got).enumerate() {
        compare(w, h, EXACT).map_err(|e| {
            ExecError::Failed(format!(
                "output {i}: -O2 against -O0: {e}\n-O2 graph ops: {:?}",
                o.graph.nodes.iter().map(|n| n.op).collect::<Vec<Op>>()
            ))
        })?;
    }
    Ok(got)
}

/// Every case of `set`'s manifest, at both cost-model precisions.
fn check(set: &str, rel: &str) {
    let dir = corpus_dir().join(rel);
    assert!(
        dir.is_dir(),
        "conformance corpus {} is missing: run `bash tests/corpus/fetch.sh` (tests/run.sh does) before `cargo test`",
        dir.display()
    );
    let manifest = root().join(format!("tests/corpus/manifest/{set}.txt"));
    let listed: Vec<String> = fs::read_to_string(&manifest)
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let mut cases = Vec::new();
    find_cases(&dir, &mut cases);
    let mut failures = Vec::new();
    let changed = std::cell::Cell::new(0);
    for name in &listed {
        let Some((_, case)) = cases.iter().find(|(n, _)| n == name) else {
            failures.push(format!(
                "{name}: listed in the manifest but not in the corpus"
            ));
            continue;
        };
        let model = fs::read(case.join("model.onnx")).unwrap();
        let sets = data_sets(case);
        let ext = Folder(case.clone());
        for precision in [Precision::Fp32, Precision::Bf16] {
            let exec = |g: &Graph, ins: &[Tensor]| o2_against_o0(g, ins, precision, &changed);
            let o = run_case_on(&model, &ext, &sets, golden_tolerance(case), &exec);
            if o.status != Status::Pass {
                failures.push(format!(
                    "{name} ({precision:?}): {} ({})",
                    o.status, o.reason
                ));
            }
        }
    }
    println!(
        "{set}: {} cases checked at -O2 against -O0 (x2 cost-model precisions), {} optimised graphs differed from the input",
        listed.len(),
        changed.get()
    );
    assert!(
        failures.is_empty(),
        "{set}: {} of {} cases fail at -O2:\n  {}",
        failures.len(),
        listed.len(),
        failures.join("\n  ")
    );
}

#[test]
fn node_tests_at_o2() {
    check("node", "onnx-1.23.2/node");
}

#[test]
fn simple_models_at_o2() {
    check("simple", "onnx-1.23.2/simple");
}

#[test]
fn pytorch_converted_at_o2() {
    check("pytorch-converted", "onnx-1.23.2/pytorch-converted");
}

#[test]
fn pytorch_operator_at_o2() {
    check("pytorch-operator", "onnx-1.23.2/pytorch-operator");
}

#[test]
fn light_models_at_o2() {
    check("light", "onnx-1.23.2/light");
}

#[test]
fn real_models_at_o2() {
    check("models", "models");
}
