//! `MaxPool`, `AveragePool` and `LpPool` (1-D, 2-D and 3-D) on the vector engine, separably:
//! the (image, channel) planes go on partitions; per block of output pixels, each chunk of kernel
//! rows first reduces the input rows it needs horizontally (one `TENSOR_TENSOR max/add` per
//! kernel column, reading a slab of input with the pool's strides and dilations into a row-pass tile `t`), then
//! one `TENSOR_TENSOR` per kernel row reduces `t` vertically into the block. A `kh x kw` window
//! costs `kh + kw` vector ops per block instead of `kh * kw`. Only the input rows and columns on
//! the lattice the strides and dilations reach are loaded (a strided DMA), the padding cells of
//! a slab are a `MEMSET` to the pool's neutral value, and every tile is bounded ([`Plan::choose`]): large planes,
//! kernels or dilations are walked in output blocks, kernel-row and kernel-column chunks and
//! slab row chunks, so any pool fits SBUF. Slabs alternate between two buffers and each slab's
//! loads are issued before the reduction of the slab ahead of it, so the next load overlaps the
//! current reduction; output tiles alternate too, so a reduction does not wait for the store
//! before it; a large input is cut into up to [`PIPELINE_GROUPS`] groups of rows even when one
//! would fit. When the planes fill at most half the partitions, max pools
//! put blocks of output rows side by side in partition slots (32 or 64 partitions apart, as the
//! partition rule allows): each slot has its own loads and stores, over its own DMA engines,
//! and one vector instruction reduces every slot's block. Averages divide by the window count: an immediate when it
//! is the same for every pixel of the block, otherwise a constant map of reciprocals broadcast
//! across partitions by a partition-stride-0 DMA. `LpPool` is the sum pool of `|x|^p` (one
//! `TENSOR_SCALAR abs_max 0, pow p` on each loaded slab) raised to `1/p`. A 3-D pool is two
//! such passes through a scratch tensor (see [`lower`]). MaxPool's `Indices` output is its own
//! kernel ([`argmax`]). A max or average pool whose window is the whole unpadded plane (ResNet's
//! final 7x7 average) is a global pool, lowered as one reduction per channel tile.

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

/// Groups of output-row blocks a plane is cut into at least, so that loads, reductions and
/// stores overlap (a tiling choice, like the convolution's bands).
const PIPELINE_GROUPS: u64 = 4;

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

/// How the taps of a window combine.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Max,
    /// The mean; the divisor counts the padded taps too when `include_pad`.
    Avg {
        include_pad: bool,
    },
    /// A plain sum (LpPool's sum of `|x|^p`).
    Sum,
}

/// One pooled axis in input coordinates: input size, output size, kernel, stride, dilation,
/// pad begin, pad end.
#[derive(Clone, Copy)]
struct Axis {
    n: i64,
    o: i64,
    k: i64,
    s: i64,
    d: i64,
    pb: i64,
    pe: i64,
}

impl Axis {
    /// An axis the pass leaves alone (size `n`, a 1-tap window).
    fn identity(n: i64) -> Axis {
        Axis {
            n,
            o: n,
            k: 1,
            s: 1,
            d: 1,
            pb: 0,
            pe: 0,
        }
    }

    /// The window count of output `o`: (taps inside the input, taps inside input + pads).
    fn count(&self, o: i64) -> (i64, i64) {
        let (mut inside, mut padded) = (0, 0);
        for j in 0..self.k {
            let c = o * self.s - self.pb + j * self.d;
            if c < self.n + self.pe {
                padded += 1;
            }
            if c >= 0 && c < self.n {
                inside += 1;
            }
        }
        (inside, padded)
    }
}

/// One separable 2-D pooling pass over `planes` planes of `[h.n, w.n]` in HBM tensor `src`
/// into planes of `[h.o, w.o]` in `dst`. `pre` raises the loaded input to `|x|^pre` and `post`
/// raises the result to `y^post` (LpPool's norm around a sum).
struct Pass<'a> {
    src: &'a str,
    dst: &'a str,
    planes: u64,
    h: Axis,
    w: Axis,
    kind: Kind,
    pre: Option<f32>,
    post: Option<f32>,
}

/// Lowers MaxPool, AveragePool or LpPool. 1-D and 2-D pools are one pass; a 3-D pool is a
/// pass over (H, W) for every depth slice into a scratch tensor, then a pass over D (with the
/// H*W plane as its row), which the windows' separability allows: the max and the sum of a box
/// are the max and sum over D of the (H, W) ones, and an average's divisor is the product of
/// the per-axis counts.
pub fn lower(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    let x = l.placed(node.inputs[0]);
    let rank = x.shape.len();
    if !(3..=5).contains(&rank) || node.outputs.len() > 2 {
        return Err(node_error(
            node,
            Code::NotLowered,
            format!(
                "only 1-D, 2-D and 3-D pools are lowered, got shape {:?}",
                x.shape
            ),
        ));
    }
    let (ks, st, dl, pads) = (
        ints(node, "kernel_shape")?,
        ints(node, "strides")?,
        ints(node, "dilations")?,
        ints(node, "pads")?,
    );
    let (kind, p) = match node.op {
        Op::MaxPool => (Kind::Max, None),
        Op::LpPool => {
            let p = node
                .attrs
                .int("p")
                .map_err(|m| node_error(node, Code::BadAttribute, m))?;
            if p <= 0 {
                return Err(node_error(
                    node,
                    Code::BadAttribute,
                    format!("LpPool's p must be positive, got {p}"),
                ));
            }
            (Kind::Sum, Some(p as f32))
        }
        _ => (
            Kind::Avg {
                include_pad: node.attrs.int("count_include_pad").unwrap_or(0) != 0,
            },
            None,
        ),
    };
    let nsp = rank - 2;
    let y_shape: Vec<u64> = l.shape_u64(node.outputs[0]);
    // A window covering the whole unpadded plane is a global pool: one reduction per channel
    // tile ([`super::reduce`]) instead of a vector op per kernel row and column.
    let global = node.outputs.len() == 1
        && p.is_none()
        && (0..nsp).all(|k| {
            ks[k] == x.shape[2 + k] as i64
                && dl[k] == 1
                && pads[k] == 0
                && pads[nsp + k] == 0
                && y_shape[2 + k] == 1
        });
    if global {
        let as_global = Node {
            op: match kind {
                Kind::Max => Op::GlobalMaxPool,
                _ => Op::GlobalAveragePool,
            },
            ..node.clone()
        };
        super::reduce::lower(l, &as_global)?;
        // The kernel keeps the op it came from.
        if let Some(k) = l.program.kernels.last_mut() {
            k.op = node.op.name().into();
        }
        return Ok(());
    }
    let axis = |k: usize| Axis {
        n: x.shape[2 + k] as i64,
        o: y_shape[2 + k] as i64,
        k: ks[k],
        s: st[k],
        d: dl[k],
        pb: pads[k],
        pe: pads[nsp + k],
    };
    let out = l.place_output(node.outputs[0], node)?;
    let nc = x.shape[0] * x.shape[1];
    match nsp {
        1 => pass(
            l,
            node,
            &Pass {
                src: &x.tensor,
                dst: &out.tensor,
                planes: nc,
                h: Axis::identity(1),
                w: axis(0),
                kind,
                pre: p,
                post: p.map(|p| 1.0 / p),
            },
        ),
        2 => pass(
            l,
            node,
            &Pass {
                src: &x.tensor,
                dst: &out.tensor,
                planes: nc,
                h: axis(0),
                w: axis(1),
                kind,
                pre: p,
                post: p.map(|p| 1.0 / p),
            },
        ),
        _ => {
            let (d, h, w) = (axis(0), axis(1), axis(2));
            let mid_shape = vec![x.shape[0], x.shape[1], d.n as u64, h.o as u64, w.o as u64];
            let mid = l.new_tensor(
                &format!("{}_hw", node.name),
                Dtype::Fp32,
                mid_shape,
                HbmKind::Scratch,
            );
            let planes = nc * d.n as u64;
            pass(
                l,
                node,
                &Pass {
                    src: &x.tensor,
                    dst: &mid,
                    planes,
                    h,
                    w,
                    kind,
                    pre: p,
                    post: None,
                },
            );
            pass(
                l,
                node,
                &Pass {
                    src: &mid,
                    dst: &out.tensor,
                    planes: nc,
                    h: d,
                    w: Axis::identity(h.o * w.o),
                    kind,
                    pre: None,
                    post: p.map(|p| 1.0 / p),
                },
            );
        }
    }
    if let Some(&iv) = node.outputs.get(1) {
        if nsp == 3 {
            return Err(node_error(
                node,
                Code::NotLowered,
                "the Indices output of a 3-D MaxPool is not lowered",
            ));
        }
        let (h, w) = if nsp == 1 {
            (Axis::identity(1), axis(0))
        } else {
            (axis(0), axis(1))
        };
        let order = node.attrs.int("storage_order").unwrap_or(0);
        argmax(l, node, &x.tensor, &out.tensor, iv, nc, h, w, order != 0)?;
    }
    Ok(())
}

/// Emits the kernel of one pooling pass (see the module doc).
fn pass(l: &mut Lowerer, node: &Node, ps: &Pass) {
    let (hx, wx) = (ps.h, ps.w);
    let (h, oh, kh, sh, dh, pt) = (hx.n, hx.o, hx.k, hx.s, hx.d, hx.pb);
    let (w, ow, kw, sw, dw, pl) = (wx.n, wx.o, wx.k, wx.s, wx.d, wx.pb);
    let planes = ps.planes;
    let is_max = ps.kind == Kind::Max;
    let mut recip = Vec::with_capacity((oh * ow) as usize);
    if let Kind::Avg { include_pad } = ps.kind {
        for i in 0..oh {
            let (ci, cp) = hx.count(i);
            for j in 0..ow {
                let (cj, cq) = wx.count(j);
                let d = if include_pad { cp * cq } else { ci * cj };
                recip.push(if d > 0 { 1.0 / d as f32 } else { f32::NAN });
            }
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
    let p = machine::PARTITIONS;
    // Few planes leave partitions idle: blocks of output rows then sit side by side in
    // partition slots (the starts the partition rule allows for the planes' count), so one
    // vector instruction reduces a block per slot and their DMAs use the engines of every slot.
    // Max pools only (the average's divisor map and LpPool's powers keep a block at a time).
    let starts: Vec<u64> = match super::tiles::slot_rules(planes).next() {
        Some((_, starts)) if is_max && ps.pre.is_none() && ps.post.is_none() => starts.to_vec(),
        _ => vec![0],
    };
    let slots = starts.len() as u64;
    // Rows per block: the plan's, or fewer so that the blocks of rows fill whole slot groups
    // and a large input makes up to [`PIPELINE_GROUPS`] groups, none loading less than the
    // HBM moves in one DMA trigger latency (the next group's slab loads while this one reduces,
    // and the first stores leave early).
    let in_bytes = (planes * (h * w) as u64) * Dtype::Fp32.size_bytes();
    let per_latency = machine::DMA_TRIGGER_LATENCY * machine::HBM_BYTES_PER_CYCLE;
    let pipeline = (in_bytes / per_latency).clamp(1, PIPELINE_GROUPS);
    let row_blocks = (oh as u64)
        .div_ceil(plan.hb)
        .max(pipeline * slots)
        .min(oh as u64);
    let row_blocks = if slots > 1 {
        (row_blocks.div_ceil(slots) * slots).min(oh as u64)
    } else {
        row_blocks
    };
    let block_rows = (oh as u64).div_ceil(row_blocks.max(1)).max(1);
    let mut blocks = Vec::new();
    let mut oh0 = 0u64;
    while oh0 < oh as u64 {
        // Side by side, every block computes `block_rows` rows (the last one's extra rows read
        // only padding and are not stored), so all have the shape the group's instructions take.
        let hb = if slots > 1 {
            block_rows
        } else {
            block_rows.min(oh as u64 - oh0)
        };
        let mut ow0 = 0u64;
        while ow0 < ow as u64 {
            let wb = plan.wb.min(ow as u64 - ow0);
            blocks.push((oh0, hb, ow0, wb));
            ow0 += wb;
        }
        oh0 += hb;
    }
    // Groups of consecutive blocks of one shape, at most one per slot.
    let mut groups: Vec<Vec<(u64, u64, u64, u64)>> = Vec::new();
    for &b in &blocks {
        match groups.last_mut() {
            Some(g) if (g.len() as u64) < slots && (g[0].1, g[0].3) == (b.1, b.3) => g.push(b),
            _ => groups.push(vec![b]),
        }
    }
    let avg = matches!(ps.kind, Kind::Avg { .. });
    let uniform = |oh0: u64, hb: u64, ow0: u64, wb: u64| -> Option<f32> {
        if !avg {
            return None;
        }
        let first = recip[(oh0 * ow as u64 + ow0) as usize];
        let all = (oh0..oh0 + hb)
            .all(|i| (ow0..ow0 + wb).all(|j| recip[(i * ow as u64 + j) as usize] == first));
        all.then_some(first)
    };
    let needs_map = avg && blocks.iter().any(|b| uniform(b.0, b.1, b.2, b.3).is_none());
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
    // Largest slab and row-pass tiles and partitions used, for the buffers.
    let (mut slab_max, mut t_max, mut pmax) = (1u64, 1u64, 1u64);
    let mut parity = 0usize;
    // Where each slab's loads (its padding memset and DMAs) start and end in `body`: they are
    // moved one slab ahead at the end, so a slab loads while the one before it is reduced.
    let mut loads: Vec<(usize, usize)> = Vec::new();
    // Output tiles alternate between two buffers, so a group's reduction does not wait for the
    // store of the group before it.
    let mut ypar = 0usize;
    let mut p0 = 0;
    while p0 < planes {
        let np = p.min(planes - p0);
        let plane_off = p0 as i64 * h * w;
        for grp in &groups {
            let (hb, wb) = (grp[0].1, grp[0].3);
            let npix = hb * wb;
            // Partitions the group's instructions cover: every slot's planes.
            let nall = starts[grp.len() - 1] + np;
            pmax = pmax.max(nall);
            let ys = format!("y{ypar}");
            ypar ^= 1;
            let y = tile(&ys, nall, 0, npix);
            // Vertical pass over chunks of kernel rows; each chunk first reduces its input rows
            // horizontally into `t` (one row of `t` per needed input row).
            let mut a0 = 0;
            while a0 < kh as u64 {
                let ka = plan.ka.min(kh as u64 - a0);
                let gr = lattice(sh as u64, hb, dh as u64, ka);
                let nr = ((hb - 1) * sh as u64 + (ka - 1) * dh as u64) / gr + 1;
                t_max = t_max.max(nr * wb);
                let rs = |oh0: u64| (oh0 as i64) * sh + a0 as i64 * dh - pt;
                let mut b0 = 0;
                while b0 < kw as u64 {
                    let kb = plan.kb.min(kw as u64 - b0);
                    let gc = lattice(sw as u64, wb, dw as u64, kb);
                    let nc = ((wb - 1) * sw as u64 + (kb - 1) * dw as u64) / gc + 1;
                    let cs = |ow0: u64| (ow0 as i64) * sw + b0 as i64 * dw - pl;
                    let rc = (plan.slab / nc).clamp(1, nr);
                    let mut m0 = 0;
                    while m0 < nr {
                        let rows = rc.min(nr - m0);
                        slab_max = slab_max.max(rows * nc);
                        let xs = format!("x{parity}");
                        parity ^= 1;
                        // Each slot's block: its valid input rows and columns.
                        let valids: Vec<_> = grp
                            .iter()
                            .map(|&(oh0, _, ow0, _)| {
                                let (r0, c0) = (rs(oh0) + (m0 * gr) as i64, cs(ow0));
                                let (rlo, rhi) = valid(r0, gr as i64, rows, h);
                                let (clo, chi) = valid(c0, gc as i64, nc, w);
                                (r0, c0, rlo, rhi, clo, chi)
                            })
                            .collect();
                        let any = |&(_, _, rlo, rhi, clo, chi): &(i64, i64, u64, u64, u64, u64)| {
                            rlo < rhi && clo < chi
                        };
                        let full = |v: &(i64, i64, u64, u64, u64, u64)| {
                            any(v) && v.2 == 0 && v.3 == rows && v.4 == 0 && v.5 == nc
                        };
                        let ls = body.len();
                        if !valids.iter().all(full) {
                            // The cells some slot does not load: rows above or below every
                            // slot's valid rows, and the columns left or right of them between
                            // (a slot's DMA then overwrites what is valid for it).
                            // (A slot with nothing to load leaves no rows valid: all of it.)
                            let live: Vec<_> = valids.iter().filter(|v| any(v)).collect();
                            let live = if live.len() == valids.len() {
                                live
                            } else {
                                Vec::new()
                            };
                            let top = live.iter().map(|v| v.2).max().unwrap_or(rows);
                            let bot = live.iter().map(|v| v.3).min().unwrap_or(rows).max(top);
                            let left = live.iter().map(|v| v.4).max().unwrap_or(0);
                            let right = live.iter().map(|v| v.5).min().unwrap_or(nc).max(left);
                            let at = |r: u64, c: u64| Expr::constant((r * nc + c) as i64);
                            let mut pad = |r0: u64, nr: u64, c0: u64, ncols: u64| {
                                if nr > 0 && ncols > 0 {
                                    body.push(KOp::Memset {
                                        dst: View::buf(
                                            &xs,
                                            0,
                                            nall,
                                            at(r0, c0),
                                            vec![(nr, nc as i64), (ncols, 1)],
                                        ),
                                        value: fill,
                                    });
                                }
                            };
                            pad(0, top, 0, nc);
                            pad(bot, rows - bot, 0, nc);
                            pad(top, bot - top, 0, left);
                            pad(top, bot - top, right, nc - right);
                        }
                        for (k, v) in valids.iter().enumerate() {
                            let &(r0, c0, rlo, rhi, clo, chi) = v;
                            if !any(v) {
                                continue;
                            }
                            body.push(KOp::Dma {
                                dst: View::buf(
                                    &xs,
                                    starts[k],
                                    np,
                                    Expr::constant((rlo * nc + clo) as i64),
                                    vec![(rhi - rlo, nc as i64), (chi - clo, 1)],
                                ),
                                src: View::hbm(
                                    ps.src,
                                    np,
                                    h * w,
                                    Expr::constant(
                                        plane_off
                                            + (r0 + (rlo * gr) as i64) * w
                                            + c0
                                            + (clo * gc) as i64,
                                    ),
                                    vec![(rhi - rlo, gr as i64 * w), (chi - clo, gc as i64)],
                                ),
                            });
                        }
                        loads.push((ls, body.len()));
                        if valids.iter().any(any) {
                            if let Some(e) = ps.pre {
                                // |x|^e (padding zeros stay zero)
                                body.push(KOp::TensorScalar {
                                    dst: tile(&xs, nall, 0, rows * nc),
                                    src: tile(&xs, nall, 0, rows * nc),
                                    op0: Alu::AbsMax,
                                    scalar0: ScalarArg::Imm(0.0),
                                    op1: Alu::Pow,
                                    scalar1: ScalarArg::Imm(e),
                                    reverse0: false,
                                    reverse1: false,
                                });
                            }
                        }
                        let t = View::buf(
                            "t",
                            0,
                            nall,
                            Expr::constant((m0 * wb) as i64),
                            vec![(rows, wb as i64), (wb, 1)],
                        );
                        for b in 0..kb {
                            let win = View::buf(
                                &xs,
                                0,
                                nall,
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
                        nall,
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
            let (oh0, ow0) = (grp[0].0, grp[0].2);
            let pix_off = (oh0 * ow as u64 + ow0) as i64;
            let pix_dims = vec![(hb, ow), (wb, 1)];
            if avg {
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
            if let Some(e) = ps.post {
                body.push(KOp::TensorScalar {
                    dst: y.clone(),
                    src: y.clone(),
                    op0: Alu::Pow,
                    scalar0: ScalarArg::Imm(e),
                    op1: Alu::Bypass,
                    scalar1: ScalarArg::Imm(0.0),
                    reverse0: false,
                    reverse1: false,
                });
            }
            for (k, &(oh0, _, ow0, _)) in grp.iter().enumerate() {
                let pix_off = (oh0 * ow as u64 + ow0) as i64;
                let hs = hb.min(oh as u64 - oh0);
                body.push(KOp::Dma {
                    dst: View::hbm(
                        ps.dst,
                        np,
                        oh * ow,
                        Expr::constant(plane_off / (h * w) * oh * ow + pix_off),
                        vec![(hs, ow), (wb, 1)],
                    ),
                    src: View::buf(&ys, starts[k], np, Expr::constant(0), vec![(hs * wb, 1)]),
                });
            }
        }
        p0 += np;
    }
    let body = loads_ahead(body, &loads);
    let mut buffers = vec![
        sbuf("x0", pmax, slab_max),
        sbuf("x1", pmax, slab_max),
        sbuf("t", pmax, t_max),
        sbuf("y0", pmax, block_rows * plan.wb),
        sbuf("y1", pmax, block_rows * plan.wb),
    ];
    if map.is_some() {
        buffers.push(sbuf("rc", pmax, block_rows * plan.wb));
    }
    l.push_kernel(Kernel {
        name: node.name.clone(),
        op: node.op.name().to_string(),
        buffers,
        body: body.into_iter().map(Stmt::Op).collect(),
    });
}

/// `body` with each slab's loads (`loads[i]`: a range of `body`) moved to just before the ops
/// that follow the previous slab's loads: slab i + 1 loads (into the other slab buffer) while
/// slab i is reduced. Byte-range synchronisation keeps it correct: a slab buffer's loads still
/// wait for the reduction two slabs back that read it.
fn loads_ahead(body: Vec<KOp>, loads: &[(usize, usize)]) -> Vec<KOp> {
    let Some(&(first, _)) = loads.first() else {
        return body;
    };
    let len = body.len();
    let mut slots: Vec<Option<KOp>> = body.into_iter().map(Some).collect();
    let mut take = |r: std::ops::Range<usize>| -> Vec<KOp> {
        r.filter_map(|i| slots[i].take()).collect::<Vec<_>>()
    };
    let mut out = take(0..first);
    out.extend(take(loads[0].0..loads[0].1));
    for (i, &(_, le)) in loads.iter().enumerate() {
        let next = loads.get(i + 1);
        if let Some(&(ns, ne)) = next {
            out.extend(take(ns..ne));
        }
        out.extend(take(le..next.map_or(len, |&(ns, _)| ns)));
    }
    out
}

/// MaxPool's `Indices` output (`iv`): for each output pixel, the flat index of the first input
/// element (in window order) equal to the pooled maximum `y` (already in HBM), counted over the
/// whole tensor row-major, or with the spatial axes column-major under `storage_order = 1`, as
/// ONNX defines it. Each tile of planes holds its whole padded input plane (padding at the
/// lowest float, so it never matches); the taps are visited last to first, each one
/// `IOTA`-generating its candidate indices, comparing its window with `y` and `SELECT`ing the
/// candidate where they are equal, so the first matching tap is the one that stays.
#[allow(clippy::too_many_arguments)]
fn argmax(
    l: &mut Lowerer,
    node: &Node,
    x: &str,
    y: &str,
    iv: crate::graph::ValueId,
    planes: u64,
    h: Axis,
    w: Axis,
    col_major: bool,
) -> Result<(), Diagnostic> {
    let idx = l.place_output(iv, node)?;
    let reach = |a: &Axis| (a.n + a.pb).max((a.o - 1) * a.s + (a.k - 1) * a.d + 1);
    let (hp, wp) = (reach(&h), reach(&w));
    let plane_max = SLAB_BYTES / Dtype::Fp32.size_bytes();
    let npix = (h.o * w.o) as u64;
    let hw = h.n * w.n;
    if (hp * wp) as u64 > plane_max || npix > ELEMENTWISE_FREE_MAX {
        return Err(node_error(
            node,
            Code::NotLowered,
            format!(
                "the Indices output needs a padded plane of {hp}x{wp} (at most {plane_max} elements) and at most {ELEMENTWISE_FREE_MAX} output pixels, got {npix}"
            ),
        ));
    }
    if (planes as i64 * hw) as f32 > super::EXACT_INT_LIMIT {
        return Err(node_error(
            node,
            Code::NotLowered,
            format!(
                "indices up to {} exceed the integers the chip computes exactly",
                planes as i64 * hw
            ),
        ));
    }
    let padded = hp * wp != hw;
    let mut body = Vec::new();
    let p = machine::PARTITIONS;
    let mut p0 = 0u64;
    while p0 < planes {
        let np = p.min(planes - p0);
        let base0 = p0 as i64 * hw;
        let pix = |name: &str| View::buf(name, 0, np, Expr::constant(0), vec![(npix, 1)]);
        if padded {
            body.push(KOp::Memset {
                dst: tile("xp", np, 0, (hp * wp) as u64),
                value: f32::MIN,
            });
        }
        body.push(KOp::Dma {
            dst: View::buf(
                "xp",
                0,
                np,
                Expr::constant(h.pb * wp + w.pb),
                vec![(h.n as u64, wp), (w.n as u64, 1)],
            ),
            src: View::hbm(
                x,
                np,
                hw,
                Expr::constant(base0),
                vec![(h.n as u64, w.n), (w.n as u64, 1)],
            ),
        });
        body.push(KOp::Dma {
            dst: pix("ym"),
            src: View::hbm(
                y,
                np,
                npix as i64,
                Expr::constant(p0 as i64 * npix as i64),
                vec![(npix, 1)],
            ),
        });
        body.push(KOp::Memset {
            dst: pix("ix"),
            value: 0.0,
        });
        let grid = |name: &str| {
            View::buf(
                name,
                0,
                np,
                Expr::constant(0),
                vec![(h.o as u64, w.o), (w.o as u64, 1)],
            )
        };
        for a in (0..h.k).rev() {
            for b in (0..w.k).rev() {
                let (r, c) = (a * h.d - h.pb, b * w.d - w.pb);
                let (base, steps) = if col_major {
                    (base0 + c * h.n + r, vec![h.s, w.s * h.n])
                } else {
                    (base0 + r * w.n + c, vec![h.s * w.n, w.s])
                };
                let win = View::buf(
                    "xp",
                    0,
                    np,
                    Expr::constant(a * h.d * wp + b * w.d),
                    vec![(h.o as u64, h.s * wp), (w.o as u64, w.s)],
                );
                body.push(KOp::Iota {
                    dst: grid("cand"),
                    base,
                    part_step: hw,
                    steps,
                });
                body.push(KOp::TensorTensor {
                    dst: grid("eq"),
                    a: win,
                    b: grid("ym"),
                    op: Alu::IsEqual,
                });
                body.push(KOp::Select {
                    dst: pix("ix"),
                    pred: pix("eq"),
                    on_true: pix("cand"),
                    on_false: pix("ix"),
                });
            }
        }
        body.push(KOp::Dma {
            dst: View::hbm(
                &idx.tensor,
                np,
                npix as i64,
                Expr::constant(p0 as i64 * npix as i64),
                vec![(npix, 1)],
            ),
            src: pix("ix"),
        });
        p0 += np;
    }
    let pmax = planes.min(p);
    l.push_kernel(Kernel {
        name: node.name.clone(),
        op: node.op.name().to_string(),
        buffers: vec![
            sbuf("xp", pmax, (hp * wp) as u64),
            sbuf("ym", pmax, npix),
            sbuf("ix", pmax, npix),
            sbuf("cand", pmax, npix),
            sbuf("eq", pmax, npix),
        ],
        body: body.into_iter().map(Stmt::Op).collect(),
    });
    Ok(())
}
