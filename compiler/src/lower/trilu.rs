//! `Trilu`: the upper (`upper = 1`: `j - i >= k`) or lower (`j - i <= k`) triangle of the last
//! two axes, the rest zeroed. A batch of at least as many small matrices (one row tile each) as
//! they have rows puts one matrix per partition, the mask an `IOTA` over `[rows, cols]` built
//! once. Otherwise rows of one matrix go on partitions, columns on the free dim. Per
//! tile of rows `[r0, r0+p)` and chunk of columns `[c0, c0+w)` the vector engine builds the
//! mask once, `IOTA` `j - i = c0 - r0 + col - part` compared with `k`; then a loop over the
//! matrices of the batch loads each tile, `SELECT`s it against a zero tile (so that infinities
//! and NaNs outside the triangle still give 0) and stores it. `k` comes from the graph's
//! constant input (the importer refuses a `k` computed at run time).

use super::tiles::{sbuf, tile, ROW_FREE_MAX};
use super::{node_error, Lowerer};
use crate::diag::{Code, Diagnostic};
use crate::graph::Node;
use crate::kernel::{Expr, KOp, Kernel, ScalarArg, Stmt, View};
use tahoma_isa::{machine, Alu};

fn mask_cmp(keep: View, cmp: Alu, k: i64) -> KOp {
    KOp::TensorScalar {
        dst: keep.clone(),
        src: keep,
        op0: cmp,
        scalar0: ScalarArg::Imm(k as f32),
        op1: Alu::Bypass,
        scalar1: ScalarArg::Imm(0.0),
        reverse0: false,
        reverse1: false,
    }
}

/// Many small matrices: one matrix per partition (`r x c` on the free dim, the mask an `IOTA`
/// with steps `-1` over rows and `1` over columns), 128 matrices per DMA.
#[allow(clippy::too_many_arguments)]
fn small_matrices(
    node: &Node,
    x: &str,
    out: &str,
    batch: u64,
    r: u64,
    c: u64,
    cmp: Alu,
    k: i64,
) -> Kernel {
    let (pmax, f) = (machine::PARTITIONS.min(batch), r * c);
    let mut body = vec![
        Stmt::Op(KOp::Memset {
            dst: tile("zero", pmax, 0, f),
            value: 0.0,
        }),
        Stmt::Op(KOp::Iota {
            dst: View::buf(
                "keep",
                0,
                pmax,
                Expr::constant(0),
                vec![(r, c as i64), (c, 1)],
            ),
            base: 0,
            part_step: 0,
            steps: vec![-1, 1],
        }),
        Stmt::Op(mask_cmp(tile("keep", pmax, 0, f), cmp, k)),
    ];
    let mut b0 = 0;
    while b0 < batch {
        let p = machine::PARTITIONS.min(batch - b0);
        let hbm = |t: &str| {
            View::hbm(
                t,
                p,
                f as i64,
                Expr::constant((b0 * f) as i64),
                vec![(f, 1)],
            )
        };
        body.extend(
            [
                KOp::Dma {
                    dst: tile("x", p, 0, f),
                    src: hbm(x),
                },
                KOp::Select {
                    dst: tile("x", p, 0, f),
                    pred: tile("keep", p, 0, f),
                    on_true: tile("x", p, 0, f),
                    on_false: tile("zero", p, 0, f),
                },
                KOp::Dma {
                    dst: hbm(out),
                    src: tile("x", p, 0, f),
                },
            ]
            .map(Stmt::Op),
        );
        b0 += p;
    }
    Kernel {
        name: node.name.clone(),
        op: "Trilu".into(),
        buffers: vec![
            sbuf("zero", pmax, f),
            sbuf("keep", pmax, f),
            sbuf("x", pmax, f),
        ],
        body,
    }
}

/// Lowers a Trilu node.
pub fn lower(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    let attr = |name: &str| {
        node.attrs
            .int(name)
            .map_err(|m| node_error(node, Code::BadAttribute, m))
    };
    let (upper, k) = (attr("upper")? != 0, attr("k")?);
    let x = l.placed(node.inputs[0]);
    let rank = x.shape.len();
    if rank < 2 {
        return Err(node_error(
            node,
            Code::BadAttribute,
            format!("Trilu needs rank >= 2, got shape {:?}", x.shape),
        ));
    }
    let (r, c) = (x.shape[rank - 2], x.shape[rank - 1]);
    let batch: u64 = x.shape[..rank - 2].iter().product();
    if (r + c) as f32 > super::EXACT_INT_LIMIT {
        return Err(node_error(
            node,
            Code::NotLowered,
            format!(
                "matrices of {r} x {c} in shape {:?} are beyond the chip's exact integers",
                x.shape
            ),
        ));
    }
    let out = l.place_output(node.outputs[0], node)?;
    let cmp = if upper { Alu::IsGe } else { Alu::IsLe };
    if batch > 1 && r * c <= ROW_FREE_MAX && batch >= r.min(machine::PARTITIONS) {
        let k = small_matrices(node, &x.tensor, &out.tensor, batch, r, c, cmp, k);
        l.push_kernel(k);
        return Ok(());
    }
    let pmax = machine::PARTITIONS.min(r.max(1));
    let wmax = ROW_FREE_MAX.min(c.max(1));
    let mut body = Vec::new();
    if x.elems() > 0 {
        body.push(Stmt::Op(KOp::Memset {
            dst: tile("zero", pmax, 0, wmax),
            value: 0.0,
        }));
        let mat = (r * c) as i64;
        let mut r0 = 0;
        while r0 < r {
            let p = machine::PARTITIONS.min(r - r0);
            let mut c0 = 0;
            while c0 < c {
                let w = ROW_FREE_MAX.min(c - c0);
                body.push(Stmt::Op(KOp::Iota {
                    dst: tile("keep", p, 0, w),
                    base: c0 as i64 - r0 as i64,
                    part_step: -1,
                    steps: vec![1],
                }));
                body.push(Stmt::Op(mask_cmp(tile("keep", p, 0, w), cmp, k)));
                let at = Expr::var("b", mat).plus((r0 * c + c0) as i64);
                let hbm = |t: &str| View::hbm(t, p, c as i64, at.clone(), vec![(w, 1)]);
                let ops = vec![
                    KOp::Dma {
                        dst: tile("x", p, 0, w),
                        src: hbm(&x.tensor),
                    },
                    KOp::Select {
                        dst: tile("x", p, 0, w),
                        pred: tile("keep", p, 0, w),
                        on_true: tile("x", p, 0, w),
                        on_false: tile("zero", p, 0, w),
                    },
                    KOp::Dma {
                        dst: hbm(&out.tensor),
                        src: tile("x", p, 0, w),
                    },
                ];
                body.push(Stmt::Loop {
                    var: "b".into(),
                    start: 0,
                    end: batch as i64,
                    body: ops.into_iter().map(Stmt::Op).collect(),
                });
                c0 += w;
            }
            r0 += p;
        }
    }
    l.push_kernel(Kernel {
        name: node.name.clone(),
        op: "Trilu".into(),
        buffers: vec![
            sbuf("zero", pmax, wmax),
            sbuf("keep", pmax, wmax),
            sbuf("x", pmax, wmax),
        ],
        body,
    });
    Ok(())
}
