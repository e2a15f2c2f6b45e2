//! What the two schedulers share: the semaphore file, wait/signal rules, run statistics, and
//! turning faults and stuck streams into located errors.

use crate::engines::Effects;
use crate::error::{Blocked, ExecError, Fault, RunError};
use tahoma_isa::program::{Program, Stream, StreamId};
use tahoma_isa::{asm, machine, Dtype, Header, Inst};

/// The core's semaphores.
pub struct Sems(pub Vec<u64>);

impl Default for Sems {
    fn default() -> Self {
        Sems::new()
    }
}

impl Sems {
    pub fn new() -> Sems {
        Sems(vec![0; machine::SEMAPHORES as usize])
    }
    pub fn get(&self, s: u64) -> u64 {
        self.0.get(s as usize).copied().unwrap_or(0)
    }
    /// The first wait of `h` that does not hold, as (semaphore, awaited value).
    pub fn unsatisfied(&self, h: &Header) -> Option<(u64, u64)> {
        h.waits().into_iter().find(|&(s, v)| self.get(s) < v)
    }
    /// Applies the signal of `h`.
    pub fn signal(&mut self, h: &Header) {
        if let Some((s, k)) = h.signal() {
            if let Some(v) = self.0.get_mut(s as usize) {
                *v = v.saturating_add(k);
            }
        }
    }
}

/// Per-stream counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamStats {
    /// Instructions executed (END included).
    pub instructions: u64,
    /// Cycles the engine was busy (timed mode; 0 in functional mode).
    pub busy_cycles: f64,
    /// Cycles the engine was free but its next instruction waited on a semaphore (timed mode).
    pub stall_cycles: f64,
}

/// Counters of a whole run.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub streams: Vec<(StreamId, StreamStats)>,
    pub macs: u64,
    pub hbm_bytes: u64,
    /// MACs per operand dtype, to pick the roofline's precision.
    pub macs_by_dtype: Vec<(Dtype, u64)>,
}

impl Stats {
    pub fn new(streams: &[&Stream]) -> Stats {
        Stats {
            streams: streams
                .iter()
                .map(|s| (s.id, StreamStats::default()))
                .collect(),
            ..Stats::default()
        }
    }
    pub fn record(&mut self, lane: usize, e: &Effects) {
        if let Some((_, s)) = self.streams.get_mut(lane) {
            s.instructions += 1;
        }
        self.macs += e.macs;
        self.hbm_bytes += e.hbm_bytes;
        if let Some(d) = e.matmul_dtype {
            match self.macs_by_dtype.iter_mut().find(|(x, _)| *x == d) {
                Some((_, m)) => *m += e.macs,
                None => self.macs_by_dtype.push((d, e.macs)),
            }
        }
    }
    pub fn lane(&mut self, lane: usize) -> &mut StreamStats {
        &mut self.streams[lane].1
    }
}

/// The program's streams in a fixed order (tensor, vector, scalar, dma0..).
pub fn ordered(program: &Program) -> Vec<&Stream> {
    let mut v: Vec<&Stream> = program.streams.iter().collect();
    v.sort_by_key(|s| s.id);
    v
}

/// Locates a fault at `pc` of `stream`.
pub fn exec_error(program: &Program, stream: &Stream, pc: usize, fault: Fault) -> RunError {
    RunError::Exec(Box::new(ExecError {
        stream: stream.id,
        pc,
        inst: stream
            .insts
            .get(pc)
            .map(asm::format_inst)
            .unwrap_or_default(),
        op: program.op_of(stream, pc).map(str::to_string),
        fault,
    }))
}

/// Builds the deadlock report from every unfinished stream's blocking wait.
pub fn deadlock(
    program: &Program,
    streams: &[&Stream],
    pcs: &[usize],
    done: &[bool],
    sems: &Sems,
    cycle: u64,
) -> RunError {
    let mut blocked = Vec::new();
    for (i, s) in streams.iter().enumerate() {
        if done[i] {
            continue;
        }
        let pc = pcs[i];
        let Some(inst) = s.insts.get(pc) else {
            continue;
        };
        if let Some((sem, awaited)) = sems.unsatisfied(inst.sync()) {
            blocked.push(Blocked {
                stream: s.id,
                pc,
                inst: asm::format_inst(inst),
                op: program.op_of(s, pc).map(str::to_string),
                sem,
                value: sems.get(sem),
                awaited,
            });
        }
    }
    RunError::Deadlock { blocked, cycle }
}

/// True for the instruction that ends a stream.
pub fn is_end(inst: &Inst) -> bool {
    matches!(inst, Inst::End(_))
}
