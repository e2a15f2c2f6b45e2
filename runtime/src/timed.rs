//! Timed mode: event-driven per-engine timelines in core cycles. An instruction starts when its
//! engine is free and its semaphore waits hold: start = max(engine free, waits satisfied); it
//! ends after its `costs::inst_cost`, and its signal lands then. Effects apply at start (the
//! semaphores order every legal program). A DMA queue issues its next DMA_COPY as soon as the
//! previous one is issued (and its waits hold); transfers of one queue complete in order. A
//! transfer occupies its queue from max(issue + trigger latency, end of the transfer ahead of
//! it): first its descriptors' cycles, then its bytes flow at min(queue rate, HBM rate / HBM
//! transfers flowing), recomputed whenever a transfer starts or stops flowing (a fluid model). A LOAD_STATIONARY right after a MATMUL may start
//! while that MATMUL streams (as soon as it started); the next instruction waits for both.

use crate::engines::Core;
use crate::error::RunError;
use crate::sched::{deadlock, exec_error, is_end, ordered, Sems, Stats};
use crate::trace::Slice;
use tahoma_isa::costs::{inst_cost, Cost};
use tahoma_isa::program::Program;
use tahoma_isa::{machine, Inst};

/// The bandwidth and latency parameters of the DMA model (defaults: the spec's `machine`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimingParams {
    pub dma_trigger_latency: f64,
    pub dma_descriptor_cycles: u64,
    pub dma_queue_bytes_per_cycle: f64,
    pub hbm_bytes_per_cycle: f64,
}

impl Default for TimingParams {
    fn default() -> Self {
        TimingParams {
            dma_trigger_latency: machine::DMA_TRIGGER_LATENCY as f64,
            dma_descriptor_cycles: machine::DMA_DESCRIPTOR_CYCLES,
            dma_queue_bytes_per_cycle: machine::DMA_QUEUE_BYTES_PER_CYCLE as f64,
            hbm_bytes_per_cycle: machine::HBM_BYTES_PER_CYCLE as f64,
        }
    }
}

const EPS: f64 = 1e-9;

/// Timeline state of one stream.
struct Lane {
    pc: usize,
    done: bool,
    /// When the engine's main pipe is free.
    busy_until: f64,
    /// When a background LOAD_STATIONARY finishes (tensor engine).
    ls_until: f64,
    /// The previous instruction was a MATMUL, so a LOAD_STATIONARY may overlap it.
    prev_matmul: bool,
    /// When the next instruction could start, semaphores aside (for stall accounting).
    ready_at: f64,
    /// End of the union of busy intervals so far.
    covered: f64,
    /// The semaphore the next instruction was last seen waiting for once the engine was free.
    blocked_on: Option<u64>,
}

/// A compute instruction in flight: its signal lands at `at`.
struct Pending {
    at: f64,
    lane: usize,
    pc: usize,
}

/// A DMA in flight, in issue order (per queue, only the first one occupies the queue).
struct Xfer {
    lane: usize,
    pc: usize,
    /// Issue + trigger latency: the earliest its queue may start on it.
    ready_at: f64,
    /// Queue cycles of its descriptors, spent before the bytes flow.
    descriptor_cycles: f64,
    /// When it took its queue (infinite while a transfer ahead of it occupies the queue).
    start: f64,
    /// When its bytes start to flow (`start` + descriptor cycles).
    flow_at: f64,
    remaining: f64,
    rate: f64,
    uses_hbm: bool,
    /// The queue's rate divided by the stride penalty.
    cap: f64,
    bytes: u64,
    stall: f64,
    waited_on: Option<u64>,
}

/// What a timed run produces besides the stats.
pub struct Timeline {
    pub cycles: f64,
    pub slices: Vec<Slice>,
}

fn add_busy(stats: &mut Stats, lane: &mut Lane, i: usize, start: f64, end: f64) {
    let from = start.max(lane.covered);
    if end > from {
        stats.lane(i).busy_cycles += end - from;
    }
    lane.covered = lane.covered.max(end);
}

pub fn run(
    core: &mut Core,
    program: &Program,
    params: &TimingParams,
    keep_slices: bool,
) -> Result<(Stats, Timeline), RunError> {
    let streams = ordered(program);
    let mut stats = Stats::new(&streams);
    let n = streams.len();
    let mut lanes: Vec<Lane> = streams
        .iter()
        .map(|s| Lane {
            pc: 0,
            done: s.insts.is_empty(),
            busy_until: 0.0,
            ls_until: 0.0,
            prev_matmul: false,
            ready_at: 0.0,
            covered: 0.0,
            blocked_on: None,
        })
        .collect();
    let mut sems = Sems::new();
    let mut pending: Vec<Pending> = Vec::new();
    let mut xfers: Vec<Xfer> = Vec::new();
    let mut slices: Vec<Slice> = Vec::new();
    let mut clock = 0.0f64;
    let mut last_end = 0.0f64;

    loop {
        // Land every signal due by now.
        let mut k = 0;
        while k < pending.len() {
            if pending[k].at <= clock + EPS {
                let p = pending.swap_remove(k);
                if let Some(inst) = streams[p.lane].insts.get(p.pc) {
                    sems.signal(inst.sync());
                }
                last_end = last_end.max(p.at);
            } else {
                k += 1;
            }
        }
        let mut k = 0;
        while k < xfers.len() {
            let x = &xfers[k];
            if clock + EPS >= x.flow_at && x.remaining <= EPS {
                let x = xfers.remove(k);
                // The next transfer of this queue takes it.
                if let Some(next) = xfers.iter_mut().find(|n| n.lane == x.lane) {
                    next.start = next.ready_at.max(clock);
                    next.flow_at = next.start + next.descriptor_cycles;
                }
                if let Some(inst) = streams[x.lane].insts.get(x.pc) {
                    sems.signal(inst.sync());
                }
                let lane = &mut lanes[x.lane];
                add_busy(&mut stats, lane, x.lane, x.start, clock);
                last_end = last_end.max(clock);
                if keep_slices {
                    slices.push(Slice {
                        stream: streams[x.lane].id,
                        pc: x.pc,
                        stationary: false,
                        start: x.start,
                        end: clock,
                        macs: 0,
                        bytes: x.bytes,
                        stall: x.stall,
                        waited_on: x.waited_on,
                    });
                }
            } else {
                k += 1;
            }
        }

        // Start everything that can start now.
        loop {
            let mut started = false;
            for i in 0..n {
                let lane = &mut lanes[i];
                if lane.done {
                    continue;
                }
                let s = streams[i];
                let Some(inst) = s.insts.get(lane.pc) else {
                    lane.done = true;
                    continue;
                };
                let is_ls = matches!(inst, Inst::LoadStationary(_));
                let background = is_ls && lane.prev_matmul;
                let free_at = if background {
                    lane.ls_until
                } else {
                    lane.busy_until.max(lane.ls_until)
                };
                if clock + EPS < free_at {
                    continue;
                }
                if let Some((sem, _)) = sems.unsatisfied(inst.sync()) {
                    lane.blocked_on = Some(sem);
                    continue;
                }
                let pc = lane.pc;
                let eff = core
                    .execute(inst)
                    .map_err(|f| exec_error(program, s, pc, f))?;
                stats.record(i, &eff);
                // Stalled: idle since the engine was ready (a DMA queue is not idle while a transfer it
                // issued earlier occupies it).
                let idle_from = lane.ready_at.max(lane.covered);
                let idle_to = xfers
                    .iter()
                    .find(|x| x.lane == i)
                    .map_or(clock, |x| x.start.min(clock));
                let stall = (idle_to - idle_from).max(0.0);
                stats.lane(i).stall_cycles += stall;
                let waited_on = lane.blocked_on.take().filter(|_| stall > EPS);
                match inst_cost(inst, &program.kernels) {
                    Cost::Cycles(c) => {
                        let end = clock + c as f64;
                        if is_ls {
                            lane.ls_until = end;
                            if !background {
                                lane.busy_until = end;
                            }
                        } else {
                            lane.busy_until = end;
                        }
                        add_busy(&mut stats, lane, i, clock, end);
                        pending.push(Pending {
                            at: end,
                            lane: i,
                            pc,
                        });
                        if keep_slices {
                            slices.push(Slice {
                                stream: s.id,
                                pc,
                                stationary: is_ls,
                                start: clock,
                                end,
                                macs: eff.macs,
                                bytes: 0,
                                stall,
                                waited_on,
                            });
                        }
                    }
                    Cost::Dma {
                        bytes,
                        descriptors,
                        uses_hbm,
                        slowdown,
                    } => {
                        lane.busy_until = clock;
                        let ready_at = clock + params.dma_trigger_latency;
                        let descriptor_cycles = (descriptors * params.dma_descriptor_cycles) as f64;
                        let queued = xfers.iter().any(|x| x.lane == i);
                        let start = if queued { f64::INFINITY } else { ready_at };
                        xfers.push(Xfer {
                            lane: i,
                            pc,
                            ready_at,
                            descriptor_cycles,
                            start,
                            flow_at: start + descriptor_cycles,
                            remaining: bytes as f64,
                            rate: 0.0,
                            uses_hbm,
                            cap: params.dma_queue_bytes_per_cycle / slowdown.max(1) as f64,
                            bytes,
                            stall,
                            waited_on,
                        });
                    }
                }
                let is_mm = matches!(inst, Inst::Matmul(_));
                lane.prev_matmul = is_mm;
                lane.pc += 1;
                if is_end(inst) {
                    lane.done = true;
                }
                let next_is_ls = matches!(s.insts.get(lane.pc), Some(Inst::LoadStationary(_)));
                lane.ready_at = if is_mm && next_is_ls {
                    clock.max(lane.ls_until)
                } else {
                    lane.busy_until.max(lane.ls_until)
                };
                started = true;
            }
            if !started {
                break;
            }
        }

        if lanes.iter().all(|l| l.done) && pending.is_empty() && xfers.is_empty() {
            break;
        }

        // Share HBM bandwidth among the transfers flowing now: max-min fair, each transfer
        // capped by its queue's (possibly stride-penalised) rate.
        let mut flowing: Vec<usize> = (0..xfers.len())
            .filter(|&k| xfers[k].uses_hbm && clock + EPS >= xfers[k].flow_at)
            .collect();
        flowing.sort_by(|&a, &b| xfers[a].cap.total_cmp(&xfers[b].cap));
        let mut left = params.hbm_bytes_per_cycle;
        for (done, &k) in flowing.iter().enumerate() {
            let share = left / (flowing.len() - done) as f64;
            xfers[k].rate = xfers[k].cap.min(share);
            left -= xfers[k].rate;
        }
        for x in xfers.iter_mut() {
            if clock + EPS < x.flow_at {
                x.rate = 0.0;
            } else if !x.uses_hbm {
                x.rate = x.cap;
            }
        }

        // Advance to the next event.
        let mut next = f64::INFINITY;
        for p in &pending {
            next = next.min(p.at);
        }
        for x in &xfers {
            let t = if x.rate == 0.0 {
                x.flow_at
            } else {
                clock + x.remaining / x.rate
            };
            next = next.min(t);
        }
        if !next.is_finite() {
            let pcs: Vec<usize> = lanes.iter().map(|l| l.pc).collect();
            let done: Vec<bool> = lanes.iter().map(|l| l.done).collect();
            return Err(deadlock(
                program,
                &streams,
                &pcs,
                &done,
                &sems,
                clock.ceil() as u64,
            ));
        }
        let dt = next - clock;
        for x in xfers.iter_mut() {
            if x.rate > 0.0 {
                if clock + x.remaining / x.rate <= next + EPS {
                    x.remaining = 0.0;
                } else {
                    x.remaining -= x.rate * dt;
                }
            }
        }
        clock = next;
    }
    Ok((
        stats,
        Timeline {
            cycles: last_end,
            slices,
        },
    ))
}
