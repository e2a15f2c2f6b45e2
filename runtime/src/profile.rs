//! Per-op profile of a timed run: for every op (ONNX node) the instructions came from, when its
//! first instruction started and its last one ended, and how long each engine class was busy on
//! it. This is the per-layer view users read before opening the trace.

use crate::trace::Slice;
use std::collections::BTreeMap;
use tahoma_isa::program::{Program, StreamId};

/// The engine classes a profile splits busy time by.
pub const CLASSES: [&str; 4] = ["tensor", "vector", "scalar", "dma"];

fn class_index(s: StreamId) -> usize {
    match s {
        StreamId::Tensor => 0,
        StreamId::Vector => 1,
        StreamId::Scalar => 2,
        StreamId::Dma(_) => 3,
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
    /// Busy cycles per engine class (in [`CLASSES`] order), summed over its instructions.
    pub busy: [f64; 4],
}

impl OpProfile {
    pub fn span(&self) -> f64 {
        self.end - self.start
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
    let mut by_op: BTreeMap<String, OpProfile> = BTreeMap::new();
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
            busy: [0.0; 4],
        });
        p.instructions += 1;
        p.start = p.start.min(sl.start);
        p.end = p.end.max(sl.end);
        p.busy[class_index(sl.stream)] += sl.end - sl.start;
    }
    let mut v: Vec<OpProfile> = by_op.into_values().collect();
    v.sort_by(|a, b| {
        a.start
            .total_cmp(&b.start)
            .then_with(|| a.name.cmp(&b.name))
    });
    v
}
