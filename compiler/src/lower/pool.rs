//! `MaxPool` and `AveragePool` (1-D and 2-D) on the vector engine: the (image, channel) planes go
//! on partitions; per block of output pixels the input window the block needs is loaded as a
//! slab (padding `MEMSET` to the pool's neutral value, the valid part DMAed in), and every
//! kernel position adds one `TENSOR_TENSOR max/add` of the slab read with the pool's strides and
//! dilations, shifted by the position. Averages divide by the window count: an immediate when it
//! is the same for every pixel of the block, otherwise a constant map of reciprocals broadcast
//! across partitions by a partition-stride-0 DMA.

use super::tiles::{sbuf, tile, ELEMENTWISE_FREE_MAX};
use super::{node_error, HbmKind, Lowerer};
use crate::diag::{Code, Diagnostic};
use crate::graph::{Node, Op};
use crate::kernel::{Expr, KOp, Kernel, ScalarArg, Stmt, View};
use tahoma_isa::{machine, Alu, Dtype};

fn ints(node: &Node, name: &str) -> Result<Vec<i64>, Diagnostic> {
    node.attrs
        .ints(name)
        .map(|v| v.to_vec())
        .map_err(|m| node_error(node, Code::BadAttribute, m))
}

/// Lowers MaxPool or AveragePool.
pub fn lower(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    let x = l.placed(node.inputs[0]);
    let rank = x.shape.len();
    if !(3..=4).contains(&rank) || node.outputs.len() > 1 {
        return Err(node_error(
            node,
            Code::NotLowered,
            "only 1-D and 2-D pools without the indices output are lowered",
        ));
    }
    let is_max = node.op == Op::MaxPool;
    let (ks, st, dl, pads) = (
        ints(node, "kernel_shape")?,
        ints(node, "strides")?,
        ints(node, "dilations")?,
        ints(node, "pads")?,
    );
    let include_pad = !is_max && node.attrs.int("count_include_pad").unwrap_or(0) != 0;
    let nsp = rank - 2;
    // Per axis (h, w): input size, output size, kernel, stride, dilation, pad begin, pad end.
    let y_shape: Vec<u64> = l
        .graph
        .ty(node.outputs[0])
        .shape
        .iter()
        .map(|&d| d as u64)
        .collect();
    let ax = |i: usize| -> (i64, i64, i64, i64, i64, i64, i64) {
        if rank == 3 && i == 0 {
            return (1, 1, 1, 1, 1, 0, 0);
        }
        let k = if rank == 3 { 0 } else { i };
        (
            x.shape[2 + k] as i64,
            y_shape[2 + k] as i64,
            ks[k],
            st[k],
            dl[k],
            pads[k],
            pads[nsp + k],
        )
    };
    let (h, oh, kh, sh, dh, pt, pb) = ax(0);
    let (w, ow, kw, sw, dw, pl, pr) = ax(1);
    let out = l.place_output(node.outputs[0], node)?;
    let planes = x.shape[0] * x.shape[1];
    // Window divisor of every output pixel.
    let count = |o: i64, k: i64, s: i64, d: i64, pbeg: i64, n: i64, pend: i64| -> (i64, i64) {
        let (mut inside, mut padded) = (0, 0);
        for j in 0..k {
            let c = o * s - pbeg + j * d;
            if c < n + pend {
                padded += 1;
            }
            if c >= 0 && c < n {
                inside += 1;
            }
        }
        (inside, padded)
    };
    let mut recip = Vec::with_capacity((oh * ow) as usize);
    for i in 0..oh {
        let (ci, cp) = count(i, kh, sh, dh, pt, h, pb);
        for j in 0..ow {
            let (cj, cq) = count(j, kw, sw, dw, pl, w, pr);
            let d = if include_pad { cp * cq } else { ci * cj };
            recip.push(if d > 0 { 1.0 / d as f32 } else { f32::NAN });
        }
    }
    let owb = (ow as u64).min(ELEMENTWISE_FREE_MAX);
    let ohb = if ow as u64 <= ELEMENTWISE_FREE_MAX {
        (ELEMENTWISE_FREE_MAX / ow as u64).min(oh as u64).max(1)
    } else {
        1
    };
    let slab = |hb: u64, wb: u64| {
        (
            (hb - 1) * sh as u64 + (kh as u64 - 1) * dh as u64 + 1,
            (wb - 1) * sw as u64 + (kw as u64 - 1) * dw as u64 + 1,
        )
    };
    let (rmax, cmax) = slab(ohb, owb);
    let mut blocks = Vec::new();
    let mut oh0 = 0u64;
    while oh0 < oh as u64 {
        let hb = ohb.min(oh as u64 - oh0);
        let mut ow0 = 0u64;
        while ow0 < ow as u64 {
            let wb = owb.min(ow as u64 - ow0);
            blocks.push((oh0, hb, ow0, wb));
            ow0 += wb;
        }
        oh0 += hb;
    }
    let uniform = |oh0: u64, hb: u64, ow0: u64, wb: u64| -> Option<f32> {
        let first = recip[(oh0 * ow as u64 + ow0) as usize];
        let all = (oh0..oh0 + hb)
            .all(|i| (ow0..ow0 + wb).all(|j| recip[(i * ow as u64 + j) as usize] == first));
        all.then_some(first)
    };
    let needs_map = !is_max && blocks.iter().any(|b| uniform(b.0, b.1, b.2, b.3).is_none());
    let map = needs_map.then(|| {
        l.new_tensor(
            &format!("{}_recip", node.name),
            Dtype::Fp32,
            vec![(oh * ow) as u64],
            HbmKind::Const {
                values: recip.clone(),
            },
        )
    });
    let fill = if is_max { f32::MIN } else { 0.0 };
    let op = if is_max { Alu::Max } else { Alu::Add };
    let mut body = Vec::new();
    let p = machine::PARTITIONS;
    let mut p0 = 0;
    while p0 < planes {
        let pt_ = p.min(planes - p0);
        for &(oh0, hb, ow0, wb) in &blocks {
            let (rows, cols) = slab(hb, wb);
            let (r0, c0) = ((oh0 as i64) * sh - pt, (ow0 as i64) * sw - pl);
            let (rv0, rv1) = (r0.max(0), (r0 + rows as i64).min(h));
            let (cv0, cv1) = (c0.max(0), (c0 + cols as i64).min(w));
            let whole =
                rv0 == r0 && rv1 == r0 + rows as i64 && cv0 == c0 && cv1 == c0 + cols as i64;
            if !whole {
                body.push(KOp::Memset {
                    dst: tile("x", pt_, 0, rows * cols),
                    value: fill,
                });
            }
            if rv0 < rv1 && cv0 < cv1 {
                body.push(KOp::Dma {
                    dst: View::buf(
                        "x",
                        0,
                        pt_,
                        Expr::constant((rv0 - r0) * cols as i64 + (cv0 - c0)),
                        vec![((rv1 - rv0) as u64, cols as i64), ((cv1 - cv0) as u64, 1)],
                    ),
                    src: View::hbm(
                        &x.tensor,
                        pt_,
                        h * w,
                        Expr::constant(p0 as i64 * h * w + rv0 * w + cv0),
                        vec![((rv1 - rv0) as u64, w), ((cv1 - cv0) as u64, 1)],
                    ),
                });
            }
            let npix = hb * wb;
            let y = tile("y", pt_, 0, npix);
            for a in 0..kh {
                for b in 0..kw {
                    let win = View::buf(
                        "x",
                        0,
                        pt_,
                        Expr::constant(a * dh * cols as i64 + b * dw),
                        vec![(hb, sh * cols as i64), (wb, sw)],
                    );
                    body.push(if a == 0 && b == 0 {
                        KOp::Copy {
                            dst: y.clone(),
                            src: win,
                        }
                    } else {
                        KOp::TensorTensor {
                            dst: y.clone(),
                            a: y.clone(),
                            b: win,
                            op,
                        }
                    });
                }
            }
            let pix_off = (oh0 * ow as u64 + ow0) as i64;
            let pix_dims = vec![(hb, ow), (wb, 1)];
            if !is_max {
                match (uniform(oh0, hb, ow0, wb), &map) {
                    (Some(r), _) => body.push(KOp::TensorScalar {
                        dst: y.clone(),
                        src: y.clone(),
                        op0: Alu::Multiply,
                        scalar0: ScalarArg::Imm(r),
                        op1: Alu::Bypass,
                        scalar1: ScalarArg::Imm(0.0),
                        reverse0: false,
                        reverse1: false,
                    }),
                    (None, Some(m)) => {
                        body.push(KOp::Dma {
                            dst: tile("rc", pt_, 0, npix),
                            src: View::hbm(m, pt_, 0, Expr::constant(pix_off), pix_dims.clone()),
                        });
                        body.push(KOp::TensorTensor {
                            dst: y.clone(),
                            a: y.clone(),
                            b: tile("rc", pt_, 0, npix),
                            op: Alu::Multiply,
                        });
                    }
                    (None, None) => unreachable!("the map exists when a block is not uniform"),
                }
            }
            body.push(KOp::Dma {
                dst: View::hbm(
                    &out.tensor,
                    pt_,
                    oh * ow,
                    Expr::constant(p0 as i64 * oh * ow + pix_off),
                    pix_dims,
                ),
                src: y,
            });
        }
        p0 += pt_;
    }
    let pmax = planes.min(p);
    let mut buffers = vec![sbuf("x", pmax, rmax * cmax), sbuf("y", pmax, ohb * owb)];
    if map.is_some() {
        buffers.push(sbuf("rc", pmax, ohb * owb));
    }
    l.push_kernel(Kernel {
        name: node.name.clone(),
        op: node.op.name().to_string(),
        buffers,
        body: body.into_iter().map(Stmt::Op).collect(),
    });
    Ok(())
}
