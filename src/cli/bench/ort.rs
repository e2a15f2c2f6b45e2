//! onnxruntime CPU timings for `tahoma bench`: finds a Python with onnxruntime (`--python`,
//! `TAHOMA_PYTHON`, the corpus venv, then `python3`), and times `InferenceSession.run` on a
//! model and `.npy` inputs in a subprocess running [`SCRIPT`] (one warm-up run, then the
//! repeats; the wall time of each run is returned and the caller takes the median).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Times `sess.run` on the CPU provider; prints one JSON object: `{"seconds": [...],
/// "version": V}` or `{"error": MESSAGE}`.
const SCRIPT: &str = r#"
import json, sys, time
try:
    import numpy as np
    import onnxruntime as ort
except Exception as e:
    print(json.dumps({"error": "cannot import onnxruntime: %s" % e}))
    sys.exit(0)
model, repeat = sys.argv[1], int(sys.argv[2])
try:
    feeds = {}
    for spec in sys.argv[3:]:
        name, path = spec.rsplit("=", 1)
        feeds[name] = np.load(path)
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    sess.run(None, feeds)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - t0)
    print(json.dumps({"seconds": times, "version": ort.__version__}))
except Exception as e:
    msg = str(e).strip().splitlines()
    print(json.dumps({"error": (msg[0] if msg else type(e).__name__)[:300]}))
"#;

/// A Python interpreter that imports onnxruntime, and the onnxruntime version.
#[derive(Clone, Debug)]
pub struct Ort {
    pub python: PathBuf,
    pub version: String,
}

/// Whether `python` imports onnxruntime and numpy; returns the onnxruntime version.
fn probe(python: &Path) -> Option<String> {
    let out = Command::new(python)
        .args([
            "-c",
            "import numpy, onnxruntime; print(onnxruntime.__version__)",
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Finds a Python with onnxruntime: `explicit`, then `TAHOMA_PYTHON`, then a venv of the
/// corpus (`CORPUS/venv-*/bin/python`), then `python3` on PATH. Err says what was tried.
pub fn find(explicit: Option<&Path>, corpus: &Path) -> Result<Ort, String> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = explicit {
        candidates.push(p.to_path_buf());
    } else {
        if let Some(p) = std::env::var_os("TAHOMA_PYTHON") {
            candidates.push(PathBuf::from(p));
        }
        if let Ok(rd) = std::fs::read_dir(corpus) {
            let mut venvs: Vec<PathBuf> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("venv-"))
                })
                .map(|p| p.join("bin").join("python"))
                .filter(|p| p.is_file())
                .collect();
            venvs.sort();
            candidates.extend(venvs);
        }
        candidates.push(PathBuf::from("python3"));
    }
    for c in &candidates {
        if let Some(version) = probe(c) {
            return Ok(Ort {
                python: c.clone(),
                version,
            });
        }
    }
    let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    Err(format!(
        "no Python with onnxruntime (tried {}); `bash tests/corpus/fetch.sh` builds a venv with it",
        tried.join(", ")
    ))
}

impl Ort {
    /// Times `model` on `inputs` (`(name, .npy file)`): wall seconds of `repeat` runs after one
    /// warm-up. Err carries onnxruntime's message.
    pub fn time(
        &self,
        model: &Path,
        inputs: &[(String, PathBuf)],
        repeat: usize,
    ) -> Result<Vec<f64>, String> {
        let mut cmd = Command::new(&self.python);
        cmd.arg("-c")
            .arg(SCRIPT)
            .arg(model)
            .arg(repeat.max(1).to_string());
        for (name, file) in inputs {
            cmd.arg(format!("{name}={}", file.display()));
        }
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.python.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let v: serde_json::Value = stdout
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .ok_or_else(|| {
                let err = String::from_utf8_lossy(&out.stderr);
                format!(
                    "onnxruntime script failed: {}",
                    err.lines().last().unwrap_or("no output")
                )
            })?;
        if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
            return Err(e.to_string());
        }
        v.get("seconds")
            .and_then(|s| s.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
            .ok_or_else(|| "onnxruntime script printed no timings".to_string())
    }
}
