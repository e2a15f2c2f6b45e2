//! `tahoma conformance DIR...`: finds ONNX backend-style test folders (`model.onnx` plus
//! `test_data_set_N/{input,output}_K.pb`), runs each through import and the reference
//! interpreter (`tahoma_compiler::conformance`), and prints pass / fail / unsupported with
//! reasons and the counts, or one JSON array with `--json`.

use super::CliError;
use std::fs;
use std::path::{Path, PathBuf};
use tahoma_compiler::conformance::{
    interpreter, run_case_on, DataSet, ExecError, Outcome, Status, Tolerance,
};
use tahoma_compiler::graph::Graph;
use tahoma_compiler::tensor::Tensor as HostTensor;

/// What runs the imported graphs.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Target {
    /// The reference interpreter.
    #[default]
    Interpreter,
    /// Compiled at fp32 (default optimisation level) and run on the emulator (functional mode).
    Emulator,
}

/// Compiles a graph at fp32 and runs it on the emulator; ops the chip cannot run yet make the
/// case unsupported.
fn on_emulator(g: &Graph, inputs: &[HostTensor]) -> Result<Vec<HostTensor>, ExecError> {
    use tahoma_compiler::diag::Code;
    use tahoma_compiler::driver::{compile_graph_opt, CompileOptions};
    use tahoma_compiler::lower::{LowerOptions, Precision};
    use tahoma_runtime::emulator::{Emulator, RunOptions};
    let opts = CompileOptions {
        lower: LowerOptions {
            precision: Precision::Fp32,
        },
        opt_level: Default::default(),
        keep_phase_graphs: false,
    };
    let (compiled, _) = compile_graph_opt(g, &opts).map_err(|d| {
        if d.0.iter().all(|x| x.code == Code::NotLowered) {
            ExecError::Unsupported(format!("not lowered: {d}"))
        } else {
            ExecError::Failed(format!("compile: {d}"))
        }
    })?;
    let failed = |e: tahoma_runtime::error::RunError| {
        ExecError::Failed(format!("emulator: error[{}]: {e}", e.code()))
    };
    let mut emu = Emulator::new(compiled.program).map_err(failed)?;
    for (&v, t) in g.inputs.iter().zip(inputs) {
        let name = &g.value(v).name;
        let Some(dtype) = emu
            .program()
            .io
            .iter()
            .find(|e| &e.name == name)
            .map(|e| e.dtype)
        else {
            return Err(ExecError::Failed(format!(
                "the program has no input `{name}`"
            )));
        };
        let shape = t.shape().iter().map(|&d| d as u64).collect();
        emu.set_input(
            name,
            &tahoma_runtime::tensor::Tensor::new(dtype, shape, t.to_f32_vec()),
        )
        .map_err(failed)?;
    }
    let r = emu.run(&RunOptions::functional()).map_err(failed)?;
    g.outputs
        .iter()
        .map(|&o| {
            let val = g.value(o);
            let t = r.outputs.get(&val.name).ok_or_else(|| {
                ExecError::Failed(format!("the program has no output `{}`", val.name))
            })?;
            Ok(HostTensor::from_f32(val.ty.dtype, &val.ty.shape, &t.data))
        })
        .collect()
}
use tahoma_compiler::onnx::{check_location, ExternalData};

/// Reads external tensor data relative to a model's folder.
struct DirData(PathBuf);

impl DirData {
    fn path(&self, location: &str) -> Result<PathBuf, String> {
        let rel = check_location(location)?;
        let p = self.0.join(rel);
        let canon = p
            .canonicalize()
            .map_err(|e| format!("{}: {e}", p.display()))?;
        let root = self
            .0
            .canonicalize()
            .map_err(|e| format!("{}: {e}", self.0.display()))?;
        if !canon.starts_with(&root) {
            return Err(format!("'{location}' resolves outside the model folder"));
        }
        Ok(canon)
    }
}

impl ExternalData for DirData {
    fn len(&self, location: &str) -> Result<u64, String> {
        let p = self.path(location)?;
        fs::metadata(&p)
            .map(|m| m.len())
            .map_err(|e| format!("{}: {e}", p.display()))
    }
    fn read(&self, location: &str, offset: u64, length: u64) -> Result<Vec<u8>, String> {
        use std::io::{Read, Seek, SeekFrom};
        let p = self.path(location)?;
        let mut f = fs::File::open(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        f.seek(SeekFrom::Start(offset)).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; length as usize];
        f.read_exact(&mut buf)
            .map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(buf)
    }
}

fn io_err(p: &Path, e: impl std::fmt::Display) -> CliError {
    CliError::new("E0001", format!("cannot read {}: {e}", p.display()))
}

/// Test folders under `dir` (itself if it holds `model.onnx`), sorted by path.
fn find_cases(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), CliError> {
    if dir.join("model.onnx").is_file() {
        out.push(dir.to_path_buf());
        return Ok(());
    }
    let mut subs: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| io_err(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    subs.sort();
    for s in subs {
        find_cases(&s, out)?;
    }
    Ok(())
}

/// Files `prefix_K.pb` in `dir`, ordered by K.
fn numbered(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>, CliError> {
    let mut v: Vec<(u64, PathBuf)> = Vec::new();
    for e in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let p = e.map_err(|e| io_err(dir, e))?.path();
        let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(k) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(".pb"))
            .and_then(|k| k.parse::<u64>().ok())
        {
            v.push((k, p));
        }
    }
    v.sort();
    Ok(v.into_iter().map(|(_, p)| p).collect())
}

/// Optional `tolerance.json` (`{"rtol": .., "atol": ..}`) in a test folder.
fn tolerance(dir: &Path) -> Result<Tolerance, CliError> {
    let p = dir.join("tolerance.json");
    let mut t = Tolerance::default();
    if !p.exists() {
        return Ok(t);
    }
    let text = fs::read_to_string(&p).map_err(|e| io_err(&p, e))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| io_err(&p, e))?;
    if let Some(r) = v.get("rtol").and_then(|x| x.as_f64()) {
        t.rtol = r;
    }
    if let Some(a) = v.get("atol").and_then(|x| x.as_f64()) {
        t.atol = a;
    }
    Ok(t)
}

/// Runs one test folder; IO problems and panics become failures of that case.
pub fn run_dir(dir: &Path, target: Target) -> Outcome {
    let fail = |m: String| Outcome {
        status: Status::Fail,
        reason: m,
    };
    let load = || -> Result<(Vec<u8>, Vec<DataSet>, Tolerance), CliError> {
        let model_path = dir.join("model.onnx");
        let model = fs::read(&model_path).map_err(|e| io_err(&model_path, e))?;
        let mut set_dirs: Vec<(u64, PathBuf)> = fs::read_dir(dir)
            .map_err(|e| io_err(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|p| {
                let k = p
                    .file_name()?
                    .to_str()?
                    .strip_prefix("test_data_set_")?
                    .parse()
                    .ok()?;
                Some((k, p))
            })
            .collect();
        set_dirs.sort();
        let mut sets = Vec::new();
        for (_, d) in set_dirs {
            let read = |ps: Vec<PathBuf>| -> Result<Vec<Vec<u8>>, CliError> {
                ps.iter()
                    .map(|p| fs::read(p).map_err(|e| io_err(p, e)))
                    .collect()
            };
            sets.push(DataSet {
                inputs: read(numbered(&d, "input_")?)?,
                outputs: read(numbered(&d, "output_")?)?,
            });
        }
        Ok((model, sets, tolerance(dir)?))
    };
    let (model, sets, tol) = match load() {
        Ok(x) => x,
        Err(e) => return fail(format!("reading test: {}", e.message)),
    };
    let ext = DirData(dir.to_path_buf());
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match target {
        Target::Interpreter => run_case_on(&model, &ext, &sets, tol, &interpreter),
        Target::Emulator => run_case_on(&model, &ext, &sets, tol, &on_emulator),
    })) {
        Ok(o) => o,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            fail(format!("panic (a bug in tahoma): {msg}"))
        }
    }
}

/// The subcommand.
pub fn conformance(dirs: &[PathBuf], json: bool, target: Target) -> Result<(), CliError> {
    let mut cases = Vec::new();
    for d in dirs {
        if !d.is_dir() {
            return Err(CliError::new(
                "E0005",
                format!(
                    "{} is not a folder of ONNX backend tests (run tests/corpus/fetch.sh to build the corpora)",
                    d.display()
                ),
            ));
        }
        let before = cases.len();
        find_cases(d, &mut cases)?;
        if cases.len() == before {
            return Err(CliError::new(
                "E0006",
                format!(
                    "no test folders (model.onnx + test_data_set_N/) under {}",
                    d.display()
                ),
            ));
        }
    }
    // Silence the default panic message; run_dir reports panics as failures.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut results = Vec::with_capacity(cases.len());
    for c in &cases {
        let name = c
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_string();
        let o = run_dir(c, target);
        if !json {
            match o.status {
                Status::Pass => println!("pass        {name}"),
                s => println!("{:<11} {name}: {}", s.as_str(), o.reason),
            }
        }
        results.push((name, o));
    }
    std::panic::set_hook(hook);
    let count = |s: Status| results.iter().filter(|(_, o)| o.status == s).count();
    let (pass, fail, unsup) = (
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Unsupported),
    );
    let summary = format!(
        "total {}, in scope {}, pass {pass}, fail {fail}, unsupported {unsup}",
        results.len(),
        pass + fail
    );
    if json {
        let arr: Vec<serde_json::Value> = results
            .iter()
            .map(|(n, o)| serde_json::json!({"name": n, "status": o.status.as_str(), "reason": o.reason}))
            .collect();
        println!("{}", serde_json::Value::Array(arr));
        eprintln!("{summary}");
    } else {
        println!("{summary}");
    }
    Ok(())
}
