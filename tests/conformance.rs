//! Conformance corpora against their manifests: runs `tahoma conformance DIR --json` on every
//! corpus built by `tests/corpus/fetch.sh` and fails when a test listed in
//! `tests/corpus/manifest/<set>.txt` does not pass. Tests that pass but are not listed are
//! printed (and written to `target/corpus/newly-passing-<set>.txt`) so the manifest can grow.
//! A missing corpus fails loudly; nothing is skipped.
//!
//! `TAHOMA_UPDATE_MANIFEST=1 cargo test --release --test conformance` rewrites the manifests
//! from the current results.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn corpus_dir() -> PathBuf {
    std::env::var_os("TAHOMA_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/corpus"))
}

struct Case {
    name: String,
    status: String,
    reason: String,
}

/// `tahoma conformance DIR --json --target TARGET`: the cases and the counts line.
fn run_conformance(dir: &Path, target: &str) -> (Vec<Case>, String) {
    assert!(
        dir.is_dir(),
        "conformance corpus {} is missing: run `bash tests/corpus/fetch.sh` (tests/run.sh does) before `cargo test`",
        dir.display()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_tahoma"))
        .arg("conformance")
        .arg(dir)
        .arg("--json")
        .arg("--target")
        .arg(target)
        .output()
        .expect("run the tahoma binary");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "tahoma conformance {} failed: {stderr}",
        dir.display()
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("--json prints one JSON array");
    let cases = v
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().expect("name").to_string(),
            status: c["status"].as_str().expect("status").to_string(),
            reason: c["reason"].as_str().expect("reason").to_string(),
        })
        .collect();
    (cases, stderr.trim().to_string())
}

/// The manifest of a set: `<set>.txt` for the interpreter, `<set>.emulator.txt` for the chip.
fn manifest_path(set: &str) -> PathBuf {
    root()
        .join("tests/corpus/manifest")
        .join(format!("{set}.txt"))
}

fn read_manifest(set: &str) -> BTreeSet<String> {
    let p = manifest_path(set);
    let text =
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("manifest {}: {e}", p.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn write_manifest(set: &str, dir: &Path, cases: &[Case], summary: &str) {
    let mut text = format!(
        "# Tests of the `{set}` corpus ({}) that pass (interpreter, or emulator for *.emulator).\n\
         # One name per line; tests/conformance.rs fails when a listed test does not pass.\n\
         # Regenerate: TAHOMA_UPDATE_MANIFEST=1 cargo test --release --test conformance\n# {summary}\n",
        dir.strip_prefix(corpus_dir()).unwrap_or(dir).display()
    );
    for c in cases.iter().filter(|c| c.status == "pass") {
        text.push_str(&c.name);
        text.push('\n');
    }
    std::fs::write(manifest_path(set), text).expect("write manifest");
}

fn check(set: &str, rel: &str) {
    check_on(set, rel, "interpreter");
}

/// Runs a corpus on `target` and holds it to its manifest (`set` names the manifest file).
fn check_on(set: &str, rel: &str, target: &str) {
    let dir = corpus_dir().join(rel);
    let (cases, summary) = run_conformance(&dir, target);
    println!("{set}: {summary}");
    if std::env::var_os("TAHOMA_UPDATE_MANIFEST").is_some() {
        write_manifest(set, &dir, &cases, &summary);
        return;
    }
    let listed = read_manifest(set);
    let mut regressions = Vec::new();
    for name in &listed {
        match cases.iter().find(|c| &c.name == name) {
            None => regressions.push(format!(
                "{name}: listed in the manifest but not in the corpus"
            )),
            Some(c) if c.status != "pass" => {
                regressions.push(format!("{name}: {} ({})", c.status, c.reason))
            }
            Some(_) => {}
        }
    }
    let newly: Vec<&str> = cases
        .iter()
        .filter(|c| c.status == "pass" && !listed.contains(&c.name))
        .map(|c| c.name.as_str())
        .collect();
    if !newly.is_empty() {
        println!(
            "{set}: {} tests pass that the manifest does not list (add them):",
            newly.len()
        );
        for n in &newly {
            println!("  newly passing: {n}");
        }
        let _ = std::fs::write(
            corpus_dir().join(format!("newly-passing-{set}.txt")),
            newly.join("\n") + "\n",
        );
    }
    assert!(
        regressions.is_empty(),
        "{set}: {} manifest tests no longer pass:\n  {}",
        regressions.len(),
        regressions.join("\n  ")
    );
}

#[test]
fn node_tests() {
    check("node", "onnx-1.23.2/node");
}

#[test]
fn simple_models() {
    check("simple", "onnx-1.23.2/simple");
}

#[test]
fn pytorch_converted() {
    check("pytorch-converted", "onnx-1.23.2/pytorch-converted");
}

#[test]
fn pytorch_operator() {
    check("pytorch-operator", "onnx-1.23.2/pytorch-operator");
}

#[test]
fn light_models() {
    check("light", "onnx-1.23.2/light");
}

#[test]
fn real_models_minilm_and_yolov8n() {
    check("models", "models");
}

/// The same corpora compiled for the chip (fp32) and run on the emulator: the emulator column of
/// the manifest (`tests/corpus/manifest/<set>.emulator.txt`).
#[test]
fn node_tests_on_the_emulator() {
    check_on("node.emulator", "onnx-1.23.2/node", "emulator");
}

#[test]
fn simple_models_on_the_emulator() {
    check_on("simple.emulator", "onnx-1.23.2/simple", "emulator");
}

#[test]
fn pytorch_converted_on_the_emulator() {
    check_on(
        "pytorch-converted.emulator",
        "onnx-1.23.2/pytorch-converted",
        "emulator",
    );
}

#[test]
fn pytorch_operator_on_the_emulator() {
    check_on(
        "pytorch-operator.emulator",
        "onnx-1.23.2/pytorch-operator",
        "emulator",
    );
}

#[test]
fn light_models_on_the_emulator() {
    check_on("light.emulator", "onnx-1.23.2/light", "emulator");
}

#[test]
fn real_models_on_the_emulator() {
    check_on("models.emulator", "models", "emulator");
}
