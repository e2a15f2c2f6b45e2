//! `tahoma run INPUT`: runs a program (`.tbin`, or `.s` assembled in memory) or a model (ONNX,
//! graph IR or kernel IR, compiled in memory) on the emulator; with `--reference`, runs a model on
//! the graph interpreter instead, with the same inputs. Inputs come from `.npy` files or seeded
//! random values (the same values in both modes). Reports a human summary on stdout and, on
//! request, outputs as `.npy` files, a JSON report and a Chrome trace.

use super::compile::{
    compile_input, print_opt_report, read_input, ExtractArg, Input, OptArg, PrecisionArg,
};
use super::isa::{read_file, write_file_atomic};
use super::model::ModelArgs;
use super::CliError;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tahoma_compiler::opt::cost::model_work;
use tahoma_compiler::opt::report::OptReport;
use tahoma_compiler::tensor::{DType, Tensor as HostTensor};
use tahoma_isa::program::{IoEntry, IoKind, Program};
use tahoma_runtime::emulator::{Emulator, RunOptions};
use tahoma_runtime::npy::{NpyArray, NpyDtype};
use tahoma_runtime::report::RunResult;

/// Everything `run` was asked to do.
pub struct RunArgs {
    pub program: PathBuf,
    pub inputs: Vec<String>,
    pub out: Option<PathBuf>,
    pub trace: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub functional: bool,
    pub seed: u64,
    pub model: ModelArgs,
    pub precision: PrecisionArg,
    /// Optimisation level when compiling a model.
    pub opt: OptArg,
    /// `--extract`: the optimizer's extraction.
    pub extract: ExtractArg,
    /// `-v`: print the optimizer's report on stderr.
    pub verbose: bool,
    /// Run a model on the graph interpreter instead of the emulator.
    pub reference: bool,
}

/// True for inputs that are already programs (not models to compile).
fn is_program(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("tbin" | "s")
    )
}

fn runtime_error(e: tahoma_runtime::error::RunError) -> CliError {
    CliError::new(e.code(), e.to_string())
}

/// Reads a program: `.s` files are assembled, anything else is loaded as `.tbin`.
pub fn load_program(path: &Path) -> Result<Program, CliError> {
    let bytes = read_file(path)?;
    if path.extension().is_some_and(|e| e == "s") {
        let text = String::from_utf8(bytes)
            .map_err(|_| CliError::new("E2101", format!("{} is not UTF-8 text", path.display())))?;
        return tahoma_isa::asm::assemble(&text)
            .map_err(|e| CliError::new(e.code(), format!("{}:{e}", path.display())));
    }
    Program::from_bytes(&bytes)
        .map_err(|e| CliError::new(e.code(), format!("{}: {e}", path.display())))
}

/// Splits `NAME=FILE` (the name may itself contain `=`; the file is after the last one).
pub fn split_input(spec: &str) -> Result<(&str, &Path), CliError> {
    match spec.rsplit_once('=') {
        Some((n, f)) if !n.is_empty() && !f.is_empty() => Ok((n, Path::new(f))),
        _ => Err(CliError::new(
            "E0003",
            format!("--input expects NAME=FILE.npy, got `{spec}`"),
        )),
    }
}

/// A file name for an output: characters outside `[A-Za-z0-9._-]` become `_`.
pub fn output_file_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{s}.npy")
}

/// Runs a program (or compiles and runs a model) as asked; returns the result and, for a model,
/// the compile time in seconds and the optimizer's report.
pub fn run_program(
    args: &RunArgs,
) -> Result<(RunResult, Option<f64>, Option<OptReport>), CliError> {
    let mut opt_report = None;
    let mut work = None;
    let (program, compile_seconds) = if is_program(&args.program) {
        (load_program(&args.program)?, None)
    } else {
        let input = read_input(&args.program, &args.model)?;
        if let Input::Graph(g) = &input {
            work = Some(model_work(g, args.precision.lower_options().precision));
        }
        let (compiled, optimized, secs) =
            compile_input(&input, args.precision, args.opt, args.extract, false)?;
        if let Some(o) = optimized {
            print_opt_report(&o, false, args.verbose);
            opt_report = Some(o.report);
        }
        (compiled.program, Some(secs))
    };
    let mut emu = Emulator::new(program).map_err(runtime_error)?;
    for spec in &args.inputs {
        let (name, file) = split_input(spec)?;
        let arr = tahoma_runtime::npy::decode(&read_file(file)?)
            .map_err(|e| CliError::new(e.code(), format!("{}: {e}", file.display())))?;
        emu.set_input_npy(name, &arr).map_err(runtime_error)?;
    }
    let filled = emu.fill_random_inputs(args.seed).map_err(runtime_error)?;
    if !filled.is_empty() {
        eprintln!(
            "inputs {} given seeded random values (seed {})",
            filled.join(", "),
            args.seed
        );
    }
    let mut opts = if args.functional {
        RunOptions::functional()
    } else {
        RunOptions::timed()
    };
    if args.trace.is_some() && !args.functional {
        opts = opts.with_trace();
    }
    let mut result = emu.run(&opts).map_err(runtime_error)?;
    // A model's roofline counts its own work, not the padding the lowering executes.
    if let Some(w) = work {
        result.measure_against(w.macs, w.compulsory_bytes);
    }
    Ok((result, compile_seconds, opt_report))
}

fn npy_dtype(d: DType) -> NpyDtype {
    match d {
        DType::F32 | DType::BF16 => NpyDtype::F4,
        DType::F16 => NpyDtype::F2,
        DType::I64 => NpyDtype::I8,
        DType::I32 => NpyDtype::I4,
        DType::Bool => NpyDtype::B1,
    }
}

/// Runs a model on the graph interpreter with the inputs `run` would give the emulator.
fn run_reference(args: &RunArgs) -> Result<(), CliError> {
    let g = match read_input(&args.program, &args.model)? {
        Input::Graph(g) => g,
        Input::KernelText(_) => {
            return Err(CliError::new(
                "E0003",
                "--reference needs a model or graph IR; kernel IR has no interpreter",
            ))
        }
    };
    let mut given: Vec<(String, NpyArray)> = Vec::new();
    for spec in &args.inputs {
        let (name, file) = split_input(spec)?;
        let arr = tahoma_runtime::npy::decode(&read_file(file)?)
            .map_err(|e| CliError::new(e.code(), format!("{}: {e}", file.display())))?;
        given.push((name.to_string(), arr));
    }
    let mut inputs = Vec::new();
    for (i, &v) in g.inputs.iter().enumerate() {
        let val = g.value(v);
        let shape: Vec<usize> = val.ty.shape.clone();
        let values: Vec<f32> = match given.iter().find(|(n, _)| *n == val.name) {
            Some((_, arr)) => {
                if arr.shape.iter().map(|&d| d as usize).collect::<Vec<_>>() != shape {
                    return Err(CliError::new(
                        "E4102",
                        format!(
                            "input `{}`: shape {:?} given, the model expects {shape:?}",
                            val.name, arr.shape
                        ),
                    ));
                }
                arr.values.iter().map(|&x| x as f32).collect()
            }
            None => {
                // The same seeded values the emulator's I/O table would get (inputs come first).
                let dtype = tahoma_compiler::lower::chip_dtype(val.ty.dtype)
                    .unwrap_or(tahoma_isa::Dtype::I32);
                let e = IoEntry {
                    name: val.name.clone(),
                    kind: IoKind::Input,
                    dtype,
                    shape: shape.iter().map(|&d| d as u64).collect(),
                    addr: 0,
                };
                tahoma_runtime::inputs::random_values(&e, args.seed.wrapping_add(i as u64))
                    .into_iter()
                    .map(|x| x as f32)
                    .collect()
            }
        };
        inputs.push(HostTensor::from_f32(val.ty.dtype, &shape, &values));
    }
    if let Some((n, _)) = given
        .iter()
        .find(|(n, _)| !g.inputs.iter().any(|&v| g.value(v).name == *n))
    {
        return Err(CliError::new(
            "E4101",
            format!("the model has no input `{n}`"),
        ));
    }
    let t0 = Instant::now();
    let outputs = tahoma_compiler::interp::run_graph(&g, &inputs)
        .map_err(|e| CliError::new("E4300", format!("interpreter: {e}")))?;
    let secs = t0.elapsed().as_secs_f64();
    let mut report = serde_json::Map::new();
    for (&v, t) in g.outputs.iter().zip(&outputs) {
        let name = &g.value(v).name;
        let data = t.to_f32_vec();
        let (lo, hi) = data
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
                (a.min(x), b.max(x))
            });
        let mean = data.iter().map(|&x| f64::from(x)).sum::<f64>() / data.len().max(1) as f64;
        println!(
            "output {name}: {}{:?} min {lo} max {hi} mean {mean:.6}",
            t.dtype(),
            t.shape()
        );
        report.insert(
            name.clone(),
            serde_json::json!({"dtype": t.dtype().name(), "shape": t.shape()}),
        );
        if let Some(dir) = &args.out {
            std::fs::create_dir_all(dir).map_err(|e| {
                CliError::new("E0002", format!("cannot create {}: {e}", dir.display()))
            })?;
            let arr = NpyArray {
                dtype: npy_dtype(t.dtype()),
                shape: t.shape().iter().map(|&d| d as u64).collect(),
                values: t.to_f32_vec().into_iter().map(f64::from).collect(),
            };
            let path = dir.join(output_file_name(name));
            write_file_atomic(&path, &tahoma_runtime::npy::encode_array(&arr))?;
            eprintln!("wrote {}", path.display());
        }
    }
    println!("interpreted in {secs:.3} s");
    if let Some(path) = &args.report {
        let v =
            serde_json::json!({"mode": "reference", "outputs": report, "interpret_seconds": secs});
        write_file_atomic(
            path,
            serde_json::to_string_pretty(&v)
                .unwrap_or_default()
                .as_bytes(),
        )?;
    }
    Ok(())
}

/// `tahoma run`.
pub fn run(args: RunArgs) -> Result<(), CliError> {
    if args.trace.is_some() && args.functional {
        return Err(CliError::new(
            "E0004",
            "--trace needs timed mode; drop --functional",
        ));
    }
    if args.reference {
        if is_program(&args.program) {
            return Err(CliError::new("E0003", "--reference runs a model on the interpreter; a compiled program has no graph to interpret"));
        }
        return run_reference(&args);
    }
    let (result, compile_seconds, opt_report) = run_program(&args)?;
    if let Some(s) = compile_seconds {
        println!("compiled in {s:.3} s");
    }
    if let Some(r) = opt_report.as_ref().filter(|r| !r.phases.is_empty()) {
        println!(
            "optimizer -{}: predicted {:.0} -> {:.0} cycles",
            r.level, r.predicted_cycles_before, r.predicted_cycles_after
        );
    }
    print!("{}", result.summary());
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::new("E0002", format!("cannot create {}: {e}", dir.display())))?;
        for (name, t) in &result.outputs {
            let path = dir.join(output_file_name(name));
            write_file_atomic(&path, &tahoma_runtime::npy::encode(t))?;
            eprintln!("wrote {}", path.display());
        }
    }
    if let Some(path) = &args.report {
        let mut json = serde_json::to_value(result.report_json())
            .map_err(|e| CliError::new("E0002", e.to_string()))?;
        if let (Some(r), Some(obj)) = (&opt_report, json.as_object_mut()) {
            let v = serde_json::to_value(r).map_err(|e| CliError::new("E0002", e.to_string()))?;
            obj.insert("optimizer".to_string(), v);
        }
        let text = serde_json::to_string_pretty(&json)
            .map_err(|e| CliError::new("E0002", e.to_string()))?;
        write_file_atomic(path, text.as_bytes())?;
        eprintln!("wrote {}", path.display());
    }
    if let (Some(path), Some(trace)) = (&args.trace, result.trace_json()) {
        write_file_atomic(path, trace.as_bytes())?;
        eprintln!(
            "wrote {} (open it at https://ui.perfetto.dev)",
            path.display()
        );
    }
    Ok(())
}
