//! Row gathers by indices computed at run time as indirect DMAs (`DMA_GATHER`): the table stays
//! in HBM (a float table at the compiled operand precision) and only the selected rows move. Serves `Gather` of a single table
//! (axis 0, or every dim before the axis of size 1: an embedding lookup); other gathers take the
//! one-hot product of [`super::gather`].
//!
//! Per tile of up to `partitions` indices: a DMA lands the indices one per partition, the vector
//! engine wraps negative ones (`row += rows * (row < 0)`), then per column chunk of the rows a
//! `DMA_GATHER` brings row `index[p]` into partition p and a DMA stores the chunk to the output
//! rows. Two index slots and two row slots alternate, so tile t+1 gathers while tile t is stored.
//! The emulator stops with E4008 on an index outside the table, as ONNX leaves it undefined.

use super::gather::{flat, wrap_negative};
use crate::graph::Node;
use crate::kernel::{Buffer, Expr, KOp, Kernel, Stmt, View};
use tahoma_isa::{machine, Dtype, Mem};

/// Share of an SBUF partition one row slot may take (a tiling choice).
const ROW_SLOT_DIVISOR: u64 = 8;

/// A gather of `n` rows out of a `[rows, d]` table (both in HBM).
pub struct RowGather<'a> {
    pub table: &'a str,
    pub dtype: Dtype,
    pub rows: u64,
    pub d: u64,
    /// HBM tensor of the `n` indices (i32), in output row order.
    pub ids: &'a str,
    pub n: u64,
    /// HBM tensor receiving `[n, d]`.
    pub out: &'a str,
    pub out_dtype: Dtype,
}

impl RowGather<'_> {
    pub fn kernel(&self, node: &Node) -> Kernel {
        let (n, d) = (self.n, self.d);
        let pk = machine::PARTITIONS;
        let esize = self.dtype.size_bytes().max(self.out_dtype.size_bytes());
        let chunk = (machine::SBUF_PARTITION_BYTES / ROW_SLOT_DIVISOR / esize).clamp(1, d.max(1));
        let buf = |name: &str, dtype, free: u64| Buffer {
            name: name.into(),
            mem: Mem::Sbuf,
            dtype,
            partitions: pk,
            free: free.max(1),
        };
        let buffers = vec![
            buf("idx", Dtype::Fp32, 2),
            buf("neg", Dtype::Fp32, 1),
            buf("rows", self.out_dtype, 2 * chunk),
        ];
        let mut body = Vec::new();
        let mut slot = 0u64;
        for (ti, t0) in (0..n).step_by(pk as usize).enumerate() {
            let tn = pk.min(n - t0);
            let idx = View::buf("idx", 0, tn, Expr::constant(ti as i64 % 2), vec![(1, 1)]);
            body.push(KOp::Dma {
                dst: idx.clone(),
                src: View::hbm(self.ids, tn, 1, Expr::constant(t0 as i64), vec![(1, 1)]),
            });
            body.extend(wrap_negative(idx.clone(), flat("neg", tn, 0, 1), self.rows));
            for c0 in (0..d).step_by(chunk as usize) {
                let cw = chunk.min(d - c0);
                let off = Expr::constant(((slot % 2) * chunk) as i64);
                slot += 1;
                let rows = View::buf("rows", 0, tn, off, vec![(cw, 1)]);
                body.push(KOp::DmaGather {
                    dst: rows.clone(),
                    src: View::hbm(
                        self.table,
                        1,
                        d as i64,
                        Expr::constant(c0 as i64),
                        vec![(cw, 1)],
                    ),
                    index: idx.clone(),
                    rows: self.rows,
                });
                let at = (t0 * d + c0) as i64;
                body.push(KOp::Dma {
                    dst: View::hbm(self.out, tn, d as i64, Expr::constant(at), vec![(cw, 1)]),
                    src: rows,
                });
            }
        }
        Kernel {
            name: node.name.clone(),
            op: "Gather".into(),
            buffers,
            body: body.into_iter().map(Stmt::Op).collect(),
        }
    }
}
