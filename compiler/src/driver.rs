//! The compiler's pipeline from any stage a user can write by hand to an instruction program:
//! graph IR -> kernel IR ([`crate::lower`]) -> [`Program`] ([`crate::codegen`]), with the text of
//! every stage available for `--emit` and `--print-after-all`.

use crate::codegen::codegen;
use crate::diag::{Diagnostic, Diagnostics};
use crate::graph::{verify, Graph};
use crate::kernel::{text as ktext, KernelProgram};
use crate::lower::{lower, LowerOptions};
use tahoma_isa::program::Program;

/// Every stage's result of one compilation.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub kernel: KernelProgram,
    pub program: Program,
}

/// Lowers and generates code for a verified graph.
pub fn compile_graph(g: &Graph, opts: LowerOptions) -> Result<Compiled, Diagnostics> {
    verify(g)?;
    let kernel = lower(g, opts)?;
    let program = codegen(&kernel).map_err(|d| Diagnostics(vec![d]))?;
    Ok(Compiled { kernel, program })
}

/// Compiles kernel-IR text (a hand-written `.tk` file).
pub fn compile_kernel_text(src: &str) -> Result<Compiled, Diagnostic> {
    let kernel = ktext::parse(src)?;
    let program = codegen(&kernel)?;
    Ok(Compiled { kernel, program })
}
