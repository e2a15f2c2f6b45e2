//! Legality of instructions: the named constraints of spec.toml, implemented once and applied by
//! the assembler, the `.tbin` loader and the emulator alike. A violation names the constraint,
//! the field at fault and what is wrong.

use crate::program::{Program, StreamId};
use crate::{machine, Ap, DmaAp, DmaCopy, DmaGather, Dtype, EngineClass, Inst, Mem, ScalarMode};
use std::fmt;

/// A broken legality rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The constraint's name in spec.toml (`partition_rule`, `in_bounds`, ...).
    pub constraint: String,
    /// The field at fault (`dst`, `moving.size0`, `sync.wait0_sem`, ...).
    pub field: String,
    pub message: String,
}

impl Violation {
    fn new(constraint: &str, field: &str, message: impl Into<String>) -> Violation {
        Violation {
            constraint: constraint.into(),
            field: field.into(),
            message: message.into(),
        }
    }
    /// Stable error code: out-of-range accesses and partition/bank rules get their own.
    pub fn code(&self) -> &'static str {
        match self.constraint.as_str() {
            "in_bounds" => "E3001",
            "partition_rule" => "E3002",
            "moving_free_max" => "E3003",
            "one_psum_bank" => "E3004",
            "semaphore" => "E3005",
            "engine" => "E3006",
            "kernel_index" => "E3007",
            _ => "E3000",
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "field `{}` violates `{}`: {}",
            self.field, self.constraint, self.message
        )
    }
}

/// On-chip accesses an instruction reads or writes, by field name (unused operands left out).
pub fn onchip_operands(inst: &Inst) -> Vec<(String, Ap)> {
    let mut v: Vec<(String, Ap)> = Vec::new();
    let mut add = |n: &str, a: &Ap| v.push((n.to_string(), *a));
    match inst {
        Inst::Nop(_) | Inst::End(_) | Inst::DmaCopy(_) => {}
        Inst::DmaGather(x) => add("index", &x.index),
        Inst::LoadStationary(x) => add("src", &x.src),
        Inst::Matmul(x) => {
            add("moving", &x.moving);
            add("dst", &x.dst);
        }
        Inst::TensorTensor(x) => {
            add("dst", &x.dst);
            add("a", &x.a);
            add("b", &x.b);
        }
        Inst::TensorScalar(x) => {
            add("dst", &x.dst);
            add("src", &x.src);
            for (n, s) in [("scalar0.ap", &x.scalar0), ("scalar1.ap", &x.scalar1)] {
                if s.mode == ScalarMode::Ap {
                    add(n, &s.ap);
                }
            }
        }
        Inst::TensorReduce(x) => {
            add("dst", &x.dst);
            add("src", &x.src);
        }
        Inst::TensorCopy(x) => {
            add("dst", &x.dst);
            add("src", &x.src);
        }
        Inst::Select(x) => {
            add("dst", &x.dst);
            add("pred", &x.pred);
            add("on_true", &x.on_true);
            add("on_false", &x.on_false);
        }
        Inst::Memset(x) => add("dst", &x.dst),
        Inst::GpsimdKernel(x) => {
            add("dst", &x.dst);
            for (n, a) in [("a", &x.a), ("b", &x.b), ("c", &x.c)]
                .into_iter()
                .take(x.inputs as usize)
            {
                add(n, a);
            }
        }
        Inst::Iota(x) => add("dst", &x.dst),
        Inst::Transpose32(x) => {
            add("dst", &x.dst);
            add("src", &x.src);
        }
        Inst::Activate(x) => {
            add("dst", &x.dst);
            add("src", &x.src);
            for (n, s) in [("scale.ap", &x.scale), ("bias.ap", &x.bias)] {
                if s.mode == ScalarMode::Ap {
                    add(n, &s.ap);
                }
            }
            if x.accumulate {
                add("acc", &x.acc);
            }
        }
    }
    v
}

/// The operands that must agree in shape (`same_elems`): the data operands, not scalars or acc.
fn data_operands(inst: &Inst) -> Vec<(String, Ap)> {
    onchip_operands(inst)
        .into_iter()
        .filter(|(n, _)| !n.contains('.') && n != "acc")
        .collect()
}

/// Range of byte offsets an access touches within one partition (or in HBM), end exclusive.
/// `None` when it touches nothing.
/// Range of byte offsets an access of `esize`-byte elements touches (end exclusive): `offset`
/// plus the extents of `dims` and of an optional outer (partition) dim `(count, stride)`.
/// `None` when it touches nothing. Shared with the compiler's dependency analysis.
pub fn byte_span(
    offset: u64,
    esize: u64,
    dims: &[(u64, i64)],
    outer: Option<(u64, i64)>,
) -> Option<(i128, i128)> {
    let mut lo: i128 = 0;
    let mut hi: i128 = 0;
    for &(size, stride) in dims.iter().chain(outer.iter()) {
        if size == 0 {
            return None;
        }
        let ext = (size as i128 - 1) * stride as i128 * esize as i128;
        if ext < 0 {
            lo += ext;
        } else {
            hi += ext;
        }
    }
    Some((offset as i128 + lo, offset as i128 + hi + esize as i128))
}

fn partition_bytes(mem: Mem) -> u64 {
    match mem {
        Mem::Sbuf => machine::SBUF_PARTITION_BYTES,
        Mem::Psum => machine::PSUM_PARTITION_BYTES,
        Mem::Hbm => machine::HBM_BYTES,
    }
}

fn check_partitions(
    field: &str,
    mem: Mem,
    start: u64,
    count: u64,
    ndims: u64,
    free: u64,
) -> Result<(), Violation> {
    let c = "partition_rule";
    if mem == Mem::Hbm {
        return Ok(());
    }
    if count == 0 || count > machine::PARTITIONS || start + count > machine::PARTITIONS {
        return Err(Violation::new(
            c,
            field,
            format!(
                "partitions [{start}, {}) are outside the {} partitions",
                start + count,
                machine::PARTITIONS
            ),
        ));
    }
    let rule = machine::PARTITION_RULES
        .iter()
        .find(|(max, _)| count <= *max);
    match rule {
        Some((max, starts)) if !starts.contains(&start) => {
            return Err(Violation::new(c, field, format!("an access of {count} partitions (at most {max}) must start at one of {starts:?}, not {start}")));
        }
        None => {
            return Err(Violation::new(
                c,
                field,
                format!("no partition rule allows {count} partitions"),
            ))
        }
        _ => {}
    }
    if ndims > machine::MAX_FREE_DIMS {
        return Err(Violation::new(
            c,
            field,
            format!("{ndims} free dims, at most {}", machine::MAX_FREE_DIMS),
        ));
    }
    let max_free = if mem == Mem::Psum {
        machine::MAX_FREE_ELEMS_PSUM
    } else {
        machine::MAX_FREE_ELEMS_SBUF
    };
    if free > max_free {
        return Err(Violation::new(
            c,
            field,
            format!("{free} free elements in {}, at most {max_free}", mem.name()),
        ));
    }
    Ok(())
}

fn check_ap_bounds(field: &str, ap: &Ap) -> Result<(), Violation> {
    let limit = partition_bytes(ap.mem) as i128;
    if let Some((lo, hi)) = byte_span(ap.offset, ap.dtype.size_bytes(), &ap.dims(), None) {
        if lo < 0 || hi > limit {
            return Err(Violation::new(
                "in_bounds",
                field,
                format!(
                    "touches bytes [{lo}, {hi}) of a {limit}-byte {} partition",
                    ap.mem.name()
                ),
            ));
        }
    }
    Ok(())
}

fn check_dma_bounds(field: &str, ap: &DmaAp) -> Result<(), Violation> {
    let limit = partition_bytes(ap.mem) as i128;
    let outer = (ap.mem == Mem::Hbm).then_some((ap.part_count, ap.part_stride));
    if ap.part_count == 0 {
        return Ok(());
    }
    if let Some((lo, hi)) = byte_span(ap.offset, ap.dtype.size_bytes(), &ap.dims(), outer) {
        if lo < 0 || hi > limit {
            let what = if ap.mem == Mem::Hbm {
                "HBM".to_string()
            } else {
                format!("{}-byte {} partition", limit, ap.mem.name())
            };
            return Err(Violation::new(
                "in_bounds",
                field,
                format!("touches bytes [{lo}, {hi}) of {what}"),
            ));
        }
    }
    Ok(())
}

fn is_float(d: Dtype) -> bool {
    matches!(d, Dtype::Fp32 | Dtype::Bf16 | Dtype::Fp16)
}

/// Checks one named constraint on `inst`.
fn check_constraint(name: &str, inst: &Inst, stream: StreamId) -> Result<(), Violation> {
    let fail = |field: &str, msg: String| Err(Violation::new(name, field, msg));
    match (name, inst) {
        ("src_sbuf", Inst::LoadStationary(x)) if x.src.mem != Mem::Sbuf => {
            fail("src", "must be in sbuf".into())
        }
        ("moving_sbuf", Inst::Matmul(x)) if x.moving.mem != Mem::Sbuf => {
            fail("moving", "must be in sbuf".into())
        }
        ("float_operands", Inst::LoadStationary(x)) if !is_float(x.src.dtype) => fail(
            "src",
            format!("dtype {} is not fp32/bf16/fp16", x.src.dtype.name()),
        ),
        ("float_operands", Inst::Matmul(x)) if !is_float(x.moving.dtype) => fail(
            "moving",
            format!("dtype {} is not fp32/bf16/fp16", x.moving.dtype.name()),
        ),
        ("stationary_shape", Inst::LoadStationary(x)) => {
            if x.src.part_count > machine::PE_ROWS {
                return fail(
                    "src",
                    format!(
                        "{} partitions (K), at most {}",
                        x.src.part_count,
                        machine::PE_ROWS
                    ),
                );
            }
            if x.src.free_elems() > machine::PE_COLS {
                return fail(
                    "src",
                    format!(
                        "{} free elements (M), at most {}",
                        x.src.free_elems(),
                        machine::PE_COLS
                    ),
                );
            }
            Ok(())
        }
        ("dst_psum_fp32", Inst::Matmul(x))
            if x.dst.mem != Mem::Psum || x.dst.dtype != Dtype::Fp32 =>
        {
            fail(
                "dst",
                format!(
                    "is {}:{}, must be psum:fp32",
                    x.dst.mem.name(),
                    x.dst.dtype.name()
                ),
            )
        }
        ("moving_free_max", Inst::Matmul(x)) => {
            if x.moving.free_elems() > machine::MAX_MOVING_FREE {
                return fail(
                    "moving",
                    format!(
                        "N = {} free elements, at most {}",
                        x.moving.free_elems(),
                        machine::MAX_MOVING_FREE
                    ),
                );
            }
            if x.moving.part_count > machine::PE_ROWS {
                return fail(
                    "moving",
                    format!(
                        "{} partitions (K), at most {}",
                        x.moving.part_count,
                        machine::PE_ROWS
                    ),
                );
            }
            if x.dst.free_elems() != x.moving.free_elems() {
                return fail(
                    "dst",
                    format!(
                        "{} free elements, moving has {}",
                        x.dst.free_elems(),
                        x.moving.free_elems()
                    ),
                );
            }
            Ok(())
        }
        ("one_psum_bank", Inst::Matmul(x)) => {
            let bank = machine::PSUM_PARTITION_BYTES / machine::PSUM_BANKS;
            if let Some((lo, hi)) =
                byte_span(x.dst.offset, x.dst.dtype.size_bytes(), &x.dst.dims(), None)
            {
                if lo < 0
                    || hi > i128::from(machine::PSUM_PARTITION_BYTES)
                    || lo / i128::from(bank) != (hi - 1) / i128::from(bank)
                {
                    return fail(
                        "dst",
                        format!("bytes [{lo}, {hi}) cross a {bank}-byte PSUM bank boundary"),
                    );
                }
            }
            Ok(())
        }
        ("sbuf_only", _) => {
            for (n, ap) in onchip_operands(inst) {
                if ap.mem != Mem::Sbuf {
                    return fail(
                        &n,
                        format!(
                            "the GpSimd engine reads and writes SBUF only, not {}",
                            ap.mem.name()
                        ),
                    );
                }
            }
            Ok(())
        }
        ("gpsimd_inputs", Inst::GpsimdKernel(x)) => {
            let unused = [("a", &x.a), ("b", &x.b), ("c", &x.c)];
            for (n, a) in unused.into_iter().skip(x.inputs as usize) {
                if a.part_count != 0 {
                    return fail(
                        n,
                        format!(
                            "the instruction reads {} inputs; an unused input must be empty",
                            x.inputs
                        ),
                    );
                }
            }
            Ok(())
        }
        ("on_chip", _) => {
            for (n, ap) in onchip_operands(inst) {
                if ap.mem == Mem::Hbm {
                    return fail(
                        &n,
                        "engines cannot address HBM; move the data with DMA_COPY".into(),
                    );
                }
            }
            Ok(())
        }
        ("same_elems", _) => {
            let ops = data_operands(inst);
            if let Some((n0, a0)) = ops.first() {
                for (n, a) in &ops[1..] {
                    if a.part_count != a0.part_count || a.free_elems() != a0.free_elems() {
                        return fail(
                            n,
                            format!(
                                "[{}, {}] elements but {n0} has [{}, {}]",
                                a.part_count,
                                a.free_elems(),
                                a0.part_count,
                                a0.free_elems()
                            ),
                        );
                    }
                }
            }
            Ok(())
        }
        ("at_most_one_psum_input", _) => {
            let psum_inputs: Vec<_> = data_operands(inst)
                .into_iter()
                .filter(|(n, a)| n != "dst" && a.mem == Mem::Psum)
                .collect();
            if psum_inputs.len() > 1 {
                return fail(&psum_inputs[1].0, "at most one input may be in PSUM".into());
            }
            Ok(())
        }
        ("scalar_per_partition" | "acc_per_partition", _) => {
            let ops = onchip_operands(inst);
            let parts = ops
                .iter()
                .find(|(n, _)| n == "dst")
                .map(|(_, a)| a.part_count)
                .unwrap_or(0);
            for (n, a) in ops.iter().filter(|(n, _)| {
                (name == "acc_per_partition") == (n == "acc") && (n.contains('.') || n == "acc")
            }) {
                if a.part_count != parts || a.free_elems() != 1 {
                    return fail(
                        n,
                        format!(
                            "must be [{parts}, 1], is [{}, {}]",
                            a.part_count,
                            a.free_elems()
                        ),
                    );
                }
            }
            Ok(())
        }
        ("reduce_axes", Inst::TensorReduce(x)) => {
            if x.axes == 0 || x.axes > x.src.ndims {
                return fail(
                    "axes",
                    format!("{} axes of a {}-dim source", x.axes, x.src.ndims),
                );
            }
            let keep: u64 = x
                .src
                .dims()
                .iter()
                .take((x.src.ndims - x.axes) as usize)
                .map(|d| d.0)
                .product();
            if x.dst.part_count != x.src.part_count || x.dst.free_elems() != keep {
                return fail(
                    "dst",
                    format!(
                        "must be [{}, {keep}], is [{}, {}]",
                        x.src.part_count,
                        x.dst.part_count,
                        x.dst.free_elems()
                    ),
                );
            }
            Ok(())
        }
        ("transpose_blocks", Inst::Transpose32(x)) => {
            let b = machine::VECTOR_TRANSPOSE_BLOCK;
            for (n, a) in [("dst", &x.dst), ("src", &x.src)] {
                if a.part_count % b != 0 || a.free_elems() % b != 0 {
                    return fail(
                        n,
                        format!(
                            "[{}, {}] is not made of {b}x{b} blocks",
                            a.part_count,
                            a.free_elems()
                        ),
                    );
                }
                if a.ndims != 1 || a.stride0 != 1 {
                    return fail(n, "must have one free dim of stride 1".into());
                }
            }
            Ok(())
        }
        ("dma_queue", Inst::DmaCopy(DmaCopy { queue, .. }))
        | ("dma_queue", Inst::DmaGather(DmaGather { queue, .. })) => {
            if *queue >= machine::DMA_QUEUES || stream != StreamId::Dma(*queue as u8) {
                return fail("queue", format!("queue {queue} in stream {stream}"));
            }
            Ok(())
        }
        ("gather_table", Inst::DmaGather(x)) => {
            if x.src.mem != Mem::Hbm || x.src.part_count != 1 {
                return fail("src", "must be one row in HBM".into());
            }
            if x.rows == 0 || x.src.part_stride < 0 {
                return fail(
                    "rows",
                    format!("{} rows at stride {}", x.rows, x.src.part_stride),
                );
            }
            let mut table = x.src;
            table.part_count = x.rows;
            check_dma_bounds("src", &table)
        }
        ("gather_index", Inst::DmaGather(x)) => {
            let i = &x.index;
            if i.mem != Mem::Sbuf || !matches!(i.dtype, Dtype::I32 | Dtype::Fp32) {
                return fail("index", "must be int32 or fp32 in SBUF".into());
            }
            if i.part_count != x.dst.part_count || i.free_elems() != 1 {
                return fail(
                    "index",
                    format!(
                        "[{}, {}] is not one element on each of dst's {} partitions",
                        i.part_count,
                        i.free_elems(),
                        x.dst.part_count
                    ),
                );
            }
            Ok(())
        }
        ("gather_row", Inst::DmaGather(x)) => {
            if x.dst.mem != Mem::Sbuf || x.dst.part_stride != 0 {
                return fail("dst", "must be in SBUF".into());
            }
            if x.dst.free_elems() != x.src.free_elems() {
                return fail(
                    "dst",
                    format!(
                        "{} elements per partition but a row has {}",
                        x.dst.free_elems(),
                        x.src.free_elems()
                    ),
                );
            }
            Ok(())
        }
        ("partition_rule", Inst::DmaGather(x)) => {
            let (d, i) = (&x.dst, &x.index);
            check_partitions(
                "dst",
                d.mem,
                d.part_start,
                d.part_count,
                d.ndims,
                d.free_elems(),
            )?;
            check_partitions(
                "index",
                i.mem,
                i.part_start,
                i.part_count,
                i.ndims,
                i.free_elems(),
            )
        }
        ("in_bounds", Inst::DmaGather(x)) => {
            check_dma_bounds("dst", &x.dst)?;
            check_ap_bounds("index", &x.index)
        }
        ("dma_dst_not_psum", Inst::DmaCopy(x)) if x.dst.mem == Mem::Psum => {
            fail("dst", "DMA cannot write PSUM".into())
        }
        ("dma_same_elems", Inst::DmaCopy(x)) if x.src.elems() != x.dst.elems() => fail(
            "dst",
            format!("{} elements but src has {}", x.dst.elems(), x.src.elems()),
        ),
        ("dma_part_stride", Inst::DmaCopy(x)) => {
            for (n, a) in [("src", &x.src), ("dst", &x.dst)] {
                if a.mem != Mem::Hbm && a.part_stride != 0 {
                    return fail(n, "a partition stride is only meaningful in HBM".into());
                }
            }
            Ok(())
        }
        ("partition_rule", Inst::DmaCopy(x)) => {
            for (n, a) in [("src", &x.src), ("dst", &x.dst)] {
                check_partitions(
                    n,
                    a.mem,
                    a.part_start,
                    a.part_count,
                    a.ndims,
                    a.free_elems(),
                )?;
            }
            Ok(())
        }
        ("partition_rule", _) => {
            for (n, a) in onchip_operands(inst) {
                check_partitions(
                    &n,
                    a.mem,
                    a.part_start,
                    a.part_count,
                    a.ndims,
                    a.free_elems(),
                )?;
            }
            Ok(())
        }
        ("in_bounds", Inst::DmaCopy(x)) => {
            check_dma_bounds("src", &x.src)?;
            check_dma_bounds("dst", &x.dst)
        }
        ("in_bounds", _) => {
            for (n, a) in onchip_operands(inst) {
                check_ap_bounds(&n, &a)?;
            }
            Ok(())
        }
        _ if KNOWN.contains(&name) => Ok(()),
        _ => fail("", format!("constraint `{name}` has no implementation")),
    }
}

/// Every constraint name this module implements.
pub const KNOWN: &[&str] = &[
    "src_sbuf",
    "moving_sbuf",
    "float_operands",
    "stationary_shape",
    "dst_psum_fp32",
    "moving_free_max",
    "one_psum_bank",
    "on_chip",
    "same_elems",
    "at_most_one_psum_input",
    "scalar_per_partition",
    "acc_per_partition",
    "reduce_axes",
    "transpose_blocks",
    "sbuf_only",
    "gpsimd_inputs",
    "kernel_index",
    "dma_queue",
    "dma_dst_not_psum",
    "dma_same_elems",
    "dma_part_stride",
    "gather_table",
    "gather_index",
    "gather_row",
    "partition_rule",
    "in_bounds",
];

/// Checks everything the spec requires of `inst` when it sits in `stream`.
pub fn check_inst(inst: &Inst, stream: StreamId) -> Result<(), Violation> {
    let op = inst.opcode();
    let class = op.engine();
    if class != EngineClass::Any && class != stream.engine_class() {
        return Err(Violation::new(
            "engine",
            "opcode",
            format!(
                "{} runs on the {class:?} engine, not in stream {stream}",
                op.name()
            ),
        ));
    }
    let s = inst.sync();
    for (f, v) in [
        ("sync.wait0_sem", s.wait0_sem),
        ("sync.wait1_sem", s.wait1_sem),
        ("sync.signal_sem", s.signal_sem),
    ] {
        if v >= machine::SEMAPHORES {
            return Err(Violation::new(
                "semaphore",
                f,
                format!(
                    "semaphore {v} does not exist ({} semaphores)",
                    machine::SEMAPHORES
                ),
            ));
        }
    }
    for c in op.constraints() {
        check_constraint(c, inst, stream)?;
    }
    Ok(())
}

/// A violation located in a program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramViolation {
    pub stream: StreamId,
    pub pc: usize,
    pub inst: String,
    pub op: Option<String>,
    pub violation: Violation,
}

impl fmt::Display for ProgramViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stream {}, pc {}: `{}`", self.stream, self.pc, self.inst)?;
        if let Some(op) = &self.op {
            write!(f, " (from op `{op}`)")?;
        }
        write!(f, ": {}", self.violation)
    }
}

/// The program-level half of `kernel_index`: the kernel exists. (That its signature matches the
/// accesses needs the compiled kernel; the emulator's loader checks it with the same code.)
fn check_kernel_index(p: &Program, inst: &Inst) -> Result<(), Violation> {
    match inst {
        Inst::GpsimdKernel(x) if x.kernel >= p.kernels.len() as u64 => Err(Violation::new(
            "kernel_index",
            "kernel",
            format!(
                "kernel {} does not exist (the kernel table has {} entries)",
                x.kernel,
                p.kernels.len()
            ),
        )),
        _ => Ok(()),
    }
}

/// Checks every instruction of every stream and that each stream ends with END.
pub fn check_program(p: &Program) -> Result<(), Box<ProgramViolation>> {
    for s in &p.streams {
        for (pc, inst) in s.insts.iter().enumerate() {
            check_inst(inst, s.id).map_err(|violation| {
                Box::new(ProgramViolation {
                    stream: s.id,
                    pc,
                    inst: crate::asm::format_inst(inst),
                    op: p.op_of(s, pc).map(str::to_string),
                    violation,
                })
            })?;
            check_kernel_index(p, inst).map_err(|violation| {
                Box::new(ProgramViolation {
                    stream: s.id,
                    pc,
                    inst: crate::asm::format_inst(inst),
                    op: p.op_of(s, pc).map(str::to_string),
                    violation,
                })
            })?;
        }
        if !matches!(s.insts.last(), Some(Inst::End(_))) {
            return Err(Box::new(ProgramViolation {
                stream: s.id,
                pc: s.insts.len(),
                inst: String::new(),
                op: None,
                violation: Violation::new("end", "opcode", "the stream does not finish with END"),
            }));
        }
    }
    Ok(())
}
