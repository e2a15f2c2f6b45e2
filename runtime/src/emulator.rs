//! The emulator's front door: [`Emulator`] holds a checked program and the core's state; the
//! host sets inputs, then [`Emulator::run`] runs it in functional or timed mode and collects a
//! [`RunResult`].

use crate::engines::Core;
use crate::error::RunError;
use crate::inputs;
use crate::load::validate;
use crate::memory::ByteMem;
use crate::npy::NpyArray;
use crate::report::{Mode, RunResult};
use crate::tensor::Tensor;
use crate::timed::TimingParams;
use crate::{functional, profile, timed, trace};
use std::collections::BTreeMap;
use std::time::Instant;
use tahoma_isa::costs::roofline_cycles;
use tahoma_isa::program::{IoKind, Program};
use tahoma_isa::Dtype;

/// How to run.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    pub mode: Mode,
    /// Record a Chrome trace (timed mode only).
    pub trace: bool,
    /// DMA model parameters (default: the spec's).
    pub timing: TimingParams,
}

impl RunOptions {
    pub fn functional() -> RunOptions {
        RunOptions {
            mode: Mode::Functional,
            ..RunOptions::default()
        }
    }
    pub fn timed() -> RunOptions {
        RunOptions::default()
    }
    pub fn with_trace(mut self) -> RunOptions {
        self.trace = true;
        self
    }
}

/// A loaded program and the state it runs on.
pub struct Emulator {
    program: Program,
    core: Core,
    /// Per I/O entry: whether the host set it.
    given: Vec<bool>,
}

impl Emulator {
    /// Checks `program` like the loader does and loads its constants into HBM.
    pub fn new(program: Program) -> Result<Emulator, RunError> {
        validate(&program)?;
        let mut core = Core::with_hbm_footprint(crate::load::hbm_footprint(&program));
        core.kernels = crate::load::compile_kernels(&program)?;
        for c in &program.consts {
            core.mem.hbm.write_from(c.addr, &c.bytes);
        }
        let given = vec![false; program.io.len()];
        Ok(Emulator {
            program,
            core,
            given,
        })
    }

    /// Loads a `.tbin` image.
    pub fn from_bytes(bytes: &[u8]) -> Result<Emulator, RunError> {
        Emulator::new(Program::from_bytes(bytes)?)
    }

    pub fn program(&self) -> &Program {
        &self.program
    }

    fn mark(&mut self, name: &str) {
        if let Some(i) = self.program.io.iter().position(|e| e.name == name) {
            self.given[i] = true;
        }
    }

    /// Sets input `name` from a host tensor (shape must match; values convert to its dtype).
    pub fn set_input(&mut self, name: &str, t: &Tensor) -> Result<(), RunError> {
        let e = inputs::find_input(&self.program.io, name)?;
        inputs::write_tensor(&mut self.core.mem.hbm, e, t)?;
        self.mark(name);
        Ok(())
    }

    /// Sets input `name` from a decoded `.npy` array.
    pub fn set_input_npy(&mut self, name: &str, a: &NpyArray) -> Result<(), RunError> {
        let e = inputs::find_input(&self.program.io, name)?;
        inputs::write_npy(&mut self.core.mem.hbm, e, a)?;
        self.mark(name);
        Ok(())
    }

    /// Names of inputs the host has not set.
    pub fn missing_inputs(&self) -> Vec<String> {
        self.program
            .io
            .iter()
            .zip(&self.given)
            .filter(|(e, g)| e.kind == IoKind::Input && !**g)
            .map(|(e, _)| e.name.clone())
            .collect()
    }

    /// Fills every input the host has not set with seeded random values (floats in [-1, 1),
    /// i32 in [0, inputs::RANDOM_INT_RANGE)); the input at I/O-table index `i` uses
    /// `Rng::new(seed + i)`. Returns the names filled.
    pub fn fill_random_inputs(&mut self, seed: u64) -> Result<Vec<String>, RunError> {
        let mut filled = Vec::new();
        for (i, e) in self.program.io.iter().enumerate() {
            if e.kind != IoKind::Input || self.given[i] {
                continue;
            }
            let vals = inputs::random_values(e, seed.wrapping_add(i as u64));
            inputs::write_input(&mut self.core.mem.hbm, e, &e.shape, &vals, true)?;
            self.given[i] = true;
            filled.push(e.name.clone());
        }
        Ok(filled)
    }

    /// Reads any I/O tensor (input or output) from HBM as it is now.
    pub fn read_tensor(&self, name: &str) -> Option<Tensor> {
        let e = self.program.io.iter().find(|e| e.name == name)?;
        Some(inputs::read_entry(&self.core.mem.hbm, e))
    }

    /// Runs the program. Inputs never set read as zeros.
    pub fn run(mut self, opts: &RunOptions) -> Result<RunResult, RunError> {
        let t0 = Instant::now();
        let (stats, cycles, slices) = match opts.mode {
            Mode::Functional => (functional::run(&mut self.core, &self.program)?, 0, None),
            Mode::Timed => {
                // Slices are always kept: the per-op profile needs them, the trace only when asked.
                let (stats, tl) = timed::run(&mut self.core, &self.program, &opts.timing, true)?;
                (stats, tl.cycles.ceil() as u64, Some(tl.slices))
            }
        };
        let emulate_seconds = t0.elapsed().as_secs_f64();
        let outputs: BTreeMap<String, Tensor> = self
            .program
            .io
            .iter()
            .filter(|e| e.kind == IoKind::Output)
            .map(|e| (e.name.clone(), inputs::read_entry(&self.core.mem.hbm, e)))
            .collect();
        let compulsory_bytes = self.program.io.iter().map(|e| e.bytes()).sum::<u64>()
            + self
                .program
                .consts
                .iter()
                .map(|c| c.bytes.len() as u64)
                .sum::<u64>();
        let precision = stats
            .macs_by_dtype
            .iter()
            .max_by_key(|(_, m)| *m)
            .map_or(Dtype::Bf16, |(d, _)| *d);
        let ops = slices
            .as_ref()
            .map(|s| profile::op_profile(&self.program, s))
            .unwrap_or_default();
        let trace = slices
            .filter(|_| opts.trace)
            .map(|s| trace::chrome_trace(&self.program, &s));
        Ok(RunResult {
            mode: opts.mode,
            outputs,
            cycles,
            streams: stats.streams,
            macs: stats.macs,
            model_macs: None,
            hbm_bytes: stats.hbm_bytes,
            compulsory_bytes,
            roofline_cycles: roofline_cycles(stats.macs, compulsory_bytes, precision),
            precision,
            emulate_seconds,
            trace,
            ops,
        })
    }
}

/// Loads, fills missing inputs from `seed`, and runs: the one-call path.
pub fn run_program(
    program: Program,
    inputs: &[(&str, &Tensor)],
    seed: u64,
    opts: &RunOptions,
) -> Result<RunResult, RunError> {
    let mut emu = Emulator::new(program)?;
    for (name, t) in inputs {
        emu.set_input(name, t)?;
    }
    emu.fill_random_inputs(seed)?;
    emu.run(opts)
}
