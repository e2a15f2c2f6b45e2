//! `tahoma compile INPUT [-o OUT] [--emit STAGE] [--precision P] [-O0|-O1|-O2] [--opt-report]
//! [--extract greedy|exact] [--print-after-all]`: runs the
//! pipeline from whatever stage INPUT is (an ONNX model `.onnx`/`.onnxtxt`, graph IR `.graph`,
//! kernel IR `.tk`) and writes either a stage's text (`--emit`) or the `.tbin` program (`-o`).

use super::isa::write_file_atomic;
use super::model::{diag_error, load_graph, ModelArgs};
use super::CliError;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tahoma_compiler::diag::Code;
use tahoma_compiler::diag::Diagnostics;
use tahoma_compiler::driver::{
    compile_graph, compile_kernel_text, CompileOptions as DriverOptions, Compiled,
};
use tahoma_compiler::graph::text::{print_with, PrintOptions};
use tahoma_compiler::graph::{verify, Graph};
use tahoma_compiler::kernel::text as ktext;
use tahoma_compiler::lower::{LowerOptions, Precision};
use tahoma_compiler::opt::{optimize, ExtractMode, OptLevel, OptOptions, Optimized};

/// The stage whose dump `compile` writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emit {
    /// The graph IR after import (shapes static, constants folded).
    Graph,
    /// The graph IR after the optimizer (at the `-O` level given).
    GraphOpt,
    /// The kernel IR: tiles, buffers, engine ops and loops.
    Kernel,
    /// The per-engine instruction streams with semaphores (the disassembly of the `.tbin`).
    Asm,
}

/// `--precision`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PrecisionArg {
    /// bf16 matmul operands, fp32 accumulation and fp32 elsewhere.
    #[default]
    Bf16,
    /// fp32 everywhere (the tensor engine at its fp32 rate).
    Fp32,
}

impl PrecisionArg {
    pub fn lower_options(self) -> LowerOptions {
        LowerOptions {
            precision: match self {
                PrecisionArg::Bf16 => Precision::Bf16,
                PrecisionArg::Fp32 => Precision::Fp32,
            },
        }
    }
}

/// `-O`: the optimisation level.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OptArg {
    /// No e-graph optimizer: one kernel per imported node.
    #[value(name = "0")]
    O0,
    /// Canonicalise and fusion phases.
    #[value(name = "1")]
    O1,
    /// Every phase (the default).
    #[default]
    #[value(name = "2")]
    O2,
}

impl OptArg {
    pub fn level(self) -> OptLevel {
        match self {
            OptArg::O0 => OptLevel::O0,
            OptArg::O1 => OptLevel::O1,
            OptArg::O2 => OptLevel::O2,
        }
    }
}

/// `--extract`: how the optimizer extracts the graph from its e-graph.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ExtractArg {
    /// Greedy DAG-cost extraction (the default).
    #[default]
    Greedy,
    /// Branch and bound from greedy's result: optimal within its budget, never worse than
    /// greedy (a warning says when the budget stopped it).
    Exact,
}

impl ExtractArg {
    pub fn mode(self) -> ExtractMode {
        match self {
            ExtractArg::Greedy => ExtractMode::Greedy,
            ExtractArg::Exact => ExtractMode::Exact,
        }
    }
}

/// Verifies and optimizes a graph with the driver's options and an extraction mode.
pub fn optimize_with(
    g: &Graph,
    opts: &DriverOptions,
    extract: ExtractMode,
) -> Result<Optimized, Diagnostics> {
    verify(g)?;
    optimize(
        g,
        &OptOptions {
            level: opts.opt_level,
            precision: opts.lower.precision,
            keep_phase_graphs: opts.keep_phase_graphs,
            extract,
            ..Default::default()
        },
    )
}

/// [`optimize_with`], then lowering and code generation.
pub fn compile_with(
    g: &Graph,
    opts: &DriverOptions,
    extract: ExtractMode,
) -> Result<(Compiled, Optimized), Diagnostics> {
    let o = optimize_with(g, opts, extract)?;
    let c = compile_graph(&o.graph, opts.lower)?;
    Ok((c, o))
}

/// Options of `compile` beyond the model flags.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    pub emit: Option<Emit>,
    pub output: Option<PathBuf>,
    /// Print every constant in full on stdout too (files always get the full, parseable dump).
    pub full_constants: bool,
    pub precision: PrecisionArg,
    pub print_after_all: bool,
    pub opt: OptArg,
    pub extract: ExtractArg,
    /// Print the optimizer's report (rules fired, e-graph sizes, stop reasons, predicted cycles).
    pub opt_report: bool,
    /// `-v`: the optimizer's report on stderr.
    pub verbose: bool,
}

/// What a compile input is, by extension.
pub enum Input {
    Graph(Graph),
    KernelText(String),
}

/// Reads a compile input: `.tk` kernel IR, `.graph` graph IR, else an ONNX model.
pub fn read_input(path: &Path, model: &ModelArgs) -> Result<Input, CliError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let read_text = || {
        std::fs::read_to_string(path).map_err(|e| {
            CliError::new(
                Code::ReadFailed.as_str(),
                format!("cannot read '{}': {e}", path.display()),
            )
        })
    };
    match ext {
        "tk" => Ok(Input::KernelText(read_text()?)),
        "graph" => {
            let g = tahoma_compiler::graph::text::parse(&read_text()?).map_err(diag_error)?;
            Ok(Input::Graph(g))
        }
        _ => Ok(Input::Graph(load_graph(path, model)?)),
    }
}

/// Compiles an input to a program; returns the stages, the optimizer's result (graph inputs
/// only) and the seconds it took.
pub fn compile_input(
    input: &Input,
    precision: PrecisionArg,
    opt: OptArg,
    extract: ExtractArg,
    keep_phase_graphs: bool,
) -> Result<(Compiled, Option<Optimized>, f64), CliError> {
    let t0 = Instant::now();
    let (compiled, optimized) = match input {
        Input::Graph(g) => {
            let opts = DriverOptions {
                lower: precision.lower_options(),
                opt_level: opt.level(),
                keep_phase_graphs,
            };
            let (c, o) = compile_with(g, &opts, extract.mode()).map_err(diag_error)?;
            (c, Some(o))
        }
        Input::KernelText(src) => (compile_kernel_text(src).map_err(diag_error)?, None),
    };
    Ok((compiled, optimized, t0.elapsed().as_secs_f64()))
}

/// Prints the optimizer's warnings (always), and its report with `-v`/`--opt-report`.
pub fn print_opt_report(o: &Optimized, report: bool, verbose: bool) {
    if report {
        print!("{}", o.report.text());
    } else if verbose {
        eprint!("{}", o.report.text());
    } else {
        for w in &o.report.warnings {
            eprintln!("warning: {w}");
        }
    }
}

fn graph_text(g: &Graph, full: bool) -> String {
    print_with(
        g,
        PrintOptions {
            elide_above: if full { None } else { Some(16) },
        },
    )
}

fn kernel_text(c: &Compiled, full: bool) -> String {
    ktext::print_with(
        &c.kernel,
        ktext::PrintOptions {
            elide_above: if full { None } else { Some(16) },
        },
    )
}

pub fn compile(path: &Path, model: &ModelArgs, opts: &CompileOptions) -> Result<(), CliError> {
    if opts.emit.is_none() && opts.output.is_none() && !opts.print_after_all && !opts.opt_report {
        return Err(CliError::new("E0003", "nothing to do: give `-o OUT.tbin` to write the program, or `--emit graph|graph-opt|kernel|asm` to print a stage"));
    }
    let input = read_input(path, model)?;
    // A file gets the full dump (it parses back); the terminal gets a readable one.
    let full = opts.full_constants || opts.output.is_some();
    if opts.print_after_all {
        if let Input::Graph(g) = &input {
            println!(
                "# ===== after import: graph =====\n{}",
                graph_text(g, opts.full_constants)
            );
        }
    }
    if opts.emit == Some(Emit::Graph) {
        let Input::Graph(g) = &input else {
            return Err(CliError::new(
                "E0003",
                "a kernel-IR input has no graph stage to emit",
            ));
        };
        return write_or_print(&opts.output, graph_text(g, full));
    }
    if let (Some(Emit::GraphOpt), Input::Graph(g)) = (opts.emit, &input) {
        // The optimized graph needs no lowering (a model the lowering refuses still prints).
        let dopts = DriverOptions {
            lower: opts.precision.lower_options(),
            opt_level: opts.opt.level(),
            keep_phase_graphs: opts.print_after_all,
        };
        let o = optimize_with(g, &dopts, opts.extract.mode()).map_err(diag_error)?;
        print_opt_report(&o, opts.opt_report, opts.verbose);
        if opts.print_after_all {
            for (phase, pg) in &o.phase_graphs {
                println!(
                    "# ===== after optimizer phase {phase}: graph =====\n{}",
                    graph_text(pg, opts.full_constants)
                );
            }
        }
        return write_or_print(&opts.output, graph_text(&o.graph, full));
    }
    let (compiled, optimized, seconds) = compile_input(
        &input,
        opts.precision,
        opts.opt,
        opts.extract,
        opts.print_after_all,
    )?;
    if let Some(o) = &optimized {
        print_opt_report(o, opts.opt_report, opts.verbose);
        if opts.print_after_all {
            for (phase, g) in &o.phase_graphs {
                println!(
                    "# ===== after optimizer phase {phase}: graph =====\n{}",
                    graph_text(g, opts.full_constants)
                );
            }
        }
    }
    if opts.emit == Some(Emit::GraphOpt) {
        let Some(o) = &optimized else {
            return Err(CliError::new(
                "E0003",
                "a kernel-IR input has no graph stage to emit",
            ));
        };
        return write_or_print(&opts.output, graph_text(&o.graph, full));
    }
    if opts.print_after_all {
        println!(
            "# ===== after lowering: kernel =====\n{}",
            kernel_text(&compiled, opts.full_constants)
        );
        println!(
            "# ===== after codegen: asm =====\n{}",
            tahoma_isa::asm::print_program(&compiled.program, opts.full_constants)
        );
    }
    match opts.emit {
        Some(Emit::Kernel) => write_or_print(&opts.output, kernel_text(&compiled, full)),
        Some(Emit::Asm) => write_or_print(
            &opts.output,
            tahoma_isa::asm::print_program(&compiled.program, full),
        ),
        Some(Emit::Graph | Emit::GraphOpt) => unreachable!("handled above"),
        None => match &opts.output {
            Some(out) => {
                let bytes = compiled
                    .program
                    .to_bytes()
                    .map_err(|e| CliError::new(e.code(), e.to_string()))?;
                write_file_atomic(out, &bytes)?;
                let n: usize = compiled.program.streams.iter().map(|s| s.insts.len()).sum();
                eprintln!(
                    "wrote {} ({} bytes, {} kernels, {n} instructions) in {seconds:.3} s",
                    out.display(),
                    bytes.len(),
                    compiled.kernel.kernels.len()
                );
                Ok(())
            }
            None => Ok(()),
        },
    }
}

fn write_or_print(output: &Option<PathBuf>, text: String) -> Result<(), CliError> {
    match output {
        Some(out) => write_file_atomic(out, text.as_bytes()),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}
