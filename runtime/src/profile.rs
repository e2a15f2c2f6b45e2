//! Per-op profile of a timed run: for every op (ONNX node) the instructions came from, when its
//! first instruction started and its last one ended, how long each engine class was busy on
//! it, and an explanation of its time: the **bound** (the resource whose work alone takes
//! longest: the tensor engine's matmuls, the vector, scalar or GpSimd engine, HBM bandwidth for the
//! bytes it moves, or the busiest DMA queue's transfer time beyond its trigger latencies (a
//! kernel that leaves queues idle); or **latency** when none of them fills at least [`LATENCY_SHARE`] of the
//! span, so dependency waits and DMA trigger latencies dominate), achieved vs bound, and the
//! top stall reasons (an engine idle while its next instruction waited on a semaphore, named
//! with the streams that signal it). This is the per-layer view users read before opening the
//! trace.

use crate::trace::Slice;
use std::collections::{BTreeMap, BTreeSet};
use tahoma_isa::program::{Program, StreamId};
use tahoma_isa::{costs, machine, Inst};

/// Descriptor overhead beyond the HBM time still counted as HBM-bound (a reporting choice: a
/// transfer of 4 KiB rows pays about this much).
const DMA_OVERHEAD_SHARE: f64 = 0.15;

/// A kernel whose busiest resource fills less than this share of its span is latency-bound
/// (an analysis convention, not a machine parameter).
pub const LATENCY_SHARE: f64 = 0.5;

/// How many stall reasons an op keeps.
const TOP_STALLS: usize = 3;

/// The engine classes a profile splits busy time by.
pub const CLASSES: [&str; 5] = ["tensor", "vector", "scalar", "dma", "gpsimd"];

fn class_index(s: StreamId) -> usize {
    match s {
        StreamId::Tensor => 0,
        StreamId::Vector => 1,
        StreamId::Scalar => 2,
        StreamId::Dma(_) => 3,
        StreamId::Gpsimd => 4,
    }
}

/// One op's share of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct OpProfile {
    pub name: String,
    pub instructions: u64,
    /// Cycle its first instruction started.
    pub start: f64,
    /// Cycle its last instruction ended.
    pub end: f64,
    /// Cycles during which at least one of its instructions was executing on some engine or
    /// DMA queue (the union of its instructions' intervals): its span without the gaps where
    /// all of its work waited on other ops' results. For an op running alone this is its span;
    /// overlapped with others, it leaves out the stalls they cause.
    pub active: f64,
    /// Busy cycles per engine class (in [`CLASSES`] order), summed over its instructions.
    pub busy: [f64; 5],
    /// Tensor-engine cycles in the main pipe (stationary loads in the background left out).
    pub tensor_cycles: f64,
    /// Bytes its DMAs moved from or to HBM.
    pub hbm_bytes: u64,
    /// Cycles its busiest DMA engine needs for its transfers' work alone
    /// (`costs::DmaWork`: bytes at their rate share plus descriptors).
    pub dma_engine_cycles: f64,
    /// The largest stall reasons: (`"ENGINE waits on sN (SIGNALLERS)"`, cycles), largest first.
    pub stalls: Vec<(String, f64)>,
}

/// What limits an op (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    Tensor,
    Vector,
    Scalar,
    Gpsimd,
    Hbm,
    DmaEngines,
    Latency,
}

impl Bound {
    pub fn name(self) -> &'static str {
        match self {
            Bound::Tensor => "tensor",
            Bound::Vector => "vector",
            Bound::Scalar => "scalar",
            Bound::Gpsimd => "gpsimd",
            Bound::Hbm => "hbm",
            Bound::DmaEngines => "dma-engines",
            Bound::Latency => "latency",
        }
    }
}

impl OpProfile {
    pub fn span(&self) -> f64 {
        self.end - self.start
    }
    /// Cycles each resource needs for this op's work alone: tensor, vector, scalar, GpSimd,
    /// HBM, the busiest DMA engine.
    pub fn resource_cycles(&self) -> [(Bound, f64); 6] {
        [
            (Bound::Tensor, self.tensor_cycles),
            (Bound::Vector, self.busy[1]),
            (Bound::Scalar, self.busy[2]),
            (Bound::Gpsimd, self.busy[4]),
            (
                Bound::Hbm,
                self.hbm_bytes as f64 / machine::HBM_BYTES_PER_CYCLE as f64,
            ),
            (Bound::DmaEngines, self.dma_engine_cycles),
        ]
    }

    /// The bound and its cycles (for `Latency`, the largest resource's cycles).
    pub fn bound(&self) -> (Bound, f64) {
        let r = self.resource_cycles();
        let (mut b, c) = r
            .into_iter()
            .fold((Bound::Tensor, 0.0), |m, r| if r.1 > m.1 { r } else { m });
        // Every transfer pays some descriptor overhead on top of its bytes: DMA engines within
        // DMA_OVERHEAD_SHARE of the HBM time mean the op streams HBM as well as DMA can.
        let hbm = r[4].1;
        if b == Bound::DmaEngines && hbm > 0.0 && c <= hbm * (1.0 + DMA_OVERHEAD_SHARE) {
            b = Bound::Hbm;
        }
        if c < LATENCY_SHARE * self.span() {
            (Bound::Latency, c)
        } else {
            (b, c)
        }
    }

    /// Bound cycles over achieved cycles, in percent.
    pub fn efficiency_percent(&self) -> f64 {
        let span = self.span();
        if span > 0.0 {
            100.0 * self.bound().1 / span
        } else {
            0.0
        }
    }

    /// The engine class busiest on this op.
    pub fn busiest(&self) -> &'static str {
        let i = (0..CLASSES.len())
            .max_by(|&a, &b| self.busy[a].total_cmp(&self.busy[b]))
            .unwrap_or(0);
        CLASSES[i]
    }
}

/// Profiles the ops of `program` from the slices of a timed run, in order of first start.
/// ENDs and instructions without provenance (hand-written code without `.op`) are left out.
pub fn op_profile(program: &Program, slices: &[Slice]) -> Vec<OpProfile> {
    // Who signals each semaphore, to name what a stalled engine waited for.
    let mut signallers: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for st in &program.streams {
        for inst in &st.insts {
            if let Some((sem, _)) = inst.sync().signal() {
                signallers.entry(sem).or_default().insert(st.id.to_string());
            }
        }
    }
    let mut stalls: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    let mut engine_work: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut by_op: BTreeMap<String, OpProfile> = BTreeMap::new();
    let mut intervals: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for sl in slices {
        let Some(stream) = program.stream(sl.stream) else {
            continue;
        };
        if matches!(stream.insts.get(sl.pc), Some(tahoma_isa::Inst::End(_))) {
            continue; // the end of a stream is bookkeeping, not work of the op around it
        }
        let Some(name) = program.op_of(stream, sl.pc).map(str::to_string) else {
            continue;
        };
        let p = by_op.entry(name.clone()).or_insert(OpProfile {
            name,
            instructions: 0,
            start: sl.start,
            end: sl.end,
            active: 0.0,
            busy: [0.0; 5],
            tensor_cycles: 0.0,
            hbm_bytes: 0,
            dma_engine_cycles: 0.0,
            stalls: Vec::new(),
        });
        p.instructions += 1;
        p.start = p.start.min(sl.start);
        p.end = p.end.max(sl.end);
        p.busy[class_index(sl.stream)] += sl.end - sl.start;
        intervals
            .entry(p.name.clone())
            .or_default()
            .push((sl.start, sl.end));
        if sl.stream == StreamId::Tensor && !sl.stationary {
            p.tensor_cycles += sl.end - sl.start;
        }
        let dma = match stream.insts.get(sl.pc) {
            Some(Inst::DmaCopy(x)) => Some(costs::dma_work(&x.src, &x.dst)),
            Some(Inst::DmaGather(x)) => Some(costs::dma_gather_work(x)),
            _ => None,
        };
        if let Some(w) = dma {
            if w.uses_hbm {
                p.hbm_bytes += sl.bytes;
            }
            let per_engine = w.work as f64 / w.engines.max(1) as f64;
            let work = engine_work
                .entry(p.name.clone())
                .or_insert_with(|| vec![0.0; machine::DMA_ENGINES as usize]);
            let first = w.first_engine as usize;
            for e in &mut work[first..first + w.engines as usize] {
                *e += per_engine;
            }
        }
        if let Some(sem) = sl.waited_on {
            let who = signallers
                .get(&sem)
                .map(|s| s.iter().cloned().collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            let engine = match sl.stream {
                StreamId::Dma(_) => "dma".to_string(),
                s => s.to_string(),
            };
            let reason = format!("{engine} waits on s{sem} ({who})");
            *stalls
                .entry(p.name.clone())
                .or_default()
                .entry(reason)
                .or_default() += sl.stall;
        }
    }
    for (name, mut iv) in intervals {
        if let Some(p) = by_op.get_mut(&name) {
            p.active = union_length(&mut iv);
        }
    }
    for (name, work) in engine_work {
        if let Some(p) = by_op.get_mut(&name) {
            let busiest = work.iter().copied().fold(0.0, f64::max);
            p.dma_engine_cycles = busiest / machine::DMA_ENGINE_BYTES_PER_CYCLE as f64;
        }
    }
    for (name, reasons) in stalls {
        if let Some(p) = by_op.get_mut(&name) {
            let mut r: Vec<(String, f64)> = reasons.into_iter().collect();
            r.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            r.truncate(TOP_STALLS);
            p.stalls = r;
        }
    }
    let mut v: Vec<OpProfile> = by_op.into_values().collect();
    v.sort_by(|a, b| {
        a.start
            .total_cmp(&b.start)
            .then_with(|| a.name.cmp(&b.name))
    });
    v
}

/// Total length of the union of `intervals` (sorted in place).
fn union_length(intervals: &mut [(f64, f64)]) -> f64 {
    intervals.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut total = 0.0;
    let mut cur: Option<(f64, f64)> = None;
    for &(s, e) in intervals.iter() {
        cur = match cur {
            Some((cs, ce)) if s <= ce => Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                total += ce - cs;
                Some((s, e))
            }
            None => Some((s, e)),
        };
    }
    if let Some((cs, ce)) = cur {
        total += ce - cs;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::union_length;

    #[test]
    fn active_cycles_count_overlapping_intervals_once_and_skip_gaps() {
        let mut iv = vec![(10.0, 20.0), (0.0, 5.0), (15.0, 30.0), (40.0, 41.0)];
        assert_eq!(union_length(&mut iv), 5.0 + 20.0 + 1.0);
        assert_eq!(union_length(&mut []), 0.0);
    }
}
