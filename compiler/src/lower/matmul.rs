//! `MatMul` and `Gemm` on the tensor engine. For each output tile of at most `pe_cols` rows (M)
//! by `max_moving_free` columns (N), the contraction K is walked in tiles of `pe_rows`
//! partitions: the A tile is loaded transposed (`[K, M]`, the stationary operand), the B tile
//! (`[K, N]`) streams through as the moving operand, and the products accumulate in one PSUM
//! bank. The scalar engine evacuates PSUM (applying Gemm's alpha), the vector engine adds Gemm's
//! C, and a DMA writes the tile out. Operands are cast to the compiled precision as they are
//! loaded; constant weights are stored at that precision in HBM.

use super::tiles::contiguous_strides;
use super::{node_error, Lowerer};
use crate::diag::{Code, Diagnostic};
use crate::graph::{Node, Op};
use crate::kernel::{Accumulate, Buffer, Expr, KOp, Kernel, ScalarArg, Stmt, View};
use tahoma_isa::{machine, Act, Alu, Dtype, Mem};

/// Element strides of a logical 2-D operand `[rows, cols]` within its tensor.
#[derive(Clone, Copy, Debug)]
struct Mat {
    row: i64,
    col: i64,
}

/// Offsets (in elements) of every batch of a broadcast batched operand.
fn batch_offsets(op_batch: &[u64], out_batch: &[u64], matrix_elems: u64) -> Vec<i64> {
    let strides = contiguous_strides(op_batch);
    let lead = out_batch.len() - op_batch.len();
    let total: u64 = out_batch.iter().product();
    let mut offs = Vec::with_capacity(total as usize);
    for flat in 0..total {
        let mut rem = flat;
        let mut off = 0i64;
        for d in (0..out_batch.len()).rev() {
            let idx = rem % out_batch[d];
            rem /= out_batch[d];
            if d >= lead && op_batch[d - lead] != 1 {
                off += idx as i64 * strides[d - lead];
            }
        }
        offs.push(off * matrix_elems as i64);
    }
    offs
}

struct Plan<'a> {
    a: &'a str,
    b: &'a str,
    y: &'a str,
    c: Option<(&'a str, Mat)>,
    am: Mat,
    bm: Mat,
    m: u64,
    k: u64,
    n: u64,
    alpha: f32,
    beta: f32,
}

/// Where one output tile sits: operand offsets of its batch and its rows/columns.
#[derive(Clone, Copy, Debug)]
struct TileAt {
    a_off: i64,
    b_off: i64,
    c_off: i64,
    y_off: i64,
    m0: u64,
    mt: u64,
    n0: u64,
    nt: u64,
}

fn tile(p: &Plan, t: TileAt, body: &mut Vec<Stmt>) {
    let TileAt {
        a_off,
        b_off,
        c_off,
        y_off,
        m0,
        mt,
        n0,
        nt,
    } = t;
    let kp = machine::PE_ROWS;
    let load = |k0: Expr, kt: u64| -> Vec<KOp> {
        let a_view = View::hbm(
            p.a,
            kt,
            p.am.col,
            k0.clone()
                .scale(p.am.col)
                .plus(a_off + m0 as i64 * p.am.row),
            vec![(mt, p.am.row)],
        );
        let b_view = View::hbm(
            p.b,
            kt,
            p.bm.row,
            k0.scale(p.bm.row).plus(b_off + n0 as i64 * p.bm.col),
            vec![(nt, p.bm.col)],
        );
        vec![
            KOp::Dma {
                dst: View::buf("at", 0, kt, Expr::constant(0), vec![(mt, 1)]),
                src: a_view,
            },
            KOp::Dma {
                dst: View::buf("b", 0, kt, Expr::constant(0), vec![(nt, 1)]),
                src: b_view,
            },
            KOp::LoadStationary {
                src: View::buf("at", 0, kt, Expr::constant(0), vec![(mt, 1)]),
            },
        ]
    };
    let acc = View::buf("acc", 0, mt, Expr::constant(0), vec![(nt, 1)]);
    let (kfull, krem) = (p.k / kp, p.k % kp);
    let y = View::buf("y", 0, mt, Expr::constant(0), vec![(nt, 1)]);
    if p.k == 0 {
        // An empty contraction: the product is zero.
        body.push(Stmt::Op(KOp::Memset {
            dst: y.clone(),
            value: 0.0,
        }));
    }
    if kfull > 0 {
        let mut ops = load(Expr::var("k", kp as i64), kp);
        ops.push(KOp::Matmul {
            dst: acc.clone(),
            moving: View::buf("b", 0, kp, Expr::constant(0), vec![(nt, 1)]),
            acc: Accumulate::AfterFirst("k".into()),
        });
        body.push(Stmt::Loop {
            var: "k".into(),
            start: 0,
            end: kfull as i64,
            body: ops.into_iter().map(Stmt::Op).collect(),
        });
    }
    if krem > 0 {
        let kt = krem;
        let mut ops = load(Expr::constant((kfull * kp) as i64), kt);
        let acc_mode = if kfull > 0 {
            Accumulate::Always
        } else {
            Accumulate::Never
        };
        ops.push(KOp::Matmul {
            dst: acc.clone(),
            moving: View::buf("b", 0, kt, Expr::constant(0), vec![(nt, 1)]),
            acc: acc_mode,
        });
        body.extend(ops.into_iter().map(Stmt::Op));
    }
    if p.k > 0 {
        body.push(Stmt::Op(KOp::Activate {
            dst: y.clone(),
            src: acc,
            func: Act::Identity,
            scale: ScalarArg::Imm(p.alpha),
            bias: ScalarArg::Imm(0.0),
            acc: None,
        }));
    }
    if let Some((c, cm)) = p.c {
        let cbuf = View::buf("c", 0, mt, Expr::constant(0), vec![(nt, 1)]);
        let cview = View::hbm(
            c,
            mt,
            cm.row,
            Expr::constant(c_off + m0 as i64 * cm.row + n0 as i64 * cm.col),
            vec![(nt, cm.col)],
        );
        body.push(Stmt::Op(KOp::Dma {
            dst: cbuf.clone(),
            src: cview,
        }));
        if p.beta != 1.0 {
            body.push(Stmt::Op(KOp::TensorScalar {
                dst: cbuf.clone(),
                src: cbuf.clone(),
                op0: Alu::Multiply,
                scalar0: ScalarArg::Imm(p.beta),
                op1: Alu::Bypass,
                scalar1: ScalarArg::Imm(0.0),
                reverse0: false,
                reverse1: false,
            }));
        }
        body.push(Stmt::Op(KOp::TensorTensor {
            dst: y.clone(),
            a: y.clone(),
            b: cbuf,
            op: Alu::Add,
        }));
    }
    let yv = View::hbm(
        p.y,
        mt,
        p.n as i64,
        Expr::constant(y_off + (m0 * p.n + n0) as i64),
        vec![(nt, 1)],
    );
    body.push(Stmt::Op(KOp::Dma { dst: yv, src: y }));
}

/// Lowers a MatMul or Gemm node.
pub fn lower(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    let opd = l.opts.precision.operand_dtype();
    let float = |d: crate::tensor::DType| d.is_float();
    if !node.inputs.iter().all(|&i| float(l.graph.ty(i).dtype)) {
        return Err(node_error(
            node,
            Code::NotLowered,
            "integer matrix products are not supported on the tensor engine",
        ));
    }
    let a = l.operand(node.inputs[0], opd);
    let b = l.operand(node.inputs[1], opd);
    let y = l.place_output(node.outputs[0], node)?;
    let attr_f = |n: &str| {
        node.attrs
            .float(n)
            .map_err(|m| node_error(node, Code::BadAttribute, m))
    };
    let attr_i = |n: &str| {
        node.attrs
            .int(n)
            .map_err(|m| node_error(node, Code::BadAttribute, m))
    };
    let mut kernel_body = Vec::new();
    let (m, k, n);
    if node.op == Op::Gemm {
        let (ta, tb) = (attr_i("transA")? != 0, attr_i("transB")? != 0);
        let (alpha, beta) = (attr_f("alpha")?, attr_f("beta")?);
        (m, k) = if ta {
            (a.shape[1], a.shape[0])
        } else {
            (a.shape[0], a.shape[1])
        };
        n = if tb { b.shape[0] } else { b.shape[1] };
        let am = if ta {
            Mat {
                row: 1,
                col: m as i64,
            }
        } else {
            Mat {
                row: k as i64,
                col: 1,
            }
        };
        let bm = if tb {
            Mat {
                row: 1,
                col: k as i64,
            }
        } else {
            Mat {
                row: n as i64,
                col: 1,
            }
        };
        let c = match node.inputs.get(2) {
            Some(&cv) => {
                let cp = l.placed(cv);
                // C broadcasts to [M, N]: a missing or size-1 dim has stride 0.
                let cs = &cp.shape;
                let (cm_rows, cm_cols) = match cs.len() {
                    0 => (1, 1),
                    1 => (1, cs[0]),
                    _ => (cs[0], cs[1]),
                };
                let cm = Mat {
                    row: if cm_rows == 1 { 0 } else { cm_cols as i64 },
                    col: if cm_cols == 1 { 0 } else { 1 },
                };
                Some((cp.tensor, cm))
            }
            None => None,
        };
        let plan = Plan {
            a: &a.tensor,
            b: &b.tensor,
            y: &y.tensor,
            c: c.as_ref().map(|(t, cm)| (t.as_str(), *cm)),
            am,
            bm,
            m,
            k,
            n,
            alpha,
            beta,
        };
        tiles_of(&plan, 0, 0, 0, 0, &mut kernel_body);
    } else {
        let (ar, br) = (a.shape.len(), b.shape.len());
        m = if ar == 1 { 1 } else { a.shape[ar - 2] };
        k = a.shape[ar - 1];
        n = if br == 1 { 1 } else { b.shape[br - 1] };
        let a_batch: &[u64] = if ar > 2 { &a.shape[..ar - 2] } else { &[] };
        let b_batch: &[u64] = if br > 2 { &b.shape[..br - 2] } else { &[] };
        let yr = y.shape.len();
        // The output keeps M unless A is 1-D and N unless B is 1-D; the rest is batch.
        let y_batch_len = yr - usize::from(ar > 1) - usize::from(br > 1);
        let y_batch: Vec<u64> = y.shape[..y_batch_len].to_vec();
        let a_offs = batch_offsets(a_batch, &y_batch, m * k);
        let b_offs = batch_offsets(b_batch, &y_batch, k * n);
        let plan = Plan {
            a: &a.tensor,
            b: &b.tensor,
            y: &y.tensor,
            c: None,
            am: Mat {
                row: k as i64,
                col: 1,
            },
            bm: Mat {
                row: n as i64,
                col: 1,
            },
            m,
            k,
            n,
            alpha: 1.0,
            beta: 0.0,
        };
        for (i, (&ao, &bo)) in a_offs.iter().zip(&b_offs).enumerate() {
            tiles_of(
                &plan,
                ao,
                bo,
                0,
                (i as u64 * m * n) as i64,
                &mut kernel_body,
            );
        }
    }
    let (pm, pn) = (machine::PE_COLS, machine::MAX_MOVING_FREE);
    let mut buffers = vec![
        Buffer {
            name: "at".into(),
            mem: Mem::Sbuf,
            dtype: opd,
            partitions: machine::PE_ROWS,
            free: pm.min(m.max(1)),
        },
        Buffer {
            name: "b".into(),
            mem: Mem::Sbuf,
            dtype: opd,
            partitions: machine::PE_ROWS,
            free: pn.min(n.max(1)),
        },
        Buffer {
            name: "acc".into(),
            mem: Mem::Psum,
            dtype: Dtype::Fp32,
            partitions: pm,
            free: pn.min(n.max(1)),
        },
        Buffer {
            name: "y".into(),
            mem: Mem::Sbuf,
            dtype: Dtype::Fp32,
            partitions: pm,
            free: pn.min(n.max(1)),
        },
    ];
    if node.op == Op::Gemm && node.inputs.len() > 2 {
        buffers.push(Buffer {
            name: "c".into(),
            mem: Mem::Sbuf,
            dtype: Dtype::Fp32,
            partitions: pm,
            free: pn.min(n.max(1)),
        });
    }
    l.push_kernel(Kernel {
        name: node.name.clone(),
        op: node.op.name().to_string(),
        buffers,
        body: kernel_body,
    });
    Ok(())
}

/// Emits every output tile of one (batch of a) product.
fn tiles_of(p: &Plan, a_off: i64, b_off: i64, c_off: i64, y_off: i64, body: &mut Vec<Stmt>) {
    let (pm, pn) = (machine::PE_COLS, machine::MAX_MOVING_FREE);
    let mut m0 = 0;
    while m0 < p.m {
        let mt = pm.min(p.m - m0);
        let mut n0 = 0;
        while n0 < p.n {
            let nt = pn.min(p.n - n0);
            tile(
                p,
                TileAt {
                    a_off,
                    b_off,
                    c_off,
                    y_off,
                    m0,
                    mt,
                    n0,
                    nt,
                },
                body,
            );
            n0 += nt;
        }
        m0 += mt;
    }
}
