//! Timed mode: event-driven per-engine timelines in core cycles. An instruction starts when its
//! engine is free and its semaphore waits hold: start = max(engine free, waits satisfied); it
//! ends after its `costs::inst_cost`, and its signal lands then. Effects apply at start (the
//! semaphores order every legal program). A LOAD_STATIONARY right after a MATMUL may start while
//! that MATMUL streams (as soon as it started); the next instruction waits for both.
//!
//! DMA: a queue issues its next DMA_COPY as soon as the previous one is issued (and its waits
//! hold); its transfers complete in order. A transfer starts moving at max(issue + trigger
//! latency, end of the transfer ahead of it in its queue), so the latency overlaps the transfers
//! ahead. It then does its work (`costs::DmaWork`, engine-bytes: bytes at its rate share plus
//! its descriptors) on the DMA engines of the partitions it touches. Each engine's rate is
//! shared max-min fairly among the transfers using it, and the transfers touching HBM together
//! move at most the HBM rate; the shares are recomputed whenever a transfer starts or ends (a
//! fluid model).

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
    /// Bytes per cycle of each DMA engine.
    pub dma_engine_bytes_per_cycle: f64,
    pub hbm_bytes_per_cycle: f64,
}

impl Default for TimingParams {
    fn default() -> Self {
        TimingParams {
            dma_trigger_latency: machine::DMA_TRIGGER_LATENCY as f64,
            dma_engine_bytes_per_cycle: machine::DMA_ENGINE_BYTES_PER_CYCLE as f64,
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

/// A DMA in flight, in issue order (per queue, only the first one moves).
struct Xfer {
    lane: usize,
    pc: usize,
    /// Issue + trigger latency: the earliest it may start moving.
    ready_at: f64,
    /// When it started moving (infinite while a transfer ahead of it in its queue moves).
    start: f64,
    /// Engine-bytes of work left.
    remaining: f64,
    /// Engine-bytes per cycle now.
    rate: f64,
    /// DMA engines it uses: first and count.
    engines: (usize, usize),
    /// HBM bytes per engine-byte of work (0 when it does not touch HBM).
    hbm_per_work: f64,
    bytes: u64,
    stall: f64,
    waited_on: Option<u64>,
}

/// Max-min fair shares of the DMA engines among the transfers moving now (progressive filling):
/// every unfrozen transfer gets the same rate per engine it uses until one of its engines is
/// full, or HBM is when it touches HBM.
fn share_engines(xfers: &mut [Xfer], clock: f64, params: &TimingParams) {
    let n_engines = xfers
        .iter()
        .map(|x| x.engines.0 + x.engines.1)
        .max()
        .unwrap_or(0);
    let mut load = vec![0.0f64; n_engines];
    let mut hbm_load = 0.0f64;
    let mut active: Vec<usize> = Vec::new();
    for (k, x) in xfers.iter_mut().enumerate() {
        x.rate = 0.0;
        if clock + EPS >= x.start && x.remaining > EPS {
            active.push(k);
        }
    }
    let cap = params.dma_engine_bytes_per_cycle;
    while !active.is_empty() {
        let mut users = vec![0usize; n_engines];
        let mut hbm_weight = 0.0;
        for &k in &active {
            let (f, c) = xfers[k].engines;
            users[f..f + c].iter_mut().for_each(|u| *u += 1);
            hbm_weight += c as f64 * xfers[k].hbm_per_work;
        }
        let mut step = f64::INFINITY;
        for e in 0..n_engines {
            if users[e] > 0 {
                step = step.min((cap - load[e]).max(0.0) / users[e] as f64);
            }
        }
        if hbm_weight > 0.0 {
            step = step.min((params.hbm_bytes_per_cycle - hbm_load).max(0.0) / hbm_weight);
        }
        for &k in &active {
            let (f, c) = xfers[k].engines;
            xfers[k].rate += step * c as f64;
            load[f..f + c].iter_mut().for_each(|l| *l += step);
            hbm_load += step * c as f64 * xfers[k].hbm_per_work;
        }
        let hbm_full = hbm_load >= params.hbm_bytes_per_cycle - EPS;
        active.retain(|&k| {
            let (f, c) = xfers[k].engines;
            let engine_full = load[f..f + c].iter().any(|&l| l >= cap - EPS);
            !(engine_full || hbm_full && xfers[k].hbm_per_work > 0.0)
        });
    }
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
            if clock + EPS >= x.start && x.remaining <= EPS {
                let x = xfers.remove(k);
                // The next transfer of this queue starts moving.
                if let Some(next) = xfers.iter_mut().find(|n| n.lane == x.lane) {
                    next.start = next.ready_at.max(clock);
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
                    Cost::Dma(w) => {
                        lane.busy_until = clock;
                        let ready_at = clock + params.dma_trigger_latency;
                        let queued = xfers.iter().any(|x| x.lane == i);
                        let start = if queued { f64::INFINITY } else { ready_at };
                        let work = w.work.max(1) as f64;
                        xfers.push(Xfer {
                            lane: i,
                            pc,
                            ready_at,
                            start,
                            remaining: work,
                            rate: 0.0,
                            engines: (w.first_engine as usize, w.engines.max(1) as usize),
                            hbm_per_work: if w.uses_hbm {
                                w.bytes as f64 / work
                            } else {
                                0.0
                            },
                            bytes: w.bytes,
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

        share_engines(&mut xfers, clock, params);

        // Advance to the next event.
        let mut next = f64::INFINITY;
        for p in &pending {
            next = next.min(p.at);
        }
        for x in &xfers {
            let t = if x.rate == 0.0 {
                if x.start > clock + EPS {
                    x.start
                } else {
                    f64::INFINITY
                }
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
