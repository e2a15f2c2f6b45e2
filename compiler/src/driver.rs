//! The compiler's pipeline from any stage a user can write by hand to an instruction program:
//! graph IR -> (optimizer, [`crate::opt`]) -> kernel IR ([`crate::lower`]) -> [`Program`] ([`crate::codegen`]), with the text of
//! every stage available for `--emit` and `--print-after-all`.

use crate::codegen::codegen;
use crate::diag::{Diagnostic, Diagnostics};
use crate::graph::{verify, Graph};
use crate::kernel::{text as ktext, KernelProgram};
use crate::lower::{lower, LowerOptions};
use crate::opt::{optimize, OptLevel, OptOptions, Optimized};
use tahoma_isa::program::Program;

/// Every stage's result of one compilation.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub kernel: KernelProgram,
    pub program: Program,
}

/// Options of the whole pipeline.
#[derive(Clone, Copy, Debug, Default)]
pub struct CompileOptions {
    pub lower: LowerOptions,
    /// Optimisation level (the optimizer's precision is taken from `lower`).
    pub opt_level: OptLevel,
    /// Keep the graph after every optimizer phase (`--print-after-all`).
    pub keep_phase_graphs: bool,
}

/// Lowers and generates code for a verified graph without the optimizer (`-O0`).
pub fn compile_graph(g: &Graph, opts: LowerOptions) -> Result<Compiled, Diagnostics> {
    verify(g)?;
    let kernel = lower(g, opts)?;
    let program = codegen(&kernel).map_err(|d| Diagnostics(vec![d]))?;
    Ok(Compiled { kernel, program })
}

/// Verifies, optimizes at `opts.opt_level`, verifies the optimized graph, then lowers and
/// generates code; returns the optimizer's result (graph and report) with the stages.
pub fn compile_graph_opt(
    g: &Graph,
    opts: &CompileOptions,
) -> Result<(Compiled, Optimized), Diagnostics> {
    let optimized = optimize_graph(g, opts)?;
    let compiled = compile_graph(&optimized.graph, opts.lower)?;
    Ok((compiled, optimized))
}

/// Verifies and optimizes a graph at `opts.opt_level` without lowering it (`--emit graph-opt`).
pub fn optimize_graph(g: &Graph, opts: &CompileOptions) -> Result<Optimized, Diagnostics> {
    verify(g)?;
    optimize(
        g,
        &OptOptions {
            level: opts.opt_level,
            precision: opts.lower.precision,
            keep_phase_graphs: opts.keep_phase_graphs,
            ..Default::default()
        },
    )
}

/// Compiles kernel-IR text (a hand-written `.tk` file).
pub fn compile_kernel_text(src: &str) -> Result<Compiled, Diagnostic> {
    let kernel = ktext::parse(src)?;
    let program = codegen(&kernel)?;
    Ok(Compiled { kernel, program })
}
