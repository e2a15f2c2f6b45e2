//! `GatherND` (any `batch_dims`) with indices known at compile time or computed at run time, as
//! a one-hot matrix product on the tensor engine ([`super::gather::OneHot`]): the data is
//! viewed as a table `[V, D]` whose rows are the gathered slices (`V` = the product of the batch
//! and indexed dims, `D` = the slice). For each tile of up to `pe_cols` output slices the vector
//! engine computes the row of every slice from its index tuple (read on every partition by a
//! partition-stride-0 DMA): negative indices count from the end, each index scales by its
//! row stride, and the batch offset of the slice comes from a constant; the shared one-hot
//! product then selects those rows. Runs in
//! fp32 (one 1.0 times one value plus zeros: exact; integer data is exact below 2^24, the
//! chip's exact integers).

use super::gather::{flat, ts, OneHot, ROW};
use super::tiles::sbuf;
use super::{node_error, HbmKind, Lowerer};
use crate::diag::{Code, Diagnostic};
use crate::graph::Node;
use crate::kernel::{Expr, KOp, View};
use tahoma_isa::{machine, Alu, Dtype};

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
    OneHot {
        table: "",
        out: "",
        dtype: Dtype::Fp32,
        blocks: 1,
        v,
        d,
        n,
    }
    .check(node, &data.shape)?;
    let out = l.place_output(node.outputs[0], node)?;
    // Row offset of each slice's batch (a constant; zero without batch dims).
    let per_batch = n / nb.max(1);
    let base = (b > 0 && n > 0).then(|| {
        let values: Vec<f32> = (0..n).map(|t| ((t / per_batch) * vb) as f32).collect();
        l.new_tensor(
            &format!("{}_base", node.name),
            Dtype::Fp32,
            vec![n],
            HbmKind::Const { values },
        )
    });
    let g = OneHot {
        table: &data.tensor,
        out: &out.tensor,
        dtype: Dtype::Fp32,
        blocks: 1,
        v,
        d,
        n,
    };
    let pk = machine::PE_ROWS;
    let tcols = g.tile_cols();
    let qn = q as u64;
    let sb = |name: &str, off: u64, dims: Vec<(u64, i64)>| {
        View::buf(name, 0, pk, Expr::constant(off as i64), dims)
    };
    let rows = |t0: u64, tn: u64| {
        let mut body = Vec::new();
        // Index tuples of this tile on every partition.
        body.push(KOp::Dma {
            dst: flat("ids", pk, 0, tn * qn),
            src: View::hbm(
                &ids.tensor,
                pk,
                0,
                Expr::constant((t0 * qn) as i64),
                vec![(tn * qn, 1)],
            ),
        });
        match &base {
            Some(bt) => body.push(KOp::Dma {
                dst: flat(ROW, pk, 0, tn),
                src: View::hbm(bt, pk, 0, Expr::constant(t0 as i64), vec![(tn, 1)]),
            }),
            None => body.push(KOp::Memset {
                dst: flat(ROW, pk, 0, tn),
                value: 0.0,
            }),
        }
        let mut stride = vb;
        for k in 0..q {
            let dim = data.shape[b + k];
            stride /= dim.max(1);
            let idk = sb("ids", k as u64, vec![(tn, q as i64)]);
            // tmp = (id < 0) * dim + id; row += tmp * stride.
            body.push(ts(
                flat("tmp", pk, 0, tn),
                idk.clone(),
                Alu::IsLt,
                0.0,
                Alu::Multiply,
                dim as f32,
            ));
            body.push(tt(
                flat("tmp", pk, 0, tn),
                flat("tmp", pk, 0, tn),
                idk,
                Alu::Add,
            ));
            body.push(ts(
                flat("tmp", pk, 0, tn),
                flat("tmp", pk, 0, tn),
                Alu::Multiply,
                stride as f32,
                Alu::Bypass,
                0.0,
            ));
            body.push(tt(
                flat(ROW, pk, 0, tn),
                flat(ROW, pk, 0, tn),
                flat("tmp", pk, 0, tn),
                Alu::Add,
            ));
        }
        body
    };
    let extra = vec![sbuf("ids", pk, tcols * qn), sbuf("tmp", pk, tcols)];
    let k = g.kernel(node, "GatherND", extra, &rows);
    l.push_kernel(k);
    Ok(())
}
