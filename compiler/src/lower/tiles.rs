//! Tiling helpers shared by the op lowerings: covering a flat range of elements with
//! `[partitions x free]` tiles, strided DMA copies split to fit the access-pattern limits, and
//! row walks (rows of a tensor on partitions, loops over the rest) for per-row reductions, and
//! DMAs cut into pieces over the queues ([`split_dma`]).

use crate::kernel::{Base, Buffer, Expr, KOp, Stmt, View};
use tahoma_isa::{costs, machine, Dtype, Mem};

/// Largest free size of one row tile of a per-row op (softmax, normalisations, reductions), in
/// fp32 elements (a tiling choice of the compiler).
pub const ROW_FREE_MAX: u64 = 8192;

/// The partition-rule rows that admit an access of `parts` partitions, fewest partitions first
/// (the first is the one that applies): `(partition count, allowed starts)`. Their starts are
/// where side-by-side slots of `parts` partitions may begin (pools and convolutions put blocks
/// of rows there).
pub fn slot_rules(parts: u64) -> impl Iterator<Item = (u64, &'static [u64])> {
    machine::PARTITION_RULES
        .iter()
        .filter(move |&&(max, _)| parts <= max)
        .map(|&(max, starts)| (max, starts))
}

/// An fp32 SBUF buffer.
pub fn sbuf(name: &str, partitions: u64, free: u64) -> Buffer {
    sbuf_typed(name, Dtype::Fp32, partitions, free)
}

/// An SBUF buffer of elements of `dtype` (the engines round to it on write).
pub fn sbuf_typed(name: &str, dtype: Dtype, partitions: u64, free: u64) -> Buffer {
    Buffer {
        name: name.into(),
        mem: Mem::Sbuf,
        dtype,
        partitions: partitions.max(1),
        free: free.max(1),
    }
}

/// A contiguous `[parts, free]` view at the start of buffer `name` (plus `offset` elements).
pub fn tile(name: &str, parts: u64, offset: u64, free: u64) -> View {
    View::buf(
        name,
        0,
        parts,
        Expr::constant(offset as i64),
        vec![(free, 1)],
    )
}

/// Rows of a tensor walked in tiles: the innermost row dim goes on partitions (in tiles of at
/// most `PARTITIONS`), the outer row dims become loops. Each [`Dim`] carries the element stride
/// of a row step in the input (`src`) and in the output (`dst`).
#[derive(Clone, Debug)]
pub struct RowWalk {
    pub outer: Vec<Dim>,
    pub part: Dim,
}

impl RowWalk {
    /// The walk over `rows` (outermost first; unit dims dropped, contiguous ones merged).
    pub fn new(rows: &[Dim]) -> RowWalk {
        let mut dims = simplify(rows);
        let part = dims.pop().unwrap_or(Dim {
            size: 1,
            src: 0,
            dst: 0,
        });
        RowWalk { outer: dims, part }
    }

    /// Largest partition count of a tile.
    pub fn max_parts(&self) -> u64 {
        self.part.size.min(machine::PARTITIONS)
    }

    /// The statements of the walk: `emit(parts, src_offset, dst_offset)` gives the ops of one
    /// tile of `parts` rows whose first row sits at those element offsets.
    pub fn stmts(&self, emit: &dyn Fn(u64, Expr, Expr) -> Vec<KOp>) -> Vec<Stmt> {
        self.stmts_slots(1, &|p, s, d, _| emit(p, s, d))
    }

    /// Like [`RowWalk::stmts`], with consecutive tiles rotating over `slots` buffer slots:
    /// `emit(parts, src_offset, dst_offset, slot)`. The loop over tiles is unrolled by `slots`
    /// so each slot is a constant, and the load of one tile can overlap the compute of the
    /// previous ones (codegen orders slot reuse by byte ranges).
    pub fn stmts_slots(
        &self,
        slots: u64,
        emit: &dyn Fn(u64, Expr, Expr, u64) -> Vec<KOp>,
    ) -> Vec<Stmt> {
        let wrap = |p: u64, s: Expr, d: Expr, slot: u64| {
            emit(p, s, d, slot).into_iter().map(Stmt::Op).collect()
        };
        self.level(0, Expr::constant(0), Expr::constant(0), slots.max(1), &wrap)
    }

    /// Like [`RowWalk::stmts`] for tiles whose code holds loops of its own.
    pub fn stmts_nested(&self, emit: &dyn Fn(u64, Expr, Expr) -> Vec<Stmt>) -> Vec<Stmt> {
        self.level(0, Expr::constant(0), Expr::constant(0), 1, &|p, s, d, _| {
            emit(p, s, d)
        })
    }

    fn level(
        &self,
        depth: usize,
        src: Expr,
        dst: Expr,
        slots: u64,
        emit: &dyn Fn(u64, Expr, Expr, u64) -> Vec<Stmt>,
    ) -> Vec<Stmt> {
        let p = machine::PARTITIONS;
        let (full, rest) = (self.part.size / p, self.part.size % p);
        if let Some(d) = self.outer.get(depth) {
            let var = format!("r{depth}");
            // The innermost loop whose iterations are one tile each rotates the slots.
            if depth + 1 == self.outer.len() && full == 1 && rest == 0 && slots > 1 {
                let step = Step {
                    var: &var,
                    count: d.size,
                    src: d.src,
                    dst: d.dst,
                };
                return step.rotate(src, dst, slots, &|s, t, slot| emit(p, s, t, slot));
            }
            let body = self.level(
                depth + 1,
                src.plus_var(&var, d.src),
                dst.plus_var(&var, d.dst),
                slots,
                emit,
            );
            return vec![Stmt::Loop {
                var,
                start: 0,
                end: d.size as i64,
                body,
            }];
        }
        let mut out = Vec::new();
        if full > 0 {
            let step = Step {
                var: "t",
                count: full,
                src: p as i64 * self.part.src,
                dst: p as i64 * self.part.dst,
            };
            out.extend(step.rotate(src.clone(), dst.clone(), slots, &|s, t, slot| {
                emit(p, s, t, slot)
            }));
        }
        if rest > 0 {
            let k = (full * p) as i64;
            out.extend(emit(
                rest,
                src.plus(k * self.part.src),
                dst.plus(k * self.part.dst),
                full % slots,
            ));
        }
        out
    }
}

/// `count` tiles a constant element stride apart (in the input and the output), indexed by
/// loop variable `var`.
struct Step<'a> {
    var: &'a str,
    count: u64,
    src: i64,
    dst: i64,
}

impl Step<'_> {
    /// Tile `i` uses slot `i % slots`: one tile is emitted as is, a loop of one slot as a loop,
    /// more slots as a loop unrolled by `slots` plus the remaining tiles.
    fn rotate(
        &self,
        src: Expr,
        dst: Expr,
        slots: u64,
        emit: &dyn Fn(Expr, Expr, u64) -> Vec<Stmt>,
    ) -> Vec<Stmt> {
        let at = |i: u64| {
            emit(
                src.clone().plus(i as i64 * self.src),
                dst.clone().plus(i as i64 * self.dst),
                i % slots,
            )
        };
        if self.count == 1 {
            return at(0);
        }
        let rounds = self.count / slots;
        let mut out = Vec::new();
        if rounds > 1 || (rounds == 1 && slots == 1) {
            let (s, d) = (slots as i64 * self.src, slots as i64 * self.dst);
            let body = (0..slots)
                .flat_map(|k| {
                    emit(
                        src.clone().plus_var(self.var, s).plus(k as i64 * self.src),
                        dst.clone().plus_var(self.var, d).plus(k as i64 * self.dst),
                        k,
                    )
                })
                .collect();
            out.push(Stmt::Loop {
                var: self.var.to_string(),
                start: 0,
                end: rounds as i64,
                body,
            });
        } else if rounds == 1 {
            out.extend((0..slots).flat_map(at));
        }
        out.extend((rounds * slots..self.count).flat_map(at));
        out
    }
}

/// Largest free size of an elementwise tile, in elements (a tiling choice of the compiler).
pub const ELEMENTWISE_FREE_MAX: u64 = 2048;

/// A covering of `[0, n)` by tiles: `full` tiles of `[PARTITIONS x free]` starting at
/// `t * PARTITIONS * free`, then the `rest` tiles `(offset, partitions, free)`.
#[derive(Clone, Debug, PartialEq)]
pub struct FlatTiles {
    pub free: u64,
    pub full: u64,
    pub rest: Vec<(u64, u64, u64)>,
}

/// Tiles `n` elements with free sizes up to `free_max`.
pub fn flat_tiles(n: u64, free_max: u64) -> FlatTiles {
    let p = machine::PARTITIONS;
    let free = n.div_ceil(p).clamp(1, free_max);
    let full = n / (p * free);
    let mut at = full * p * free;
    let mut rest = Vec::new();
    let rem = n - at;
    if rem >= free {
        rest.push((at, rem / free, free));
        at += rem / free * free;
    }
    if n > at {
        rest.push((at, 1, n - at));
    }
    FlatTiles { free, full, rest }
}

/// One dimension of a strided copy: its size and the element strides on each side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dim {
    pub size: u64,
    pub src: i64,
    pub dst: i64,
}

/// Row-major strides of `shape`.
pub fn contiguous_strides(shape: &[u64]) -> Vec<i64> {
    let mut s = vec![1i64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1] as i64;
    }
    s
}

/// Drops unit dims and merges neighbours that are contiguous on both sides.
pub fn simplify(dims: &[Dim]) -> Vec<Dim> {
    let mut out: Vec<Dim> = Vec::new();
    for &d in dims.iter().filter(|d| d.size != 1) {
        match out.last_mut() {
            Some(prev)
                if prev.src == d.src * d.size as i64 && prev.dst == d.dst * d.size as i64 =>
            {
                prev.size *= d.size;
                prev.src = d.src;
                prev.dst = d.dst;
            }
            _ => out.push(d),
        }
    }
    out
}

/// Emits DMAs copying the elements enumerated by `dims` (outermost first) from HBM tensor
/// `src` at element `src_off` to HBM tensor `dst` at `dst_off`, splitting what does not fit one
/// access pattern (at most one partition dim plus `MAX_FREE_DIMS` free dims, bounded sizes).
pub fn dma_strided(
    src: &str,
    src_off: i64,
    dst: &str,
    dst_off: i64,
    dims: &[Dim],
    out: &mut Vec<KOp>,
) {
    let dims = simplify(dims);
    let max_free = machine::MAX_FREE_ELEMS_SBUF;
    let max_dims = machine::MAX_FREE_DIMS as usize + 1;
    if dims.len() > max_dims {
        // Too many dims: one copy per index of the outermost.
        let d = dims[0];
        for k in 0..d.size as i64 {
            dma_strided(
                src,
                src_off + k * d.src,
                dst,
                dst_off + k * d.dst,
                &dims[1..],
                out,
            );
        }
        return;
    }
    // With all dims in use the outermost is the partition dim, bounded by the partition count.
    let limit = |i: usize| {
        if dims.len() == max_dims && i == 0 {
            machine::PARTITIONS
        } else {
            max_free
        }
    };
    if let Some(i) = (0..dims.len()).find(|&i| dims[i].size > limit(i)) {
        let d = dims[i];
        let mut start = 0;
        while start < d.size {
            let len = limit(i).min(d.size - start);
            let mut sub = dims.clone();
            sub[i].size = len;
            dma_strided(
                src,
                src_off + start as i64 * d.src,
                dst,
                dst_off + start as i64 * d.dst,
                &sub,
                out,
            );
            start += len;
        }
        return;
    }
    let (part, free): (Option<Dim>, &[Dim]) = if dims.len() == max_dims {
        (Some(dims[0]), &dims[1..])
    } else {
        (None, &dims[..])
    };
    let (pc, ps, pd) = part.map_or((1, 0, 0), |p| (p.size, p.src, p.dst));
    let mut sd: Vec<(u64, i64)> = free.iter().map(|d| (d.size, d.src)).collect();
    let mut dd: Vec<(u64, i64)> = free.iter().map(|d| (d.size, d.dst)).collect();
    if sd.is_empty() {
        sd.push((1, 1));
        dd.push((1, 1));
    }
    out.push(KOp::Dma {
        dst: View::hbm(dst, pc, pd, Expr::constant(dst_off), dd),
        src: View::hbm(src, pc, ps, Expr::constant(src_off), sd),
    });
}

/// Target bytes of one DMA piece: large enough that the trigger latency is a modest share of a
/// queue's time, small enough that the pieces of one load spread over several queues (a tiling
/// choice of the compiler).
pub const DMA_PIECE_BYTES: u64 = 64 * 1024;
/// The shortest contiguous run worth cutting a transfer into: one whose descriptor costs the DMA
/// engines at most a quarter of its bytes' time.
pub fn min_run_bytes() -> u64 {
    4 * machine::DMA_DESCRIPTOR_CYCLES * machine::DMA_ENGINE_BYTES_PER_CYCLE
}

/// Most pieces one DMA is cut into (a tiling choice; codegen balances pieces over the queues).
const MAX_PIECES: u64 = 16;
/// Partition groups a DMA is cut into first (a tiling choice: codegen gives each group of DMA
/// engines its own queues, so equal groups spread a transfer evenly).
pub const PARTITION_GROUPS: u64 = 4;

/// Whether an on-chip access of `count` partitions may start at `start`.
fn part_ok(start: u64, count: u64) -> bool {
    machine::PARTITION_RULES
        .iter()
        .find(|(max, _)| count <= *max)
        .is_some_and(|(_, starts)| starts.contains(&start))
}

/// Splits the range `0..size` into `pieces` near-equal ranges.
fn ranges(size: u64, pieces: u64) -> Vec<(u64, u64)> {
    let p = pieces.clamp(1, size.max(1));
    (0..p)
        .map(|i| (i * size / p, (i + 1) * size / p))
        .filter(|(a, b)| b > a)
        .collect()
}

/// A DMA between two views of the same partition count and free dim sizes, cut into pieces of
/// about `target` bytes (`bytes` in all): by partition groups first (as the partition rules
/// allow), then along the outermost free dim that has enough elements.
pub fn split_dma(dst: View, src: View, bytes: u64, target: u64, ops: &mut Vec<KOp>) {
    let want = bytes.div_ceil(target.max(1)).clamp(1, MAX_PIECES);
    let sizes = |v: &View| v.dims.iter().map(|d| d.0).collect::<Vec<_>>();
    if want == 1 || dst.part_count != src.part_count || sizes(&dst) != sizes(&src) {
        ops.push(KOp::Dma { dst, src });
        return;
    }
    let on_chip_start = |v: &View| match v.base {
        Base::Buf(_) => v
            .part_start
            .terms
            .is_empty()
            .then_some(v.part_start.constant as u64),
        Base::Hbm(_) => Some(0),
    };
    let parts = dst.part_count;
    let (ds, ss) = (on_chip_start(&dst), on_chip_start(&src));
    let mut pg = 1;
    for g in [PARTITION_GROUPS, 2] {
        if g <= want && parts.is_multiple_of(g) {
            let gs = parts / g;
            let ok = |s: Option<u64>| s.is_some_and(|s| (0..g).all(|i| part_ok(s + i * gs, gs)));
            if ok(ds) && ok(ss) {
                pg = g;
                break;
            }
        }
    }
    let mut fp = want.div_ceil(pg);
    let d = dst
        .dims
        .iter()
        .position(|x| x.0 >= fp)
        .or_else(|| (0..dst.dims.len()).max_by_key(|&i| dst.dims[i].0));
    // Each piece moves one descriptor per contiguous run: cut no run shorter than
    // min_run_bytes (or than it was, when it already was).
    if let Some(d) = d {
        let esize = bytes / (dst.part_count.max(1) * dst.free_elems()).max(1);
        let run = |v: &View, size: u64| {
            let mut dims = v.dims.clone();
            dims[d].0 = size;
            costs::contiguous_elems(&dims, None) * esize.max(1)
        };
        let size = dst.dims[d].0;
        let whole = run(&dst, size).min(run(&src, size));
        while fp > 1 {
            let piece = run(&dst, size.div_ceil(fp)).min(run(&src, size.div_ceil(fp)));
            if piece >= whole || piece >= min_run_bytes() {
                break;
            }
            fp -= 1;
        }
    }
    let gs = parts / pg;
    for g in 0..pg {
        let rs = match d {
            Some(d) => ranges(dst.dims[d].0, fp),
            None => vec![(0, 1)],
        };
        for (lo, hi) in rs {
            let piece = |v: &View| {
                let mut v = v.clone();
                let p0 = (g * gs) as i64;
                match v.base {
                    Base::Buf(_) => v.part_start = v.part_start.clone().plus(p0),
                    Base::Hbm(_) => v.offset = v.offset.clone().plus(p0 * v.part_stride),
                }
                v.part_count = gs;
                if let Some(d) = d {
                    v.offset = v.offset.clone().plus(lo as i64 * v.dims[d].1);
                    v.dims[d].0 = hi - lo;
                }
                v
            };
            ops.push(KOp::Dma {
                dst: piece(&dst),
                src: piece(&src),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covered(t: &FlatTiles) -> u64 {
        t.full * machine::PARTITIONS * t.free + t.rest.iter().map(|r| r.1 * r.2).sum::<u64>()
    }

    #[test]
    fn flat_tiles_cover_every_element_once() {
        for n in [
            1,
            7,
            128,
            129,
            1000,
            128 * 2048,
            128 * 2048 + 5,
            3 * 128 * 2048 + 129 * 7,
        ] {
            let t = flat_tiles(n, ELEMENTWISE_FREE_MAX);
            assert_eq!(covered(&t), n, "{n}: {t:?}");
            let mut at = t.full * machine::PARTITIONS * t.free;
            for &(off, p, f) in &t.rest {
                assert_eq!(off, at);
                assert!(p <= machine::PARTITIONS && f <= ELEMENTWISE_FREE_MAX);
                at += p * f;
            }
        }
    }

    #[test]
    fn strided_copies_merge_contiguous_dims_and_split_large_ones() {
        let mut ops = Vec::new();
        // A contiguous [4, 8, 16] copy is one run of 512.
        let dims: Vec<Dim> = [4u64, 8, 16]
            .iter()
            .zip(contiguous_strides(&[4, 8, 16]))
            .map(|(&s, st)| Dim {
                size: s,
                src: st,
                dst: st,
            })
            .collect();
        dma_strided("a", 0, "b", 0, &dims, &mut ops);
        assert_eq!(ops.len(), 1);
        let KOp::Dma { src, .. } = &ops[0] else {
            panic!()
        };
        assert_eq!(src.dims, vec![(512, 1)]);
        // A run longer than a dim can hold is split.
        ops.clear();
        dma_strided(
            "a",
            0,
            "b",
            0,
            &[Dim {
                size: 3 * machine::MAX_FREE_ELEMS_SBUF,
                src: 1,
                dst: 1,
            }],
            &mut ops,
        );
        assert_eq!(ops.len(), 3);
    }
}
