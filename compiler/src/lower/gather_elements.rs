//! `GatherElements`: `out[.., j, ..] = data[.., idx[.., j, ..], ..]` along one axis, every
//! output element picking its own position, as compare + select + reduce on the vector engine
//! (a one-hot matmul would need one product per column).
//!
//! Every position off the axis (a "column") is a partition, walked like the rows of
//! [`super::reduce`]; its data line `data[c, 0..A]` and its indices `idx[c, 0..J]` are read by
//! strided DMAs onto the free dim. Per chunk of indices the vector engine compares an `IOTA`
//! over the axis (`[J, A]`, broadcast along `J` with a zero stride) with the indices (broadcast
//! along `A`), `SELECT`s the data line where equal and zero elsewhere, and sums over `A`: one
//! value plus zeros, exact, and infinities or NaNs at other positions do not leak. Negative
//! indices count from the end. Costs about `J * A` elements of four vector ops per column tile.

use super::gather::wrap_negative;
use super::tiles::{contiguous_strides, sbuf, tile, Dim, RowWalk, ROW_FREE_MAX};
use super::{node_error, Lowerer, EXACT_INT_LIMIT};
use crate::diag::{Code, Diagnostic};
use crate::graph::Node;
use crate::kernel::{Expr, KOp, Kernel, Stmt, View};
use tahoma_isa::{Alu, Reduce};

/// A view of buffer `name` on `p` partitions with the given free dims.
fn bv(name: &str, p: u64, dims: Vec<(u64, i64)>) -> View {
    View::buf(name, 0, p, Expr::constant(0), dims)
}

/// Lowers a GatherElements node.
pub fn lower(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    let data = l.placed(node.inputs[0]);
    let ids = l.placed(node.inputs[1]);
    let rank = data.shape.len();
    let axis = node
        .attrs
        .int("axis")
        .map_err(|m| node_error(node, Code::BadAttribute, m))? as usize;
    if axis >= rank || ids.shape.len() != rank {
        return Err(node_error(
            node,
            Code::BadAttribute,
            format!(
                "indices {:?} do not index data {:?} along axis {axis}",
                ids.shape, data.shape
            ),
        ));
    }
    let a = data.shape[axis];
    if a > ROW_FREE_MAX || a as f32 > EXACT_INT_LIMIT {
        return Err(node_error(
            node,
            Code::NotLowered,
            format!(
                "an axis of {a} elements (data {:?}) exceeds the {ROW_FREE_MAX} a row tile holds",
                data.shape
            ),
        ));
    }
    let out = l.place_output(node.outputs[0], node)?;
    let (ds, is) = (
        contiguous_strides(&data.shape),
        contiguous_strides(&ids.shape),
    );
    let cols: Vec<Dim> = (0..rank)
        .filter(|&i| i != axis)
        .map(|i| Dim {
            size: ids.shape[i],
            src: ds[i],
            dst: is[i],
        })
        .collect();
    let walk = RowWalk::new(&cols);
    let (j, jstride, astride) = (ids.shape[axis], is[axis], ds[axis]);
    let jc_max = (ROW_FREE_MAX / a.max(1)).clamp(1, j.max(1));
    let parts = walk.max_parts();
    let mut body = Vec::new();
    if out.elems() > 0 {
        body.push(Stmt::Op(KOp::Iota {
            dst: tile("iota", parts, 0, a),
            base: 0,
            part_step: 0,
            steps: vec![1],
        }));
        body.push(Stmt::Op(KOp::Memset {
            dst: tile("zero", parts, 0, 1),
            value: 0.0,
        }));
        let emit = |p: u64, src: Expr, dst: Expr| -> Vec<KOp> {
            let mut ops = vec![KOp::Dma {
                dst: tile("dat", p, 0, a),
                src: View::hbm(&data.tensor, p, walk.part.src, src, vec![(a, astride)]),
            }];
            let mut j0 = 0;
            while j0 < j {
                let jc = jc_max.min(j - j0);
                let at = dst.clone().plus(j0 as i64 * jstride);
                ops.push(KOp::Dma {
                    dst: tile("ids", p, 0, jc),
                    src: View::hbm(
                        &ids.tensor,
                        p,
                        walk.part.dst,
                        at.clone(),
                        vec![(jc, jstride)],
                    ),
                });
                ops.extend(wrap_negative(
                    tile("ids", p, 0, jc),
                    tile("neg", p, 0, jc),
                    a,
                ));
                ops.push(KOp::TensorTensor {
                    dst: tile("sel", p, 0, jc * a),
                    a: bv("iota", p, vec![(jc, 0), (a, 1)]),
                    b: bv("ids", p, vec![(jc, 1), (a, 0)]),
                    op: Alu::IsEqual,
                });
                ops.push(KOp::Select {
                    dst: tile("sel", p, 0, jc * a),
                    pred: tile("sel", p, 0, jc * a),
                    on_true: bv("dat", p, vec![(jc, 0), (a, 1)]),
                    on_false: bv("zero", p, vec![(jc, 0), (a, 0)]),
                });
                ops.push(KOp::Reduce {
                    dst: tile("res", p, 0, jc),
                    src: bv("sel", p, vec![(jc, a as i64), (a, 1)]),
                    op: Reduce::Add,
                    axes: 1,
                    negate: false,
                });
                ops.push(KOp::Dma {
                    dst: View::hbm(&out.tensor, p, walk.part.dst, at, vec![(jc, jstride)]),
                    src: tile("res", p, 0, jc),
                });
                j0 += jc;
            }
            ops
        };
        body.extend(walk.stmts(&emit));
    }
    l.push_kernel(Kernel {
        name: node.name.clone(),
        op: "GatherElements".into(),
        buffers: vec![
            sbuf("iota", parts, a),
            sbuf("zero", parts, 1),
            sbuf("dat", parts, a),
            sbuf("ids", parts, jc_max),
            sbuf("neg", parts, jc_max),
            sbuf("sel", parts, jc_max * a),
            sbuf("res", parts, jc_max),
        ],
        body,
    });
    Ok(())
}
