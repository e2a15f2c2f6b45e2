//! The loader: turns `.tbin` bytes into a checked [`Program`]. Structural decoding is
//! `Program::from_bytes`, legality is `check::check_program` (both keep their stable codes); in
//! front of the checker sits one emulator-side guard: no access may enumerate more elements than
//! the host can hold ([`MAX_HOST_ELEMS`], error E4006). [`compile_kernels`] JIT-compiles the
//! GpSimd kernel table when an emulator is built.

use crate::access::Plan;
use crate::engines::gpsimd::Kernels;
use crate::error::{ExecError, Fault, RunError};
use tahoma_isa::check::{check_program, onchip_operands, ProgramViolation, Violation};
use tahoma_isa::program::Program;
use tahoma_isa::{asm, DmaAp, Inst, Mem};

/// Most elements one access may enumerate in the emulator (a host memory limit, not a property
/// of the chip: one gathered operand of this many fp32 values takes 1 GiB).
pub const MAX_HOST_ELEMS: u64 = 1 << 28;

/// Decodes and checks a program image.
pub fn load(bytes: &[u8]) -> Result<Program, RunError> {
    let program = Program::from_bytes(bytes)?;
    validate(&program)?;
    Ok(program)
}

/// Checks a program built in memory the same way [`load`] checks a file.
pub fn validate(program: &Program) -> Result<(), RunError> {
    for s in &program.streams {
        for (pc, inst) in s.insts.iter().enumerate() {
            if let Err(fault) = host_limits(inst) {
                return Err(RunError::Exec(Box::new(ExecError {
                    stream: s.id,
                    pc,
                    inst: asm::format_inst(inst),
                    op: program.op_of(s, pc).map(str::to_string),
                    fault,
                })));
            }
        }
    }
    check_program(program)?;
    Ok(())
}

/// JIT-compiles the program's GpSimd kernel table (error E2008 for a bad kernel) and checks
/// every `GPSIMD_KERNEL` against its kernel's signature (the `kernel_index` constraint, E3007).
pub fn compile_kernels(program: &Program) -> Result<Kernels, RunError> {
    let kernels = Kernels::compile(&program.kernels).map_err(|e| RunError::Kernel {
        kernel: e.kernel,
        message: e.message,
    })?;
    for s in &program.streams {
        for (pc, inst) in s.insts.iter().enumerate() {
            if let Inst::GpsimdKernel(x) = inst {
                if let Err((field, message)) = kernels.check_inst(x) {
                    return Err(RunError::Illegal(Box::new(ProgramViolation {
                        stream: s.id,
                        pc,
                        inst: asm::format_inst(inst),
                        op: program.op_of(s, pc).map(str::to_string),
                        violation: Violation {
                            constraint: "kernel_index".into(),
                            field,
                            message,
                        },
                    })));
                }
            }
        }
    }
    Ok(kernels)
}

/// One past the highest HBM byte the program can touch: its constants, its I/O tensors and
/// the HBM side of every DMA (a gather's whole table). The emulator stores that much of HBM flat
/// (`memory::Hbm::with_flat`). Call on a validated program (accesses in bounds).
pub fn hbm_footprint(program: &Program) -> u64 {
    let consts = program.consts.iter().map(|c| c.addr + c.bytes.len() as u64);
    let io = program.io.iter().map(|e| e.addr + e.bytes());
    let end = |ap: &DmaAp| match ap.mem {
        Mem::Hbm => Plan::of_dma(ap).map_or(0, |p| p.end),
        _ => 0,
    };
    let dmas = program
        .streams
        .iter()
        .flat_map(|s| &s.insts)
        .map(|inst| match inst {
            Inst::DmaCopy(x) => end(&x.src).max(end(&x.dst)),
            Inst::DmaGather(x) => {
                let mut table = x.src;
                table.part_count = x.rows;
                end(&table).max(end(&x.dst))
            }
            _ => 0,
        });
    consts.chain(io).chain(dmas).max().unwrap_or(0)
}

/// Element count of `parts` partitions times `sizes`, or `None` on overflow.
pub(crate) fn checked_elems(parts: u64, sizes: &[(u64, i64)]) -> Option<u64> {
    sizes.iter().try_fold(parts, |a, &(s, _)| a.checked_mul(s))
}

fn limit(field: &str, n: Option<u64>) -> Result<(), Fault> {
    match n {
        Some(n) if n <= MAX_HOST_ELEMS => Ok(()),
        _ => Err(Fault::new(
            "E4006",
            field,
            format!(
                "the access enumerates {} elements; the emulator handles at most {MAX_HOST_ELEMS}",
                n.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string())
            ),
        )),
    }
}

fn host_limits(inst: &Inst) -> Result<(), Fault> {
    if let Inst::DmaCopy(x) = inst {
        limit("src", checked_elems(x.src.part_count, &x.src.dims()))?;
        limit("dst", checked_elems(x.dst.part_count, &x.dst.dims()))?;
    }
    if let Inst::DmaGather(x) = inst {
        limit("dst", checked_elems(x.dst.part_count, &x.dst.dims()))?;
    }
    for (name, ap) in onchip_operands(inst) {
        limit(&name, checked_elems(ap.part_count, &ap.dims()))?;
    }
    Ok(())
}
