//! `GatherND` (any `batch_dims`) with indices known at compile time or computed at run time, as
//! a one-hot matrix product on the tensor engine (the scheme of [`super::gather`]): the data is
//! viewed as a table `[V, D]` whose rows are the gathered slices (`V` = the product of the batch
//! and indexed dims, `D` = the slice). For each tile of up to `pe_cols` output slices the vector
//! engine computes the row of every slice from its index tuple (read on every partition by a
//! partition-stride-0 DMA): negative indices count from the end, each index scales by its
//! row stride, and the batch offset of the slice comes from a constant; then per tile of
//! `pe_rows` table rows `onehot[r, t] = (row[t] == r)` (IOTA + compare) is the stationary operand
//! and the table tile streams as the moving one, PSUM accumulating the selected rows. Runs in
//! fp32 (one 1.0 times one value plus zeros: exact; integer data is exact below 2^24, the
//! chip's exact integers).

use super::{node_error, HbmKind, Lowerer, EXACT_INT_LIMIT};
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

fn tt(dst: View, a: View, b: View, op: Alu) -> KOp {
    KOp::TensorTensor { dst, a, b, op }
}

/// Lowers a GatherND node.
pub fn lower(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    let data = l.placed(node.inputs[0]);
    let ids = l.placed(node.inputs[1]);
    let b = match node.attrs.get("batch_dims") {
        None => 0,
        Some(_) => node
            .attrs
            .int("batch_dims")
            .map_err(|m| node_error(node, Code::BadAttribute, m))?,
    } as usize;
    let q = *ids.shape.last().unwrap_or(&0) as usize;
    if ids.shape.is_empty() || b + q > data.shape.len() || b + 1 > ids.shape.len() {
        return Err(node_error(
            node,
            Code::BadAttribute,
            format!(
                "indices {:?} with batch_dims {b} do not index data {:?}",
                ids.shape, data.shape
            ),
        ));
    }
    let nb: u64 = data.shape[..b].iter().product();
    let vb: u64 = data.shape[b..b + q].iter().product();
    let v = nb * vb;
    let d: u64 = data.shape[b + q..].iter().product();
    let n: u64 = ids.shape[..ids.shape.len() - 1].iter().product();
    let bank = machine::PSUM_PARTITION_BYTES / machine::PSUM_BANKS / Dtype::Fp32.size_bytes();
    if d > bank * machine::PSUM_BANKS / 2 {
        return Err(node_error(
            node,
            Code::NotLowered,
            format!(
                "slices of {d} elements do not fit PSUM ({} fp32 per partition, double-buffered)",
                bank * machine::PSUM_BANKS / 2
            ),
        ));
    }
    if v as f32 > EXACT_INT_LIMIT {
        return Err(node_error(
            node,
            Code::NotLowered,
            format!("a table of {v} rows is indexed beyond the chip's exact integers"),
        ));
    }
    let out = l.place_output(node.outputs[0], node)?;
    if n == 0 || d == 0 {
        l.push_kernel(Kernel {
            name: node.name.clone(),
            op: "GatherND".into(),
            buffers: vec![],
            body: vec![],
        });
        return Ok(());
    }
    // Row offset of each slice's batch (a constant; zero without batch dims).
    let per_batch = n / nb.max(1);
    let base = (b > 0).then(|| {
        let values: Vec<f32> = (0..n).map(|t| ((t / per_batch) * vb) as f32).collect();
        l.new_tensor(
            &format!("{}_base", node.name),
            Dtype::Fp32,
            vec![n],
            HbmKind::Const { values },
        )
    });
    let (pm, pk, pn) = (machine::PE_COLS, machine::PE_ROWS, machine::MAX_MOVING_FREE);
    let tcols = pm.min(n);
    let buf = |name: &str, mem, partitions, free: u64| Buffer {
        name: name.into(),
        mem,
        dtype: Dtype::Fp32,
        partitions,
        free: free.max(1),
    };
    let mut buffers = vec![
        buf("ids", Mem::Sbuf, pk, tcols * q as u64),
        buf("row", Mem::Sbuf, pk, tcols),
        buf("tmp", Mem::Sbuf, pk, tcols),
        buf("iota", Mem::Sbuf, pk, tcols),
        buf("onehot", Mem::Sbuf, pk, tcols),
        buf("table", Mem::Sbuf, pk, d),
    ];
    for i in 0..2 {
        buffers.push(buf(&format!("acc{i}"), Mem::Psum, pm, d));
        buffers.push(buf(&format!("y{i}"), Mem::Sbuf, pm, d));
    }
    let sb = |name: &str, parts: u64, off: u64, dims: Vec<(u64, i64)>| {
        View::buf(name, 0, parts, Expr::constant(off as i64), dims)
    };
    let flat = |name: &str, parts: u64, free: u64| sb(name, parts, 0, vec![(free, 1)]);
    let mut body = Vec::new();
    let mut t0 = 0;
    let mut parity = 0;
    while t0 < n {
        let tn = pm.min(n - t0);
        // Index tuples of this tile on every partition.
        body.push(KOp::Dma {
            dst: flat("ids", pk, tn * q as u64),
            src: View::hbm(
                &ids.tensor,
                pk,
                0,
                Expr::constant((t0 * q as u64) as i64),
                vec![(tn * q as u64, 1)],
            ),
        });
        match &base {
            Some(bt) => body.push(KOp::Dma {
                dst: flat("row", pk, tn),
                src: View::hbm(bt, pk, 0, Expr::constant(t0 as i64), vec![(tn, 1)]),
            }),
            None => body.push(KOp::Memset {
                dst: flat("row", pk, tn),
                value: 0.0,
            }),
        }
        let mut stride = vb;
        for k in 0..q {
            let dim = data.shape[b + k];
            stride /= dim.max(1);
            let idk = sb("ids", pk, k as u64, vec![(tn, q as i64)]);
            // tmp = (id < 0) * dim + id; row += tmp * stride.
            body.push(ts(
                flat("tmp", pk, tn),
                idk.clone(),
                Alu::IsLt,
                0.0,
                Alu::Multiply,
                dim as f32,
            ));
            body.push(tt(flat("tmp", pk, tn), flat("tmp", pk, tn), idk, Alu::Add));
            body.push(ts(
                flat("tmp", pk, tn),
                flat("tmp", pk, tn),
                Alu::Multiply,
                stride as f32,
                Alu::Bypass,
                0.0,
            ));
            body.push(tt(
                flat("row", pk, tn),
                flat("row", pk, tn),
                flat("tmp", pk, tn),
                Alu::Add,
            ));
        }
        let (acc, y) = (format!("acc{parity}"), format!("y{parity}"));
        parity ^= 1;
        let mut v0 = 0;
        while v0 < v {
            let vt = pk.min(v - v0);
            body.push(KOp::Iota {
                dst: flat("iota", vt, tn),
                base: v0 as i64,
                part_step: 1,
                steps: vec![0],
            });
            body.push(tt(
                flat("onehot", vt, tn),
                flat("iota", vt, tn),
                flat("row", vt, tn),
                Alu::IsEqual,
            ));
            body.push(KOp::Dma {
                dst: flat("table", vt, d),
                src: View::hbm(
                    &data.tensor,
                    vt,
                    d as i64,
                    Expr::constant((v0 * d) as i64),
                    vec![(d, 1)],
                ),
            });
            body.push(KOp::LoadStationary {
                src: flat("onehot", vt, tn),
            });
            let mut d0 = 0;
            while d0 < d {
                let dt = pn.min(d - d0);
                body.push(KOp::Matmul {
                    dst: sb(&acc, tn, d0, vec![(dt, 1)]),
                    moving: sb("table", vt, d0, vec![(dt, 1)]),
                    acc: if v0 == 0 {
                        Accumulate::Never
                    } else {
                        Accumulate::Always
                    },
                });
                d0 += dt;
            }
            v0 += vt;
        }
        body.push(KOp::Activate {
            dst: flat(&y, tn, d),
            src: flat(&acc, tn, d),
            func: Act::Identity,
            scale: ScalarArg::Imm(1.0),
            bias: ScalarArg::Imm(0.0),
            acc: None,
        });
        body.push(KOp::Dma {
            dst: View::hbm(
                &out.tensor,
                tn,
                d as i64,
                Expr::constant((t0 * d) as i64),
                vec![(d, 1)],
            ),
            src: flat(&y, tn, d),
        });
        t0 += tn;
    }
    l.push_kernel(Kernel {
        name: node.name.clone(),
        op: "GatherND".into(),
        buffers,
        body: body.into_iter().map(Stmt::Op).collect(),
    });
    Ok(())
}
