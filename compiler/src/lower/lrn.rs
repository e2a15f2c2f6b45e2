//! `LRN` (local response normalisation across channels) with the channel sum on the tensor
//! engine: `y = x / (bias + alpha / size * sum_{c' in window(c)} x[c']^2)^beta`.
//!
//! Channels go on partitions (in tiles of `partitions`), pixels on the free axis in blocks of at
//! most `max_moving_free`. Per block the scalar engine squares each channel tile; the windowed sum
//! over channels is a matmul with a constant band matrix `band[c', c] = 1` when `c'` lies in the
//! window of `c` (stationary, `[c', c]`) and the squares as the moving operand, accumulating in
//! PSUM over the input-channel tiles the window reaches (only the band's non-zero blocks are
//! stored and multiplied). The scalar engine evacuates PSUM applying `alpha / size` and `bias`,
//! the vector engine raises to `-beta` and multiplies by `x`. Everything runs in fp32 (a
//! normalisation, whatever the compiled precision). Pixel-block buffers alternate between two
//! copies so that loads, matmuls and the epilogue of consecutive blocks overlap.

use super::tiles::sbuf;
use super::{node_error, HbmKind, Lowerer};
use crate::diag::{Code, Diagnostic};
use crate::graph::Node;
use crate::kernel::{Accumulate, Buffer, Expr, KOp, Kernel, ScalarArg, Stmt, View};
use tahoma_isa::{machine, Act, Alu, Dtype, Mem};

/// SBUF bytes per partition the pixel-block tiles (x and its square, two copies each) may take
/// (a tiling choice).
const BLOCK_BYTES: u64 = 64 * 1024;
/// SBUF bytes per partition the stored band blocks may take (a tiling choice).
const BAND_BYTES: u64 = 64 * 1024;

fn v(name: &str, parts: u64, off: u64, free: u64) -> View {
    View::buf(name, 0, parts, Expr::constant(off as i64), vec![(free, 1)])
}

fn float_attr(node: &Node, name: &str, default: f32) -> Result<f32, Diagnostic> {
    match node.attrs.get(name) {
        None => Ok(default),
        Some(_) => node
            .attrs
            .float(name)
            .map_err(|m| node_error(node, Code::BadAttribute, m)),
    }
}

/// Lowers an LRN node.
pub fn lower(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    let x = l.placed(node.inputs[0]);
    if x.shape.len() < 3 || !l.graph.ty(node.inputs[0]).dtype.is_float() {
        return Err(node_error(
            node,
            Code::NotLowered,
            format!(
                "LRN is lowered for float inputs of rank >= 3 (N, C, ...), not {:?}",
                x.shape
            ),
        ));
    }
    let size = node
        .attrs
        .int("size")
        .map_err(|m| node_error(node, Code::BadAttribute, m))?;
    if size <= 0 {
        return Err(node_error(
            node,
            Code::BadAttribute,
            format!("size {size} must be positive"),
        ));
    }
    let size = size as u64;
    let alpha = float_attr(node, "alpha", 1e-4)?;
    let beta = float_attr(node, "beta", 0.75)?;
    let bias = float_attr(node, "bias", 1.0)?;
    let (n, c) = (x.shape[0], x.shape[1]);
    let inner: u64 = x.shape[2..].iter().product();
    let (lo, hi) = ((size - 1) / 2, size - 1 - (size - 1) / 2);
    let p = machine::PARTITIONS;
    let tiles: Vec<(u64, u64)> = (0..c.div_ceil(p))
        .map(|i| (i * p, p.min(c - i * p)))
        .collect();
    let nct = tiles.len() as u64;
    // Band blocks (input tile j, output tile o) that hold a one, with their column in `band`.
    let mut blocks: Vec<(usize, usize, u64)> = Vec::new();
    let mut band_cols = 0;
    for (o, &(co0, cot)) in tiles.iter().enumerate() {
        let (w0, w1) = (co0.saturating_sub(lo), (co0 + cot - 1 + hi).min(c - 1));
        for (j, &(ci0, cit)) in tiles.iter().enumerate() {
            if ci0 <= w1 && ci0 + cit > w0 {
                blocks.push((j, o, band_cols));
                band_cols += cot;
            }
        }
    }
    let f32b = Dtype::Fp32.size_bytes();
    if band_cols * f32b > BAND_BYTES {
        return Err(node_error(
            node,
            Code::OnChipMemory,
            format!("the channel window of {size} over {c} channels needs {band_cols} band columns on chip; at most {} fit", BAND_BYTES / f32b),
        ));
    }
    let np_max = machine::MAX_MOVING_FREE
        .min(BLOCK_BYTES / (4 * nct * f32b))
        .min(inner.max(1));
    if np_max == 0 {
        return Err(node_error(
            node,
            Code::OnChipMemory,
            format!("{c} channels do not fit the SBUF tiles of one pixel block"),
        ));
    }
    // The band, stored block by block as `[c', column]` (row-major by input channel).
    let mut band = vec![0f32; (c.min(p) * band_cols) as usize];
    for &(j, o, col) in &blocks {
        let ((ci0, cit), (co0, cot)) = (tiles[j], tiles[o]);
        for a in 0..cit {
            for b in 0..cot {
                let (ci, co) = (ci0 + a, co0 + b);
                if ci + lo >= co && ci <= co + hi {
                    band[(a * band_cols + col + b) as usize] = 1.0;
                }
            }
        }
    }
    let band_t = l.new_tensor(
        &format!("{}_band", node.name),
        Dtype::Fp32,
        vec![c.min(p), band_cols],
        HbmKind::Const { values: band },
    );
    let out = l.place_output(node.outputs[0], node)?;
    let mut body: Vec<Stmt> = Vec::new();
    let mut emit = |op: KOp| body.push(Stmt::Op(op));
    // Rows of the band per input tile: the blocks of tile j are its partitions' columns.
    let rows_of = |j: usize| tiles[j].1;
    emit(KOp::Dma {
        dst: v("band", c.min(p), 0, band_cols),
        src: View::hbm(
            &band_t,
            c.min(p),
            band_cols as i64,
            Expr::constant(0),
            vec![(band_cols, 1)],
        ),
    });
    let (mut bpar, mut opar) = (0usize, 0usize);
    for img in 0..n {
        let mut p0 = 0;
        while p0 < inner {
            let np = np_max.min(inner - p0);
            let (xs, sq) = (format!("x{bpar}"), format!("sq{bpar}"));
            bpar ^= 1;
            for (j, &(c0, ct)) in tiles.iter().enumerate() {
                let off = j as u64 * np_max;
                emit(KOp::Dma {
                    dst: v(&xs, ct, off, np),
                    src: View::hbm(
                        &x.tensor,
                        ct,
                        inner as i64,
                        Expr::constant(((img * c + c0) * inner + p0) as i64),
                        vec![(np, 1)],
                    ),
                });
                emit(KOp::Activate {
                    dst: v(&sq, ct, off, np),
                    src: v(&xs, ct, off, np),
                    func: Act::Square,
                    scale: ScalarArg::Imm(1.0),
                    bias: ScalarArg::Imm(0.0),
                    acc: None,
                });
            }
            for (o, &(co0, cot)) in tiles.iter().enumerate() {
                let (acc, d) = (format!("acc{opar}"), format!("d{opar}"));
                opar ^= 1;
                let mine: Vec<&(usize, usize, u64)> = blocks.iter().filter(|b| b.1 == o).collect();
                for (k, &&(j, _, col)) in mine.iter().enumerate() {
                    emit(KOp::LoadStationary {
                        src: v("band", rows_of(j), col, cot),
                    });
                    emit(KOp::Matmul {
                        dst: v(&acc, cot, 0, np),
                        moving: v(&sq, rows_of(j), j as u64 * np_max, np),
                        acc: if k == 0 {
                            Accumulate::Never
                        } else {
                            Accumulate::Always
                        },
                    });
                }
                // d = (bias + alpha / size * sum) ^ -beta; y = x * d.
                emit(KOp::Activate {
                    dst: v(&d, cot, 0, np),
                    src: v(&acc, cot, 0, np),
                    func: Act::Identity,
                    scale: ScalarArg::Imm(alpha / size as f32),
                    bias: ScalarArg::Imm(bias),
                    acc: None,
                });
                emit(KOp::TensorScalar {
                    dst: v(&d, cot, 0, np),
                    src: v(&d, cot, 0, np),
                    op0: Alu::Pow,
                    scalar0: ScalarArg::Imm(-beta),
                    op1: Alu::Bypass,
                    scalar1: ScalarArg::Imm(0.0),
                    reverse0: false,
                    reverse1: false,
                });
                emit(KOp::TensorTensor {
                    dst: v(&d, cot, 0, np),
                    a: v(&xs, cot, o as u64 * np_max, np),
                    b: v(&d, cot, 0, np),
                    op: Alu::Multiply,
                });
                emit(KOp::Dma {
                    dst: View::hbm(
                        &out.tensor,
                        cot,
                        inner as i64,
                        Expr::constant(((img * c + co0) * inner + p0) as i64),
                        vec![(np, 1)],
                    ),
                    src: v(&d, cot, 0, np),
                });
            }
            p0 += np;
        }
    }
    let (cp, tile_free) = (c.min(p), nct * np_max);
    let mut buffers = vec![sbuf("band", cp, band_cols)];
    for i in 0..2 {
        buffers.push(sbuf(&format!("x{i}"), cp, tile_free));
        buffers.push(sbuf(&format!("sq{i}"), cp, tile_free));
        buffers.push(Buffer {
            name: format!("acc{i}"),
            mem: Mem::Psum,
            dtype: Dtype::Fp32,
            partitions: cp,
            free: np_max,
        });
        buffers.push(sbuf(&format!("d{i}"), cp, np_max));
    }
    l.push_kernel(Kernel {
        name: node.name.clone(),
        op: "LRN".into(),
        buffers,
        body,
    });
    Ok(())
}
