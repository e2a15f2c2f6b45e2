//! `ArgMax`, `ArgMin` and `Hardmax` along one axis, on the vector engine. The plan of
//! [`super::reduce`]: the kept axes go on partitions (rows), the reduced axis, brought innermost
//! by the DMA's access pattern, on the free dim. Per tile of rows:
//!
//! 1. `TENSOR_REDUCE` max (min) of each row;
//! 2. `eq = (x == extreme)` with the extreme as a per-partition scalar (exact: the extreme is one
//!    of the row's own values);
//! 3. `eq * pos` reduced by max, where `pos` is an `IOTA` over the axis made once per kernel:
//!    `d-1-j` for the first extreme (the largest `pos` is the smallest `j`), `j` for the last
//!    (`select_last_index`);
//! 4. ArgMax/ArgMin map that back to the index (`d-1-r`, or `r`) and store it; the DMA converts
//!    the fp32 index to the output's i32 (how int64 results are held); Hardmax writes
//!    `pos == r`, the one-hot of the first maximum, in the input's layout.
//!
//! Five vector ops per tile, no tensor engine. Axes of up to one row tile are lowered (indices
//! that short are exact in fp32).

use super::reduce::{kept_strides, Rows};
use super::tiles::{contiguous_strides, sbuf, tile, ROW_FREE_MAX};
use super::{node_error, Lowerer};
use crate::diag::{Code, Diagnostic};
use crate::graph::{Node, Op};
use crate::kernel::{Expr, KOp, Kernel, ScalarArg, Stmt, View};
use tahoma_isa::{Alu, Reduce};

fn ts(dst: View, src: View, op0: Alu, s0: ScalarArg, op1: Alu, s1: f32) -> KOp {
    KOp::TensorScalar {
        dst,
        src,
        op0,
        scalar0: s0,
        op1,
        scalar1: ScalarArg::Imm(s1),
        reverse0: false,
        reverse1: false,
    }
}

fn reduce(dst: View, src: View, op: Reduce) -> KOp {
    KOp::Reduce {
        dst,
        src,
        op,
        axes: 1,
        negate: false,
    }
}

/// Lowers ArgMax, ArgMin or Hardmax.
pub fn lower(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    let x = l.placed(node.inputs[0]);
    let attr = |name: &str| {
        node.attrs
            .int(name)
            .map_err(|m| node_error(node, Code::BadAttribute, m))
    };
    let axis = attr("axis")? as usize;
    let (extreme, hardmax) = match node.op {
        Op::ArgMax => (Reduce::Max, false),
        Op::ArgMin => (Reduce::Min, false),
        Op::Hardmax => (Reduce::Max, true),
        other => {
            return Err(node_error(
                node,
                Code::NotLowered,
                format!("{} is not an arg-extreme op", other.name()),
            ))
        }
    };
    let last = !hardmax && attr("select_last_index")? != 0;
    if axis >= x.shape.len() {
        return Err(node_error(
            node,
            Code::BadAttribute,
            format!("axis {axis} is outside input shape {:?}", x.shape),
        ));
    }
    let out_strides = if hardmax {
        contiguous_strides(&x.shape)
    } else {
        kept_strides(&x.shape, &[axis])
    };
    let rows = Rows::new(node, &x.shape, &[axis], &out_strides)?;
    let d = rows.d;
    if d > ROW_FREE_MAX {
        return Err(node_error(
            node,
            Code::NotLowered,
            format!(
                "axis {axis} of shape {:?} holds {d} elements; axes of up to {ROW_FREE_MAX} (one row tile) are lowered",
                x.shape
            ),
        ));
    }
    let out = l.place_output(node.outputs[0], node)?;
    let parts = rows.walk.max_parts();
    let mut body = Vec::new();
    if x.elems() > 0 {
        // pos[j] = j (last extreme) or d-1-j (first extreme), the same on every partition.
        let (base, step) = if last { (0, 1) } else { (d as i64 - 1, -1) };
        body.push(Stmt::Op(KOp::Iota {
            dst: tile("pos", parts, 0, d),
            base,
            part_step: 0,
            steps: vec![step],
        }));
        let emit = |p: u64, src: Expr, dst: Expr| -> Vec<KOp> {
            let mut ops = vec![
                KOp::Dma {
                    dst: tile("x", p, 0, d),
                    src: rows.hbm(&x.tensor, p, rows.walk.part.src, src),
                },
                reduce(tile("m", p, 0, 1), tile("x", p, 0, d), extreme),
                ts(
                    tile("eq", p, 0, d),
                    tile("x", p, 0, d),
                    Alu::IsEqual,
                    ScalarArg::PerPartition(tile("m", p, 0, 1)),
                    Alu::Bypass,
                    0.0,
                ),
                KOp::TensorTensor {
                    dst: tile("eq", p, 0, d),
                    a: tile("eq", p, 0, d),
                    b: tile("pos", p, 0, d),
                    op: Alu::Multiply,
                },
                reduce(tile("r", p, 0, 1), tile("eq", p, 0, d), Reduce::Max),
            ];
            if hardmax {
                ops.push(ts(
                    tile("eq", p, 0, d),
                    tile("pos", p, 0, d),
                    Alu::IsEqual,
                    ScalarArg::PerPartition(tile("r", p, 0, 1)),
                    Alu::Bypass,
                    0.0,
                ));
                ops.push(KOp::Dma {
                    dst: rows.hbm(&out.tensor, p, rows.walk.part.dst, dst),
                    src: tile("eq", p, 0, d),
                });
            } else {
                if !last {
                    // index = d-1 - r
                    ops.push(ts(
                        tile("r", p, 0, 1),
                        tile("r", p, 0, 1),
                        Alu::Multiply,
                        ScalarArg::Imm(-1.0),
                        Alu::Add,
                        (d - 1) as f32,
                    ));
                }
                ops.push(KOp::Dma {
                    dst: View::hbm(&out.tensor, p, rows.walk.part.dst, dst, vec![(1, 1)]),
                    src: tile("r", p, 0, 1),
                });
            }
            ops
        };
        body.extend(rows.walk.stmts(&emit));
    }
    l.push_kernel(Kernel {
        name: node.name.clone(),
        op: node.op.name().to_string(),
        buffers: vec![
            sbuf("pos", parts, d),
            sbuf("x", parts, d),
            sbuf("m", parts, 1),
            sbuf("eq", parts, d),
            sbuf("r", parts, 1),
        ],
        body,
    });
    Ok(())
}
