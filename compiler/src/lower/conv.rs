//! `Conv` (1-D and 2-D, NCHW; strides, pads, dilations, groups) on the tensor engine as matmuls
//! over kernel positions accumulating in PSUM. For each group, tile of at most `pe_cols` output
//! channels and block of output pixels (at most `max_moving_free`): the weights of the tile are
//! loaded once as `[Cin_tile, (kh, kw), Cout_tile]`; per block the input window the block needs
//! (a slab of rows x columns of the zero-padded input, the padding `MEMSET` in SBUF, the valid
//! part DMAed in) is loaded per input-channel tile; then every (input-channel tile, kh, kw)
//! issues `LOAD_STATIONARY` of its `[Cin_tile, Cout_tile]` weights and a `MATMUL` whose moving
//! operand is the slab read with the conv's strides and dilations, shifted by the kernel
//! position. The scalar engine evacuates PSUM adding the per-channel bias. Slab, PSUM and result
//! buffers alternate between two copies so that loads, matmuls and evacuation of consecutive
//! blocks overlap. Grouped convolutions with small groups (depthwise) pack several groups into
//! one tile with block-diagonal constant weights, so the array works on up to `pe_rows`
//! channels at once.

use super::epilogue::Epilogue;
use super::{node_error, HbmKind, Lowerer};
use crate::diag::{Code, Diagnostic};
use crate::graph::Node;
use crate::kernel::{Accumulate, Buffer, Expr, KOp, Kernel, ScalarArg, Stmt, View};
use tahoma_isa::{machine, Dtype, Mem};

/// SBUF bytes per partition the input slabs of one kernel may take (a tiling choice).
const SLAB_BYTES: u64 = 96 * 1024;

fn ints(node: &Node, name: &str) -> Result<Vec<i64>, Diagnostic> {
    node.attrs
        .ints(name)
        .map(|v| v.to_vec())
        .map_err(|m| node_error(node, Code::BadAttribute, m))
}

/// Geometry of a 2-D convolution (1-D ones have H = KH = 1).
#[derive(Clone, Copy, Debug)]
struct Geo {
    h: u64,
    w: u64,
    oh: u64,
    ow: u64,
    kh: u64,
    kw: u64,
    sh: u64,
    sw: u64,
    dh: u64,
    dw: u64,
    pt: i64,
    pl: i64,
}

fn buf(name: &str, mem: Mem, dtype: Dtype, partitions: u64, free: u64) -> Buffer {
    Buffer {
        name: name.into(),
        mem,
        dtype,
        partitions: partitions.max(1),
        free: free.max(1),
    }
}

fn v(name: &str, parts: u64, off: u64, dims: Vec<(u64, i64)>) -> View {
    View::buf(name, 0, parts, Expr::constant(off as i64), dims)
}

/// Lowers a Conv node.
pub fn lower(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    let opd = l.opts.precision.operand_dtype();
    let (epilogue, n_conv) = Epilogue::of_node(l, node)?;
    let x = l.placed(node.inputs[0]);
    let wshape: Vec<u64> = l
        .graph
        .ty(node.inputs[1])
        .shape
        .iter()
        .map(|&d| d as u64)
        .collect();
    let rank = x.shape.len();
    if !(3..=4).contains(&rank) || !l.graph.ty(node.inputs[0]).dtype.is_float() {
        return Err(node_error(
            node,
            Code::NotLowered,
            "only float 1-D and 2-D convolutions are lowered",
        ));
    }
    let (ks, st, dl, pads) = (
        ints(node, "kernel_shape")?,
        ints(node, "strides")?,
        ints(node, "dilations")?,
        ints(node, "pads")?,
    );
    let groups = node
        .attrs
        .int("group")
        .map_err(|m| node_error(node, Code::BadAttribute, m))? as u64;
    let y_shape: Vec<u64> = l
        .graph
        .ty(node.outputs[0])
        .shape
        .iter()
        .map(|&d| d as u64)
        .collect();
    let two = |v: &[i64], i: usize, one: i64| {
        if rank == 3 {
            if i == 0 {
                one
            } else {
                v[0]
            }
        } else {
            v[i]
        }
    };
    let nsp = rank - 2;
    let geo = Geo {
        h: if rank == 3 { 1 } else { x.shape[2] },
        w: x.shape[rank - 1],
        oh: if rank == 3 { 1 } else { y_shape[2] },
        ow: y_shape[rank - 1],
        kh: two(&ks, 0, 1) as u64,
        kw: two(&ks, 1, 1) as u64,
        sh: two(&st, 0, 1) as u64,
        sw: two(&st, 1, 1) as u64,
        dh: two(&dl, 0, 1) as u64,
        dw: two(&dl, 1, 1) as u64,
        pt: if rank == 3 { 0 } else { pads[0] },
        pl: pads[nsp - 1],
    };
    let (n, cin, cout) = (x.shape[0], x.shape[1], wshape[0]);
    let (mut cin_g, mut cout_g) = (cin / groups, cout / groups);
    let khkw = geo.kh * geo.kw;
    // Pack small groups into one tile with block-diagonal weights (needs constant weights).
    let p = machine::PARTITIONS;
    let widest = cin_g.max(cout_g).max(1);
    let gpt = if groups > 1 && widest < p && l.graph.const_value(node.inputs[1]).is_some() {
        (1..=groups)
            .filter(|d| groups.is_multiple_of(*d) && d * widest <= p)
            .max()
            .unwrap_or(1)
    } else {
        1
    };
    let w_tensor = if gpt > 1 {
        let wv = l
            .graph
            .const_value(node.inputs[1])
            .expect("checked")
            .to_f32_vec();
        let (ci2, co2) = (gpt * cin_g, gpt * cout_g);
        let mut packed = vec![0f32; (cout * ci2 * khkw) as usize];
        for co in 0..cout {
            let slot = (co % co2) / cout_g;
            for ci in 0..cin_g {
                for k in 0..khkw {
                    packed[((co * ci2 + slot * cin_g + ci) * khkw + k) as usize] =
                        wv[((co * cin_g + ci) * khkw + k) as usize];
                }
            }
        }
        cin_g = ci2;
        cout_g = co2;
        l.new_tensor(
            &format!("{}_packed_w", node.name),
            opd,
            vec![cout, cin_g, geo.kh, geo.kw],
            HbmKind::Const { values: packed },
        )
    } else {
        l.operand(node.inputs[1], opd).tensor
    };
    let groups = groups / gpt;
    let bias = node.inputs[..n_conv].get(2).map(|&b| l.placed(b).tensor);
    let out = l.place_output(node.outputs[0], node)?;

    // Tiles of input and output channels within a group.
    let split = |c: u64| -> Vec<(u64, u64)> {
        (0..c.div_ceil(p).max(1))
            .map(|i| (i * p, p.min(c - i * p)))
            .collect()
    };
    let (ci_tiles, co_tiles) = (split(cin_g), split(cout_g));
    let nci = ci_tiles.len() as u64;
    let (cimax, ctmax) = (cin_g.min(p), cout_g.min(p));
    // Output pixel blocks.
    let maxn = machine::MAX_MOVING_FREE;
    let owb = geo.ow.min(maxn).max(1);
    let mut ohb = if geo.ow <= maxn {
        (maxn / geo.ow.max(1)).min(geo.oh).max(1)
    } else {
        1
    };
    let slab = |ohb: u64, owb: u64| {
        let rows = (ohb - 1) * geo.sh + (geo.kh - 1) * geo.dh + 1;
        let cols = (owb - 1) * geo.sw + (geo.kw - 1) * geo.dw + 1;
        (rows, cols)
    };
    while ohb > 1 && {
        let (r, c) = slab(ohb, owb);
        2 * nci * r * c * opd.size_bytes() > SLAB_BYTES
    } {
        ohb = ohb.div_ceil(2);
    }
    let (rows_max, cols_max) = slab(ohb, owb);
    if 2 * nci * rows_max * cols_max * opd.size_bytes() > SLAB_BYTES {
        return Err(node_error(
            node,
            Code::OnChipMemory,
            format!(
                "an input window of {rows_max}x{cols_max} for {cin_g} channels does not fit SBUF"
            ),
        ));
    }
    let slab_elems = rows_max * cols_max;
    let mut blocks = Vec::new();
    let mut oh0 = 0;
    while oh0 < geo.oh {
        let hb = ohb.min(geo.oh - oh0);
        let mut ow0 = 0;
        while ow0 < geo.ow {
            let wb = owb.min(geo.ow - ow0);
            blocks.push((oh0, hb, ow0, wb));
            ow0 += wb;
        }
        oh0 += hb;
    }

    let mut body: Vec<Stmt> = Vec::new();
    let mut emit = |op: KOp| body.push(Stmt::Op(op));
    let mut parity = 0usize;
    for g in 0..groups {
        for &(co0, ct) in &co_tiles {
            let co_abs = g * cout_g + co0;
            for (j, &(ci0, cit)) in ci_tiles.iter().enumerate() {
                emit(KOp::Dma {
                    dst: v("w", cit, j as u64 * khkw * ct, vec![(khkw * ct, 1)]),
                    src: View::hbm(
                        &w_tensor,
                        cit,
                        khkw as i64,
                        Expr::constant(((co_abs * cin_g + ci0) * khkw) as i64),
                        vec![(khkw, 1), (ct, (cin_g * khkw) as i64)],
                    ),
                });
            }
            if let Some(b) = &bias {
                emit(KOp::Dma {
                    dst: v("bias", ct, 0, vec![(1, 1)]),
                    src: View::hbm(b, ct, 1, Expr::constant(co_abs as i64), vec![(1, 1)]),
                });
            }
            for img in 0..n {
                for &(oh0, hb, ow0, wb) in &blocks {
                    let (xs, accn, yn) = (
                        format!("x{parity}"),
                        format!("acc{parity}"),
                        format!("y{parity}"),
                    );
                    parity ^= 1;
                    let (rows, cols) = slab(hb, wb);
                    let (r0, c0) = ((oh0 * geo.sh) as i64, (ow0 * geo.sw) as i64);
                    // Valid rows/cols of the slab in input coordinates.
                    let rv0 = (r0 - geo.pt).max(0);
                    let rv1 = (r0 + rows as i64 - geo.pt).min(geo.h as i64);
                    let cv0 = (c0 - geo.pl).max(0);
                    let cv1 = (c0 + cols as i64 - geo.pl).min(geo.w as i64);
                    let whole = rv0 == r0 - geo.pt
                        && rv1 == r0 + rows as i64 - geo.pt
                        && cv0 == c0 - geo.pl
                        && cv1 == c0 + cols as i64 - geo.pl;
                    for (j, &(ci0, cit)) in ci_tiles.iter().enumerate() {
                        let base = j as u64 * slab_elems;
                        if !whole {
                            emit(KOp::Memset {
                                dst: v(&xs, cit, base, vec![(rows * cols, 1)]),
                                value: 0.0,
                            });
                        }
                        if rv0 < rv1 && cv0 < cv1 {
                            let c_abs = g * cin_g + ci0;
                            let src_off = ((img * cin + c_abs) * geo.h * geo.w) as i64
                                + rv0 * geo.w as i64
                                + cv0;
                            let dst_off = base as i64
                                + (rv0 + geo.pt - r0) * cols as i64
                                + (cv0 + geo.pl - c0);
                            emit(KOp::Dma {
                                dst: View::buf(
                                    &xs,
                                    0,
                                    cit,
                                    Expr::constant(dst_off),
                                    vec![
                                        ((rv1 - rv0) as u64, cols as i64),
                                        ((cv1 - cv0) as u64, 1),
                                    ],
                                ),
                                src: View::hbm(
                                    &x.tensor,
                                    cit,
                                    (geo.h * geo.w) as i64,
                                    Expr::constant(src_off),
                                    vec![
                                        ((rv1 - rv0) as u64, geo.w as i64),
                                        ((cv1 - cv0) as u64, 1),
                                    ],
                                ),
                            });
                        }
                    }
                    let npix = hb * wb;
                    let mut first = true;
                    for (j, &(_, cit)) in ci_tiles.iter().enumerate() {
                        for a in 0..geo.kh {
                            for b in 0..geo.kw {
                                let pos = a * geo.kw + b;
                                emit(KOp::LoadStationary {
                                    src: v("w", cit, (j as u64 * khkw + pos) * ct, vec![(ct, 1)]),
                                });
                                let off = j as u64 * slab_elems + a * geo.dh * cols + b * geo.dw;
                                emit(KOp::Matmul {
                                    dst: v(&accn, ct, 0, vec![(npix, 1)]),
                                    moving: v(
                                        &xs,
                                        cit,
                                        off,
                                        vec![(hb, (geo.sh * cols) as i64), (wb, geo.sw as i64)],
                                    ),
                                    acc: if first {
                                        Accumulate::Never
                                    } else {
                                        Accumulate::Always
                                    },
                                });
                                first = false;
                            }
                        }
                    }
                    let out_off =
                        ((img * cout + co_abs) * geo.oh * geo.ow + oh0 * geo.ow + ow0) as i64;
                    // A fused residual arrives laid out like the result.
                    let res_tile = epilogue.residual.as_ref().map(|(r, _)| {
                        let tile = v(&format!("r{}", parity ^ 1), ct, 0, vec![(npix, 1)]);
                        emit(KOp::Dma {
                            dst: tile.clone(),
                            src: View::hbm(
                                r,
                                ct,
                                (geo.oh * geo.ow) as i64,
                                Expr::constant(out_off),
                                vec![(hb, geo.ow as i64), (wb, 1)],
                            ),
                        });
                        tile
                    });
                    let bias_arg = match bias {
                        Some(_) => ScalarArg::PerPartition(v("bias", ct, 0, vec![(1, 1)])),
                        None => ScalarArg::Imm(0.0),
                    };
                    for op in epilogue.evacuate(
                        &v(&yn, ct, 0, vec![(npix, 1)]),
                        &v(&accn, ct, 0, vec![(npix, 1)]),
                        bias_arg,
                        res_tile.as_ref(),
                    ) {
                        emit(op);
                    }
                    emit(KOp::Dma {
                        dst: View::hbm(
                            &out.tensor,
                            ct,
                            (geo.oh * geo.ow) as i64,
                            Expr::constant(out_off),
                            vec![(hb, geo.ow as i64), (wb, 1)],
                        ),
                        src: v(&yn, ct, 0, vec![(npix, 1)]),
                    });
                }
            }
        }
    }
    let npix_max = ohb * owb;
    let mut buffers = vec![buf("w", Mem::Sbuf, opd, cimax, nci * khkw * ctmax)];
    for i in 0..2 {
        buffers.push(buf(
            &format!("x{i}"),
            Mem::Sbuf,
            opd,
            cimax,
            nci * slab_elems,
        ));
        buffers.push(buf(
            &format!("acc{i}"),
            Mem::Psum,
            Dtype::Fp32,
            ctmax,
            npix_max,
        ));
        buffers.push(buf(
            &format!("y{i}"),
            Mem::Sbuf,
            Dtype::Fp32,
            ctmax,
            npix_max,
        ));
        if epilogue.residual.is_some() {
            buffers.push(buf(
                &format!("r{i}"),
                Mem::Sbuf,
                Dtype::Fp32,
                ctmax,
                npix_max,
            ));
        }
    }
    if bias.is_some() {
        buffers.push(buf("bias", Mem::Sbuf, Dtype::Fp32, ctmax, 1));
    }
    l.push_kernel(Kernel {
        name: node.name.clone(),
        op: node.op.name().into(),
        buffers,
        body,
    });
    Ok(())
}
