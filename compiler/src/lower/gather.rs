//! `Gather` along axis 0 of a 2-D table with indices computed at run time (embedding lookups), as
//! a one-hot matrix product on the tensor engine: for each tile of up to `pe_cols` indices and
//! each tile of `pe_rows` table rows, the vector engine builds `onehot[r, t] = (ids[t] == row r)`
//! (IOTA + compare), which becomes the stationary operand; the table tile streams as the moving
//! operand, and PSUM accumulates the selected rows over all table tiles. Exact at fp32 (one 1.0
//! times one value plus zeros); at bf16 the table is stored in bf16. Negative indices count from
//! the end as ONNX says.

use super::{node_error, Lowerer};
use crate::diag::{Code, Diagnostic};
use crate::graph::Node;
use crate::kernel::{Accumulate, Buffer, Expr, KOp, Kernel, ScalarArg, Stmt, View};
use tahoma_isa::{machine, Act, Alu, Dtype, Mem};

fn ts(dst: View, src: View, op0: Alu, s0: f32, op1: Alu, s1: f32) -> KOp {
    KOp::TensorScalar {
        dst,
        src,
        op0,
        scalar0: ScalarArg::Imm(s0),
        op1,
        scalar1: ScalarArg::Imm(s1),
        reverse0: false,
        reverse1: false,
    }
}

/// Lowers a run-time-index Gather of `data[V, D]` along axis 0.
pub fn lower(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    let opd = l.opts.precision.operand_dtype();
    let table = l.operand(node.inputs[0], opd);
    if table.shape.len() != 2
        || node.attrs.int("axis").unwrap_or(0) != 0
        || !l.graph.ty(node.inputs[0]).dtype.is_float()
    {
        return Err(node_error(node, Code::NotLowered, "Gather with run-time indices is lowered only along axis 0 of a 2-D float table (an embedding lookup)"));
    }
    let (v, d) = (table.shape[0], table.shape[1]);
    let bank = machine::PSUM_PARTITION_BYTES / machine::PSUM_BANKS / Dtype::Fp32.size_bytes();
    if d > bank * machine::PSUM_BANKS {
        return Err(node_error(
            node,
            Code::NotLowered,
            format!(
                "rows of {d} elements do not fit PSUM ({} fp32 per partition)",
                bank * machine::PSUM_BANKS
            ),
        ));
    }
    if v as f32 > super::EXACT_INT_LIMIT {
        return Err(node_error(
            node,
            Code::NotLowered,
            format!("a table of {v} rows is indexed beyond the chip's exact integers"),
        ));
    }
    let ids = l.placed(node.inputs[1]);
    let out = l.place_output(node.outputs[0], node)?;
    let n = ids.elems();
    let (pm, pk, pn) = (machine::PE_COLS, machine::PE_ROWS, machine::MAX_MOVING_FREE);
    let buf = |name: &str, mem, dtype, partitions, free| Buffer {
        name: name.into(),
        mem,
        dtype,
        partitions,
        free,
    };
    let tcols = pm.min(n.max(1));
    let buffers = vec![
        buf("ids", Mem::Sbuf, Dtype::Fp32, pk, tcols),
        buf("neg", Mem::Sbuf, Dtype::Fp32, pk, tcols),
        buf("row", Mem::Sbuf, Dtype::Fp32, pk, tcols),
        buf("onehot", Mem::Sbuf, opd, pk, tcols),
        buf("table", Mem::Sbuf, opd, pk, d.max(1)),
        buf("acc", Mem::Psum, Dtype::Fp32, pm, d.max(1)),
        buf("y", Mem::Sbuf, Dtype::Fp32, pm, d.max(1)),
    ];
    let sb = |name: &str, parts: u64, free: u64| {
        View::buf(name, 0, parts, Expr::constant(0), vec![(free, 1)])
    };
    let mut body = Vec::new();
    let mut t0 = 0;
    while t0 < n {
        let tt = pm.min(n - t0);
        // The indices of this tile on every partition (a partition-stride-0 read), made
        // non-negative: ids += V * (ids < 0).
        body.push(KOp::Dma {
            dst: sb("ids", pk, tt),
            src: View::hbm(&ids.tensor, pk, 0, Expr::constant(t0 as i64), vec![(tt, 1)]),
        });
        body.push(ts(
            sb("neg", pk, tt),
            sb("ids", pk, tt),
            Alu::IsLt,
            0.0,
            Alu::Multiply,
            v as f32,
        ));
        body.push(KOp::TensorTensor {
            dst: sb("ids", pk, tt),
            a: sb("ids", pk, tt),
            b: sb("neg", pk, tt),
            op: Alu::Add,
        });
        let mut v0 = 0;
        while v0 < v {
            let vt = pk.min(v - v0);
            body.push(KOp::Iota {
                dst: sb("row", vt, tt),
                base: v0 as i64,
                part_step: 1,
                steps: vec![0],
            });
            body.push(KOp::TensorTensor {
                dst: sb("onehot", vt, tt),
                a: sb("row", vt, tt),
                b: sb("ids", vt, tt),
                op: Alu::IsEqual,
            });
            body.push(KOp::Dma {
                dst: sb("table", vt, d),
                src: View::hbm(
                    &table.tensor,
                    vt,
                    d as i64,
                    Expr::constant((v0 * d) as i64),
                    vec![(d, 1)],
                ),
            });
            body.push(KOp::LoadStationary {
                src: sb("onehot", vt, tt),
            });
            let mut d0 = 0;
            while d0 < d {
                let dt = pn.min(d - d0);
                let acc = if v0 == 0 {
                    Accumulate::Never
                } else {
                    Accumulate::Always
                };
                body.push(KOp::Matmul {
                    dst: View::buf("acc", 0, tt, Expr::constant(d0 as i64), vec![(dt, 1)]),
                    moving: View::buf("table", 0, vt, Expr::constant(d0 as i64), vec![(dt, 1)]),
                    acc,
                });
                d0 += dt;
            }
            v0 += vt;
        }
        body.push(KOp::Activate {
            dst: sb("y", tt, d),
            src: sb("acc", tt, d),
            func: Act::Identity,
            scale: ScalarArg::Imm(1.0),
            bias: ScalarArg::Imm(0.0),
            acc: None,
        });
        body.push(KOp::Dma {
            dst: View::hbm(
                &out.tensor,
                tt,
                d as i64,
                Expr::constant((t0 * d) as i64),
                vec![(d, 1)],
            ),
            src: sb("y", tt, d),
        });
        t0 += tt;
    }
    l.push_kernel(Kernel {
        name: node.name.clone(),
        op: "Gather".into(),
        buffers,
        body: body.into_iter().map(Stmt::Op).collect(),
    });
    Ok(())
}
