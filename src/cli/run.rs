//! `tahoma run PROGRAM`: loads a `.tbin` (or assembles a `.s`), feeds inputs (from `.npy` files or
//! seeded random values), runs it on the emulator and reports: a human summary on stdout, and on
//! request outputs as `.npy` files, a JSON report and a Chrome trace.

use super::isa::{read_file, write_file_atomic};
use super::CliError;
use std::path::{Path, PathBuf};
use tahoma_isa::program::Program;
use tahoma_runtime::emulator::{Emulator, RunOptions};
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

/// Runs a program as asked and returns the result (also used by tests).
pub fn run_program(args: &RunArgs) -> Result<RunResult, CliError> {
    let program = load_program(&args.program)?;
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
    emu.run(&opts).map_err(runtime_error)
}

/// `tahoma run`.
pub fn run(args: RunArgs) -> Result<(), CliError> {
    if args.trace.is_some() && args.functional {
        return Err(CliError::new(
            "E0004",
            "--trace needs timed mode; drop --functional",
        ));
    }
    let result = run_program(&args)?;
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
        let text = serde_json::to_string_pretty(&result.report_json())
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
