//! `MatMul` and `Gemm` on the tensor engine: `Y = alpha * A B (+ beta * C)`, per batch of a
//! batched product. The stationary operand is a `[K, M]` tile of A^T (K on partitions, at most
//! `pe_cols` rows of M), the moving operand a `[K, N]` chunk of B (at most `max_moving_free`
//! columns, one PSUM bank of fp32, or the node's `tile_n` attribute when the optimizer's tiling
//! phase chose narrower chunks), and each output tile `[M, N]` accumulates over the K tiles in
//! its own PSUM bank.
//!
//! **What is resident.** Every operand block is loaded into SBUF once and reused:
//! * B is held as panels `[K (tiles of pe_rows partitions), N block]`; the whole of N when it fits
//!   in half of SBUF, else blocks of whole chunks, two panel slots so the next block streams in
//!   while the current one is used.
//! * A^T is held as per-M-tile panels `[K, 128 rows]`. The first group's panels (below) are laid
//!   out K-tile major, so one K tile of all of them is one run per partition; the others sit in
//!   ring slots each holding one panel over all K tiles, so a panel loads as one run per
//!   partition. The ring holds all the remaining M tiles when they fit in what B leaves, else its
//!   next panels are prefetched while the current ones compute.
//! * With full K tiles, K is interleaved over the partitions (partition p of K tile t holds
//!   contraction row `p * ktt + t`, for A^T and B alike), so a partition's rows of consecutive K
//!   tiles are contiguous in HBM and a load of several K tiles moves long runs.
//! * Results are evacuated from PSUM (alternately by the scalar and the vector engine, applying
//!   alpha) into a ring of SBUF tiles already in the output dtype, and stored from there.
//!
//! **How it is ordered (pipelining).** Codegen derives all synchronisation from byte ranges, so
//! distinct slots overlap by themselves: loads are issued ahead of the compute that needs them,
//! PSUM banks rotate (the evacuation of bank i overlaps the accumulation into bank i+1), output
//! slots rotate. At the start nothing is on chip, so the first group of output tiles (as many
//! M tiles x N chunks as there are PSUM banks) is computed K-outer: each K step needs one k-tile
//! of B and of the group's A^T only, loaded as one DMA each (one piece per partition group) in
//! the order the steps use them, so the loads of step i+1 overlap the matmuls of step i and the
//! first matmul waits for one step's data, not for whole panels. (This group's demand for data
//! about matches the tensor engine's pace, which is why nothing else is loaded before its
//! steps.) The ring's panels follow, in the order the remaining tiles use them. Those tiles are
//! computed one at a time with K inner, so they finish (and are stored) steadily; the kernel's
//! last tile (of a long enough contraction) is computed in [`TAIL_PARTS`] column parts, each
//! evacuated and stored as soon as it is done, so the tail after the last matmul is one part's
//! evacuation and store. Small products of a batch rotate over up to [`MAX_PRODUCT_SLOTS`] slots
//! of the A and B rings: the operands of the next products load while product b computes
//! (several products' loads in flight keep the queues busy when each product is too small to
//! hide a DMA's latency).
//!
//! **DMA.** A DMA pays a fixed trigger latency per instruction on its queue, and one queue moves
//! only a sixteenth of HBM bandwidth, so other loads and stores are cut into pieces of about
//! [`DMA_PIECE_BYTES`] (by 32-partition groups, then along a free dim) that codegen spreads over
//! the queues; the last tiles' stores are cut finer.
//!
//! **Transposes.** A `[M, K]` row-major must reach SBUF as `[K on partitions, M]` (and so must B
//! under `transB`). Constant operands are pre-arranged at compile time (stored K-major in HBM, so
//! the load streams contiguously). Other operands, when K and the rows are multiples of
//! `vector_transpose_block`, are loaded by DMAs whose contiguous runs are 32-element rows of
//! 32x32 blocks (block (pb, fb) of the tile receives rows `32 fb..` of columns `32 pb..`, no
//! stride penalty) and transposed in place by the vector engine's TRANSPOSE32, which is otherwise
//! idle in a matmul; other shapes fall back to a strided DMA (half queue rate).
//!
//! Operands are cast to the compiled precision as they are loaded; constant weights are stored at
//! that precision in HBM. On-chip memory that does not suffice even for one chunk is a compile
//! error ([`Code::OnChipMemory`]).

use super::epilogue::{Epilogue, ResidualAt};
use super::tiles::{contiguous_strides, split_dma, DMA_PIECE_BYTES, PARTITION_GROUPS};
use super::{node_error, Lowerer};
use crate::diag::{Code, Diagnostic};
use crate::graph::{Node, Op, ValueId};
use crate::kernel::{
    Accumulate, Buffer, Expr, HbmKind, HbmTensor, KOp, Kernel, ScalarArg, Stmt, View,
};
use crate::opt::rules::layout::{PERM_A, PERM_B, PERM_Y};
use tahoma_isa::{cost, costs, machine, Act, Alu, Dtype, Mem};

/// Most products of a batch whose operands are on chip at once (a tiling choice).
const MAX_PRODUCT_SLOTS: u64 = 8;
/// Output tiles held in SBUF between evacuation and store (a tiling choice of the compiler).
const Y_SLOTS: u64 = 8;
/// Stores of this many final tiles are cut into small pieces to shorten the tail.
const FINE_TAIL_TILES: u64 = 2;
/// Pieces of the tail stores and the first K step are this much smaller than usual.
const FINE_DIVISOR: u64 = 8;
/// The kernel's last output tile is computed, evacuated and stored in this many parts...
const TAIL_PARTS: u64 = 4;
/// ... when its contraction has at least this many K tiles (a tiling choice: with fewer, a
/// part's matmuls are too short to cover the previous part's evacuation and store, and the
/// extra instructions cost small kernels more than they save).
const TAIL_MIN_K_TILES: u64 = 8;

/// Element strides of a logical 2-D operand `[rows, cols]` within its tensor.
#[derive(Clone, Copy, Debug)]
struct Mat {
    row: i64,
    col: i64,
}

/// Offsets (in elements) of every batch of a broadcast batched operand whose batch dims have
/// these element strides.
fn batch_offsets(op_batch: &[u64], strides: &[i64], out_batch: &[u64]) -> Vec<i64> {
    let lead = out_batch.len() - op_batch.len();
    let total: u64 = out_batch.iter().product();
    let mut offs = Vec::with_capacity(total as usize);
    for flat in 0..total {
        let mut rem = flat;
        let mut off = 0i64;
        for d in (0..out_batch.len()).rev() {
            let idx = rem % out_batch[d];
            rem /= out_batch[d];
            if d >= lead && op_batch[d - lead] != 1 {
                off += idx as i64 * strides[d - lead];
            }
        }
        offs.push(off);
    }
    offs
}

/// A tensor of shape `shape` (contiguous) seen through the optimizer's permutation `perm`
/// (`view[i] = tensor[perm[i]]`, see opt/rules/layout.rs): the view's shape and element strides.
fn permuted_view(shape: &[u64], perm: Option<&[usize]>) -> (Vec<u64>, Vec<i64>) {
    let strides = contiguous_strides(shape);
    match perm {
        None => (shape.to_vec(), strides),
        Some(p) => (
            p.iter().map(|&d| shape[d]).collect(),
            p.iter().map(|&d| strides[d]).collect(),
        ),
    }
}

/// The product's result (shape `y_shape`, contiguous) as the product computes it, before the
/// permutation `perm` the result is stored through: the logical shape and element strides.
fn unpermuted_view(y_shape: &[u64], perm: Option<&[usize]>) -> (Vec<u64>, Vec<i64>) {
    let strides = contiguous_strides(y_shape);
    match perm {
        None => (y_shape.to_vec(), strides),
        Some(p) => {
            let (mut sh, mut st) = (vec![0; p.len()], vec![0; p.len()]);
            for (i, &d) in p.iter().enumerate() {
                sh[d] = y_shape[i];
                st[d] = strides[i];
            }
            (sh, st)
        }
    }
}

/// An operand seen K-major: logical `[X, K]` (A: X = M rows; B: X = N columns) at these element
/// strides in its HBM tensor.
#[derive(Clone, Copy, Debug)]
struct Src<'a> {
    tensor: &'a str,
    x_stride: i64,
    k_stride: i64,
    /// Loaded by 32x32-block DMAs and transposed by the vector engine.
    transpose32: bool,
}

struct Plan<'a> {
    a: Src<'a>,
    b: Src<'a>,
    y: &'a str,
    /// The result's row and column strides in `y`.
    ym: Mat,
    c: Option<(&'a str, Mat)>,
    /// A FusedGemm's residual (laid out like `y`) and where it joins; only with C.
    res: Option<(&'a str, ResidualAt)>,
    m: u64,
    k: u64,
    n: u64,
    alpha: f32,
    beta: f32,
    /// Applied last on the way out of PSUM (a FusedGemm's activation; identity otherwise).
    act: Act,
}

/// Operand offsets of one product of a batch.
#[derive(Clone, Copy, Debug)]
struct Prod {
    a_off: i64,
    b_off: i64,
    c_off: i64,
    y_off: i64,
}

/// The tiling and the buffer rings of a node (see the module doc).
#[derive(Clone, Debug)]
struct Cfg {
    /// Full K tiles, the partial one's partitions, K tiles in all (at least 1).
    ktf: u64,
    krem: u64,
    ktt: u64,
    mtiles: u64,
    /// Chunk width (N of one matmul) and chunk count.
    ch: u64,
    nch: u64,
    /// Chunks per N block, blocks, block width.
    nbc: u64,
    nblocks: u64,
    nbw: u64,
    /// A^T slots per product slot: the first group's `gm`, K-tile major, then `ring` slots,
    /// each one M tile's panel over all of K.
    a_slots: u64,
    ring: u64,
    /// Elements of one A^T slot per K tile (an M tile's rows, or M when smaller).
    aw: u64,
    b_slots: u64,
    /// M tiles of the K-outer first group (0: no group).
    gm: u64,
    banks: u64,
    bank_elems: u64,
    y_slots: u64,
    /// Elements per output slot (the chunk width, or N when smaller).
    ych: u64,
    ydt: Dtype,
    /// K is interleaved over the partitions: partition p of K tile t holds row `p * ktt + t`
    /// of the contraction (not `t * pe_rows + p`), so a partition's rows of consecutive K tiles
    /// are contiguous in HBM and loads of several K tiles move long runs. Only with full K
    /// tiles, more than one row and column, and DMA-transposed (or untransposed) operands.
    kil: bool,
    /// Products rotate over this many slots of the A and B rings (1: one product at a time);
    /// the loads of the next products overlap the compute of this one.
    pslots: u64,
    a_resident: bool,
}

/// Emits the kernel body of a node.
struct Gen<'p> {
    p: &'p Plan<'p>,
    c: Cfg,
    /// Bytes per element moved by operand loads (the larger of HBM and SBUF dtypes).
    a_esz: u64,
    b_esz: u64,
    y_esz: u64,
    out: Vec<Stmt>,
    y_next: u64,
    bank_next: u64,
    evac_on_vector: bool,
    tiles_left: u64,
    /// The output store being gathered: consecutive full chunks of one M tile, evacuated into
    /// consecutive Y slots, leave as one DMA whose rows are contiguous over all of them.
    store: Option<PendingStore>,
}

/// Where an M tile's A^T panel is held: in the first group's K-tile-major slots or in a ring
/// slot.
#[derive(Clone, Copy, Debug)]
enum ALoc {
    Group(u64),
    Ring(u64),
}

/// An output tile: M tile `i`, chunk `c` of its N block, accumulated in PSUM bank `bank`;
/// `cols` (offset, width) narrows it to part of the chunk (`None`: all of it).
#[derive(Clone, Copy, Debug)]
struct OTile {
    i: u64,
    c: u64,
    bank: u64,
    cols: Option<(u64, u64)>,
}

/// A store of chunks `..=c` of M tile `i`, N block `j`, not emitted yet.
struct PendingStore {
    i: u64,
    j: u64,
    c: u64,
    /// The Y slot after the last one it covers and the column after its last.
    ys_end: u64,
    n_end: u64,
    /// Every chunk so far filled its slot (so the next slot continues the rows).
    full: bool,
    dst: View,
    y: View,
}

impl Gen<'_> {
    fn ops(&mut self, ops: Vec<KOp>) {
        self.out.extend(ops.into_iter().map(Stmt::Op));
    }

    /// (first element, partitions) of K tile `kt`.
    fn ktile(&self, kt: u64) -> (u64, u64) {
        let kp = machine::PE_ROWS;
        (kt * kp, if kt < self.c.ktf { kp } else { self.c.krem })
    }

    /// Loads K tiles `kt0..kt1` of rows `x0..x0+xw` of an operand K-major into `buf` at
    /// `dst_off` (+ `bsk` elements per K tile).
    #[allow(clippy::too_many_arguments)]
    fn load_kmajor(
        &mut self,
        s: Src,
        off: i64,
        esz: u64,
        buf: &str,
        bsk: i64,
        dst_off: i64,
        kts: (u64, u64),
        x: (u64, u64),
        target: u64,
        p0: u64,
    ) {
        let mut ops = Vec::new();
        let kp_full = machine::PE_ROWS as i64;
        // Full tiles together, the partial one alone.
        let mut groups = vec![];
        let full_end = kts.1.min(self.c.ktf);
        if kts.0 < full_end {
            groups.push((kts.0, full_end));
        }
        if kts.1 > self.c.ktf && self.c.krem > 0 {
            groups.push((self.c.ktf.max(kts.0), kts.1));
        }
        for (k0t, k1t) in groups {
            let (k0, kp) = self.ktile(k0t);
            let kc = k1t - k0t;
            let (x0, xw) = x;
            // K index of (partition p, K tile t): p + t * pe_rows, or p * ktt + t interleaved.
            let (k0, part_k, tile_k) = if self.c.kil {
                (k0t, self.c.ktt as i64, 1)
            } else {
                (k0, 1, kp_full)
            };
            let base = off + x0 as i64 * s.x_stride + k0 as i64 * s.k_stride;
            let doff = dst_off + (k0t - kts.0) as i64 * bsk;
            let bytes = kp * kc * xw * esz;
            if s.transpose32 {
                let blk = machine::VECTOR_TRANSPOSE_BLOCK;
                let bi = blk as i64;
                for pb in 0..kp / blk {
                    let dst = View::buf(
                        buf,
                        p0 + pb * blk,
                        blk,
                        Expr::constant(doff),
                        vec![(kc, bsk), (xw / blk, bi), (blk, 1)],
                    );
                    let src = View::hbm(
                        s.tensor,
                        blk,
                        s.x_stride,
                        Expr::constant(base + pb as i64 * bi),
                        vec![(kc, kp_full), (xw / blk, bi * s.x_stride), (blk, 1)],
                    );
                    split_dma(dst, src, bytes / (kp / blk), target, &mut ops);
                }
                for t in 0..kc {
                    let v = View::buf(
                        buf,
                        p0,
                        kp,
                        Expr::constant(doff + t as i64 * bsk),
                        vec![(xw, 1)],
                    );
                    ops.push(KOp::Transpose32 {
                        dst: v.clone(),
                        src: v,
                    });
                }
            } else {
                let dst = View::buf(buf, p0, kp, Expr::constant(doff), vec![(kc, bsk), (xw, 1)]);
                let src = View::hbm(
                    s.tensor,
                    kp,
                    part_k * s.k_stride,
                    Expr::constant(base),
                    vec![(kc, tile_k * s.k_stride), (xw, s.x_stride)],
                );
                split_dma(dst, src, bytes, target, &mut ops);
            }
        }
        self.ops(ops);
    }

    /// Where M tile `loc`'s A^T panel lies in product slot `ps`: (element of K tile 0, elements
    /// per K tile).
    fn a_at(&self, ps: u64, loc: ALoc) -> (i64, i64) {
        a_at_of(&self.c, ps, loc)
    }

    /// K tiles `kts` of the first group's A^T panels (M tiles `0..gm`) of product slot `ps`:
    /// each K tile's rows move in one run over the group's M tiles.
    fn a_group(&mut self, pr: &Prod, ps: u64, kts: (u64, u64), t: u64) {
        let (base, bsk) = self.a_at(ps, ALoc::Group(0));
        let xw = (self.c.gm * machine::PE_COLS).min(self.p.m);
        let doff = base + kts.0 as i64 * bsk;
        self.load_a(pr, ps, (doff, bsk), kts, (0, xw), t);
    }

    /// K tiles `kts` of rows `x` of A^T into product slot `ps`'s panel at `at` (element, elements
    /// per K tile), on the slot's partitions.
    fn load_a(
        &mut self,
        pr: &Prod,
        ps: u64,
        at: (i64, i64),
        kts: (u64, u64),
        x: (u64, u64),
        t: u64,
    ) {
        let (esz, p0) = (self.a_esz, self.pbase(ps));
        let (doff, bsk) = at;
        self.load_kmajor(self.p.a, pr.a_off, esz, "at", bsk, doff, kts, x, t, p0);
    }

    /// M tile `i`'s A^T panel (all of K) into ring slot `r` of product slot `ps`: one run per
    /// partition over all K tiles.
    fn a_ring(&mut self, pr: &Prod, ps: u64, i: u64, r: u64, t: u64) {
        let (base, bsk) = self.a_at(ps, ALoc::Ring(r));
        let (m0, mt) = self.mtile(i);
        self.load_a(pr, ps, (base, bsk), (0, self.c.ktt), (m0, mt), t);
    }

    /// The B panel of N block `j` into `slot`, K tiles `kts`.
    fn b_panel(&mut self, pr: &Prod, j: u64, slot: u64, kts: (u64, u64), t: u64) {
        let n0 = j * self.c.nbc * self.c.ch;
        let nw = self.c.nbw.min(self.p.n - n0);
        let bsk = self.c.nbw as i64;
        let doff = ((slot * self.c.ktt + kts.0) * self.c.nbw) as i64;
        let esz = self.b_esz;
        let p0 = self.pbase(slot);
        self.load_kmajor(
            self.p.b,
            pr.b_off,
            esz,
            "b",
            bsk,
            doff,
            kts,
            (n0, nw),
            t,
            p0,
        );
    }

    fn mtile(&self, i: u64) -> (u64, u64) {
        let pm = machine::PE_COLS;
        (i * pm, pm.min(self.p.m - i * pm))
    }

    /// Global chunk `c` of N block `j`: (column, width, column within the block).
    fn chunk(&self, j: u64, c: u64) -> (u64, u64, u64) {
        let n0 = (j * self.c.nbc + c) * self.c.ch;
        (n0, self.c.ch.min(self.p.n - n0), c * self.c.ch)
    }

    fn chunks_in(&self, j: u64) -> u64 {
        self.c.nbc.min(self.c.nch - j * self.c.nbc)
    }

    fn ls(&self, i: u64, at: (i64, i64), kt: Expr, kp: u64, p0: u64) -> KOp {
        let (_, mt) = self.mtile(i);
        KOp::LoadStationary {
            src: View::buf("at", p0, kp, kt.scale(at.1).plus(at.0), vec![(mt, 1)]),
        }
    }

    /// The first partition of product slot `ps`'s operands. A product of one K tile of at most
    /// a partition-rule slot's rows (an attention head's 32 or 64) puts consecutive product
    /// slots on successive slots of the partitions, so their loads use every DMA engine, not
    /// only the first quarter's (with one N block, where the B slot is the product slot).
    fn pbase(&self, ps: u64) -> u64 {
        let c = &self.c;
        if c.ktt != 1 || c.nblocks != 1 || c.pslots < 2 {
            return 0;
        }
        let kp = if c.ktf > 0 { machine::PE_ROWS } else { c.krem };
        match super::tiles::slot_rules(kp).next() {
            Some((max, starts)) if max < machine::PARTITIONS && !starts.is_empty() => {
                starts[(ps % starts.len() as u64) as usize]
            }
            _ => 0,
        }
    }

    /// Columns of output tile `t` in N block `j`: (column, width, column within the block).
    fn tile_cols(&self, j: u64, t: &OTile) -> (u64, u64, u64) {
        let (n0, nt, nl) = self.chunk(j, t.c);
        match t.cols {
            None => (n0, nt, nl),
            Some((off, w)) => (n0 + off, w, nl + off),
        }
    }

    /// Where output tile `t` accumulates in PSUM: (element offset, width).
    fn acc_at(&self, j: u64, t: &OTile) -> (i64, u64) {
        let off = t.cols.map_or(0, |c| c.0);
        let (_, w, _) = self.tile_cols(j, t);
        ((t.bank * self.c.bank_elems + off) as i64, w)
    }

    fn mm(&self, t: &OTile, j: u64, bslot: u64, kt: Expr, kp: u64, acc: Accumulate) -> KOp {
        let (_, mt) = self.mtile(t.i);
        let (_, nt, nl) = self.tile_cols(j, t);
        let (aoff, _) = self.acc_at(j, t);
        let nbw = self.c.nbw as i64;
        KOp::Matmul {
            dst: View::buf("acc", 0, mt, Expr::constant(aoff), vec![(nt, 1)]),
            moving: View::buf(
                "b",
                self.pbase(bslot),
                kp,
                kt.scale(nbw)
                    .plus((bslot * self.c.ktt) as i64 * nbw + nl as i64),
                vec![(nt, 1)],
            ),
            acc,
        }
    }

    /// The matmuls of output tiles `tiles`, K outer; `at(i)` is where M tile i's A^T panel
    /// lies ([`Gen::a_at`]).
    fn compute(&mut self, tiles: &[OTile], j: u64, at: &dyn Fn(u64) -> (i64, i64), bslot: u64) {
        let (ktf, krem) = (self.c.ktf, self.c.krem);
        let step = |g: &Gen, kt: Expr, kp: u64, acc: Accumulate| -> Vec<KOp> {
            let mut ops = Vec::new();
            let mut last = None;
            for t in tiles {
                if last != Some(t.i) {
                    ops.push(g.ls(t.i, at(t.i), kt.clone(), kp, g.pbase(bslot)));
                    last = Some(t.i);
                }
                ops.push(g.mm(t, j, bslot, kt.clone(), kp, acc.clone()));
            }
            ops
        };
        if ktf > 0 {
            let body = step(
                self,
                Expr::var("k", 1),
                machine::PE_ROWS,
                Accumulate::AfterFirst("k".into()),
            );
            self.out.push(Stmt::Loop {
                var: "k".into(),
                start: 0,
                end: ktf as i64,
                body: body.into_iter().map(Stmt::Op).collect(),
            });
        }
        if krem > 0 {
            let acc = if ktf > 0 {
                Accumulate::Always
            } else {
                Accumulate::Never
            };
            let ops = step(self, Expr::constant(ktf as i64), krem, acc);
            self.ops(ops);
        }
    }

    /// Loads C's tile (Gemm) into the output slot `ys`.
    fn c_load(&mut self, pr: &Prod, i: u64, j: u64, c: u64, ys: u64) {
        let Some((ct, cm)) = self.p.c else { return };
        let (m0, mt) = self.mtile(i);
        let (n0, nt, _) = self.chunk(j, c);
        let ch = self.c.ych as i64;
        let dst = View::buf("c", 0, mt, Expr::constant(ys as i64 * ch), vec![(nt, 1)]);
        let src = View::hbm(
            ct,
            mt,
            cm.row,
            Expr::constant(pr.c_off + m0 as i64 * cm.row + n0 as i64 * cm.col),
            vec![(nt, cm.col)],
        );
        // C is read while its tile's matmuls run and its evacuation waits for it: fine pieces
        // over many queues (a broadcast bias reads the same row for every partition).
        let bytes = mt * nt * Dtype::Fp32.size_bytes();
        let mut ops = Vec::new();
        split_dma(dst, src, bytes, DMA_PIECE_BYTES / FINE_DIVISOR, &mut ops);
        if let Some((rt, _)) = self.p.res {
            let ym = self.p.ym;
            let dst = View::buf("r", 0, mt, Expr::constant(ys as i64 * ch), vec![(nt, 1)]);
            let src = View::hbm(
                rt,
                mt,
                ym.row,
                Expr::constant(pr.y_off + m0 as i64 * ym.row + n0 as i64 * ym.col),
                vec![(nt, ym.col)],
            );
            // A whole tile (not a broadcast row): usual pieces.
            split_dma(dst, src, bytes, DMA_PIECE_BYTES, &mut ops);
        }
        self.ops(ops);
    }

    /// Evacuates output tile `t` from PSUM (alpha applied, C added) into output slot `ys` and
    /// stores it (consecutive whole chunks of an M tile in one DMA).
    fn finish(&mut self, pr: &Prod, j: u64, t: &OTile, ys: u64) {
        let (i, c) = (t.i, t.c);
        let (m0, mt) = self.mtile(i);
        let (n0, nt, _) = self.tile_cols(j, t);
        let ch = self.c.ych as i64;
        let yoff = ys as i64 * ch + t.cols.map_or(0, |c| c.0) as i64;
        let y = View::buf("y", 0, mt, Expr::constant(yoff), vec![(nt, 1)]);
        let (aoff, _) = self.acc_at(j, t);
        let acc = View::buf("acc", 0, mt, Expr::constant(aoff), vec![(nt, 1)]);
        let mut ops = Vec::new();
        if self.p.k == 0 {
            // An empty contraction: the product is zero.
            ops.push(KOp::Memset {
                dst: y.clone(),
                value: 0.0,
            });
        } else if self.p.c.is_none() && self.evac_on_vector && self.p.act == Act::Identity {
            ops.push(if self.p.alpha == 1.0 {
                KOp::Copy {
                    dst: y.clone(),
                    src: acc,
                }
            } else {
                KOp::TensorScalar {
                    dst: y.clone(),
                    src: acc,
                    op0: Alu::Multiply,
                    scalar0: ScalarArg::Imm(self.p.alpha),
                    op1: Alu::Bypass,
                    scalar1: ScalarArg::Imm(0.0),
                    reverse0: false,
                    reverse1: false,
                }
            });
        } else {
            // Without C, the activation is applied by this same pass.
            let func = if self.p.c.is_none() {
                self.p.act
            } else {
                Act::Identity
            };
            ops.push(KOp::Activate {
                dst: y.clone(),
                src: acc,
                func,
                scale: ScalarArg::Imm(self.p.alpha),
                bias: ScalarArg::Imm(0.0),
                acc: None,
            });
        }
        if self.p.k == 0 && self.p.c.is_none() && self.p.act != Act::Identity {
            // The activation of the empty product.
            ops.push(KOp::Activate {
                dst: y.clone(),
                src: y.clone(),
                func: self.p.act,
                scale: ScalarArg::Imm(1.0),
                bias: ScalarArg::Imm(0.0),
                acc: None,
            });
        }
        self.evac_on_vector = !self.evac_on_vector;
        if self.p.c.is_some() {
            let cbuf = View::buf("c", 0, mt, Expr::constant(yoff), vec![(nt, 1)]);
            if self.p.beta != 1.0 {
                ops.push(KOp::TensorScalar {
                    dst: cbuf.clone(),
                    src: cbuf.clone(),
                    op0: Alu::Multiply,
                    scalar0: ScalarArg::Imm(self.p.beta),
                    op1: Alu::Bypass,
                    scalar1: ScalarArg::Imm(0.0),
                    reverse0: false,
                    reverse1: false,
                });
            }
            let rbuf = View::buf("r", 0, mt, Expr::constant(yoff), vec![(nt, 1)]);
            let add = |dst: &View, b: &View| KOp::TensorTensor {
                dst: dst.clone(),
                a: dst.clone(),
                b: b.clone(),
                op: Alu::Add,
            };
            if let Some((_, ResidualAt::BeforeAct)) = self.p.res {
                ops.push(add(&cbuf, &rbuf));
            }
            ops.push(add(&y, &cbuf));
            if self.p.act != Act::Identity {
                ops.push(KOp::Activate {
                    dst: y.clone(),
                    src: y.clone(),
                    func: self.p.act,
                    scale: ScalarArg::Imm(1.0),
                    bias: ScalarArg::Imm(0.0),
                    acc: None,
                });
            }
            if let Some((_, ResidualAt::AfterAct)) = self.p.res {
                ops.push(add(&y, &rbuf));
            }
        }
        let ym = self.p.ym;
        let dst = View::hbm(
            self.p.y,
            mt,
            ym.row,
            Expr::constant(pr.y_off + m0 as i64 * ym.row + n0 as i64 * ym.col),
            vec![(nt, ym.col)],
        );
        // A part of a chunk is stored by itself; the chunk counts as done with its last part.
        let (_, cw, _) = self.chunk(j, c);
        let whole = t.cols.is_none();
        if t.cols.is_none_or(|(off, w)| off + w >= cw) {
            self.tiles_left = self.tiles_left.saturating_sub(1);
        }
        let extends = whole
            && self.store.as_ref().is_some_and(|p| {
                p.full && (p.i, p.j, p.c + 1, p.ys_end, p.n_end) == (i, j, c, ys, n0) && ym.col == 1
            });
        match self.store.as_mut().filter(|_| extends) {
            Some(p) => {
                p.dst.dims[0].0 += nt;
                p.y.dims[0].0 += nt;
                (p.c, p.ys_end, p.n_end) = (c, ys + 1, n0 + nt);
                p.full = nt as i64 == ch;
            }
            None => {
                self.flush_store(&mut ops);
                self.store = Some(PendingStore {
                    i,
                    j,
                    c,
                    ys_end: ys + 1,
                    n_end: n0 + nt,
                    full: whole && nt as i64 == ch,
                    dst,
                    y,
                });
            }
        }
        // A row of chunks ends with its block's last chunk (or a chunk short of its slot).
        let last = c + 1 == self.chunks_in(j) || self.store.as_ref().is_some_and(|p| !p.full);
        if last {
            self.flush_store(&mut ops);
        }
        self.ops(ops);
    }

    /// Emits the gathered output store, if any.
    fn flush_store(&mut self, ops: &mut Vec<KOp>) {
        if let Some(p) = self.store.take() {
            let target = if self.tiles_left < FINE_TAIL_TILES {
                DMA_PIECE_BYTES / FINE_DIVISOR
            } else {
                DMA_PIECE_BYTES
            };
            let bytes = p.y.part_count * p.y.free_elems() * self.y_esz;
            split_dma(p.dst, p.y, bytes, target, ops);
        }
    }

    fn next_y(&mut self) -> u64 {
        let s = self.y_next % self.c.y_slots;
        self.y_next += 1;
        s
    }

    fn next_bank(&mut self) -> u64 {
        let s = self.bank_next % self.c.banks;
        self.bank_next += 1;
        s
    }

    /// The (N block, M tile) panels that pass through the A^T ring, in the order they are used:
    /// the M tiles past the first group, in every N block unless A^T is resident.
    fn ring_seq(&self) -> Vec<(u64, u64)> {
        let blocks = if self.c.a_resident { 1 } else { self.c.nblocks };
        (0..blocks)
            .flat_map(|j| (self.c.gm..self.c.mtiles).map(move |i| (j, i)))
            .collect()
    }

    /// The loads a product starts with: the first group's operands K tile by K tile (B's first
    /// panel and the group's A^T), then the ring's first panels in the order they are used.
    fn prologue(&mut self, pr: &Prod, ps: u64) {
        let (gm, ktt) = (self.c.gm, self.c.ktt);
        if self.p.k == 0 {
            return;
        }
        if gm > 0 {
            // One K tile per step, each load in one piece per partition group: the group's
            // demand for data matches the tensor engine's pace, so the steps arrive in order
            // and each as soon as it can (larger steps or pieces would make a step wait for
            // the data of the next).
            let xa = (gm * machine::PE_COLS).min(self.p.m) * self.a_esz;
            let xb = self.c.nbw.min(self.p.n) * self.b_esz;
            let rows = machine::PE_ROWS / PARTITION_GROUPS;
            for kt in 0..ktt {
                self.a_group(pr, ps, (kt, kt + 1), rows * xa);
                self.b_panel(pr, 0, ps, (kt, kt + 1), rows * xb);
            }
        } else {
            self.b_panel(pr, 0, ps, (0, ktt), DMA_PIECE_BYTES);
        }
        let seq = self.ring_seq();
        let first = seq.len().min(self.c.ring as usize);
        for (r, &(_, i)) in seq[..first].iter().enumerate() {
            self.a_ring(pr, ps, i, r as u64, DMA_PIECE_BYTES);
        }
    }

    /// The whole computation of one product; its prologue was emitted already.
    fn product(&mut self, pr: &Prod, ps: u64) {
        let c = self.c.clone();
        let seq = self.ring_seq();
        // Position in the ring's sequence of panels (A^T not resident).
        let mut q = 0usize;
        for j in 0..c.nblocks {
            let bslot = if c.nblocks > 1 { j % c.b_slots } else { ps };
            if j + 1 < c.nblocks && self.p.k > 0 {
                self.b_panel(pr, j + 1, (j + 1) % c.b_slots, (0, c.ktt), DMA_PIECE_BYTES);
            }
            let nchj = self.chunks_in(j);
            let mut first_i = 0;
            if j == 0 && c.gm > 0 {
                let mut tiles = Vec::new();
                for i in 0..c.gm {
                    for ci in 0..nchj {
                        let bank = self.next_bank();
                        tiles.push(OTile {
                            i,
                            c: ci,
                            bank,
                            cols: None,
                        });
                    }
                }
                let ys: Vec<u64> = tiles.iter().map(|_| self.next_y()).collect();
                for (t, &y) in tiles.iter().zip(&ys) {
                    self.c_load(pr, t.i, j, t.c, y);
                }
                if self.p.k > 0 {
                    let at = |i: u64| a_at_of(&c, ps, ALoc::Group(i));
                    self.compute(&tiles, j, &at, bslot);
                }
                for (t, &y) in tiles.iter().zip(&ys) {
                    self.finish(pr, j, t, y);
                }
                first_i = c.gm;
            }
            for i in first_i..c.mtiles {
                let loc = if i < c.gm {
                    ALoc::Group(i)
                } else if c.a_resident {
                    ALoc::Ring(i - c.gm)
                } else {
                    ALoc::Ring(q as u64 % c.ring)
                };
                let at = a_at_of(&c, ps, loc);
                for ci in 0..nchj {
                    let bank = self.next_bank();
                    let y = self.next_y();
                    self.c_load(pr, i, j, ci, y);
                    for cols in self.tail_parts(j, ci) {
                        let t = OTile {
                            i,
                            c: ci,
                            bank,
                            cols,
                        };
                        if self.p.k > 0 {
                            self.compute(&[t], j, &|_| at, bslot);
                        }
                        self.finish(pr, j, &t, y);
                    }
                }
                if !c.a_resident && i >= c.gm {
                    // The panel `ring` places ahead takes this one's slot.
                    if let Some(&(_, next)) = seq.get(q + c.ring as usize) {
                        let r = q as u64 % c.ring;
                        self.a_ring(pr, ps, next, r, DMA_PIECE_BYTES);
                    }
                    q += 1;
                }
            }
        }
    }

    /// How chunk `ci` of N block `j` is computed: whole, or for the kernel's last output tile
    /// (of a contraction of at least [`TAIL_MIN_K_TILES`] K tiles), in [`TAIL_PARTS`] narrower
    /// parts (each at least `matmul_min_free` columns, so at the full rate) evacuated and stored
    /// one by one, so that what follows the last matmul is one part's evacuation and store.
    fn tail_parts(&self, j: u64, ci: u64) -> Vec<Option<(u64, u64)>> {
        let (_, nt, _) = self.chunk(j, ci);
        let min = cost::MATMUL_MIN_FREE;
        if self.c.ktt < TAIL_MIN_K_TILES || self.tiles_left != 1 || nt < 2 * min {
            return vec![None];
        }
        let w = nt.div_ceil(TAIL_PARTS).max(min);
        (0..nt.div_ceil(w))
            .map(|q| Some((q * w, w.min(nt - q * w))))
            .collect()
    }
}

/// [`Gen::a_at`] of a configuration.
fn a_at_of(c: &Cfg, ps: u64, loc: ALoc) -> (i64, i64) {
    let (aw, ktt) = (c.aw, c.ktt);
    let base = ps * c.a_slots * ktt * aw;
    match loc {
        ALoc::Group(i) => ((base + i * aw) as i64, (c.gm * aw) as i64),
        ALoc::Ring(r) => ((base + (c.gm + r) * ktt * aw) as i64, aw as i64),
    }
}

/// Chooses the tiling and the rings (see the module doc); `None` when even one chunk's panel
/// does not fit on chip.
/// `tile_n` is the widest moving chunk wanted (the node's `tile_n` attribute, chosen by the
/// optimizer's tiling phase; one PSUM bank's width by default).
fn configure(p: &Plan, opd: Dtype, ydt: Dtype, batches: u64, tile_n: u64) -> Option<Cfg> {
    // Narrower chunks when a long contraction leaves no room for full-width panels (a chunk of
    // at least matmul_min_free columns streams at the full rate).
    let mut ch = tile_n.clamp(1, machine::MAX_MOVING_FREE);
    loop {
        if let Some(c) = configure_with(p, opd, ydt, batches, ch) {
            return Some(c);
        }
        if ch <= 1 {
            return None;
        }
        ch /= 2;
    }
}

fn configure_with(p: &Plan, opd: Dtype, ydt: Dtype, batches: u64, ch_max: u64) -> Option<Cfg> {
    let kp = machine::PE_ROWS;
    let pm = machine::PE_COLS;
    let (ktf, krem) = (p.k / kp, p.k % kp);
    let ktt = (ktf + u64::from(krem > 0)).max(1);
    let mtiles = p.m.div_ceil(pm);
    let bank_elems = machine::PSUM_PARTITION_BYTES / machine::PSUM_BANKS / Dtype::Fp32.size_bytes();
    let ch = ch_max.min(bank_elems);
    let nch = p.n.div_ceil(ch);
    let total_tiles = mtiles * nch * batches;
    let y_slots = Y_SLOTS.min(total_tiles).max(1);
    // What layout rounds each buffer to, at most, with some slack.
    let slack = 8 * 64;
    let esz = opd.size_bytes();
    let ych = ch.min(p.n.max(1));
    let mut left = machine::SBUF_PARTITION_BYTES.checked_sub(slack)?;
    left = left.checked_sub(y_slots * ych * ydt.size_bytes())?;
    if p.c.is_some() {
        left = left.checked_sub(y_slots * ych * Dtype::Fp32.size_bytes())?;
    }
    if p.res.is_some() {
        left = left.checked_sub(y_slots * ych * Dtype::Fp32.size_bytes())?;
    }
    let aw = pm.min(p.m).max(1);
    let a_panel = ktt * aw * esz;
    let a_min = a_panel * mtiles.min(2);
    let mut nbc = nch.max(1);
    let (nbw, nblocks, b_slots) = loop {
        let nbw = (nbc * ch).min(p.n).max(1);
        let nblocks = nch.div_ceil(nbc).max(1);
        let panel = ktt * nbw * esz;
        if nblocks == 1 {
            // All of N: more slots when products follow each other and they fit (with the A
            // panels of as many products).
            let slots = (2..=batches.min(MAX_PRODUCT_SLOTS))
                .rev()
                .find(|&r| r * (panel + mtiles * a_panel) <= left);
            if let Some(r) = slots {
                break (nbw, nblocks, r);
            }
            if panel + a_min <= left {
                break (nbw, nblocks, 1);
            }
        } else if 2 * panel + a_min <= left {
            break (nbw, nblocks, 2);
        }
        if nbc == 1 {
            return None;
        }
        nbc -= 1;
    };
    left -= b_slots * ktt * nbw * esz;
    let fit = left / a_panel.max(1);
    if fit == 0 {
        return None;
    }
    let fit = fit.min(if batches > 1 {
        b_slots.max(2) * mtiles
    } else {
        mtiles
    });
    let a_resident = fit >= mtiles;
    let pslots = if batches > 1 && nblocks == 1 && b_slots >= 2 && fit >= b_slots * mtiles {
        b_slots
    } else {
        1
    };
    // Slots per product slot (fit >= 2 unless mtiles is 1).
    let a_slots = fit.min(mtiles);
    let banks = machine::PSUM_BANKS.min(total_tiles).max(1);
    let chunks0 = nbc.min(nch);
    let mut gm = if chunks0 == 0 || chunks0 > banks || ktt < 2 {
        0
    } else {
        (banks / chunks0).min(mtiles).min(a_slots)
    };
    if !a_resident {
        // A ring of at least two slots: one panel loads while the other computes.
        gm = gm.min(a_slots.saturating_sub(2));
    }
    if gm * chunks0 < 2 {
        gm = 0;
    }
    let ring = a_slots - gm;
    // Not for a single row or column (a matrix-vector product): its transposed load moves one
    // element per partition, and the partitions' elements are contiguous in HBM only with K
    // tiles of consecutive rows.
    let kil = krem == 0 && ktt > 1 && p.m > 1 && p.n > 1 && !p.a.transpose32 && !p.b.transpose32;
    Some(Cfg {
        ktf,
        krem,
        ktt,
        mtiles,
        ch,
        nch,
        nbc,
        nblocks,
        nbw,
        a_slots,
        ring,
        aw,
        b_slots,
        gm,
        banks,
        bank_elems,
        y_slots,
        ych,
        ydt,
        kil,
        pslots,
        a_resident,
    })
}

/// A constant 2-D operand stored `[rows, cols]`, placed transposed (`[cols, rows]`, K-major) at
/// the compiled precision; the name of its HBM tensor.
fn kmajor_const(l: &mut Lowerer, v: ValueId, dtype: Dtype) -> Option<String> {
    let t = l.graph.const_value(v)?;
    let shape = t.shape();
    if shape.len() != 2 {
        return None;
    }
    let (r, c) = (shape[0], shape[1]);
    let name = format!("w{}_kmajor_{}", v.0, dtype.name());
    if l.program.tensor(&name).is_none() {
        let vals = t.to_f32_vec();
        let mut out = vec![0f32; vals.len()];
        for i in 0..r {
            for j in 0..c {
                out[j * r + i] = vals[i * c + j];
            }
        }
        l.program.tensors.push(HbmTensor {
            name: name.clone(),
            dtype,
            shape: vec![c as u64, r as u64],
            kind: HbmKind::Const { values: out },
        });
    }
    Some(name)
}

/// Lowers a MatMul or Gemm node.
pub fn lower(l: &mut Lowerer, node: &Node) -> Result<(), Diagnostic> {
    let opd = l.opts.precision.operand_dtype();
    let float = |d: crate::tensor::DType| d.is_float();
    if !node.inputs.iter().all(|&i| float(l.graph.ty(i).dtype)) {
        return Err(node_error(
            node,
            Code::NotLowered,
            "integer matrix products are not supported on the tensor engine",
        ));
    }
    // Constant operands that would need a transpose on chip are stored K-major instead (not
    // also in their own layout): A unless Gemm's transA; B under transB; single products only.
    let gemm = matches!(node.op, Op::Gemm | Op::FusedGemm);
    let flag = |n: &str| gemm && node.attrs.int(n).is_ok_and(|v| v != 0);
    let rank = |v: ValueId| l.graph.ty(v).shape.len();
    let const2 = |v: ValueId| l.graph.const_value(v).is_some() && rank(v) == 2;
    let (ia, ib) = (node.inputs[0], node.inputs[1]);
    let permuted = [PERM_A, PERM_B, PERM_Y]
        .iter()
        .any(|p| node.attrs.get(p).is_some());
    let a_km = !permuted && const2(ia) && if gemm { !flag("transA") } else { rank(ib) == 2 };
    let b_km = !permuted && const2(ib) && flag("transB");
    let placed_km = |l: &mut Lowerer, v: ValueId| -> Option<super::Placed> {
        let tensor = kmajor_const(l, v, opd)?;
        let shape = l.shape_u64(v);
        Some(super::Placed {
            tensor,
            dtype: opd,
            shape,
        })
    };
    let a = match a_km.then(|| placed_km(l, ia)).flatten() {
        Some(p) => p,
        None => l.operand(ia, opd),
    };
    let b = match b_km.then(|| placed_km(l, ib)).flatten() {
        Some(p) => p,
        None => l.operand(ib, opd),
    };
    let y = l.place_output(node.outputs[0], node)?;
    // A FusedGemm's residual joins where C does (shape inference made C present).
    let residual = Epilogue::of_node(l, node)?.0.residual;
    let attr_f = |n: &str| {
        node.attrs
            .float(n)
            .map_err(|m| node_error(node, Code::BadAttribute, m))
    };
    let attr_i = |n: &str| {
        node.attrs
            .int(n)
            .map_err(|m| node_error(node, Code::BadAttribute, m))
    };
    let tile_n = match node.attrs.get(crate::opt::rules::tiling::TILE_N) {
        None => machine::MAX_MOVING_FREE,
        Some(_) => match attr_i(crate::opt::rules::tiling::TILE_N)? {
            w if w > 0 => w as u64,
            w => {
                return Err(node_error(
                    node,
                    Code::BadAttribute,
                    format!("tile_n = {w}: the moving chunk width must be positive"),
                ))
            }
        },
    };
    let perm = |name: &str| -> Result<Option<Vec<usize>>, Diagnostic> {
        match node.attrs.get(name) {
            None => Ok(None),
            Some(_) => node
                .attrs
                .usizes(name)
                .map(Some)
                .map_err(|m| node_error(node, Code::BadAttribute, m)),
        }
    };
    let (m, k, n);
    let (mut am, mut bm);
    // The result's row and column strides (contiguous unless MatMul's perm_y says otherwise).
    let mut ym = Mat { row: 0, col: 1 };
    let mut c = None;
    let (alpha, beta);
    let mut prods = Vec::new();
    if gemm {
        let (ta, tb) = (attr_i("transA")? != 0, attr_i("transB")? != 0);
        (alpha, beta) = (attr_f("alpha")?, attr_f("beta")?);
        (m, k) = if ta {
            (a.shape[1], a.shape[0])
        } else {
            (a.shape[0], a.shape[1])
        };
        n = if tb { b.shape[0] } else { b.shape[1] };
        ym.row = n as i64;
        am = if ta {
            Mat {
                row: 1,
                col: m as i64,
            }
        } else {
            Mat {
                row: k as i64,
                col: 1,
            }
        };
        bm = if tb {
            Mat {
                row: 1,
                col: k as i64,
            }
        } else {
            Mat {
                row: n as i64,
                col: 1,
            }
        };
        if let Some(&cv) = node.inputs.get(2) {
            let cp = l.placed(cv);
            // C broadcasts to [M, N]: a missing or size-1 dim has stride 0.
            let cs = &cp.shape;
            let (cm_rows, cm_cols) = match cs.len() {
                0 => (1, 1),
                1 => (1, cs[0]),
                _ => (cs[0], cs[1]),
            };
            let cm = Mat {
                row: if cm_rows == 1 { 0 } else { cm_cols as i64 },
                col: if cm_cols == 1 { 0 } else { 1 },
            };
            c = Some((cp.tensor, cm));
        }
        prods.push(Prod {
            a_off: 0,
            b_off: 0,
            c_off: 0,
            y_off: 0,
        });
    } else {
        // The optimizer's attributes (opt/rules/algebra.rs, layout.rs): a scale applied on the
        // way out of PSUM, operands read and the result written through permutations.
        alpha = match node.attrs.get("alpha") {
            Some(_) => attr_f("alpha")?,
            None => 1.0,
        };
        beta = 0.0;
        let (pa, pb, py) = (perm(PERM_A)?, perm(PERM_B)?, perm(PERM_Y)?);
        let (ash, ast) = permuted_view(&a.shape, pa.as_deref());
        let (bsh, bst) = permuted_view(&b.shape, pb.as_deref());
        let (ysh, yst) = unpermuted_view(&y.shape, py.as_deref());
        let (ar, br) = (ash.len(), bsh.len());
        m = if ar == 1 { 1 } else { ash[ar - 2] };
        k = ash[ar - 1];
        n = if br == 1 { 1 } else { bsh[br - 1] };
        let batch = |r: usize| r.saturating_sub(2);
        let yr = ysh.len();
        // The output keeps M unless A is 1-D and N unless B is 1-D; the rest is batch.
        let y_batch_len = yr - usize::from(ar > 1) - usize::from(br > 1);
        let y_batch = &ysh[..y_batch_len];
        let a_offs = batch_offsets(&ash[..batch(ar)], &ast[..batch(ar)], y_batch);
        let b_offs = batch_offsets(&bsh[..batch(br)], &bst[..batch(br)], y_batch);
        let y_offs = batch_offsets(y_batch, &yst[..y_batch_len], y_batch);
        // A 1-D operand has one row (A) or one column (B): that stride is never used and is
        // given as if the matrix were contiguous.
        am = Mat {
            row: if ar > 1 { ast[ar - 2] } else { k as i64 },
            col: ast[ar - 1],
        };
        bm = if br > 1 {
            Mat {
                row: bst[br - 2],
                col: bst[br - 1],
            }
        } else {
            Mat {
                row: bst[0],
                col: 1,
            }
        };
        ym = match (ar > 1, br > 1) {
            (true, true) => Mat {
                row: yst[yr - 2],
                col: yst[yr - 1],
            },
            (false, true) => Mat {
                row: n as i64,
                col: yst[yr - 1],
            },
            (true, false) => Mat {
                row: yst[yr - 1],
                col: 1,
            },
            (false, false) => Mat { row: 1, col: 1 },
        };
        for ((&ao, &bo), &yo) in a_offs.iter().zip(&b_offs).zip(&y_offs) {
            prods.push(Prod {
                a_off: ao,
                b_off: bo,
                c_off: 0,
                y_off: yo,
            });
        }
    }
    if a_km
        && l.program
            .tensor(&a.tensor)
            .is_some_and(|t| t.shape == [k, m])
    {
        am = Mat {
            row: 1,
            col: m as i64,
        };
    }
    if b_km
        && l.program
            .tensor(&b.tensor)
            .is_some_and(|t| t.shape == [k, n])
    {
        bm = Mat {
            row: n as i64,
            col: 1,
        };
    }
    let (a_tensor, a_dt, b_tensor, b_dt) = (a.tensor.clone(), a.dtype, b.tensor.clone(), b.dtype);
    let blk = machine::VECTOR_TRANSPOSE_BLOCK;
    // TRANSPOSE32 only for element types the DMA engines cannot transpose (a DMA transpose
    // streams at most of the engine rate; 64-byte block loads pay a descriptor per block row).
    let t32 = |x_stride: i64, k_stride: i64, x: u64, dt: Dtype| {
        !costs::dma_transposes(dt.size_bytes().max(opd.size_bytes()))
            && k_stride == 1
            && x_stride != 1
            && k.is_multiple_of(blk)
            && x.is_multiple_of(blk)
            && k > 0
            && x > 0
    };
    let plan = Plan {
        a: Src {
            tensor: &a_tensor,
            x_stride: am.row,
            k_stride: am.col,
            transpose32: t32(am.row, am.col, m, a_dt),
        },
        b: Src {
            tensor: &b_tensor,
            x_stride: bm.col,
            k_stride: bm.row,
            transpose32: t32(bm.col, bm.row, n, b_dt),
        },
        y: &y.tensor,
        ym,
        res: residual.as_ref().map(|(t, at)| (t.as_str(), *at)),
        c: c.as_ref().map(|(t, cm): &(String, Mat)| (t.as_str(), *cm)),
        m,
        k,
        n,
        alpha,
        beta,
        act: super::epilogue::fused_act(node)?,
    };
    let ydt = if plan.c.is_some() {
        Dtype::Fp32
    } else {
        y.dtype
    };
    let mut body = Vec::new();
    let mut buffers = Vec::new();
    if m > 0 && n > 0 && !prods.is_empty() {
        let cfg = configure(&plan, opd, ydt, prods.len() as u64, tile_n).ok_or_else(|| {
            node_error(
                node,
                Code::OnChipMemory,
                format!(
                    "a [{m}, {k}] x [{k}, {n}] product needs more SBUF than the chip has for \
                     a one-column panel of B plus two A^T panels of K = {k}"
                ),
            )
            .help("split the contraction (K) of this node into several products")
        })?;
        let size = |d: Dtype| d.size_bytes();
        let mut g = Gen {
            p: &plan,
            c: cfg.clone(),
            a_esz: size(a_dt).max(size(opd)),
            b_esz: size(b_dt).max(size(opd)),
            y_esz: size(ydt).max(size(y.dtype)),
            out: Vec::new(),
            y_next: 0,
            bank_next: 0,
            evac_on_vector: false,
            tiles_left: cfg.mtiles * cfg.nch * prods.len() as u64,
            store: None,
        };
        if cfg.pslots > 1 {
            let r = cfg.pslots as usize;
            for (i, pr) in prods.iter().enumerate().take(r - 1) {
                g.prologue(pr, i as u64);
            }
            for (i, pr) in prods.iter().enumerate() {
                if let Some(next) = prods.get(i + r - 1) {
                    g.prologue(next, ((i + r - 1) % r) as u64);
                }
                g.product(pr, (i % r) as u64);
            }
        } else {
            for pr in &prods {
                g.prologue(pr, 0);
                g.product(pr, 0);
            }
        }
        body = g.out;
        let (pr, pm) = (machine::PE_ROWS, machine::PE_COLS);
        let buf = |name: &str, mem, dtype, partitions, free: u64| Buffer {
            name: name.into(),
            mem,
            dtype,
            partitions,
            free: free.max(1),
        };
        if k > 0 {
            buffers.push(buf(
                "at",
                Mem::Sbuf,
                opd,
                pr,
                cfg.pslots * cfg.a_slots * cfg.ktt * cfg.aw,
            ));
            buffers.push(buf(
                "b",
                Mem::Sbuf,
                opd,
                pr,
                cfg.b_slots * cfg.ktt * cfg.nbw,
            ));
            buffers.push(buf(
                "acc",
                Mem::Psum,
                Dtype::Fp32,
                pm,
                cfg.banks * cfg.bank_elems,
            ));
        }
        buffers.push(buf("y", Mem::Sbuf, cfg.ydt, pm, cfg.y_slots * cfg.ych));
        if plan.c.is_some() {
            buffers.push(buf("c", Mem::Sbuf, Dtype::Fp32, pm, cfg.y_slots * cfg.ych));
        }
        if plan.res.is_some() {
            buffers.push(buf("r", Mem::Sbuf, Dtype::Fp32, pm, cfg.y_slots * cfg.ych));
        }
    }
    l.push_kernel(Kernel {
        name: node.name.clone(),
        op: node.op.name().to_string(),
        buffers,
        body,
    });
    Ok(())
}
