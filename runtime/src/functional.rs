//! Functional mode: every stream runs in program order; the scheduler visits the streams round
//! robin, running each until it finishes or its next instruction's semaphore waits do not hold.
//! An instruction's signal applies right after it executes. No time is modelled: cycles, busy
//! and stall counts are zero; instruction counts, MACs and HBM bytes are reported.

use crate::engines::Core;
use crate::error::RunError;
use crate::sched::{deadlock, exec_error, is_end, ordered, Sems, Stats};
use tahoma_isa::program::Program;

pub fn run(core: &mut Core, program: &Program) -> Result<Stats, RunError> {
    let streams = ordered(program);
    let mut stats = Stats::new(&streams);
    let n = streams.len();
    let mut pcs = vec![0usize; n];
    let mut done: Vec<bool> = streams.iter().map(|s| s.insts.is_empty()).collect();
    let mut sems = Sems::new();
    loop {
        let mut progressed = false;
        for i in 0..n {
            while !done[i] {
                let s = streams[i];
                let pc = pcs[i];
                let Some(inst) = s.insts.get(pc) else {
                    done[i] = true;
                    break;
                };
                if sems.unsatisfied(inst.sync()).is_some() {
                    break;
                }
                let eff = core
                    .execute(inst)
                    .map_err(|f| exec_error(program, s, pc, f))?;
                stats.record(i, &eff);
                sems.signal(inst.sync());
                pcs[i] += 1;
                if is_end(inst) {
                    done[i] = true;
                }
                progressed = true;
            }
        }
        if done.iter().all(|&d| d) {
            return Ok(stats);
        }
        if !progressed {
            return Err(deadlock(program, &streams, &pcs, &done, &sems, 0));
        }
    }
}
