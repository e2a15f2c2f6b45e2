//! `Conv` (1-D, 2-D and 3-D, NCHW/NCDHW; strides, pads, dilations, groups) on the tensor engine
//! as matmuls over kernel positions accumulating in PSUM. 3-D adds a depth axis to the plan
//! below (2-D is its case of one plane): a band is several whole output depth planes (or rows of
//! one plane when a plane does not fit), its slab holds the input planes they read, every
//! (kd, kh, kw) tap is a matmul, and a block spans whole planes when they fit one matmul.
//!
//! The plan, per node:
//!
//! * **Weights** stay resident in SBUF for the whole kernel when they fit in half of the kernel's
//!   SBUF share (every ResNet-50 layer does): `[Cin_tile, (group, Cout_tile, Cin_tile, kh, kw),
//!   Cout_tile]`. Constant weights are stored in HBM pre-arranged in exactly that layout (zero
//!   padded to whole tiles), so they stream in a few large contiguous DMAs, each a chunk of the
//!   free dimension over all partitions (every DMA engine), in the order the matmuls consume
//!   them. Weights that are
//!   graph inputs are gathered from `OIHW` with strided DMAs. Weights too large for SBUF are
//!   reloaded per output-channel tile into two alternating buffers.
//! * **Input** is loaded per *band* of output rows: the band's input window (a slab of rows x
//!   the input's width) per input-channel tile, DMAed in and converted to the operand precision,
//!   in chunks of partition groups x rows. An image that fits SBUF whole is still cut into up to
//!   [`PIPELINE_BANDS`] bands of whole blocks, and bands rotate over three buffers (two when
//!   three do not fit), so a band loads while the two before it compute and store. Padding rows
//!   are `MEMSET` on the vector engine per band. Padding columns are not materialised when a
//!   kernel column reads inside the image for every output column (a *full* tap): each tap's
//!   matmul then covers only the output columns it reads inside the image, the full tap first
//!   (it zeroes the accumulator), and the window's rows are contiguous (one DMA run per
//!   channel). Otherwise the window is zero-padded (the padding zeroed once per buffer), and
//!   when per-row descriptors cost the DMA engines more than a vector-engine copy, the valid
//!   rows land contiguously in a staging buffer and a `TENSOR_COPY` places them. No chunk cuts
//!   contiguous rows into runs shorter than [`super::tiles::min_run_bytes`].
//! * **Partition slots**: a 2-D layer whose input and output channels fit in a quarter or half
//!   of the partitions (ResNet's 56x56 layers, YOLO's early ones) runs 4 or 2 horizontal strips
//!   of the image side by side, each on its own partitions, with the weights block-diagonal in
//!   SBUF (stored once in HBM, loaded once per slot): one matmul contracts every strip, so the
//!   tensor engine streams that many times fewer columns and the strips' loads and stores use
//!   that many more DMA engines ([`Slots`]).
//! * **Row packing**: a stem (input channels x kernel rows within the smallest partition slot,
//!   e.g. 3 channels x 7 rows) whose image is large enough to pay for it first builds the rows
//!   each kernel row reads, `x'[kh * C + c, oh, w]`, in HBM, and runs as a `1 x KW` kernel over
//!   `KH * C` channels: `KH` times fewer matmuls ([`RowPack`]).
//! * **Compute**: per band, output-channel tile and block of output pixels (several whole rows,
//!   at most `max_moving_free` pixels), every (input-channel tile, kh, kw) issues
//!   `LOAD_STATIONARY` of its `[Cin_tile, Cout_tile]` weights and a `MATMUL` whose moving operand
//!   is the slab read with the conv's strides and dilations, shifted by the kernel position.
//!   Blocks rotate over half the PSUM banks, so evacuating one block overlaps the next block's
//!   matmuls (the other half is left to the next kernel).
//! * **Evacuation** applies the node's epilogue ([`super::epilogue`]: the per-channel bias, and
//!   for a `FusedConv` its activation and residual, the residual loaded a band at a time like
//!   the input) into a band buffer of the result. Bias alone or with ReLU alternates between the
//!   scalar engine (`ACTIVATE`) and the vector engine (`TENSOR_SCALAR` add, max 0), so the two
//!   share the work. Each output-channel tile of a band is stored to HBM (contiguous rows per
//!   channel) as soon as it is complete, in chunks spread over the queues.
//!
//! Grouped convolutions with small groups (depthwise) pack several groups into one tile with
//! block-diagonal constant weights, so the array works on up to `pe_rows` channels at once.
//! A layer whose band of one output row does not fit SBUF is a compile error (E1302).

use super::conv_attrs::ConvAttrs;
use super::epilogue::Epilogue;
use super::tiles::min_run_bytes;
use super::{node_error, HbmKind, Lowerer};
use crate::diag::{Code, Diagnostic};
use crate::graph::Node;
use crate::kernel::{Accumulate, Alu, Buffer, Expr, KOp, Kernel, ScalarArg, Stmt, View};
use tahoma_isa::{costs, machine, Act, Dtype, Mem};

/// SBUF bytes per partition one conv kernel aims to stay within: half a partition, so that
/// consecutive kernels land in different halves of the rotating allocator and overlap (a tiling
/// choice; a layer that needs more may take up to the whole partition).
fn sbuf_budget() -> u64 {
    machine::SBUF_PARTITION_BYTES / 2
}

/// PSUM accumulators (one bank each) the blocks rotate over: half the banks, for the same
/// reason as [`sbuf_budget`].
fn psum_accs() -> u64 {
    (machine::PSUM_BANKS / 2).max(1)
}

/// The smallest DMA worth a queue of its own: one whose transfer lasts at least its trigger
/// latency.
fn min_dma_bytes() -> u64 {
    machine::DMA_TRIGGER_LATENCY * machine::DMA_ENGINE_BYTES_PER_CYCLE
}

/// How many DMAs to split a transfer of `bytes` into: enough to use the queues, none smaller
/// than [`min_dma_bytes`].
fn pieces(bytes: u64, max: u64) -> u64 {
    (bytes / min_dma_bytes()).clamp(1, max.max(1))
}

/// How many DMAs to split the kernel's last store of `bytes` into: it is the kernel's tail, with
/// nothing left to overlap, so it is cut [`STORE_DIVISOR`] times finer than [`pieces`] would.
fn store_pieces(bytes: u64, max: u64) -> u64 {
    (bytes * STORE_DIVISOR / min_dma_bytes()).clamp(1, max.max(1))
}

/// How much finer than other DMAs the last store is cut (a tiling choice).
const STORE_DIVISOR: u64 = 4;

/// How many bands a 2-D image that fits SBUF whole is cut into, at most (a tiling choice:
/// measured on the benchmark suite's 56x56 layers, 4 beats 1, 2 and 8).
const PIPELINE_BANDS: u64 = 4;

/// `n` split into `k` nearly equal ranges (start, len), none empty.
fn chunks(n: u64, k: u64) -> Vec<(u64, u64)> {
    let k = k.clamp(1, n.max(1));
    let mut v = Vec::new();
    let mut at = 0;
    for i in 0..k {
        let len = (n - at) / (k - i);
        if len > 0 {
            v.push((at, len));
        }
        at += len;
    }
    v
}

/// `parts` partitions split into at most `want` groups whose starts and sizes satisfy the
/// partition-start rule (chunks of one of the rule's sizes).
fn part_groups(parts: u64, want: u64) -> Vec<(u64, u64)> {
    let fits = |chunk: u64| {
        let n = parts.div_ceil(chunk);
        n <= want.max(1)
            && (0..n).all(|i| {
                let (start, count) = (i * chunk, chunk.min(parts - i * chunk));
                machine::PARTITION_RULES
                    .iter()
                    .find(|(max, _)| count <= *max)
                    .is_some_and(|(_, starts)| starts.contains(&start))
            })
    };
    let chunk = machine::PARTITION_RULES
        .iter()
        .map(|&(max, _)| max)
        .filter(|&c| fits(c))
        .min()
        .unwrap_or(parts.max(1));
    (0..parts.div_ceil(chunk).max(1))
        .map(|i| (i * chunk, chunk.min(parts - i * chunk)))
        .collect()
}

/// A transfer of `rows` rows on `parts` partitions split into about `want` DMAs: partition
/// groups x row ranges, each range at most `max_rows` rows.
fn grid(
    parts: u64,
    rows: u64,
    want: u64,
    max_rows: u64,
    row_bytes: u64,
) -> Vec<((u64, u64), (u64, u64))> {
    let pg = part_groups(parts, want);
    let least = rows.div_ceil(max_rows.max(1));
    // Rows contiguous with each other (`row_bytes` > 0) are one descriptor's run: cut them into
    // no runs shorter than min_run_bytes.
    let most = if row_bytes > 0 {
        (rows * row_bytes / min_run_bytes()).max(1)
    } else {
        u64::MAX
    };
    let per = (want / pg.len() as u64).max(1).min(most).max(least);
    let rc = chunks(rows, per);
    pg.iter()
        .flat_map(|&p| rc.iter().map(move |&r| (p, r)))
        .collect()
}

/// Partition slots of a layer whose channels fill at most part of the partitions: the output rows
/// are cut into `count` strips, strip s computed on partitions `[s * pitch, s * pitch + channels)`
/// of every buffer. The stationary is block-diagonal (the weights once per slot), so one matmul
/// contracts all strips at once and each strip's outputs land on its own partitions: the tensor
/// engine streams `count` times fewer columns, and the loads and stores of the strips spread over
/// `count` times as many DMA engines.
#[derive(Clone, Copy, Debug)]
struct Slots {
    count: u64,
    pitch: u64,
}

impl Slots {
    /// No slots: the whole image on partitions from 0.
    fn one() -> Slots {
        Slots {
            count: 1,
            pitch: machine::PARTITIONS,
        }
    }

    /// The most slots that `channels` (input and output, per slot) and `rows` output rows (cut
    /// evenly) allow: a pitch is a partition-rule count whose allowed starts are all its
    /// multiples.
    fn choose(channels: u64, rows: u64) -> Slots {
        let p = machine::PARTITIONS;
        super::tiles::slot_rules(channels)
            .filter(|&(pitch, starts)| {
                pitch < p
                    && p.is_multiple_of(pitch)
                    && (0..p / pitch).all(|i| starts.contains(&(i * pitch)))
            })
            .map(|(pitch, _)| Slots {
                count: p / pitch,
                pitch,
            })
            .find(|s| rows.is_multiple_of(s.count))
            .unwrap_or_else(Slots::one)
    }

    /// The first partition of each slot.
    fn bases(self) -> impl Iterator<Item = u64> {
        (0..self.count).map(move |s| s * self.pitch)
    }

    /// Partitions spanned by `parts` partitions in every slot: all of them when there are slots
    /// (the last slot's gap included, so a block-diagonal stationary has the same shape for
    /// every slot), else `parts`.
    fn span(self, parts: u64) -> u64 {
        if self.count > 1 {
            self.count * self.pitch
        } else {
            parts
        }
    }
}

/// Geometry of a 3-D convolution (2-D ones have D = KD = 1, 1-D ones also H = KH = 1).
#[derive(Clone, Copy, Debug)]
struct Geo {
    d: u64,
    od: u64,
    kd: u64,
    sd: u64,
    dd: u64,
    pf: i64,
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

impl Geo {
    /// Input depth planes a band of `planes` output depth planes reads.
    fn slab_deps(&self, planes: u64) -> u64 {
        (planes - 1) * self.sd + (self.kd - 1) * self.dd + 1
    }
    /// Input rows a band of `rows` output rows reads.
    fn slab_rows(&self, rows: u64) -> u64 {
        (rows - 1) * self.sh + (self.kh - 1) * self.dh + 1
    }
    /// Input columns (padded) the full output width reads.
    fn slab_cols(&self) -> u64 {
        (self.ow - 1) * self.sw + (self.kw - 1) * self.dw + 1
    }
}

/// A buffer of at least one partition and one element.
pub(super) fn buf(name: &str, mem: Mem, dtype: Dtype, partitions: u64, free: u64) -> Buffer {
    Buffer {
        name: name.into(),
        mem,
        dtype,
        partitions: partitions.max(1),
        free: free.max(1),
    }
}

fn vp(name: &str, p0: u64, parts: u64, off: u64, dims: Vec<(u64, i64)>) -> View {
    View::buf(name, p0, parts, Expr::constant(off as i64), dims)
}

/// A view of buffer `name` from partition 0 at constant offset `off`.
pub(super) fn v(name: &str, parts: u64, off: u64, dims: Vec<(u64, i64)>) -> View {
    vp(name, 0, parts, off, dims)
}

/// Lowers a Conv node.
pub fn lower(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    let x = l.placed(node.inputs[0]);
    let rank = x.shape.len();
    if !(3..=5).contains(&rank) || !l.graph.ty(node.inputs[0]).dtype.is_float() {
        return Err(node_error(
            node,
            Code::NotLowered,
            format!(
                "only float 1-D, 2-D and 3-D convolutions are lowered, this one has {} spatial axes",
                rank.saturating_sub(2)
            ),
        ));
    }
    let a = ConvAttrs::read(l, node)?;
    let wconst = l.graph.const_value(node.inputs[1]).map(|t| t.to_f32_vec());
    match RowPack::plan(l, node, &x, &a, wconst.as_deref()) {
        Some(rp) => lower_input(l, node, rp.x, rp.attrs, Some(rp.w), rp.prologue, rp.buffers),
        None => lower_input(l, node, x, a, wconst, Vec::new(), Vec::new()),
    }
}

/// A 2-D convolution whose input channels times kernel rows fit a partition slot (a stem: 3
/// channels, 7x7) has its kernel rows packed onto partitions: the kernel's first statements
/// build `x'[n, kh * C + c, oh, w] = x[n, c, oh * sh + kh * dh - pt, w]` in HBM (zero where
/// that row is padding) by HBM -> HBM DMAs, a band of output rows at a time, and the
/// convolution proper runs on `x'` as a `1 x KW` kernel over `KH * C` channels with row stride
/// 1: the tensor engine streams `KH` times fewer columns (a `3 x 224 x 224` input with a `7 x 7`
/// kernel: 7 matmuls per block instead of 49), and x' is stored at the operand precision.
struct RowPack {
    x: super::Placed,
    attrs: ConvAttrs,
    /// Weights rearranged as `[cout, KH * C, 1, KW]`.
    w: Vec<f32>,
    prologue: Vec<Stmt>,
    buffers: Vec<Buffer>,
}

/// Bands of output rows the row packing's DMAs are cut into, so that the convolution's first
/// band waits for its own rows only (a tiling choice, matching [`PIPELINE_BANDS`]).
const PACK_BANDS: u64 = PIPELINE_BANDS;

impl RowPack {
    fn plan(
        l: &mut Lowerer,
        node: &Node,
        x: &super::Placed,
        a: &ConvAttrs,
        w: Option<&[f32]>,
    ) -> Option<RowPack> {
        let w = w?;
        let (kh, kw) = (a.kernel[1], a.kernel[2]);
        let (n, c) = (x.shape[0], x.shape[1]);
        let packed = c * kh;
        // Only when the packed channels fit the smallest partition slot (the layer then still
        // gets slots) and there is more than one kernel row to pack.
        let slot = super::tiles::slot_rules(1).next().map_or(0, |r| r.0);
        let most_slots = machine::PARTITIONS / slot.max(1);
        if a.nsp != 2 || a.groups != 1 || kh < 2 || packed > slot || n == 0 {
            return None;
        }
        let (h, wd) = (a.x[1], a.x[2]);
        let (oh, sh, dh, pt) = (a.y[1], a.strides[1], a.dilations[1], a.pads[1]);
        let cout = a.w_shape[0];
        let opd = l.opts.precision.operand_dtype();
        // Worth it when the matmul columns it saves (counted at the most slots a layer gets)
        // outlast what it adds: two DMA trigger latencies (the packing, then the loads that
        // wait for it) and moving x' through HBM.
        let maxn = machine::MAX_MOVING_FREE;
        let blocks = (n * oh * a.y[2]).div_ceil(maxn);
        let saved = blocks * costs::matmul_cycles(maxn, opd) * (kh - 1) * kw / most_slots;
        let xp_bytes = n * packed * oh * wd * x.dtype.size_bytes().max(opd.size_bytes());
        let added = 2 * machine::DMA_TRIGGER_LATENCY + xp_bytes / machine::HBM_BYTES_PER_CYCLE;
        if saved <= added {
            return None;
        }
        let xp = l.new_tensor(
            &format!("{}_rows", node.name),
            opd,
            vec![n, packed, oh, wd],
            HbmKind::Scratch,
        );
        // Output rows [lo, hi) of kernel row `r` read inside the image.
        let valid = |r: u64| {
            let off = (r * dh) as i64 - pt;
            let lo = ((-off).max(0) as u64).div_ceil(sh);
            let last = h as i64 - 1 - off;
            let hi = if last < 0 {
                0
            } else {
                (last as u64 / sh + 1).min(oh)
            };
            (lo.min(oh), hi.max(lo.min(oh)))
        };
        let zero_rows = (0..kh)
            .map(|r| {
                let (lo, hi) = valid(r);
                lo.max(oh - hi)
            })
            .max()
            .unwrap_or(0);
        let mut prologue = Vec::new();
        let mut buffers = Vec::new();
        if zero_rows > 0 {
            buffers.push(buf("zrows", Mem::Sbuf, opd, c, zero_rows * wd));
            prologue.push(Stmt::Op(KOp::Memset {
                dst: v("zrows", c, 0, vec![(zero_rows * wd, 1)]),
                value: 0.0,
            }));
        }
        let plane = (oh * wd) as i64;
        let dst_at =
            |img: u64, r: u64, row: u64| (((img * kh + r) * c) as i64) * plane + (row * wd) as i64;
        for img in 0..n {
            for (b0, bn) in chunks(oh, PACK_BANDS) {
                for r in 0..kh {
                    let (lo, hi) = valid(r);
                    // Padding rows of this band, then its rows inside the image.
                    let (v0, v1) = (lo.clamp(b0, b0 + bn), hi.clamp(b0, b0 + bn));
                    for (z0, zn) in [(b0, v0 - b0), (v1, b0 + bn - v1)] {
                        if zn > 0 {
                            prologue.push(Stmt::Op(KOp::Dma {
                                dst: View::hbm(
                                    &xp,
                                    c,
                                    plane,
                                    Expr::constant(dst_at(img, r, z0)),
                                    vec![(zn * wd, 1)],
                                ),
                                src: v("zrows", c, 0, vec![(zn * wd, 1)]),
                            }));
                        }
                    }
                    if v1 > v0 {
                        let src_row = (v0 * sh + r * dh) as i64 - pt;
                        prologue.push(Stmt::Op(KOp::Dma {
                            dst: View::hbm(
                                &xp,
                                c,
                                plane,
                                Expr::constant(dst_at(img, r, v0)),
                                vec![(v1 - v0, wd as i64), (wd, 1)],
                            ),
                            src: View::hbm(
                                &x.tensor,
                                c,
                                (h * wd) as i64,
                                Expr::constant(((img * c * h) as i64 + src_row) * wd as i64),
                                vec![(v1 - v0, (sh * wd) as i64), (wd, 1)],
                            ),
                        }));
                    }
                }
            }
        }
        // W'[o, r * C + ci, 0, k] = W[o, ci, r, k].
        let mut wp = vec![0f32; (cout * packed * kw) as usize];
        for o in 0..cout {
            for ci in 0..c {
                for r in 0..kh {
                    for k in 0..kw {
                        wp[((o * packed + r * c + ci) * kw + k) as usize] =
                            w[(((o * c + ci) * kh + r) * kw + k) as usize];
                    }
                }
            }
        }
        let mut attrs = a.clone();
        attrs.kernel[1] = 1;
        attrs.strides[1] = 1;
        attrs.dilations[1] = 1;
        attrs.pads[1] = 0;
        attrs.x[1] = oh;
        attrs.w_shape = vec![cout, packed, 1, kw];
        Some(RowPack {
            x: super::Placed {
                tensor: xp,
                dtype: opd,
                shape: vec![n, packed, oh, wd],
            },
            attrs,
            w: wp,
            prologue,
            buffers,
        })
    }
}

/// Lowers a Conv node reading input `x` with attributes `a` and constant weights `wconst`
/// (`[cout, cin / groups, kd, kh, kw]` values, when constant); the kernel's body starts with
/// `prologue` and its buffers include `extra`.
fn lower_input(
    l: &mut Lowerer,
    node: &Node,
    x: super::Placed,
    a: ConvAttrs,
    wconst: Option<Vec<f32>>,
    prologue: Vec<Stmt>,
    extra: Vec<Buffer>,
) -> Result<(), Diagnostic> {
    let opd = l.opts.precision.operand_dtype();
    let (epilogue, n_conv) = Epilogue::of_node(l, node)?;
    let conv_inputs = &node.inputs[..n_conv];
    let (groups, wshape) = (a.groups, &a.w_shape);
    // Views get a depth dim only in 3-D, so 1-D and 2-D kernels keep their two free dims.
    let deep = a.nsp == 3;
    let geo = Geo {
        d: a.x[0],
        od: a.y[0],
        kd: a.kernel[0],
        sd: a.strides[0],
        dd: a.dilations[0],
        pf: a.pads[0],
        h: a.x[1],
        w: a.x[2],
        oh: a.y[1],
        ow: a.y[2],
        kh: a.kernel[1],
        kw: a.kernel[2],
        sh: a.strides[1],
        sw: a.strides[2],
        dh: a.dilations[1],
        dw: a.dilations[2],
        pt: a.pads[1],
        pl: a.pads[2],
    };
    let (n, cin, cout) = (x.shape[0], x.shape[1], wshape[0]);
    let (mut cin_g, mut cout_g) = (cin / groups, cout / groups);
    // Kernel taps per (output, input) channel pair: kd x kh x kw.
    let khkw = geo.kd * geo.kh * geo.kw;
    let p = machine::PARTITIONS;
    // Pack small groups into one tile with block-diagonal weights (needs constant weights).
    let widest = cin_g.max(cout_g).max(1);
    let gpt = if groups > 1 && widest < p && wconst.is_some() {
        (1..=groups)
            .filter(|d| groups.is_multiple_of(*d) && d * widest <= p)
            .max()
            .unwrap_or(1)
    } else {
        1
    };
    // Constant weights as [cout, cin_g, kh, kw] values (block-diagonal when packed).
    let wvals = wconst.map(|wv| {
        if gpt == 1 {
            return wv;
        }
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
        packed
    });
    cin_g *= gpt;
    cout_g *= gpt;
    let groups = groups / gpt;

    // Tiles of input and output channels within a group.
    let split = |c: u64| -> Vec<(u64, u64)> {
        (0..c.div_ceil(p).max(1))
            .map(|i| (i * p, p.min(c - i * p)))
            .collect()
    };
    let (ci_tiles, co_tiles) = (split(cin_g), split(cout_g));
    let (nci, nco) = (ci_tiles.len() as u64, co_tiles.len() as u64);
    let (cimax, ctmax) = (cin_g.min(p), cout_g.min(p));
    let esz = opd.size_bytes();
    let fp32 = Dtype::Fp32.size_bytes();
    let bias_const = conv_inputs
        .get(2)
        .and_then(|&b| l.graph.const_value(b))
        .map(|t| t.to_f32_vec());
    // Partition slots: a layer with few channels runs `slots` horizontal strips of the image side
    // by side, strip s on partitions [s * pitch, s * pitch + channels), with block-diagonal
    // weights (see [`Slots`]).
    let sl = if groups == 1
        && wvals.is_some()
        && (conv_inputs.len() <= 2 || bias_const.is_some())
        && !deep
        && khkw * p * esz <= sbuf_budget() / 2
    {
        Slots::choose(cimax.max(ctmax), geo.oh)
    } else {
        Slots::one()
    };
    // Partitions the matmuls contract over and produce: every slot's channels and the gaps
    // between slots.
    let (kp, mp) = (sl.span(cimax), sl.span(ctmax));
    let oh_s = geo.oh / sl.count;

    // Weights: one block of khkw x mp per (group, co tile, ci tile).
    let wblock = khkw * mp;
    let w_total = groups * nco * nci * wblock;
    let resident = w_total * esz <= sbuf_budget() / 2;
    let w_free = if resident { w_total } else { nci * wblock };
    let w_bufs: u64 = if resident { 1 } else { 2 };
    // Column padding: when some kernel column reads inside the image for every output column
    // (a "full" tap), the window holds the input's own columns (`col0` = 0, rows contiguous:
    // one DMA run per channel) and each tap's matmul covers only the output columns it reads
    // inside the image; the full tap goes first and zeroes the accumulator. Else the window
    // is zero-padded (`col0` = -pl).
    let full_tap = |bb: u64| {
        let first = (bb * geo.dw) as i64 - geo.pl;
        first >= 0 && first + (((geo.ow - 1) * geo.sw) as i64) < geo.w as i64
    };
    let col_pad = geo.pl > 0 || geo.slab_cols() as i64 - geo.pl > geo.w as i64;
    let full_bb = (0..geo.kw).find(|&bb| full_tap(bb)).filter(|_| col_pad);
    let (cols, col0) = match full_bb {
        Some(_) => (geo.w, 0),
        // Without column padding the window takes whole input rows (contiguous runs), even
        // when a stride leaves the last columns unread.
        None if !col_pad => (geo.w, 0),
        None => (geo.slab_cols(), -geo.pl),
    };
    // Taps in weight order, the full tap's first.
    let taps: Vec<u64> = {
        let first = |pos: &u64| full_bb.is_some_and(|bb| pos % geo.kw == bb && *pos < geo.kw);
        (0..khkw)
            .filter(first)
            .chain((0..khkw).filter(|p| !first(p)))
            .collect()
    };
    // Channel-interleaved tiles: when every tile is full, input-channel tile j holds channels
    // p * nci + j on partition p (and output tile t channels p * nco + t), so a partition's
    // channels are consecutive in HBM: the input of every tile arrives in one run per
    // partition row range instead of one per tile, a plane each (the weights and bias are
    // pre-arranged to match). Needs whole rows in the window (no padded columns) and 2-D.
    let il =
        groups == 1 && nci > 1 && cin_g == nci * p && wvals.is_some() && !deep && cols == geo.w;
    let ol = groups == 1
        && nco > 1
        && cout_g == nco * p
        && wvals.is_some()
        && (conv_inputs.len() <= 2 || bias_const.is_some());
    // The graph channel of (tile, partition) for input and output channels.
    let in_ch = |j: usize, ci: u64| {
        if il {
            ci * nci + j as u64
        } else {
            ci_tiles[j].0 + ci
        }
    };
    let out_ch = |t: usize, co: u64| {
        if ol {
            co * nco + t as u64
        } else {
            co_tiles[t].0 + co
        }
    };
    // HBM channels between consecutive partitions of an output tile.
    let ch_stride = if ol { nco } else { 1 };
    // In HBM, per input channel: every block's taps of `tap` columns each (with slots, the one
    // slot block; the SBUF buffer holds it once per slot on the diagonal, zeros elsewhere, as
    // `[slot, tap, pitch]` columns).
    let (tap, w_hbm) = if sl.count > 1 {
        (sl.pitch, khkw * sl.pitch)
    } else {
        (mp, w_total)
    };
    let w_pre = wvals.map(|wv| {
        let mut pre = vec![0f32; (cimax * w_hbm) as usize];
        for g in 0..groups {
            for (t, &(_, ct)) in co_tiles.iter().enumerate() {
                for (j, &(_, cit)) in ci_tiles.iter().enumerate() {
                    let base = ((g * nco + t as u64) * nci + j as u64) * khkw * tap;
                    for ci in 0..cit {
                        for pos in 0..khkw {
                            for co in 0..ct {
                                let src = (((g * cout_g + out_ch(t, co)) * cin_g + in_ch(j, ci))
                                    * khkw
                                    + pos) as usize;
                                pre[(ci * w_hbm + base + pos * tap + co) as usize] = wv[src];
                            }
                        }
                    }
                }
            }
        }
        l.new_tensor(
            &format!("{}_w", node.name),
            opd,
            vec![cimax, w_hbm],
            HbmKind::Const { values: pre },
        )
    });
    let w_oihw = match &w_pre {
        Some(_) => None,
        None => Some(l.operand(node.inputs[1], opd).tensor),
    };
    // Bias: constant biases pre-arranged as [mp, groups * nco] (one DMA), once per slot.
    let bias_pre = bias_const.map(|bv| {
        let cols = groups * nco;
        let mut pre = vec![0f32; (mp * cols) as usize];
        for g in 0..groups {
            for (t, &(_, ct)) in co_tiles.iter().enumerate() {
                for sb in sl.bases() {
                    for co in 0..ct {
                        pre[((sb + co) * cols + g * nco + t as u64) as usize] =
                            bv[(g * cout_g + out_ch(t, co)) as usize];
                    }
                }
            }
        }
        l.new_tensor(
            &format!("{}_b", node.name),
            Dtype::Fp32,
            vec![mp, cols],
            HbmKind::Const { values: pre },
        )
    });
    let bias_in = match (&bias_pre, conv_inputs.get(2)) {
        (None, Some(&b)) => Some(l.placed(b).tensor),
        _ => None,
    };
    let has_bias = conv_inputs.len() > 2;
    let out = l.place_output(node.outputs[0], node)?;

    // Blocks of output pixels: whole rows when a row fits one matmul, else row pieces.
    let maxn = machine::MAX_MOVING_FREE;
    let owb = geo.ow.min(maxn).max(1);
    // As many rows as fit one matmul, balanced so that the blocks of a strip are alike.
    let rows_per_block = if geo.ow <= maxn {
        let most = (maxn / geo.ow.max(1)).clamp(1, oh_s.max(1));
        oh_s.div_ceil(oh_s.div_ceil(most)).max(1)
    } else {
        1
    };
    // In 3-D, blocks take several whole output planes when a whole plane fits one matmul.
    let planes_per_block = if rows_per_block >= geo.oh && geo.ow <= maxn {
        (maxn / (geo.oh * geo.ow).max(1)).clamp(1, geo.od)
    } else {
        1
    };
    let xsz = x.dtype.size_bytes().max(esz);
    // Padded rows arrive one descriptor each; when that costs the DMA engines more than one
    // vector-engine copy per plane, a channel tile's valid rows land contiguously in a staging
    // buffer `xt` (one run per partition) and the copy places them in the padded window.
    let stage = |rows: u64| {
        let descriptors = cimax * rows * machine::DMA_DESCRIPTOR_CYCLES / machine::DMA_ENGINES;
        cols > geo.w && descriptors > costs::vector_cycles(rows * geo.w, 1, 1)
    };
    let stage_elems = |rows: u64| if stage(rows) { rows * geo.w } else { 0 };
    // Bands: `bz` whole output depth planes (the whole volume when it fits the budget, else
    // halves); when one plane does not fit, bands of `band` rows of one plane (the whole image
    // when it fits, else halves). 2-D convs have one plane.
    let need = |planes: u64, rows: u64, bufs: u64| {
        let slab = nci * geo.slab_deps(planes) * geo.slab_rows(rows) * cols * esz;
        let y =
            nco * planes * rows * geo.ow * fp32 * if epilogue.residual.is_some() { 2 } else { 1 };
        w_bufs * w_free * esz
            + bufs * (slab + y)
            + groups * nco * fp32
            + bufs * stage_elems(geo.slab_rows(rows)) * esz
    };
    let mut bz = geo.od;
    while bz > 1 && need(bz, geo.oh, 2) > sbuf_budget() {
        bz = bz.div_ceil(2);
        if bz > planes_per_block {
            bz -= bz % planes_per_block;
        }
    }
    let mut band = oh_s;
    if bz == 1 {
        while band > 1
            && need(1, band, if band < oh_s || geo.od > 1 { 2 } else { 1 }) > sbuf_budget()
        {
            band = band.div_ceil(2);
            if band > rows_per_block {
                band -= band % rows_per_block;
            }
        }
    }
    // An image that fits whole is still cut into bands of whole blocks (up to PIPELINE_BANDS),
    // so the first band's matmuls start when its rows arrive and the last band's store is short.
    if bz == 1 && geo.od == 1 && band == oh_s {
        let blocks = oh_s.div_ceil(rows_per_block);
        band = blocks.div_ceil(PIPELINE_BANDS.min(blocks).max(1)) * rows_per_block;
    }
    let (nbz, nbands) = (geo.od.div_ceil(bz), oh_s.div_ceil(band));
    // Band buffers: three when there are more than two bands and they fit the budget, so a
    // band's input loads (and its result stores) while the two bands before it compute: one
    // band's compute is shorter than a DMA's trigger latency plus its transfer.
    let total_bands = n * nbz * nbands;
    let xbufs = if total_bands > 2 && need(bz, band, 3) <= sbuf_budget() {
        3
    } else {
        total_bands.min(2)
    };
    let slab_elems = geo.slab_deps(bz) * geo.slab_rows(band) * cols;
    // Elements per output-channel tile in a band buffer of the result.
    let band_elems = bz * band * geo.ow;
    let max_elems = machine::MAX_FREE_ELEMS_SBUF;
    if need(bz, band, xbufs) > machine::SBUF_PARTITION_BYTES
        || cols > max_elems
        || geo.ow > max_elems
    {
        return Err(node_error(
            node,
            Code::OnChipMemory,
            format!(
                "a band of {bz} x {band} output rows ({} x {} x {cols} input window for {cin_g} channels, {} x {} outputs for {cout_g} channels) does not fit SBUF",
                geo.slab_deps(bz),
                geo.slab_rows(band),
                bz * band,
                geo.ow
            ),
        ).help("a smaller input (fewer columns) would fit; the conv lowering tiles planes and rows, not columns"));
    }

    let q = machine::DMA_QUEUES;
    let mut body: Vec<Stmt> = prologue;
    let mut emit = |op: KOp| body.push(Stmt::Op(op));

    // Bias, then resident weights, split so that they and the first slab use every queue.
    if let Some(b) = &bias_pre {
        let cols_b = groups * nco;
        emit(KOp::Dma {
            dst: v("bias", mp, 0, vec![(cols_b, 1)]),
            src: View::hbm(b, mp, cols_b as i64, Expr::constant(0), vec![(cols_b, 1)]),
        });
    }
    // Partitions between slots are never loaded but the matmuls contract over them (with zero
    // weights), and the window's padding columns are never written by a load: zero both once
    // per buffer (so no stale non-finite value reaches a sum), not once per band.
    let pad_cols = col0 < 0 && col_pad;
    if kp > sl.count * cimax || pad_cols {
        for i in 0..xbufs {
            let len = nci * slab_elems;
            for (c0, cn) in chunks(len, len.div_ceil(max_elems)) {
                emit(KOp::Memset {
                    dst: v(&format!("x{i}"), kp, c0, vec![(cn, 1)]),
                    value: 0.0,
                });
            }
        }
    }
    // The first band's input and the resident weights share the queues in proportion to
    // their bytes; the input goes first (every matmul needs it), the weights after it.
    let first_slab_bytes = sl.count * nci * cimax * slab_elems * xsz;
    let w_bytes = kp * w_total * esz;
    let w_pieces = if resident {
        let share = (q * w_bytes)
            .div_ceil(w_bytes + first_slab_bytes)
            .clamp(1, q - 1);
        pieces(w_bytes, share)
    } else {
        0
    };
    let mut wdmas: Vec<KOp> = Vec::new();
    // Loads the weights of (g, t, ci tile j) into `wb` at element `at` (graph-input weights).
    let w_gather = |emit: &mut dyn FnMut(KOp), wb: &str, at: u64, g: u64, t: usize, j: usize| {
        let (co0, ct) = co_tiles[t];
        let (ci0, cit) = ci_tiles[j];
        let w_t = w_oihw.as_ref().expect("graph-input weights");
        emit(KOp::Dma {
            dst: v(wb, cit, at, vec![(khkw, ctmax as i64), (ct, 1)]),
            src: View::hbm(
                w_t,
                cit,
                khkw as i64,
                Expr::constant((((g * cout_g + co0) * cin_g + ci0) * khkw) as i64),
                vec![(khkw, 1), (ct, (cin_g * khkw) as i64)],
            ),
        });
    };
    if resident {
        match &w_pre {
            Some(wt) => {
                // With slots, the blocks off the diagonal are zeros.
                if sl.count > 1 {
                    for (c0, cn) in chunks(w_total, w_total.div_ceil(max_elems)) {
                        emit(KOp::Memset {
                            dst: v("w", kp, c0, vec![(cn, 1)]),
                            value: 0.0,
                        });
                    }
                }
                // Chunks of the free dimension over all partitions (of every slot), in the
                // order the matmuls consume them: each uses every DMA engine, so the first
                // lands first.
                let runs = (w_hbm * esz / min_run_bytes()).max(1);
                let want = (w_pieces / sl.count)
                    .max(1)
                    .min(runs)
                    .max(w_hbm.div_ceil(max_elems));
                for (f0, fnum) in chunks(w_hbm, want) {
                    for (si, sb) in sl.bases().enumerate() {
                        wdmas.push(KOp::Dma {
                            dst: vp("w", sb, cimax, si as u64 * w_hbm + f0, vec![(fnum, 1)]),
                            src: View::hbm(
                                wt,
                                cimax,
                                w_hbm as i64,
                                Expr::constant(f0 as i64),
                                vec![(fnum, 1)],
                            ),
                        });
                    }
                }
            }
            None => {
                for g in 0..groups {
                    for t in 0..co_tiles.len() {
                        for j in 0..ci_tiles.len() {
                            let at = ((g * nco + t as u64) * nci + j as u64) * wblock;
                            w_gather(&mut |op| wdmas.push(op), "w", at, g, t, j);
                        }
                    }
                }
            }
        }
    }

    let mut band_no = 0u64;
    let mut blk_no = 0u64;
    let mut wload_no = 0u64;
    for g in 0..groups {
        if let Some(b) = &bias_in {
            for (t, &(co0, ct)) in co_tiles.iter().enumerate() {
                emit(KOp::Dma {
                    dst: v("bias", ct, g * nco + t as u64, vec![(1, 1)]),
                    src: View::hbm(
                        b,
                        ct,
                        1,
                        Expr::constant((g * cout_g + co0) as i64),
                        vec![(1, 1)],
                    ),
                });
            }
        }
        for img in 0..n {
            for b in 0..nbz * nbands {
                let (zi, ri) = (b / nbands, b % nbands);
                let (z0, bzc) = (zi * bz, bz.min(geo.od - zi * bz));
                let (r0, br) = (ri * band, band.min(oh_s - ri * band));
                let par = band_no % xbufs;
                band_no += 1;
                let (xs, ys, xt) = (format!("x{par}"), format!("y{par}"), format!("xt{par}"));
                // The band's input window: slab planes [z0s, z0s + deps) and rows
                // [s0, s0 + rows) of the padded input.
                let (deps, rows) = (geo.slab_deps(bzc), geo.slab_rows(br));
                let plane = rows * cols;
                // Each slot's strip of the window, on the slot's partitions.
                for (si, sb) in sl.bases().enumerate() {
                    let z0s = (z0 * geo.sd) as i64 - geo.pf;
                    let zv0 = z0s.max(0);
                    let zv1 = (z0s + deps as i64).min(geo.d as i64);
                    let vz = (zv1 - zv0).max(0) as u64;
                    let front = ((zv0 - z0s) as u64).min(deps);
                    let back = deps - front - vz;
                    let s0 = ((si as u64 * oh_s + r0) * geo.sh) as i64 - geo.pt;
                    let rv0 = s0.max(0);
                    let rv1 = (s0 + rows as i64).min(geo.h as i64);
                    let cv0 = col0.max(0);
                    let cv1 = (cols as i64 + col0).min(geo.w as i64);
                    let (top, left) = ((rv0 - s0) as u64, (cv0 - col0) as u64);
                    let (vrows, vcols) = ((rv1 - rv0).max(0) as u64, (cv1 - cv0).max(0) as u64);
                    let bottom = rows - top - vrows;
                    let right = cols - left - vcols;
                    let all = |dims: Vec<(u64, i64)>, off: u64| KOp::Memset {
                        dst: vp(&xs, sb, cimax, off, dims),
                        value: 0.0,
                    };
                    // Padding planes (3-D): whole planes of every channel tile, cut so that no
                    // access exceeds the free-element limit.
                    for (at, count) in [(0, front), (front + vz, back)] {
                        let len = count * plane;
                        if len == 0 {
                            continue;
                        }
                        if nci * len <= max_elems {
                            emit(all(vec![(nci, slab_elems as i64), (len, 1)], at * plane));
                        } else {
                            for j in 0..nci {
                                for (c0, cn) in chunks(len, len.div_ceil(max_elems)) {
                                    emit(all(vec![(cn, 1)], j * slab_elems + at * plane + c0));
                                }
                            }
                        }
                    }
                    // The valid planes' padding rows and columns (a plane dim in 3-D).
                    let pdims = |rest: &[(u64, i64)]| {
                        let mut d = vec![(nci, slab_elems as i64)];
                        if deep {
                            d.push((vz, plane as i64));
                        }
                        d.extend_from_slice(rest);
                        d
                    };
                    let pz = front * plane;
                    if vz > 0 && top > 0 {
                        emit(all(pdims(&[(top * cols, 1)]), pz));
                    }
                    if vz > 0 && bottom > 0 {
                        emit(all(pdims(&[(bottom * cols, 1)]), pz + (top + vrows) * cols));
                    }
                    if vz > 0 && vrows > 0 && left > 0 && !pad_cols {
                        emit(all(
                            pdims(&[(vrows, cols as i64), (left, 1)]),
                            pz + top * cols,
                        ));
                    }
                    if vz > 0 && vrows > 0 && right > 0 && !pad_cols {
                        emit(all(
                            pdims(&[(vrows, cols as i64), (right, 1)]),
                            pz + top * cols + left + vcols,
                        ));
                    }
                    if vz > 0 && vrows > 0 && vcols > 0 {
                        let bytes = nci * cimax * vz * vrows * vcols * xsz;
                        let want = if band_no == 1 && resident {
                            (q - w_pieces).max(pieces(bytes, q - w_pieces))
                        } else {
                            pieces(bytes, q)
                        };
                        let per_tile = (want / (nci * sl.count)).max(1);
                        let (dhw, hw) = (geo.d * geo.h * geo.w, geo.h * geo.w);
                        if il {
                            // Every tile at once: partition groups x row ranges, each DMA
                            // covering the tiles' planes (consecutive channels in HBM).
                            let max_rows = (max_elems / (nci * cols)).max(1);
                            let row_bytes = if vcols == cols { vcols * xsz } else { 0 };
                            for ((p0, pc), (rr, rn)) in
                                grid(cimax, vrows, want, max_rows, row_bytes)
                            {
                                let src_off = ((img * cin + p0 * nci) * dhw) as i64
                                    + (rv0 + rr as i64) * geo.w as i64
                                    + cv0;
                                emit(KOp::Dma {
                                    dst: vp(
                                        &xs,
                                        p0,
                                        pc,
                                        pz + (top + rr) * cols + left,
                                        vec![
                                            (nci, slab_elems as i64),
                                            (rn, cols as i64),
                                            (vcols, 1),
                                        ],
                                    ),
                                    src: View::hbm(
                                        &x.tensor,
                                        pc,
                                        (nci * dhw) as i64,
                                        Expr::constant(src_off),
                                        vec![(nci, dhw as i64), (rn, geo.w as i64), (vcols, 1)],
                                    ),
                                });
                            }
                        }
                        for (j, &(ci0, cit)) in ci_tiles.iter().enumerate().filter(|_| !il) {
                            let src0 = |p0: u64| ((img * cin + g * cin_g + ci0 + p0) * dhw) as i64;
                            let dst0 = j as u64 * slab_elems + pz + top * cols + left;
                            if deep && vrows * vcols <= max_elems {
                                // Whole valid planes per DMA: partition groups x plane ranges.
                                let max_planes = max_elems / (vrows * vcols);
                                for ((p0, pc), (zz, zn)) in grid(cit, vz, per_tile, max_planes, 0) {
                                    emit(KOp::Dma {
                                        dst: vp(
                                            &xs,
                                            sb + p0,
                                            pc,
                                            dst0 + zz * plane,
                                            vec![
                                                (zn, plane as i64),
                                                (vrows, cols as i64),
                                                (vcols, 1),
                                            ],
                                        ),
                                        src: View::hbm(
                                            &x.tensor,
                                            pc,
                                            dhw as i64,
                                            Expr::constant(
                                                src0(p0)
                                                    + (zv0 + zz as i64) * hw as i64
                                                    + rv0 * geo.w as i64
                                                    + cv0,
                                            ),
                                            vec![
                                                (zn, hw as i64),
                                                (vrows, geo.w as i64),
                                                (vcols, 1),
                                            ],
                                        ),
                                    });
                                }
                                continue;
                            }
                            // Plane by plane (one plane in 2-D): partition groups x row ranges.
                            let max_rows = (max_elems / cols).max(1);
                            if stage(vrows) && vcols == geo.w && vrows * vcols <= max_elems {
                                for zz in 0..vz {
                                    let per_plane = (per_tile / vz).max(1);
                                    for ((p0, pc), (rr, rn)) in
                                        grid(cit, vrows, per_plane, vrows, vcols * xsz)
                                    {
                                        let src_off = src0(p0)
                                            + (zv0 + zz as i64) * hw as i64
                                            + (rv0 + rr as i64) * geo.w as i64;
                                        emit(KOp::Dma {
                                            dst: vp(
                                                &xt,
                                                sb + p0,
                                                pc,
                                                rr * vcols,
                                                vec![(rn * vcols, 1)],
                                            ),
                                            src: View::hbm(
                                                &x.tensor,
                                                pc,
                                                dhw as i64,
                                                Expr::constant(src_off),
                                                vec![(rn * vcols, 1)],
                                            ),
                                        });
                                    }
                                    emit(KOp::Copy {
                                        dst: vp(
                                            &xs,
                                            sb,
                                            cit,
                                            dst0 + zz * plane,
                                            vec![(vrows, cols as i64), (vcols, 1)],
                                        ),
                                        src: vp(
                                            &xt,
                                            sb,
                                            cit,
                                            0,
                                            vec![(vrows, vcols as i64), (vcols, 1)],
                                        ),
                                    });
                                }
                                continue;
                            }
                            for zz in 0..vz {
                                let per_plane = (per_tile / vz).max(1);
                                for ((p0, pc), (rr, rn)) in grid(
                                    cit,
                                    vrows,
                                    per_plane,
                                    max_rows,
                                    if vcols == cols { vcols * xsz } else { 0 },
                                ) {
                                    let src_off = src0(p0)
                                        + (zv0 + zz as i64) * hw as i64
                                        + (rv0 + rr as i64) * geo.w as i64
                                        + cv0;
                                    emit(KOp::Dma {
                                        dst: vp(
                                            &xs,
                                            sb + p0,
                                            pc,
                                            dst0 + zz * plane + rr * cols,
                                            vec![(rn, cols as i64), (vcols, 1)],
                                        ),
                                        src: View::hbm(
                                            &x.tensor,
                                            pc,
                                            dhw as i64,
                                            Expr::constant(src_off),
                                            vec![(rn, geo.w as i64), (vcols, 1)],
                                        ),
                                    });
                                }
                            }
                        }
                    }
                }
                for op in wdmas.drain(..) {
                    emit(op);
                }
                for (t, &(_, ct)) in co_tiles.iter().enumerate() {
                    let (wb, wbase) = if resident {
                        ("w".to_string(), (g * nco + t as u64) * nci * wblock)
                    } else {
                        let wb = format!("w{}", wload_no % 2);
                        wload_no += 1;
                        match &w_pre {
                            Some(wt) => {
                                let f0 = (g * nco + t as u64) * nci * wblock;
                                let len = nci * wblock;
                                let want = pieces(cimax * len * esz, q);
                                for ((p0, pc), (a, fnum)) in grid(cimax, len, want, max_elems, esz)
                                {
                                    emit(KOp::Dma {
                                        dst: vp(&wb, p0, pc, a, vec![(fnum, 1)]),
                                        src: View::hbm(
                                            wt,
                                            pc,
                                            w_total as i64,
                                            Expr::constant((p0 * w_total + f0 + a) as i64),
                                            vec![(fnum, 1)],
                                        ),
                                    });
                                }
                            }
                            None => {
                                for j in 0..ci_tiles.len() {
                                    w_gather(&mut emit, &wb, j as u64 * wblock, g, t, j);
                                }
                            }
                        }
                        (wb, 0)
                    };
                    let bias_col = g * nco + t as u64;
                    // A fused residual arrives laid out like the result, a band at a time.
                    let rs = format!("r{par}");
                    if let Some((r, _)) = &epilogue.residual {
                        let bytes = ct * bzc * br * geo.ow * fp32;
                        let max_rows = (max_elems / geo.ow).max(1);
                        let want = (pieces(sl.count * bytes, q) / sl.count).max(1);
                        for ((si, sb), ((p0, pc), (rr, rn))) in
                            sl.bases().enumerate().flat_map(|s| {
                                grid(ct, bzc * br, want, max_rows, geo.ow * fp32)
                                    .into_iter()
                                    .map(move |c| (s, c))
                            })
                        {
                            let off = ((((img * cout + g * cout_g + out_ch(t, p0)) * geo.od + z0)
                                * geo.oh
                                + si as u64 * oh_s
                                + r0
                                + rr)
                                * geo.ow) as i64;
                            emit(KOp::Dma {
                                dst: vp(
                                    &rs,
                                    sb + p0,
                                    pc,
                                    t as u64 * band_elems + rr * geo.ow,
                                    vec![(rn * geo.ow, 1)],
                                ),
                                src: View::hbm(
                                    r,
                                    pc,
                                    (ch_stride * geo.od * geo.oh * geo.ow) as i64,
                                    Expr::constant(off),
                                    vec![(rn * geo.ow, 1)],
                                ),
                            });
                        }
                    }
                    // Blocks walk the band's rows (plane after plane): whole planes when
                    // several fit one matmul, else rows of one plane.
                    let mut fr = 0;
                    while fr < bzc * br {
                        let (zz, rb) = (fr / br, fr % br);
                        let (zb, hb) = if planes_per_block > 1 && rb == 0 {
                            (planes_per_block.min(bzc - zz), br)
                        } else {
                            (1, rows_per_block.min(br - rb))
                        };
                        let mut c0 = 0;
                        while c0 < geo.ow {
                            let wbk = owb.min(geo.ow - c0);
                            let npix = zb * hb * wbk;
                            let acc = format!("acc{}", blk_no % psum_accs());
                            let evac_scalar = blk_no.is_multiple_of(2);
                            blk_no += 1;
                            let mut first = true;
                            for (j, &(_, cit)) in ci_tiles.iter().enumerate() {
                                for &pos in &taps {
                                    let (c, a, bb) = (
                                        pos / (geo.kh * geo.kw),
                                        pos / geo.kw % geo.kh,
                                        pos % geo.kw,
                                    );
                                    // Window column of output column x: x * sw + shift;
                                    // this tap computes the columns [lo, lo + nc) of the block
                                    // it reads inside the window.
                                    let shift = (bb * geo.dw) as i64 - geo.pl - col0;
                                    let sw = geo.sw as i64;
                                    let lo = (c0 as i64).max(
                                        (-shift).div_euclid(sw)
                                            + i64::from((-shift).rem_euclid(sw) != 0),
                                    );
                                    let hi = ((c0 + wbk) as i64 - 1)
                                        .min((cols as i64 - 1 - shift).div_euclid(sw));
                                    if hi < lo {
                                        continue;
                                    }
                                    let (lo, nc) = (lo as u64, (hi - lo + 1) as u64);
                                    // With slots: column (slot, c) of the stationary is
                                    // slot's tap block, column c.
                                    let src = if sl.count > 1 {
                                        v(
                                            &wb,
                                            kp,
                                            pos * sl.pitch,
                                            vec![(sl.count, w_hbm as i64), (sl.pitch, 1)],
                                        )
                                    } else {
                                        v(
                                            &wb,
                                            cit,
                                            wbase + (j as u64 * khkw + pos) * mp,
                                            vec![(ct, 1)],
                                        )
                                    };
                                    emit(KOp::LoadStationary { src });
                                    let off = j as u64 * slab_elems
                                        + (zz * geo.sd + c * geo.dd) * plane
                                        + (rb * geo.sh + a * geo.dh) * cols
                                        + (lo as i64 * sw + shift) as u64;
                                    let mut dims =
                                        vec![(hb, (geo.sh * cols) as i64), (nc, geo.sw as i64)];
                                    if deep {
                                        dims.insert(0, (zb, (geo.sd * plane) as i64));
                                    }
                                    let dst = if nc == wbk {
                                        v(&acc, sl.span(ct), 0, vec![(npix, 1)])
                                    } else {
                                        v(
                                            &acc,
                                            sl.span(ct),
                                            lo - c0,
                                            vec![(zb * hb, wbk as i64), (nc, 1)],
                                        )
                                    };
                                    emit(KOp::Matmul {
                                        dst,
                                        moving: v(&xs, sl.span(cit), off, dims),
                                        acc: if first {
                                            Accumulate::Never
                                        } else {
                                            Accumulate::Always
                                        },
                                    });
                                    first = false;
                                }
                            }
                            // A block of several planes holds whole rows, so its pixels are
                            // `zb * hb` consecutive rows of the band, as in PSUM.
                            let mt = sl.span(ct);
                            let src = v(&acc, mt, 0, vec![(zb * hb, wbk as i64), (wbk, 1)]);
                            let dst = v(
                                &ys,
                                mt,
                                t as u64 * band_elems + fr * geo.ow + c0,
                                vec![(zb * hb, geo.ow as i64), (wbk, 1)],
                            );
                            let bias = has_bias.then(|| v("bias", mt, bias_col, vec![(1, 1)]));
                            let plain = epilogue.residual.is_none()
                                && matches!(epilogue.act, Act::Identity | Act::Relu);
                            if plain && !evac_scalar {
                                // The vector engine's share: bias add (and ReLU as max 0).
                                let relu = epilogue.act == Act::Relu;
                                let (op1, scalar1) = if relu {
                                    (Alu::Max, ScalarArg::Imm(0.0))
                                } else {
                                    (Alu::Bypass, ScalarArg::Imm(0.0))
                                };
                                emit(match bias {
                                    None if !relu => KOp::Copy { dst, src },
                                    b => KOp::TensorScalar {
                                        dst,
                                        src,
                                        op0: Alu::Add,
                                        scalar0: match b {
                                            Some(b) => ScalarArg::PerPartition(b),
                                            None => ScalarArg::Imm(0.0),
                                        },
                                        op1,
                                        scalar1,
                                        reverse0: false,
                                        reverse1: false,
                                    },
                                });
                            } else {
                                let res = epilogue.residual.as_ref().map(|_| {
                                    v(
                                        &rs,
                                        mt,
                                        t as u64 * band_elems + fr * geo.ow + c0,
                                        vec![(zb * hb, geo.ow as i64), (wbk, 1)],
                                    )
                                });
                                let bias_arg = match bias {
                                    Some(b) => ScalarArg::PerPartition(b),
                                    None => ScalarArg::Imm(0.0),
                                };
                                for op in epilogue.evacuate(&dst, &src, bias_arg, res.as_ref()) {
                                    emit(op);
                                }
                            }
                            c0 += wbk;
                        }
                        fr += zb * hb;
                    }
                    // Store this channel tile of the band.
                    let bytes = ct * bzc * br * geo.ow * fp32;
                    let max_rows = (max_elems / geo.ow).max(1);
                    let tail = g + 1 == groups
                        && img + 1 == n
                        && b + 1 == nbz * nbands
                        && t + 1 == co_tiles.len();
                    let want = if tail {
                        store_pieces(sl.count * bytes, q)
                    } else {
                        pieces(sl.count * bytes, q)
                    };
                    let want = (want / sl.count).max(1);
                    for ((si, sb), ((p0, pc), (rr, rn))) in sl.bases().enumerate().flat_map(|s| {
                        grid(ct, bzc * br, want, max_rows, geo.ow * fp32)
                            .into_iter()
                            .map(move |c| (s, c))
                    }) {
                        let out_off = (((img * cout + g * cout_g + out_ch(t, p0)) * geo.od + z0)
                            * geo.oh
                            + si as u64 * oh_s
                            + r0
                            + rr)
                            * geo.ow;
                        emit(KOp::Dma {
                            dst: View::hbm(
                                &out.tensor,
                                pc,
                                (ch_stride * geo.od * geo.oh * geo.ow) as i64,
                                Expr::constant(out_off as i64),
                                vec![(rn * geo.ow, 1)],
                            ),
                            src: vp(
                                &ys,
                                sb + p0,
                                pc,
                                t as u64 * band_elems + rr * geo.ow,
                                vec![(rn * geo.ow, 1)],
                            ),
                        });
                    }
                }
            }
        }
    }
    let npix_max = planes_per_block * rows_per_block * owb;
    let mut buffers = extra;
    if resident {
        buffers.push(buf("w", Mem::Sbuf, opd, kp, w_free));
    } else {
        for i in 0..w_bufs {
            buffers.push(buf(&format!("w{i}"), Mem::Sbuf, opd, cimax, w_free));
        }
    }
    for i in 0..xbufs {
        if stage_elems(geo.slab_rows(band)) > 0 {
            let len = stage_elems(geo.slab_rows(band));
            buffers.push(buf(&format!("xt{i}"), Mem::Sbuf, opd, kp, len));
        }
        buffers.push(buf(&format!("x{i}"), Mem::Sbuf, opd, kp, nci * slab_elems));
        buffers.push(buf(
            &format!("y{i}"),
            Mem::Sbuf,
            Dtype::Fp32,
            mp,
            nco * band_elems,
        ));
        if epilogue.residual.is_some() {
            buffers.push(buf(
                &format!("r{i}"),
                Mem::Sbuf,
                Dtype::Fp32,
                mp,
                nco * band_elems,
            ));
        }
    }
    for i in 0..psum_accs().min(blk_no.max(1)) {
        buffers.push(buf(
            &format!("acc{i}"),
            Mem::Psum,
            Dtype::Fp32,
            mp,
            npix_max,
        ));
    }
    if has_bias {
        buffers.push(buf("bias", Mem::Sbuf, Dtype::Fp32, mp, groups * nco));
    }
    l.push_kernel(Kernel {
        name: node.name.clone(),
        op: node.op.name().into(),
        buffers,
        body,
    });
    Ok(())
}
