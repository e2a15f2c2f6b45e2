//! Gathers of whole rows with row numbers computed at run time, as one-hot matrix products on
//! the tensor engine ([`OneHot`], shared with [`super::gathernd`]), and `Gather` itself (any
//! axis, any rank, indices of any shape, negative ones counting from the end).
//!
//! The scheme: the data is `blocks` tables of `v` rows x `d` elements stored one after the other;
//! output block `o` row `t` is row `row[t]` of table `o`. For each tile of up to `pe_cols` row
//! numbers (left in an fp32 `row` tile on every partition by the caller's ops) and each tile of
//! `pe_rows` table rows, the vector engine builds `onehot[r, t] = (row[t] == r)` (IOTA +
//! compare), the stationary operand; the table tile streams as the moving operand and PSUM
//! accumulates the selected rows over the table tiles (two PSUM/SBUF result buffers alternate
//! when two rows fit, so evacuating one tile overlaps the next; rows wider than PSUM are done in
//! column passes of half of it). The rows of several blocks go side by side in one pass (one
//! DMA with a block dim each way), so a gather along an inner axis is not one pass per block. The one-hot depends only on the
//! row numbers, so with a single table tile it is built once for all blocks. Exact at fp32 (one
//! 1.0 times one value plus zeros); a float table is stored at the compiled operand precision
//! (bf16 by default), integer data stays fp32 (exact below 2^24).
//!
//! `Gather` along axis `a` of `data[pre.., A, post..]` is `prod(pre)` blocks of `A` rows of
//! `prod(post)` elements, each indexed by the same `indices`. A single block (an embedding
//! lookup) is gathered by indirect DMA instead ([`super::gather_rows`]).

use super::{node_error, Lowerer, EXACT_INT_LIMIT};
use crate::diag::{Code, Diagnostic};
use crate::graph::Node;
use crate::kernel::{Accumulate, Buffer, Expr, KOp, Kernel, ScalarArg, Stmt, View};
use tahoma_isa::{machine, Act, Alu, Dtype, Mem};

/// Name of the fp32 `[pe_rows, tile]` buffer holding the row numbers of the current index tile.
pub const ROW: &str = "row";

/// A one-hot row gather (see the module doc).
pub struct OneHot<'a> {
    /// HBM tensor holding the tables.
    pub table: &'a str,
    /// HBM tensor receiving `blocks x n` rows of `d`.
    pub out: &'a str,
    /// Dtype of the table and one-hot operands on chip.
    pub dtype: Dtype,
    pub blocks: u64,
    /// Rows per table.
    pub v: u64,
    /// Elements per row.
    pub d: u64,
    /// Row numbers (output rows per block).
    pub n: u64,
}

/// `dst = (src op0 s0) op1 s1` with immediates.
pub fn ts(dst: View, src: View, op0: Alu, s0: f32, op1: Alu, s1: f32) -> KOp {
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

/// A contiguous fp32-or-other view `[parts, free]` at element `off` of buffer `name`.
pub fn flat(name: &str, parts: u64, off: u64, free: u64) -> View {
    View::buf(name, 0, parts, Expr::constant(off as i64), vec![(free, 1)])
}

/// Ops making the `parts x n` row numbers in `row` non-negative: `row += axis * (row < 0)`,
/// using `tmp` (same shape) as scratch.
pub fn wrap_negative(row: View, tmp: View, axis: u64) -> Vec<KOp> {
    vec![
        ts(
            tmp.clone(),
            row.clone(),
            Alu::IsLt,
            0.0,
            Alu::Multiply,
            axis as f32,
        ),
        KOp::TensorTensor {
            dst: row.clone(),
            a: row,
            b: tmp,
            op: Alu::Add,
        },
    ]
}

impl OneHot<'_> {
    /// PSUM fp32 elements of one partition.
    fn psum_cap() -> u64 {
        machine::PSUM_PARTITION_BYTES / Dtype::Fp32.size_bytes()
    }

    /// Fails unless the row numbers are exact on the chip.
    pub fn check(&self, node: &Node, shape: &[u64]) -> Result<(), Diagnostic> {
        if (self.v * self.blocks) as f32 > EXACT_INT_LIMIT {
            return Err(node_error(
                node,
                Code::NotLowered,
                format!(
                    "a table of {} rows (data {shape:?}) is indexed beyond the chip's exact integers",
                    self.v * self.blocks
                ),
            ));
        }
        Ok(())
    }

    /// Index tile width.
    pub fn tile_cols(&self) -> u64 {
        machine::PE_COLS.min(self.n.max(1))
    }

    /// The kernel: `extra` buffers of the caller plus the gather's own; `rows(t0, tn)` gives the
    /// ops leaving the row numbers of index tile `[t0, t0+tn)` in [`ROW`] on `pe_rows`
    /// partitions.
    pub fn kernel(
        &self,
        node: &Node,
        op: &str,
        extra: Vec<Buffer>,
        rows: &dyn Fn(u64, u64) -> Vec<KOp>,
    ) -> Kernel {
        let (n, v, d) = (self.n, self.v, self.d);
        if n == 0 || d == 0 || self.blocks == 0 {
            return Kernel {
                name: node.name.clone(),
                op: op.into(),
                buffers: vec![],
                body: vec![],
            };
        }
        let (pm, pk, pn) = (machine::PE_COLS, machine::PE_ROWS, machine::MAX_MOVING_FREE);
        let tcols = self.tile_cols();
        // PSUM passes `(first block, blocks, first column, columns)`: several blocks' rows side by
        // side when they fit half of PSUM (double-buffered), a single row up to all of PSUM, or
        // column passes of half of PSUM.
        let (cap, blocks) = (Self::psum_cap(), self.blocks);
        let half = cap / 2;
        let mut passes = Vec::new();
        let nbuf = if d <= half {
            let kb = (half / d).min(blocks);
            for o0 in (0..blocks).step_by(kb as usize) {
                passes.push((o0, kb.min(blocks - o0), 0, d));
            }
            2
        } else if d <= cap && blocks == 1 {
            passes.push((0, 1, 0, d));
            1
        } else {
            for o in 0..blocks {
                for c0 in (0..d).step_by(half as usize) {
                    passes.push((o, 1, c0, half.min(d - c0)));
                }
            }
            2
        };
        let dw = passes.iter().map(|p| p.1 * p.3).max().unwrap_or(1);
        let buf = |name: &str, mem, dtype, partitions, free: u64| Buffer {
            name: name.into(),
            mem,
            dtype,
            partitions,
            free: free.max(1),
        };
        let mut buffers = extra;
        buffers.extend([
            buf(ROW, Mem::Sbuf, Dtype::Fp32, pk, tcols),
            buf("iota", Mem::Sbuf, Dtype::Fp32, pk, tcols),
            buf("onehot", Mem::Sbuf, self.dtype, pk, tcols),
            buf("table", Mem::Sbuf, self.dtype, pk, dw),
        ]);
        for i in 0..nbuf {
            buffers.push(buf(&format!("acc{i}"), Mem::Psum, Dtype::Fp32, pm, dw));
            buffers.push(buf(&format!("y{i}"), Mem::Sbuf, Dtype::Fp32, pm, dw));
        }
        // With one table tile the one-hot is built once per index tile.
        let one_tile = v <= pk;
        let mut body = Vec::new();
        let mut parity = 0;
        let mut t0 = 0;
        while t0 < n {
            let tn = pm.min(n - t0);
            body.extend(rows(t0, tn));
            let mut first = true;
            for &(o0, k, c0, cw) in &passes {
                let w = k * cw;
                // Rows of `k` blocks side by side: (block, column) dims on both HBM sides.
                let dims = |block_stride: u64| {
                    if k > 1 {
                        vec![(k, block_stride as i64), (cw, 1)]
                    } else {
                        vec![(cw, 1)]
                    }
                };
                let (acc, y) = (format!("acc{parity}"), format!("y{parity}"));
                parity = (parity + 1) % nbuf;
                let mut v0 = 0;
                while v0 < v {
                    let vt = pk.min(v - v0);
                    if first || !one_tile {
                        body.push(KOp::Iota {
                            dst: flat("iota", vt, 0, tn),
                            base: v0 as i64,
                            part_step: 1,
                            steps: vec![0],
                        });
                        body.push(KOp::TensorTensor {
                            dst: flat("onehot", vt, 0, tn),
                            a: flat("iota", vt, 0, tn),
                            b: flat(ROW, vt, 0, tn),
                            op: Alu::IsEqual,
                        });
                    }
                    body.push(KOp::Dma {
                        dst: flat("table", vt, 0, w),
                        src: View::hbm(
                            self.table,
                            vt,
                            d as i64,
                            Expr::constant(((o0 * v + v0) * d + c0) as i64),
                            dims(v * d),
                        ),
                    });
                    body.push(KOp::LoadStationary {
                        src: flat("onehot", vt, 0, tn),
                    });
                    let mut d0 = 0;
                    while d0 < w {
                        let dt = pn.min(w - d0);
                        body.push(KOp::Matmul {
                            dst: flat(&acc, tn, d0, dt),
                            moving: flat("table", vt, d0, dt),
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
                first = false;
                body.push(KOp::Activate {
                    dst: flat(&y, tn, 0, w),
                    src: flat(&acc, tn, 0, w),
                    func: Act::Identity,
                    scale: ScalarArg::Imm(1.0),
                    bias: ScalarArg::Imm(0.0),
                    acc: None,
                });
                body.push(KOp::Dma {
                    dst: View::hbm(
                        self.out,
                        tn,
                        d as i64,
                        Expr::constant(((o0 * n + t0) * d + c0) as i64),
                        dims(n * d),
                    ),
                    src: flat(&y, tn, 0, w),
                });
            }
            t0 += tn;
        }
        Kernel {
            name: node.name.clone(),
            op: op.into(),
            buffers,
            body: body.into_iter().map(Stmt::Op).collect(),
        }
    }
}

/// Lowers a Gather whose indices are computed at run time.
pub fn lower(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    let float = l.graph.ty(node.inputs[0]).dtype.is_float();
    let dtype = if float {
        l.opts.precision.operand_dtype()
    } else {
        Dtype::Fp32
    };
    let shape = l.shape_u64(node.inputs[0]);
    let rank = shape.len();
    let axis = node
        .attrs
        .int("axis")
        .map_err(|m| node_error(node, Code::BadAttribute, m))?;
    let axis = if axis < 0 { axis + rank as i64 } else { axis };
    if axis < 0 || axis as usize >= rank {
        return Err(node_error(
            node,
            Code::BadAttribute,
            format!("axis {axis} is outside data shape {shape:?}"),
        ));
    }
    let axis = axis as usize;
    let ids = l.placed(node.inputs[1]);
    let a = shape[axis];
    if shape[..axis].iter().all(|&s| s == 1) {
        // One table: gather its rows by indirect DMA (a float table stored at the compiled
        // operand precision, as the one-hot product stores it).
        let table = l.operand(node.inputs[0], dtype);
        let d = shape[axis + 1..].iter().product();
        let out = l.place_output(node.outputs[0], node)?;
        let g = super::gather_rows::RowGather {
            table: &table.tensor,
            dtype: table.dtype,
            rows: a,
            d,
            ids: &ids.tensor,
            n: ids.elems(),
            out: &out.tensor,
            out_dtype: out.dtype,
        };
        if a as f32 > EXACT_INT_LIMIT {
            return Err(node_error(
                node,
                Code::NotLowered,
                format!(
                    "a table of {a} rows (data {shape:?}) is indexed beyond the chip's exact integers"
                ),
            ));
        }
        let k = g.kernel(node);
        l.push_kernel(k);
        return Ok(());
    }
    let data = l.operand(node.inputs[0], dtype);
    let g = OneHot {
        table: &data.tensor,
        out: "",
        dtype,
        blocks: data.shape[..axis].iter().product(),
        v: a,
        d: data.shape[axis + 1..].iter().product(),
        n: ids.elems(),
    };
    g.check(node, &data.shape)?;
    let out = l.place_output(node.outputs[0], node)?;
    let g = OneHot {
        out: &out.tensor,
        ..g
    };
    let pk = machine::PE_ROWS;
    let rows = |t0: u64, tn: u64| {
        // The indices of this tile on every partition (a partition-stride-0 read), made
        // non-negative.
        let mut ops = vec![KOp::Dma {
            dst: flat(ROW, pk, 0, tn),
            src: View::hbm(&ids.tensor, pk, 0, Expr::constant(t0 as i64), vec![(tn, 1)]),
        }];
        ops.extend(wrap_negative(
            flat(ROW, pk, 0, tn),
            flat("neg", pk, 0, tn),
            a,
        ));
        ops
    };
    let extra = vec![Buffer {
        name: "neg".into(),
        mem: Mem::Sbuf,
        dtype: Dtype::Fp32,
        partitions: pk,
        free: g.tile_cols(),
    }];
    let k = g.kernel(node, "Gather", extra, &rows);
    l.push_kernel(k);
    Ok(())
}
