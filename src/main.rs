//! The `tahoma` command line: one subcommand per user job. Each subcommand lives in its own
//! module under `cli/`; this file only parses arguments and dispatches.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

mod cli;

#[derive(Parser)]
#[command(
    name = "tahoma",
    version,
    about = "Tensor compiler and emulator for a Trainium-like training chip"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run ONNX backend-style test folders (model.onnx + test_data_set_N/) through import and
    /// the reference interpreter: `tahoma conformance target/corpus/onnx-1.23.2/node --json`.
    Conformance {
        /// Test folders, or folders holding test folders (searched recursively).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Print one JSON array of {"name", "status", "reason"} instead of text.
        #[arg(long)]
        json: bool,
        /// Run the graphs on the reference interpreter or compiled on the emulator.
        #[arg(long, value_enum, default_value = "interpreter")]
        target: cli::conformance::Target,
    },
    /// Print the ISA reference generated from isa-spec/spec.toml (Markdown).
    Isa,
    /// Assemble a program: `tahoma asm examples/asm/matmul.s -o matmul.tbin`.
    Asm {
        /// Assembly source.
        input: PathBuf,
        /// Output `.tbin` (default: the input with extension `.tbin`).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Summarise a model: `tahoma inspect model.onnx --dim batch=1` prints inputs/outputs with
    /// shapes, the op histogram, parameter count and unsupported ops with node names.
    Inspect {
        /// ONNX model (binary, or text syntax if it ends in `.onnxtxt`).
        model: PathBuf,
        #[command(flatten)]
        bindings: cli::model::ModelArgs,
    },
    /// Compile a model to a program: `tahoma compile model.onnx -o model.tbin`, or print a
    /// stage: `tahoma compile model.onnxtxt --emit kernel`. Also takes graph IR (`.graph`) and
    /// kernel IR (`.tk`) written by hand.
    Compile {
        /// ONNX model (`.onnx`, or text syntax `.onnxtxt`), graph IR `.graph` or kernel IR `.tk`.
        model: PathBuf,
        #[command(flatten)]
        bindings: cli::model::ModelArgs,
        /// Print this stage instead of writing the program.
        #[arg(long, value_enum)]
        emit: Option<cli::compile::Emit>,
        /// Output file: the `.tbin` program, or the `--emit` dump.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Precision of matmul operands.
        #[arg(long, value_enum, default_value = "bf16")]
        precision: cli::compile::PrecisionArg,
        /// Print every stage (graph, graph after each optimizer phase, kernel, asm) on stdout.
        #[arg(long)]
        print_after_all: bool,
        /// Optimisation level: 0 (no e-graph), 1 (canonicalise + fusion), 2 (all phases).
        #[arg(short = 'O', value_enum, default_value = "2")]
        opt: cli::compile::OptArg,
        /// Extraction of the optimized graph: greedy DAG cost (default) or exact (branch and
        /// bound from greedy's result, within a budget).
        #[arg(long, value_enum, default_value = "greedy")]
        extract: cli::compile::ExtractArg,
        /// Print the optimizer's report: rules that fired, e-graph sizes and stop reasons per
        /// phase, predicted cycles before and after.
        #[arg(long)]
        opt_report: bool,
        /// Verbose: the optimizer's report on stderr.
        #[arg(short, long)]
        verbose: bool,
        /// Print large constants in full on stdout too.
        #[arg(long)]
        full_constants: bool,
    },
    /// Run on the emulator: `tahoma run examples/asm/matmul.s --trace trace.json`, or
    /// `tahoma run model.onnx` (compiled in memory); `--reference` runs a model on the graph
    /// interpreter instead. Without --input, inputs get seeded random values (the same in both).
    Run {
        /// A program (`.tbin`, `.s`) or a model (`.onnx`, `.onnxtxt`, `.graph`, `.tk`).
        program: PathBuf,
        #[command(flatten)]
        bindings: cli::model::ModelArgs,
        /// Precision of matmul operands when compiling a model.
        #[arg(long, value_enum, default_value = "bf16")]
        precision: cli::compile::PrecisionArg,
        /// Run the model on the graph interpreter (the numerical reference) instead.
        #[arg(long)]
        reference: bool,
        /// Optimisation level when compiling a model: 0 (no e-graph), 1, 2 (all phases).
        #[arg(short = 'O', value_enum, default_value = "2")]
        opt: cli::compile::OptArg,
        /// Extraction of the optimized graph: greedy DAG cost (default) or exact (branch and
        /// bound from greedy's result, within a budget).
        #[arg(long, value_enum, default_value = "greedy")]
        extract: cli::compile::ExtractArg,
        /// Verbose: the optimizer's report on stderr.
        #[arg(short, long)]
        verbose: bool,
        /// Input values: `NAME=FILE.npy` (repeatable).
        #[arg(long = "input", value_name = "NAME=FILE.npy")]
        inputs: Vec<String>,
        /// Write one `.npy` per output into this folder.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write a Chrome trace JSON (open it in Perfetto).
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Write the JSON report (cycles, roofline_cycles, macs, hbm_bytes, engines, emulate_seconds).
        #[arg(long)]
        report: Option<PathBuf>,
        /// Functional mode: exact numerics in program order, no timing.
        #[arg(long)]
        functional: bool,
        /// Seed of the random inputs.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Run the benchmark suite (bf16 GEMMs, ResNet-50 conv layers, an MLP block, transformer
    /// encoder layers, MiniLM-L3, light ResNet-50, YOLOv8n) at -O0 and -O2: emulated cycles,
    /// roofline, compile and emulate seconds, onnxruntime CPU time. `tahoma bench --json
    /// bench.json`; `tahoma bench --filter gemm --repeat 5`.
    Bench {
        /// Only workloads whose name contains this (repeatable).
        #[arg(long = "filter", value_name = "SUBSTR")]
        filters: Vec<String>,
        /// Timed repetitions of compile, emulate and onnxruntime; medians are reported.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Write the results (per-kernel points included) as JSON.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Write the synthetic workloads as `.onnx` files into DIR, print a `tahoma run` line
        /// per workload, and stop.
        #[arg(long, value_name = "DIR")]
        emit_models: Option<PathBuf>,
        /// Skip the onnxruntime timings.
        #[arg(long)]
        no_onnxruntime: bool,
        /// The corpus folder (default: $TAHOMA_CORPUS_DIR, else target/corpus).
        #[arg(long, value_name = "DIR")]
        corpus: Option<PathBuf>,
        /// Python with onnxruntime (default: $TAHOMA_PYTHON, the corpus venv, python3).
        #[arg(long, value_name = "PATH")]
        python: Option<PathBuf>,
        /// Seed of the synthetic weights and of the inputs.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// The optimizer's extraction at -O2: greedy (default) or exact.
        #[arg(long, value_enum, default_value = "greedy")]
        extract: cli::compile::ExtractArg,
    },
    /// Print a `.tbin` program as assembly.
    Disasm {
        input: PathBuf,
        /// Print constant data of any size (by default large constants are summarised).
        #[arg(long)]
        full: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: Result<(), cli::CliError> = match cli.command {
        Command::Conformance { dirs, json, target } => {
            cli::conformance::conformance(&dirs, json, target)
        }
        Command::Isa => cli::isa::isa(),
        Command::Asm { input, output } => cli::isa::asm(&input, output),
        Command::Disasm { input, full } => cli::isa::disasm(&input, full),
        Command::Bench {
            filters,
            repeat,
            json,
            emit_models,
            no_onnxruntime,
            corpus,
            python,
            seed,
            extract,
        } => cli::bench::bench(&cli::bench::BenchArgs {
            filters,
            repeat,
            json,
            emit_models,
            no_onnxruntime,
            corpus,
            python,
            seed,
            extract,
        }),
        Command::Run {
            program,
            bindings,
            precision,
            reference,
            opt,
            extract,
            verbose,
            inputs,
            out,
            trace,
            report,
            functional,
            seed,
        } => cli::run::run(cli::run::RunArgs {
            program,
            inputs,
            out,
            trace,
            report,
            functional,
            seed,
            model: bindings,
            precision,
            reference,
            opt,
            extract,
            verbose,
        }),
        Command::Inspect { model, bindings } => cli::inspect::inspect(&model, &bindings),
        Command::Compile {
            model,
            bindings,
            emit,
            output,
            precision,
            print_after_all,
            opt,
            extract,
            opt_report,
            verbose,
            full_constants,
        } => {
            let opts = cli::compile::CompileOptions {
                emit,
                output,
                full_constants,
                precision,
                print_after_all,
                opt,
                extract,
                opt_report,
                verbose,
            };
            cli::compile::compile(&model, &bindings, &opts)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
