//! Row-wise normalisations in fp32: `Softmax` and `LogSoftmax` along any axis, and
//! `LayerNormalization` (with its optional `Mean` and `InvStdDev` outputs) and
//! `InstanceNormalization` over the trailing axes, put one row per partition with the normalised
//! axes innermost in the free dim (brought there by the DMA's access pattern), and use the
//! free-axis reductions of the engines: `TENSOR_REDUCE max` (negated) and `ACTIVATE exp` with a
//! per-partition bias and an accumulated sum; the mean and the variance of a row come from
//! `ACTIVATE` accumulations (`identity(x * -1/D)` and `square(xc / sqrt(D))`). LayerNorm's gamma
//! and beta are loaded once, broadcast across partitions by a partition-stride-0 DMA;
//! InstanceNorm's per-channel scale and bias become one value per (n, c) row, loaded per tile
//! as per-partition scalars. A Softmax whose rows are contiguous and a whole number (at least
//! 2) per partition puts consecutive rows on each partition instead, in chunks, so a DMA
//! descriptor carries several rows (attention scores: 12 heads x 128 rows of 128 per tensor).
//! `BatchNormalization` (inference) puts channels on partitions and applies one
//! `ACTIVATE identity(x * a + b)` with per-partition `a = scale / sqrt(var + eps)` and
//! `b = B - mean * a`, computed on chip from the four parameter vectors.
//!
//! A float16/bfloat16 `Softmax` follows the interpreter's precision rules
//! (`interp::precision`): every step is written to a half-typed tile so the engine rounds it as
//! the reference does, and a bfloat16 row sum is a loop of one-column adds into a bfloat16
//! accumulator (sequential rounding, as ml_dtypes sums); that costs one vector op per row
//! element, paid only by half-precision softmaxes (rare: fp32 graphs are unchanged).

use super::movement::broadcast_to;
use super::reduce::Rows;
use super::tiles::{sbuf, sbuf_typed, tile, ELEMENTWISE_FREE_MAX};
use super::tiles::{split_dma, DMA_PIECE_BYTES};
use super::{node_error, Lowerer};
use crate::diag::{Code, Diagnostic};
use crate::graph::{Node, Op};
use crate::kernel::{Expr, KOp, Kernel, ScalarArg, Stmt, View};
use tahoma_isa::{machine, Act, Alu, Dtype, Reduce};

fn per_part(name: &str, p: u64) -> ScalarArg {
    ScalarArg::PerPartition(tile(name, p, 0, 1))
}

fn activate(dst: View, src: View, func: Act, scale: ScalarArg, bias: ScalarArg) -> KOp {
    KOp::Activate {
        dst,
        src,
        func,
        scale,
        bias,
        acc: None,
    }
}

fn ts2(dst: View, src: View, op0: Alu, s0: ScalarArg, op1: Alu, s1: ScalarArg) -> KOp {
    KOp::TensorScalar {
        dst,
        src,
        op0,
        scalar0: s0,
        op1,
        scalar1: s1,
        reverse0: false,
        reverse1: false,
    }
}

fn tt(dst: View, a: View, b: View, op: Alu) -> KOp {
    KOp::TensorTensor { dst, a, b, op }
}

fn attr_axis(node: &Node) -> Result<usize, Diagnostic> {
    node.attrs
        .int("axis")
        .map(|a| a as usize)
        .map_err(|m| node_error(node, Code::BadAttribute, m))
}

/// Lowers Softmax, LogSoftmax, LayerNormalization, InstanceNormalization or BatchNormalization.
pub fn lower(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    match node.op {
        Op::Softmax | Op::LogSoftmax => softmax(l, node),
        Op::LayerNormalization => layer_norm(l, node),
        Op::InstanceNormalization => instance_norm(l, node),
        Op::BatchNormalization => batch_norm(l, node),
        other => Err(node_error(
            node,
            Code::NotLowered,
            format!("{} is not a normalisation", other.name()),
        )),
    }
}

fn softmax(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    let x = l.placed(node.inputs[0]);
    let axis = attr_axis(node)?;
    let out = l.place_output(node.outputs[0], node)?;
    let strides = super::tiles::contiguous_strides(&x.shape);
    let rows = Rows::new(node, &x.shape, &[axis], &strides)?;
    rows.check_fits(node)?;
    // The graph's dtype decides the precision rules (its storage may be narrower: a result
    // read only as a matmul operand is stored at the operand dtype).
    let half = matches!(
        super::chip_dtype(l.graph.ty(node.outputs[0]).dtype),
        Some(Dtype::Fp16 | Dtype::Bf16)
    );
    if node.op == Op::Softmax && half {
        return softmax_narrow(l, node, &rows, &x.tensor, &out.tensor, out.dtype);
    }
    let (d, log) = (rows.d, node.op == Op::LogSoftmax);
    if let Some(k) = packed_rows(&rows) {
        return softmax_packed(l, node, &x.tensor, &out.tensor, d, k, log);
    }
    // Row tiles rotate over slots of x, y, m and s so the next tiles load while this one
    // computes; a slot holds 2d + 2 fp32 per partition.
    let slots = row_slots(2 * d + 2);
    let emit = |p: u64, src: Expr, dst: Expr, k: u64| -> Vec<KOp> {
        let (xt, yt) = (tile("x", p, k * d, d), tile("y", p, k * d, d));
        let (m, sum) = (tile("m", p, k, 1), tile("s", p, k, 1));
        let mut ops = Vec::new();
        split_rows(
            xt.clone(),
            rows.hbm(&x.tensor, p, rows.walk.part.src, src),
            &mut ops,
        );
        softmax_rows(&mut ops, xt, yt.clone(), m, sum, log);
        split_rows(
            rows.hbm(&out.tensor, p, rows.walk.part.dst, dst),
            yt,
            &mut ops,
        );
        ops
    };
    let body = rows.walk.stmts_slots(slots, &emit);
    let p = rows.walk.max_parts();
    l.push_kernel(Kernel {
        name: node.name.clone(),
        op: node.op.name().to_string(),
        buffers: vec![
            sbuf("x", p, slots * d),
            sbuf("y", p, slots * d),
            sbuf("m", p, slots),
            sbuf("s", p, slots),
        ],
        body,
    });
    Ok(())
}

/// The ops of a softmax (or log-softmax) of the rows in `xt` into `yt`, with per-row columns
/// `m` (the negated max) and `sum`.
fn softmax_rows(ops: &mut Vec<KOp>, xt: View, yt: View, m: View, sum: View, log: bool) {
    let part = |v: &View| ScalarArg::PerPartition(v.clone());
    ops.push(KOp::Reduce {
        dst: m.clone(),
        src: xt.clone(),
        op: Reduce::Max,
        axes: 1,
        negate: true,
    });
    ops.push(KOp::Activate {
        dst: yt.clone(),
        src: xt.clone(),
        func: Act::Exp,
        scale: ScalarArg::Imm(1.0),
        bias: part(&m),
        acc: Some(sum.clone()),
    });
    if log {
        ops.push(activate(
            sum.clone(),
            sum.clone(),
            Act::Log,
            ScalarArg::Imm(1.0),
            ScalarArg::Imm(0.0),
        ));
        ops.push(ts2(yt, xt, Alu::Add, part(&m), Alu::Subtract, part(&sum)));
    } else {
        ops.push(ts2(
            yt.clone(),
            yt,
            Alu::Divide,
            part(&sum),
            Alu::Bypass,
            ScalarArg::Imm(0.0),
        ));
    }
}

/// Rows per partition when a softmax's rows can be packed: contiguous rows of contiguous
/// elements, in input and output alike, a whole number of them (at least 2) per partition.
fn packed_rows(rows: &Rows) -> Option<u64> {
    let p = machine::PARTITIONS;
    let w = &rows.walk;
    let d = rows.d as i64;
    let contiguous =
        w.outer.is_empty() && rows.red == [(rows.d, 1)] && w.part.src == d && w.part.dst == d;
    let k = w.part.size / p;
    (contiguous && w.part.size.is_multiple_of(p) && k >= 2).then_some(k)
}

/// A softmax over `k * partitions` contiguous rows of `d` elements, in chunks of `n` rows per
/// partition: a chunk is `n * partitions` consecutive rows, partition q holding `n` consecutive
/// ones, so each partition's rows are one HBM run (a descriptor carries `n * d` elements instead
/// of one row's `d`). Up to [`ROW_SLOTS`] chunks rotate over the slots (a chunk loads while the
/// one before it computes).
fn softmax_packed(
    l: &mut Lowerer,
    node: &Node,
    x: &str,
    out: &str,
    d: u64,
    k: u64,
    log: bool,
) -> Result<(), Diagnostic> {
    let p = machine::PARTITIONS;
    // Rows per partition in a chunk: a quarter of them, within one access's free elements
    // and with two slots in half of SBUF.
    let half = machine::SBUF_PARTITION_BYTES / 2 / Dtype::Fp32.size_bytes();
    let most = (machine::MAX_FREE_ELEMS_SBUF / d.max(1)).min(half / (2 * (2 * d + 2)));
    let kc = k.div_ceil(ROW_SLOTS).min(most.max(1));
    let slots = row_slots(2 * kc * d + 2 * kc).min(k.div_ceil(kc));
    let mut body = Vec::new();
    for (c, r0) in (0..k).step_by(kc as usize).enumerate() {
        // Chunk c: rows [p * r0, p * (r0 + n)), partition q holding n consecutive ones (so the
        // first chunk waits only for the first rows a producer writes).
        let n = kc.min(k - r0);
        let (at, stride) = (Expr::constant((p * r0 * d) as i64), (n * d) as i64);
        let slot = c as u64 % slots;
        let (xo, so) = (slot * kc * d, slot * kc);
        let mut ops = Vec::new();
        let src = View::hbm(x, p, stride, at.clone(), vec![(n * d, 1)]);
        split_rows(tile("x", p, xo, n * d), src, &mut ops);
        for r in 0..n {
            let (xt, yt) = (tile("x", p, xo + r * d, d), tile("y", p, xo + r * d, d));
            let (m, sum) = (tile("m", p, so + r, 1), tile("s", p, so + r, 1));
            softmax_rows(&mut ops, xt, yt, m, sum, log);
        }
        let dst = View::hbm(out, p, stride, at, vec![(n * d, 1)]);
        split_rows(dst, tile("y", p, xo, n * d), &mut ops);
        body.extend(ops.into_iter().map(Stmt::Op));
    }
    l.push_kernel(Kernel {
        name: node.name.clone(),
        op: node.op.name().to_string(),
        buffers: vec![
            sbuf("x", p, slots * kc * d),
            sbuf("y", p, slots * kc * d),
            sbuf("m", p, slots * kc),
            sbuf("s", p, slots * kc),
        ],
        body,
    });
    Ok(())
}

/// Most row tiles of a normalisation in flight at once (a tiling choice of the compiler).
const ROW_SLOTS: u64 = 4;

/// How many slots of `per_slot` fp32 elements per partition a row kernel rotates over: up to
/// [`ROW_SLOTS`], within half of SBUF.
pub(super) fn row_slots(per_slot: u64) -> u64 {
    let budget = machine::SBUF_PARTITION_BYTES / 2 / Dtype::Fp32.size_bytes();
    (budget / per_slot.max(1)).clamp(1, ROW_SLOTS)
}

/// A row tile's DMA, cut by partition groups over the queues (one queue moves a sixteenth of
/// HBM bandwidth).
fn split_rows(dst: View, src: View, ops: &mut Vec<KOp>) {
    let elems = dst.part_count * dst.dims.iter().map(|d| d.0).product::<u64>();
    let bytes = elems * Dtype::Fp32.size_bytes();
    split_dma(dst, src, bytes, DMA_PIECE_BYTES / 4, ops);
}

/// Softmax of a float16/bfloat16 tensor, rounded step by step as the reference (and
/// `interp::precision::softmax_row_narrow`) does: `x - max`, `exp`, the row sum and the
/// quotient are each written to a tile of type `h`, so the engine rounds them on write. The
/// float16 row sum is one `TENSOR_REDUCE` (fp32 inside, rounded once, as numpy widens float16);
/// the bfloat16 row sum is a loop of one-column adds into a bfloat16 accumulator, which rounds
/// after every addition as ml_dtypes does (`d` vector ops per tile instead of one).
fn softmax_narrow(
    l: &mut Lowerer,
    node: &Node,
    rows: &Rows,
    x: &str,
    out: &str,
    h: Dtype,
) -> Result<(), Diagnostic> {
    let d = rows.d;
    let imm = ScalarArg::Imm;
    let emit = |p: u64, src: Expr, dst: Expr| -> Vec<Stmt> {
        let (xt, et, st) = (tile("x", p, 0, d), tile("e", p, 0, d), tile("s", p, 0, 1));
        let mut ops = vec![
            KOp::Dma {
                dst: xt.clone(),
                src: rows.hbm(x, p, rows.walk.part.src, src),
            },
            KOp::Reduce {
                dst: tile("m", p, 0, 1),
                src: xt.clone(),
                op: Reduce::Max,
                axes: 1,
                negate: true,
            },
            ts2(
                et.clone(),
                xt,
                Alu::Add,
                per_part("m", p),
                Alu::Bypass,
                imm(0.0),
            ),
            activate(et.clone(), et.clone(), Act::Exp, imm(1.0), imm(0.0)),
        ];
        let mut sum = Vec::new();
        if h == Dtype::Bf16 {
            ops.push(KOp::Memset {
                dst: st.clone(),
                value: 0.0,
            });
            let col = View::buf("e", 0, p, Expr::var("j", 1), vec![(1, 1)]);
            sum.push(Stmt::Loop {
                var: "j".into(),
                start: 0,
                end: d as i64,
                body: vec![Stmt::Op(tt(st.clone(), st.clone(), col, Alu::Add))],
            });
        } else {
            ops.push(KOp::Reduce {
                dst: st,
                src: et.clone(),
                op: Reduce::Add,
                axes: 1,
                negate: false,
            });
        }
        let tail = [
            ts2(
                et.clone(),
                et.clone(),
                Alu::Divide,
                per_part("s", p),
                Alu::Bypass,
                imm(0.0),
            ),
            KOp::Dma {
                dst: rows.hbm(out, p, rows.walk.part.dst, dst),
                src: et,
            },
        ];
        let mut stmts: Vec<Stmt> = ops.into_iter().map(Stmt::Op).collect();
        stmts.extend(sum);
        stmts.extend(tail.into_iter().map(Stmt::Op));
        stmts
    };
    let body = rows.walk.stmts_nested(&emit);
    let p = rows.walk.max_parts();
    l.push_kernel(Kernel {
        name: node.name.clone(),
        op: node.op.name().to_string(),
        buffers: vec![
            sbuf("x", p, d),
            sbuf_typed("e", h, p, d),
            sbuf("m", p, 1),
            sbuf_typed("s", h, p, 1),
        ],
        body,
    });
    Ok(())
}

/// The affine part of a row normalisation.
enum Affine {
    /// LayerNorm: `gamma` (and `beta`) over the normalised shape, the same for every row.
    Elementwise { gamma: String, beta: Option<String> },
    /// InstanceNorm: one `scale` and `bias` per row, given as tensors of one value per row.
    PerRow { scale: String, bias: String },
}

fn layer_norm(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    let x = l.placed(node.inputs[0]);
    let rank = x.shape.len() as i64;
    let axis = node
        .attrs
        .int("axis")
        .map_err(|m| node_error(node, Code::BadAttribute, m))?;
    let axis = if axis < 0 { axis + rank } else { axis };
    if !(0..rank).contains(&axis) {
        return Err(node_error(
            node,
            Code::BadAttribute,
            format!("axis {axis} is out of range for shape {:?}", x.shape),
        ));
    }
    let axis = axis as usize;
    let norm_shape: Vec<u64> = x.shape[axis..].to_vec();
    let gamma = broadcast_to(l, node, node.inputs[1], &norm_shape).tensor;
    let beta = node
        .inputs
        .get(2)
        .map(|&b| broadcast_to(l, node, b, &norm_shape).tensor);
    row_norm(l, node, axis, Affine::Elementwise { gamma, beta })
}

fn instance_norm(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    let x = l.placed(node.inputs[0]);
    if x.shape.len() < 3 || node.inputs.len() != 3 {
        return Err(node_error(
            node,
            Code::NotLowered,
            format!(
                "InstanceNormalization needs an (N, C, spatial...) input, scale and B; got shape {:?} and {} inputs",
                x.shape,
                node.inputs.len()
            ),
        ));
    }
    // One scale and bias per (n, c) row: the per-channel vectors broadcast over N.
    let rows_shape = x.shape[..2].to_vec();
    let scale = broadcast_to(l, node, node.inputs[1], &rows_shape).tensor;
    let bias = broadcast_to(l, node, node.inputs[2], &rows_shape).tensor;
    row_norm(l, node, 2, Affine::PerRow { scale, bias })
}

/// Normalises the rows of `x = inputs[0]` over its axes from `axis` on (mean 0, variance 1,
/// `epsilon` added to the variance), applies `affine` and writes output 0, and the per-row
/// mean and `1 / sqrt(var + eps)` to outputs 1 and 2 when the node has them (LayerNorm's
/// `Mean` and `InvStdDev`, shaped like `x` with the normalised axes kept as 1). The rows walk
/// in the layout of those statistics (one value per row): `x` and `y` share `x`'s layout, so
/// their offsets are the walk's source offsets.
fn row_norm(l: &mut Lowerer, node: &Node, axis: usize, affine: Affine) -> Result<(), Diagnostic> {
    let x = l.placed(node.inputs[0]);
    let eps = node
        .attrs
        .float("epsilon")
        .map_err(|m| node_error(node, Code::BadAttribute, m))?;
    let out = l.place_output(node.outputs[0], node)?;
    let mut stats = Vec::new();
    for (k, tile_name) in [(1, "mu"), (2, "var")] {
        if let Some(&v) = node.outputs.get(k) {
            stats.push((l.place_output(v, node)?.tensor, tile_name));
        }
    }
    let axes: Vec<usize> = (axis..x.shape.len()).collect();
    let stat_strides = super::reduce::kept_strides(&x.shape, &axes);
    let rows = Rows::new(node, &x.shape, &axes, &stat_strides)?;
    rows.check_fits(node)?;
    let d = rows.d;
    let pmax = rows.walk.max_parts();
    let mut body = Vec::new();
    // Buffers in the order x, y, [g], nm, var, [b], [mu], [sc, bi].
    // Row tiles rotate over slots of the per-row buffers (the next tiles load while this one
    // computes); gamma and beta are shared.
    let slots = row_slots(2 * d + 5);
    let mut buffers = vec![sbuf("x", pmax, slots * d), sbuf("y", pmax, slots * d)];
    let mut tail = Vec::new();
    match &affine {
        Affine::Elementwise { gamma, beta } => {
            let mut params = vec![("g", gamma)];
            params.extend(beta.iter().map(|b| ("b", b)));
            for (name, t) in params {
                body.push(Stmt::Op(KOp::Dma {
                    dst: tile(name, pmax, 0, d),
                    src: View::hbm(t, pmax, 0, Expr::constant(0), vec![(d, 1)]),
                }));
                match name {
                    "g" => buffers.push(sbuf(name, pmax, d)),
                    _ => tail.push(sbuf(name, pmax, d)),
                }
            }
        }
        Affine::PerRow { .. } => {}
    }
    buffers.extend([sbuf("nm", pmax, slots), sbuf("var", pmax, slots)]);
    buffers.extend(tail);
    if !stats.is_empty() {
        buffers.push(sbuf("mu", pmax, slots));
    }
    if let Affine::PerRow { .. } = affine {
        buffers.extend([sbuf("sc", pmax, slots), sbuf("bi", pmax, slots)]);
    }
    let (part_x, part_row) = (rows.walk.part.src, rows.walk.part.dst);
    let emit = |p: u64, src: Expr, row: Expr, k: u64| -> Vec<KOp> {
        let (xt, yt) = (tile("x", p, k * d, d), tile("y", p, k * d, d));
        let col = |name: &str| tile(name, p, k, 1);
        let at_row = |name: &str| ScalarArg::PerPartition(col(name));
        let imm = ScalarArg::Imm;
        let mut ops = Vec::new();
        split_rows(
            xt.clone(),
            rows.hbm(&x.tensor, p, part_x, src.clone()),
            &mut ops,
        );
        ops.extend([
            // nm = -mean(x)
            KOp::Activate {
                dst: yt.clone(),
                src: xt.clone(),
                func: Act::Identity,
                scale: imm(-1.0 / d as f32),
                bias: imm(0.0),
                acc: Some(col("nm")),
            },
            // xc = x - mean
            ts2(
                xt.clone(),
                xt.clone(),
                Alu::Add,
                at_row("nm"),
                Alu::Bypass,
                imm(0.0),
            ),
            // var = sum((xc / sqrt(D))^2)
            KOp::Activate {
                dst: yt.clone(),
                src: xt.clone(),
                func: Act::Square,
                scale: imm(1.0 / (d as f32).sqrt()),
                bias: imm(0.0),
                acc: Some(col("var")),
            },
            // var <- 1 / sqrt(var + eps)
            activate(col("var"), col("var"), Act::Rsqrt, imm(1.0), imm(eps)),
        ]);
        match &affine {
            Affine::Elementwise { beta, .. } => {
                ops.push(ts2(
                    yt.clone(),
                    xt,
                    Alu::Multiply,
                    at_row("var"),
                    Alu::Bypass,
                    imm(0.0),
                ));
                ops.push(tt(
                    yt.clone(),
                    yt.clone(),
                    tile("g", p, 0, d),
                    Alu::Multiply,
                ));
                if beta.is_some() {
                    ops.push(tt(yt.clone(), yt.clone(), tile("b", p, 0, d), Alu::Add));
                }
            }
            Affine::PerRow { scale, bias } => {
                for (name, t) in [("sc", scale), ("bi", bias)] {
                    ops.push(KOp::Dma {
                        dst: col(name),
                        src: View::hbm(t, p, part_row, row.clone(), vec![(1, 1)]),
                    });
                }
                // y = xc * (rstd * scale) + bias
                ops.push(tt(col("sc"), col("sc"), col("var"), Alu::Multiply));
                ops.push(ts2(
                    yt.clone(),
                    xt,
                    Alu::Multiply,
                    at_row("sc"),
                    Alu::Add,
                    at_row("bi"),
                ));
            }
        }
        split_rows(rows.hbm(&out.tensor, p, part_x, src), yt, &mut ops);
        if !stats.is_empty() {
            ops.push(ts2(
                col("mu"),
                col("nm"),
                Alu::Multiply,
                imm(-1.0),
                Alu::Bypass,
                imm(0.0),
            ));
        }
        for (t, name) in &stats {
            ops.push(KOp::Dma {
                dst: View::hbm(t, p, part_row, row.clone(), vec![(1, 1)]),
                src: col(name),
            });
        }
        ops
    };
    body.extend(rows.walk.stmts_slots(slots, &emit));
    l.push_kernel(Kernel {
        name: node.name.clone(),
        op: node.op.name().to_string(),
        buffers,
        body,
    });
    Ok(())
}

fn batch_norm(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    if node.outputs.len() > 1 || node.inputs.len() != 5 {
        return Err(node_error(
            node,
            Code::NotLowered,
            "only inference BatchNormalization (5 inputs, 1 output) is lowered",
        ));
    }
    let x = l.placed(node.inputs[0]);
    if x.shape.len() < 2 {
        return Err(node_error(
            node,
            Code::NotLowered,
            "input has no channel axis",
        ));
    }
    let eps = node
        .attrs
        .float("epsilon")
        .map_err(|m| node_error(node, Code::BadAttribute, m))?;
    let params: Vec<String> = node.inputs[1..]
        .iter()
        .map(|&v| l.placed(v).tensor)
        .collect();
    let out = l.place_output(node.outputs[0], node)?;
    let (n, c) = (x.shape[0], x.shape[1]);
    let s: u64 = x.shape[2..].iter().product();
    // Pieces of the (n, spatial) free extent: (n0, nlen, s0, slen).
    let mut pieces = Vec::new();
    if s >= ELEMENTWISE_FREE_MAX {
        for i in 0..n {
            let mut s0 = 0;
            while s0 < s {
                let len = ELEMENTWISE_FREE_MAX.min(s - s0);
                pieces.push((i, 1, s0, len));
                s0 += len;
            }
        }
    } else {
        let nb = (ELEMENTWISE_FREE_MAX / s.max(1)).max(1);
        let mut i = 0;
        while i < n {
            let len = nb.min(n - i);
            pieces.push((i, len, 0, s));
            i += len;
        }
    }
    let free_max = pieces.iter().map(|p| p.1 * p.3).max().unwrap_or(1);
    let pmax = c.min(machine::PARTITIONS);
    let mut body = Vec::new();
    let names = ["sc", "bi", "mu", "va"];
    let mut c0 = 0;
    while c0 < c {
        let ct = machine::PARTITIONS.min(c - c0);
        let col = |name: &str| tile(name, ct, 0, 1);
        for (name, t) in names.iter().zip(&params) {
            body.push(Stmt::Op(KOp::Dma {
                dst: col(name),
                src: View::hbm(t, ct, 1, Expr::constant(c0 as i64), vec![(1, 1)]),
            }));
        }
        let imm = ScalarArg::Imm;
        for op in [
            activate(col("va"), col("va"), Act::Rsqrt, imm(1.0), imm(eps)),
            tt(col("sc"), col("sc"), col("va"), Alu::Multiply),
            tt(col("mu"), col("mu"), col("sc"), Alu::Multiply),
            tt(col("bi"), col("bi"), col("mu"), Alu::Subtract),
        ] {
            body.push(Stmt::Op(op));
        }
        for &(n0, nlen, s0, slen) in &pieces {
            let off = (n0 * c * s + c0 * s + s0) as i64;
            let dims = vec![(nlen, (c * s) as i64), (slen, 1)];
            let f = nlen * slen;
            body.push(Stmt::Op(KOp::Dma {
                dst: tile("x", ct, 0, f),
                src: View::hbm(&x.tensor, ct, s as i64, Expr::constant(off), dims.clone()),
            }));
            body.push(Stmt::Op(activate(
                tile("y", ct, 0, f),
                tile("x", ct, 0, f),
                Act::Identity,
                per_part("sc", ct),
                per_part("bi", ct),
            )));
            body.push(Stmt::Op(KOp::Dma {
                dst: View::hbm(&out.tensor, ct, s as i64, Expr::constant(off), dims),
                src: tile("y", ct, 0, f),
            }));
        }
        c0 += ct;
    }
    let mut buffers = vec![sbuf("x", pmax, free_max), sbuf("y", pmax, free_max)];
    buffers.extend(names.iter().map(|n| sbuf(n, pmax, 1)));
    l.push_kernel(Kernel {
        name: node.name.clone(),
        op: "BatchNormalization".into(),
        buffers,
        body,
    });
    Ok(())
}
