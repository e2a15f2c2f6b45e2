//! Codegen: kernel IR -> an ISA [`Program`]. Owns everything below the kernel IR's level of
//! abstraction:
//!
//! 1. [`layout`]: HBM addresses of every tensor and the constant images; SBUF/PSUM addresses of
//!    every kernel's buffers (a rotating allocator, so consecutive kernels use different regions
//!    when they fit and can overlap). Running out of on-chip memory is an error naming the kernel.
//! 2. [`lower_ops`]: loops unrolled, views resolved into access patterns, DMAs spread over the
//!    queues (each to the least loaded); every instruction keeps its kernel (ONNX node) as provenance.
//! 3. [`sync`]: dependencies between engines found from the bytes each instruction reads and
//!    writes (RAW, WAR and WAW), turned into semaphore waits and signals.

pub mod layout;
pub mod lower_ops;
pub mod sync;

use crate::diag::{Code, Diagnostic};
use crate::kernel::KernelProgram;
use tahoma_isa::program::Program;

/// Compiles a kernel-IR program into instruction streams.
pub fn codegen(kp: &KernelProgram) -> Result<Program, Diagnostic> {
    let layout = layout::plan(kp)?;
    let flat = lower_ops::flatten(kp, &layout)?;
    let program = sync::schedule(kp, &layout, flat)?;
    tahoma_isa::check::check_program(&program).map_err(|v| {
        Diagnostic::new(
            Code::KernelInvalid,
            format!("codegen produced an illegal instruction: {v}"),
        )
        .at_node(v.op.clone().unwrap_or_default(), "codegen")
        .help("this is a compiler bug; please report it with the kernel dump (--emit kernel)")
    })?;
    Ok(program)
}
