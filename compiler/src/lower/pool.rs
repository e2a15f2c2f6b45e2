//! `MaxPool` and `AveragePool` (1-D and 2-D) on the vector engine, separably: the (image,
//! channel) planes go on partitions; per block of output pixels, each chunk of kernel rows first
//! reduces the input rows it needs horizontally (one `TENSOR_TENSOR max/add` per kernel column,
//! reading a slab of input with the pool's strides and dilations into a row-pass tile `t`), then
//! one `TENSOR_TENSOR` per kernel row reduces `t` vertically into the block. A `kh x kw` window
//! costs `kh + kw` vector ops per block instead of `kh * kw`. Only the input rows and columns on
//! the lattice the strides and dilations reach are loaded (a strided DMA), padding is a `MEMSET`
//! to the pool's neutral value, and every tile is bounded ([`Plan::choose`]): large planes,
//! kernels or dilations are walked in output blocks, kernel-row and kernel-column chunks and
//! slab row chunks, so any pool fits SBUF. Slabs alternate between two buffers so the next load
//! overlaps the current reduction. Averages divide by the window count: an immediate when it
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

/// SBUF bytes per partition of one input slab (two are allocated; a tiling choice).
const SLAB_BYTES: u64 = 32 * 1024;
/// SBUF bytes per partition of the row-pass tile (a tiling choice).
const ROWS_BYTES: u64 = 32 * 1024;

/// Geometry of a 2-D pool (1-D pools have H = KH = 1), in input coordinates.
struct Geo {
    kh: i64,
    kw: i64,
    sh: i64,
    sw: i64,
    dh: i64,
    dw: i64,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Step of the lattice of input rows (or columns) that `n` outputs of stride `s` and `k` kernel
/// taps of dilation `d` read.
fn lattice(s: u64, n: u64, d: u64, k: u64) -> u64 {
    let g = gcd(if n > 1 { s } else { 0 }, if k > 1 { d } else { 0 });
    g.max(1)
}

/// The `[lo, hi)` range of `k` in `[0, count)` with `0 <= start + k * step < n`.
fn valid(start: i64, step: i64, count: u64, n: i64) -> (u64, u64) {
    let lo = if start >= 0 {
        0
    } else {
        (-start + step - 1) / step
    };
    let hi = if start > n - 1 {
        0
    } else {
        (n - 1 - start) / step + 1
    };
    let (lo, hi) = (
        lo.clamp(0, count as i64) as u64,
        hi.clamp(0, count as i64) as u64,
    );
    (lo, hi.max(lo))
}

/// Block and chunk sizes: output blocks of `hb x wb` pixels, kernel rows in chunks of `ka`,
/// kernel columns in chunks of `kb`, and slabs of at most `slab` elements.
struct Plan {
    hb: u64,
    wb: u64,
    ka: u64,
    kb: u64,
    slab: u64,
}

impl Plan {
    fn choose(g: &Geo, oh: u64, ow: u64) -> Plan {
        let f32b = Dtype::Fp32.size_bytes();
        let (slab, rows_max) = (SLAB_BYTES / f32b, ROWS_BYTES / f32b);
        let (sh, sw, dh, dw) = (g.sh as u64, g.sw as u64, g.dh as u64, g.dw as u64);
        let mut wb = ow.clamp(1, ELEMENTWISE_FREE_MAX);
        let mut hb = (ELEMENTWISE_FREE_MAX / wb).clamp(1, oh.max(1));
        let (mut ka, mut kb) = (g.kh as u64, g.kw as u64);
        let nr = |hb: u64, ka: u64| ((hb - 1) * sh + (ka - 1) * dh) / lattice(sh, hb, dh, ka) + 1;
        let nc = |wb: u64, kb: u64| ((wb - 1) * sw + (kb - 1) * dw) / lattice(sw, wb, dw, kb) + 1;
        // The row-pass tile holds the needed rows of a kernel-row chunk for the whole block.
        while nr(hb, ka) * wb > rows_max {
            if hb > 1 {
                hb = hb.div_ceil(2);
            } else if ka > 1 {
                ka = ka.div_ceil(2);
            } else {
                wb = wb.div_ceil(2);
            }
        }
        // A slab holds at least one whole row of the columns a kernel-column chunk needs.
        while nc(wb, kb) > slab {
            if kb > 1 {
                kb = kb.div_ceil(2);
            } else {
                wb = wb.div_ceil(2);
            }
        }
        Plan {
            hb,
            wb,
            ka,
            kb,
            slab,
        }
    }
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
    let geo = Geo {
        kh,
        kw,
        sh,
        sw,
        dh,
        dw,
    };
    let plan = Plan::choose(&geo, oh as u64, ow as u64);
    let mut blocks = Vec::new();
    let mut oh0 = 0u64;
    while oh0 < oh as u64 {
        let hb = plan.hb.min(oh as u64 - oh0);
        let mut ow0 = 0u64;
        while ow0 < ow as u64 {
            let wb = plan.wb.min(ow as u64 - ow0);
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
    // Largest slab and row-pass tiles used, for the buffers.
    let (mut slab_max, mut t_max) = (1u64, 1u64);
    let mut parity = 0usize;
    let mut p0 = 0;
    while p0 < planes {
        let np = p.min(planes - p0);
        let plane_off = p0 as i64 * h * w;
        for &(oh0, hb, ow0, wb) in &blocks {
            let npix = hb * wb;
            let y = tile("y", np, 0, npix);
            // Vertical pass over chunks of kernel rows; each chunk first reduces its input rows
            // horizontally into `t` (one row of `t` per needed input row).
            let mut a0 = 0;
            while a0 < kh as u64 {
                let ka = plan.ka.min(kh as u64 - a0);
                let gr = lattice(sh as u64, hb, dh as u64, ka);
                let nr = ((hb - 1) * sh as u64 + (ka - 1) * dh as u64) / gr + 1;
                t_max = t_max.max(nr * wb);
                let rs = (oh0 as i64) * sh + a0 as i64 * dh - pt;
                let mut b0 = 0;
                while b0 < kw as u64 {
                    let kb = plan.kb.min(kw as u64 - b0);
                    let gc = lattice(sw as u64, wb, dw as u64, kb);
                    let nc = ((wb - 1) * sw as u64 + (kb - 1) * dw as u64) / gc + 1;
                    let cs = (ow0 as i64) * sw + b0 as i64 * dw - pl;
                    let (clo, chi) = valid(cs, gc as i64, nc, w);
                    let rc = (plan.slab / nc).clamp(1, nr);
                    let mut m0 = 0;
                    while m0 < nr {
                        let rows = rc.min(nr - m0);
                        slab_max = slab_max.max(rows * nc);
                        let xs = format!("x{parity}");
                        parity ^= 1;
                        let r0 = rs + (m0 * gr) as i64;
                        let (rlo, rhi) = valid(r0, gr as i64, rows, h);
                        let any = rlo < rhi && clo < chi;
                        if !(any && rlo == 0 && rhi == rows && clo == 0 && chi == nc) {
                            body.push(KOp::Memset {
                                dst: tile(&xs, np, 0, rows * nc),
                                value: fill,
                            });
                        }
                        if any {
                            body.push(KOp::Dma {
                                dst: View::buf(
                                    &xs,
                                    0,
                                    np,
                                    Expr::constant((rlo * nc + clo) as i64),
                                    vec![(rhi - rlo, nc as i64), (chi - clo, 1)],
                                ),
                                src: View::hbm(
                                    &x.tensor,
                                    np,
                                    h * w,
                                    Expr::constant(
                                        plane_off
                                            + (r0 + (rlo * gr) as i64) * w
                                            + cs
                                            + (clo * gc) as i64,
                                    ),
                                    vec![(rhi - rlo, gr as i64 * w), (chi - clo, gc as i64)],
                                ),
                            });
                        }
                        let t = View::buf(
                            "t",
                            0,
                            np,
                            Expr::constant((m0 * wb) as i64),
                            vec![(rows, wb as i64), (wb, 1)],
                        );
                        for b in 0..kb {
                            let win = View::buf(
                                &xs,
                                0,
                                np,
                                Expr::constant((b * dw as u64 / gc) as i64),
                                vec![(rows, nc as i64), (wb, sw / gc as i64)],
                            );
                            body.push(if b0 == 0 && b == 0 {
                                KOp::Copy {
                                    dst: t.clone(),
                                    src: win,
                                }
                            } else {
                                KOp::TensorTensor {
                                    dst: t.clone(),
                                    a: t.clone(),
                                    b: win,
                                    op,
                                }
                            });
                        }
                        m0 += rows;
                    }
                    b0 += kb;
                }
                for a in 0..ka {
                    let rows = View::buf(
                        "t",
                        0,
                        np,
                        Expr::constant((a * dh as u64 / gr * wb) as i64),
                        vec![(hb, (sh as u64 / gr * wb) as i64), (wb, 1)],
                    );
                    body.push(if a0 == 0 && a == 0 {
                        KOp::Copy {
                            dst: y.clone(),
                            src: rows,
                        }
                    } else {
                        KOp::TensorTensor {
                            dst: y.clone(),
                            a: y.clone(),
                            b: rows,
                            op,
                        }
                    });
                }
                a0 += ka;
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
                            dst: tile("rc", np, 0, npix),
                            src: View::hbm(m, np, 0, Expr::constant(pix_off), pix_dims.clone()),
                        });
                        body.push(KOp::TensorTensor {
                            dst: y.clone(),
                            a: y.clone(),
                            b: tile("rc", np, 0, npix),
                            op: Alu::Multiply,
                        });
                    }
                    (None, None) => unreachable!("the map exists when a block is not uniform"),
                }
            }
            body.push(KOp::Dma {
                dst: View::hbm(
                    &out.tensor,
                    np,
                    oh * ow,
                    Expr::constant(plane_off / (h * w) * oh * ow + pix_off),
                    pix_dims,
                ),
                src: y,
            });
        }
        p0 += np;
    }
    let pmax = planes.min(p);
    let mut buffers = vec![
        sbuf("x0", pmax, slab_max),
        sbuf("x1", pmax, slab_max),
        sbuf("t", pmax, t_max),
        sbuf("y", pmax, plan.hb * plan.wb),
    ];
    if map.is_some() {
        buffers.push(sbuf("rc", pmax, plan.hb * plan.wb));
    }
    l.push_kernel(Kernel {
        name: node.name.clone(),
        op: node.op.name().to_string(),
        buffers,
        body: body.into_iter().map(Stmt::Op).collect(),
    });
    Ok(())
}
