//! Reductions along axes: `ReduceSum/Mean/Max/Min` and `GlobalAveragePool/GlobalMaxPool`. The
//! rows (the kept axes) go on partitions and the reduced axes, brought innermost by the DMA's
//! access pattern, on the free dim; `TENSOR_REDUCE` folds each row. Rows longer than
//! [`ROW_FREE_MAX`] are reduced in chunks into a partial column per chunk, then once more.
//! [`Rows`] is the row split that Softmax and the normalisations share. A reduction over an
//! empty axis is a fill with the reduction's identity.

use super::tiles::{sbuf, simplify, tile, Dim, RowWalk, ROW_FREE_MAX};
use super::{node_error, Lowerer};
use crate::diag::{Code, Diagnostic};
use crate::graph::{Node, Op};
use crate::kernel::{Expr, KOp, Kernel, ScalarArg, View};
use crate::tensor::DType;
use tahoma_isa::{machine, Alu, Reduce};

/// A tensor split into rows (the kept axes, walked over partitions and loops) and the reduced
/// axes (free dims of each row's HBM access, in their input strides).
#[derive(Clone, Debug)]
pub struct Rows {
    pub walk: RowWalk,
    /// Reduced dims (size, input stride), outermost first, merged where contiguous.
    pub red: Vec<(u64, i64)>,
    /// Elements per row.
    pub d: u64,
}

impl Rows {
    /// Splits `shape` at `axes`; `out_strides` are the element strides of the output with the
    /// input's rank (a reduced axis of size 1, or the input's own strides for same-shape ops).
    pub fn new(
        node: &Node,
        shape: &[u64],
        axes: &[usize],
        out_strides: &[i64],
    ) -> Result<Rows, Diagnostic> {
        let in_strides = super::tiles::contiguous_strides(shape);
        let mut rows = Vec::new();
        let mut red = Vec::new();
        for (i, &size) in shape.iter().enumerate() {
            let d = Dim {
                size,
                src: in_strides[i],
                dst: out_strides[i],
            };
            if axes.contains(&i) {
                red.push(Dim {
                    size,
                    src: in_strides[i],
                    dst: in_strides[i],
                });
            } else {
                rows.push(d);
            }
        }
        let d: u64 = red.iter().map(|d| d.size).product();
        let mut red: Vec<(u64, i64)> = simplify(&red).iter().map(|d| (d.size, d.src)).collect();
        if red.is_empty() {
            red.push((1, 1));
        }
        if red.len() > machine::MAX_FREE_DIMS as usize {
            return Err(node_error(
                node,
                Code::NotLowered,
                format!(
                    "the reduced axes {axes:?} of shape {shape:?} need {} access-pattern dims; the DMA has {}",
                    red.len(),
                    machine::MAX_FREE_DIMS
                ),
            ));
        }
        Ok(Rows {
            walk: RowWalk::new(&rows),
            red,
            d,
        })
    }

    /// The HBM access of one tile of `parts` rows starting at element `off` of `tensor`.
    pub fn hbm(&self, tensor: &str, parts: u64, part_stride: i64, off: Expr) -> View {
        View::hbm(tensor, parts, part_stride, off, self.red.clone())
    }

    /// Fails unless a row fits one SBUF tile.
    pub fn check_fits(&self, node: &Node) -> Result<(), Diagnostic> {
        if self.d > ROW_FREE_MAX {
            return Err(node_error(
                node,
                Code::NotLowered,
                format!(
                    "rows of {} elements exceed the {ROW_FREE_MAX} a row tile holds",
                    self.d
                ),
            ));
        }
        Ok(())
    }
}

/// Row-major strides of `shape` with the `axes` kept as size 1 (`keepdims` layout).
pub fn kept_strides(shape: &[u64], axes: &[usize]) -> Vec<i64> {
    let kept: Vec<u64> = shape
        .iter()
        .enumerate()
        .map(|(i, &s)| if axes.contains(&i) { 1 } else { s })
        .collect();
    super::tiles::contiguous_strides(&kept)
}

/// A reduction over an empty axis: every output element is the reduction's identity (0 for a
/// sum, -inf/+inf for max/min, false/true for boolean max/min, NaN for a mean of nothing),
/// written by a `MEMSET` tile.
fn empty(l: &mut Lowerer, node: &Node, op: Reduce, mean: bool) -> Result<(), Diagnostic> {
    let dtype = l.graph.ty(node.outputs[0]).dtype;
    let value = match (op, mean) {
        (Reduce::Add, false) => 0.0,
        _ if !dtype.is_float() && dtype != DType::Bool => {
            return Err(node_error(
                node,
                Code::NotLowered,
                format!(
                    "{} of {dtype} values over an empty axis of {} has no identity the chip's i32 holds; only sums, and max/min of float or bool values, are lowered",
                    node.op.name(),
                    l.graph.ty(node.inputs[0])
                ),
            ))
        }
        (Reduce::Add, true) => f32::NAN,
        (Reduce::Max, _) if dtype == DType::Bool => 0.0,
        (Reduce::Min, _) if dtype == DType::Bool => 1.0,
        (Reduce::Max, _) => f32::NEG_INFINITY,
        (Reduce::Min, _) => f32::INFINITY,
    };
    let out = l.place_output(node.outputs[0], node)?;
    let (body, buffers) = if out.elems() > 0 {
        let (stmts, buf) = super::shape_ops::fill(&out.tensor, out.elems(), value);
        (stmts, vec![buf])
    } else {
        (vec![], vec![])
    };
    l.push_kernel(Kernel {
        name: node.name.clone(),
        op: node.op.name().to_string(),
        buffers,
        body,
    });
    Ok(())
}

/// Lowers a reduction or global pool.
pub fn lower(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    let x = l.placed(node.inputs[0]);
    let axes: Vec<usize> = match node.op {
        Op::GlobalAveragePool | Op::GlobalMaxPool => (2..x.shape.len()).collect(),
        _ => node
            .attrs
            .usizes("axes")
            .map_err(|m| node_error(node, Code::BadAttribute, m))?,
    };
    let (op, mean) = match node.op {
        Op::ReduceSum => (Reduce::Add, false),
        Op::ReduceMean | Op::GlobalAveragePool => (Reduce::Add, true),
        Op::ReduceMax | Op::GlobalMaxPool => (Reduce::Max, false),
        Op::ReduceMin => (Reduce::Min, false),
        other => {
            return Err(node_error(
                node,
                Code::NotLowered,
                format!("{} is not a reduction", other.name()),
            ))
        }
    };
    if axes.iter().any(|&a| x.shape.get(a) == Some(&0)) {
        return empty(l, node, op, mean);
    }
    let out = l.place_output(node.outputs[0], node)?;
    let rows = Rows::new(node, &x.shape, &axes, &kept_strides(&x.shape, &axes))?;
    // Chunks of the outermost reduced dim so that each fits a row tile.
    let (outer, inner): ((u64, i64), u64) = {
        let o = rows.red[0];
        (o, rows.d / o.0.max(1))
    };
    if inner > ROW_FREE_MAX {
        return Err(node_error(
            node,
            Code::NotLowered,
            format!(
                "the inner reduced dims hold {inner} elements, more than the {ROW_FREE_MAX} a row tile holds"
            ),
        ));
    }
    let per_chunk = (ROW_FREE_MAX / inner.max(1)).min(outer.0).max(1);
    let chunks: Vec<(u64, u64)> = (0..outer.0.div_ceil(per_chunk))
        .map(|c| {
            let s = c * per_chunk;
            (s, per_chunk.min(outer.0 - s))
        })
        .collect();
    let n_chunks = chunks.len() as u64;
    let free = per_chunk * inner;
    let parts = rows.walk.max_parts();
    let d = rows.d;
    // Row tiles rotate over slots of x, part and res, so the next tiles load while this one
    // reduces and its result is stored.
    let slots = super::normalize::row_slots(free + n_chunks + 1);
    let emit = |p: u64, src: Expr, dst: Expr, slot: u64| -> Vec<KOp> {
        let (xo, po) = (slot * free, slot * n_chunks);
        let mut ops = Vec::new();
        for (j, &(s, len)) in chunks.iter().enumerate() {
            let mut red = rows.red.clone();
            red[0].0 = len;
            let n = len * inner;
            ops.push(KOp::Dma {
                dst: tile("x", p, xo, n),
                src: View::hbm(
                    &x.tensor,
                    p,
                    rows.walk.part.src,
                    src.clone().plus(s as i64 * outer.1),
                    red,
                ),
            });
            ops.push(KOp::Reduce {
                dst: tile("part", p, po + j as u64, 1),
                src: tile("x", p, xo, n),
                op,
                axes: 1,
                negate: false,
            });
        }
        let (res, ro) = if n_chunks > 1 {
            ops.push(KOp::Reduce {
                dst: tile("res", p, slot, 1),
                src: tile("part", p, po, n_chunks),
                op,
                axes: 1,
                negate: false,
            });
            ("res", slot)
        } else {
            ("part", po)
        };
        if mean {
            ops.push(KOp::TensorScalar {
                dst: tile(res, p, ro, 1),
                src: tile(res, p, ro, 1),
                op0: Alu::Multiply,
                scalar0: ScalarArg::Imm(1.0 / d as f32),
                op1: Alu::Bypass,
                scalar1: ScalarArg::Imm(0.0),
                reverse0: false,
                reverse1: false,
            });
        }
        ops.push(KOp::Dma {
            dst: View::hbm(&out.tensor, p, rows.walk.part.dst, dst, vec![(1, 1)]),
            src: tile(res, p, ro, 1),
        });
        ops
    };
    let body = rows.walk.stmts_slots(slots, &emit);
    let mut buffers = vec![
        sbuf("x", parts, slots * free),
        sbuf("part", parts, slots * n_chunks),
    ];
    if n_chunks > 1 {
        buffers.push(sbuf("res", parts, slots));
    }
    l.push_kernel(Kernel {
        name: node.name.clone(),
        op: node.op.name().to_string(),
        buffers,
        body,
    });
    Ok(())
}
