//! `ConvTranspose` (1-D, 2-D and 3-D, NCHW/NCDHW; strides, pads (possibly negative), dilations, groups,
//! output_padding) on the tensor engine, phase by phase. Output position `o` along an axis gets
//! `x[i] * w[k]` wherever `o = i * stride + k * dilation - pad`, so the outputs with
//! `o mod stride = r` (phase `r`) form a stride-1 correlation over the input that uses only the
//! kernel taps landing in that phase, each shifted by `(r + pad - k * dilation) / stride` (an
//! exact integer). This module owns that decomposition: per group, tile of at most `pe_cols`
//! output channels and block of phase positions (at most `max_moving_free`, on one grid for
//! all phases), the input window the block needs for every phase's taps is loaded once per
//! input-channel tile as a zero-padded slab in SBUF (the padding `MEMSET`, the valid part
//! DMAed in); then per phase every (input-channel tile, tap of the phase) issues
//! `LOAD_STATIONARY` of its `[Cin_tile, Cout_tile]` weights and a `MATMUL` over the slab
//! shifted by the tap, accumulating in PSUM. The scalar engine evacuates PSUM adding the
//! per-channel bias, and a strided DMA writes the block to its phase's positions; phases no tap
//! reaches hold only the bias. Weights (`[Cin, Cout/group, kh, kw]`) that are constant are
//! rearranged at compile time to `[Cin, (kh, kw), Cout/group]` so their loads are contiguous;
//! otherwise strided DMAs gather them. Slab, PSUM and result buffers alternate between two
//! copies so that loads, matmuls and evacuation overlap. 3-D (NCDHW) adds the depth axis to
//! the same scheme: phases and taps per axis, slabs of several depth planes, blocks spanning
//! depth positions when whole planes of phase positions fit one matmul; 1-D and 2-D are its
//! special cases with leading axes of size 1 (their views keep two free dims).

use super::conv::{buf, v};
use super::conv_attrs::ConvAttrs;
use super::{node_error, HbmKind, Lowerer};
use crate::diag::{Code, Diagnostic};
use crate::graph::Node;
use crate::kernel::{Accumulate, Expr, KOp, Kernel, ScalarArg, Stmt, View};
use tahoma_isa::{machine, Act, Dtype, Mem};

/// SBUF bytes per partition the input slabs of one kernel may take (a tiling choice).
const SLAB_BYTES: u64 = machine::SBUF_PARTITION_BYTES / 2;

/// One spatial axis of one phase: its first output position, how many output positions it has
/// and the taps reaching it with their input shifts.
#[derive(Clone, Debug)]
struct AxisPhase {
    r: u64,
    count: u64,
    taps: Vec<(u64, i64)>,
}

/// The phases of one axis (output extent `o`, kernel `k`, stride `s`, dilation `d`, begin pad
/// `p`).
fn axis_phases(o: u64, k: u64, s: u64, d: u64, p: i64) -> Vec<AxisPhase> {
    (0..s.min(o))
        .map(|r| AxisPhase {
            r,
            count: (o - r).div_ceil(s),
            taps: (0..k)
                .filter_map(|t| {
                    let num = r as i64 + p - (t * d) as i64;
                    (num.rem_euclid(s as i64) == 0).then(|| (t, num.div_euclid(s as i64)))
                })
                .collect(),
        })
        .collect()
}

/// The smallest and largest input shift of any tap of any phase (0, 0 without taps).
fn shift_range(phases: &[AxisPhase]) -> (i64, i64) {
    let shifts = || phases.iter().flat_map(|p| p.taps.iter().map(|t| t.1));
    (shifts().min().unwrap_or(0), shifts().max().unwrap_or(0))
}

/// Lowers a ConvTranspose node.
pub fn lower(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    let opd = l.opts.precision.operand_dtype();
    let x = l.placed(node.inputs[0]);
    let rank = x.shape.len();
    if !(3..=5).contains(&rank) || !l.graph.ty(node.inputs[0]).dtype.is_float() {
        return Err(node_error(
            node,
            Code::NotLowered,
            format!(
                "only float 1-D, 2-D and 3-D transposed convolutions are lowered, this one has {} spatial axes",
                rank.saturating_sub(2)
            ),
        ));
    }
    let a = ConvAttrs::read(l, node)?;
    let (groups, wshape) = (a.groups, &a.w_shape);
    let deep = a.nsp == 3;
    let [d, h, w] = a.x;
    let [od, oh, ow] = a.y;
    let [kd, kh, kw] = a.kernel;
    let [sd, sh, sw] = a.strides;
    let [dd, dh, dw] = a.dilations;
    let [pf, pt, pl] = a.pads;
    let (n, cin) = (x.shape[0], x.shape[1]);
    let (cin_g, cout_g) = (cin / groups, wshape[1]);
    let cout = cout_g * groups;
    let khkw = kd * kh * kw;
    // Free dims of a view, with the depth dim only in 3-D (so 1-D and 2-D views are unchanged).
    let dims3 = |depth: (u64, i64), rest: [(u64, i64); 2]| -> Vec<(u64, i64)> {
        let mut v = Vec::new();
        if deep {
            v.push(depth);
        }
        v.extend(rest);
        v
    };

    // Weights as `[Cin, (kh, kw), Cout/group]`: rearranged once when constant.
    let (w_tensor, w_const) = match l.graph.const_value(node.inputs[1]) {
        Some(t) => {
            let wv = t.to_f32_vec();
            let mut arranged = vec![0f32; wv.len()];
            for ci in 0..cin {
                for co in 0..cout_g {
                    for k in 0..khkw {
                        arranged[((ci * khkw + k) * cout_g + co) as usize] =
                            wv[((ci * cout_g + co) * khkw + k) as usize];
                    }
                }
            }
            let name = l.new_tensor(
                &format!("{}_w", node.name),
                opd,
                vec![cin, khkw, cout_g],
                HbmKind::Const { values: arranged },
            );
            (name, true)
        }
        None => (l.operand(node.inputs[1], opd).tensor, false),
    };
    let bias = node.inputs.get(2).map(|&b| l.placed(b).tensor);
    let out = l.place_output(node.outputs[0], node)?;

    let split = |c: u64, t: u64| -> Vec<(u64, u64)> {
        (0..c.div_ceil(t).max(1))
            .map(|i| (i * t, t.min(c - i * t)))
            .collect()
    };
    let ci_tiles = split(cin_g, machine::PE_ROWS.min(machine::PARTITIONS));
    let co_tiles = split(cout_g, machine::PE_COLS.min(machine::PARTITIONS));
    let nci = ci_tiles.len() as u64;
    let (cimax, ctmax) = (ci_tiles[0].1, co_tiles[0].1);

    let (ph_d, ph_h, ph_w) = (
        axis_phases(od, kd, sd, dd, pf),
        axis_phases(oh, kh, sh, dh, pt),
        axis_phases(ow, kw, sw, dw, pl),
    );
    // Blocks of phase positions are cut on one grid for every phase, so one input slab (covering
    // the shifts of all phases' taps) serves all the phases of a block.
    let max_qd = ph_d.iter().map(|p| p.count).max().unwrap_or(1);
    let max_qh = ph_h.iter().map(|p| p.count).max().unwrap_or(1);
    let max_qw = ph_w.iter().map(|p| p.count).max().unwrap_or(1);
    let ((lo_d, hi_d), (lo_h, hi_h), (lo_w, hi_w)) =
        (shift_range(&ph_d), shift_range(&ph_h), shift_range(&ph_w));
    let (span_d, span_h, span_w) = (
        (hi_d - lo_d) as u64,
        (hi_h - lo_h) as u64,
        (hi_w - lo_w) as u64,
    );
    let tapped = |ph: &[AxisPhase]| ph.iter().any(|p| !p.taps.is_empty());
    let any_taps = tapped(&ph_d) && tapped(&ph_h) && tapped(&ph_w);
    let maxn = machine::MAX_MOVING_FREE;
    let owb = max_qw.min(maxn).max(1);
    let mut ohb = if max_qw <= maxn {
        (maxn / max_qw.max(1)).min(max_qh).max(1)
    } else {
        1
    };
    // Whole planes of phase positions fit a block: blocks take several depth positions.
    let mut odb = if ohb >= max_qh {
        (maxn / (ohb * owb)).min(max_qd).max(1)
    } else {
        1
    };
    let slab = |db: u64, hb: u64, wb: u64| (db + span_d, hb + span_h, wb + span_w);
    let slab_bytes = |db: u64, hb: u64, wb: u64| {
        let (z, r, c) = slab(db, hb, wb);
        2 * nci * z * r * c * opd.size_bytes()
    };
    while odb > 1 && slab_bytes(odb, ohb, owb) > SLAB_BYTES {
        odb = odb.div_ceil(2);
    }
    while ohb > 1 && slab_bytes(odb, ohb, owb) > SLAB_BYTES {
        ohb = ohb.div_ceil(2);
    }
    let (deps_max, rows_max, cols_max) = slab(odb, ohb, owb);
    let slab_elems = deps_max * rows_max * cols_max;
    let npix_max = odb * ohb * owb;
    let w_free = nci * khkw * ctmax;
    let sbuf_bytes = w_free * opd.size_bytes()
        + 2 * nci * slab_elems * opd.size_bytes()
        + 2 * npix_max * Dtype::Fp32.size_bytes()
        + Dtype::Fp32.size_bytes();
    if slab_bytes(odb, ohb, owb) > SLAB_BYTES
        || sbuf_bytes > machine::SBUF_PARTITION_BYTES
        || w_free.max(nci * slab_elems) > machine::MAX_FREE_ELEMS_SBUF
    {
        return Err(node_error(
            node,
            Code::OnChipMemory,
            format!(
                "weights of {khkw} taps and an input window of {deps_max}x{rows_max}x{cols_max} for {cin_g} channels do not fit SBUF"
            ),
        ));
    }

    let mut body: Vec<Stmt> = Vec::new();
    let mut emit = |op: KOp| body.push(Stmt::Op(op));
    let (mut parity, mut slab_parity) = (0usize, 0usize);
    for g in 0..groups {
        for &(co0, ct) in &co_tiles {
            let co_abs = g * cout_g + co0;
            for (j, &(ci0, cit)) in ci_tiles.iter().enumerate() {
                let c_abs = g * cin_g + ci0;
                let src = if w_const {
                    View::hbm(
                        &w_tensor,
                        cit,
                        (khkw * cout_g) as i64,
                        Expr::constant((c_abs * khkw * cout_g + co0) as i64),
                        vec![(khkw, cout_g as i64), (ct, 1)],
                    )
                } else {
                    View::hbm(
                        &w_tensor,
                        cit,
                        (cout_g * khkw) as i64,
                        Expr::constant(((c_abs * cout_g + co0) * khkw) as i64),
                        vec![(khkw, 1), (ct, khkw as i64)],
                    )
                };
                emit(KOp::Dma {
                    dst: v("w", cit, j as u64 * khkw * ct, vec![(khkw * ct, 1)]),
                    src,
                });
            }
            if let Some(b) = &bias {
                emit(KOp::Dma {
                    dst: v("bias", ct, 0, vec![(1, 1)]),
                    src: View::hbm(b, ct, 1, Expr::constant(co_abs as i64), vec![(1, 1)]),
                });
            }
            let bias_arg = || match bias {
                Some(_) => ScalarArg::PerPartition(v("bias", ct, 0, vec![(1, 1)])),
                None => ScalarArg::Imm(0.0),
            };
            for img in 0..n {
                let mut qd0 = 0;
                while qd0 < max_qd {
                    let db = odb.min(max_qd - qd0);
                    let mut qh0 = 0;
                    while qh0 < max_qh {
                        let hb = ohb.min(max_qh - qh0);
                        let mut qw0 = 0;
                        while qw0 < max_qw {
                            let wb = owb.min(max_qw - qw0);
                            let xs = format!("x{slab_parity}");
                            slab_parity ^= 1;
                            let (deps, rows, cols) = (db + span_d, hb + span_h, wb + span_w);
                            let plane = rows * cols;
                            if any_taps {
                                // The slab's origin in input coordinates, and its valid part.
                                let o = [qd0 as i64 + lo_d, qh0 as i64 + lo_h, qw0 as i64 + lo_w];
                                let ext = [deps as i64, rows as i64, cols as i64];
                                let lim = [d as i64, h as i64, w as i64];
                                let v0: Vec<i64> = (0..3).map(|i| o[i].max(0)).collect();
                                let v1: Vec<i64> =
                                    (0..3).map(|i| (o[i] + ext[i]).min(lim[i])).collect();
                                let whole = (0..3).all(|i| v0[i] == o[i] && v1[i] == o[i] + ext[i]);
                                let nonempty = (0..3).all(|i| v0[i] < v1[i]);
                                let len = |i: usize| (v1[i] - v0[i]) as u64;
                                for (j, &(ci0, cit)) in ci_tiles.iter().enumerate() {
                                    let base = j as u64 * slab_elems;
                                    if !whole {
                                        emit(KOp::Memset {
                                            dst: v(&xs, cit, base, vec![(deps * plane, 1)]),
                                            value: 0.0,
                                        });
                                    }
                                    if nonempty {
                                        let c_abs = g * cin_g + ci0;
                                        let src_off = ((img * cin + c_abs) * d * h * w) as i64
                                            + v0[0] * (h * w) as i64
                                            + v0[1] * w as i64
                                            + v0[2];
                                        let dst_off = base as i64
                                            + (v0[0] - o[0]) * plane as i64
                                            + (v0[1] - o[1]) * cols as i64
                                            + (v0[2] - o[2]);
                                        emit(KOp::Dma {
                                            dst: View::buf(
                                                &xs,
                                                0,
                                                cit,
                                                Expr::constant(dst_off),
                                                dims3(
                                                    (len(0), plane as i64),
                                                    [(len(1), cols as i64), (len(2), 1)],
                                                ),
                                            ),
                                            src: View::hbm(
                                                &x.tensor,
                                                cit,
                                                (d * h * w) as i64,
                                                Expr::constant(src_off),
                                                dims3(
                                                    (len(0), (h * w) as i64),
                                                    [(len(1), w as i64), (len(2), 1)],
                                                ),
                                            ),
                                        });
                                    }
                                }
                            }
                            for ad in &ph_d {
                                for ah in &ph_h {
                                    for aw in &ph_w {
                                        let dp = db.min(ad.count.saturating_sub(qd0));
                                        let hp = hb.min(ah.count.saturating_sub(qh0));
                                        let wp = wb.min(aw.count.saturating_sub(qw0));
                                        if dp == 0 || hp == 0 || wp == 0 {
                                            continue;
                                        }
                                        let (accn, yn) =
                                            (format!("acc{parity}"), format!("y{parity}"));
                                        parity ^= 1;
                                        let npix = dp * hp * wp;
                                        let y_tile = v(&yn, ct, 0, vec![(npix, 1)]);
                                        if ad.taps.is_empty()
                                            || ah.taps.is_empty()
                                            || aw.taps.is_empty()
                                        {
                                            // No tap reaches this phase: only the bias.
                                            emit(KOp::Memset {
                                                dst: y_tile.clone(),
                                                value: 0.0,
                                            });
                                            if bias.is_some() {
                                                emit(KOp::Activate {
                                                    dst: y_tile.clone(),
                                                    src: y_tile.clone(),
                                                    func: Act::Identity,
                                                    scale: ScalarArg::Imm(1.0),
                                                    bias: bias_arg(),
                                                    acc: None,
                                                });
                                            }
                                        } else {
                                            let mut first = true;
                                            for (j, &(_, cit)) in ci_tiles.iter().enumerate() {
                                                for &(c, sc) in &ad.taps {
                                                    for &(a, sa) in &ah.taps {
                                                        for &(b, sb) in &aw.taps {
                                                            let tap = (c * kh + a) * kw + b;
                                                            emit(KOp::LoadStationary {
                                                                src: v(
                                                                    "w",
                                                                    cit,
                                                                    (j as u64 * khkw + tap) * ct,
                                                                    vec![(ct, 1)],
                                                                ),
                                                            });
                                                            let off = j as u64 * slab_elems
                                                                + (sc - lo_d) as u64 * plane
                                                                + (sa - lo_h) as u64 * cols
                                                                + (sb - lo_w) as u64;
                                                            emit(KOp::Matmul {
                                                                dst: v(
                                                                    &accn,
                                                                    ct,
                                                                    0,
                                                                    vec![(npix, 1)],
                                                                ),
                                                                moving: v(
                                                                    &xs,
                                                                    cit,
                                                                    off,
                                                                    dims3(
                                                                        (dp, plane as i64),
                                                                        [
                                                                            (hp, cols as i64),
                                                                            (wp, 1),
                                                                        ],
                                                                    ),
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
                                            }
                                            emit(KOp::Activate {
                                                dst: y_tile.clone(),
                                                src: v(&accn, ct, 0, vec![(npix, 1)]),
                                                func: Act::Identity,
                                                scale: ScalarArg::Imm(1.0),
                                                bias: bias_arg(),
                                                acc: None,
                                            });
                                        }
                                        let out_off = ((img * cout + co_abs) * od * oh * ow
                                            + (ad.r + qd0 * sd) * oh * ow
                                            + (ah.r + qh0 * sh) * ow
                                            + aw.r
                                            + qw0 * sw)
                                            as i64;
                                        emit(KOp::Dma {
                                            dst: View::hbm(
                                                &out.tensor,
                                                ct,
                                                (od * oh * ow) as i64,
                                                Expr::constant(out_off),
                                                dims3(
                                                    (dp, (sd * oh * ow) as i64),
                                                    [(hp, (sh * ow) as i64), (wp, sw as i64)],
                                                ),
                                            ),
                                            src: y_tile,
                                        });
                                    }
                                }
                            }
                            qw0 += wb;
                        }
                        qh0 += hb;
                    }
                    qd0 += db;
                }
            }
        }
    }
    let mut buffers = vec![buf("w", Mem::Sbuf, opd, cimax, w_free)];
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
