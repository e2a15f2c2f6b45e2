//! The result of a run and how it reads: [`RunResult`] (outputs, cycles, per-stream busy/stall
//! counts, MACs, HBM bytes, roofline), the human summary and the JSON report.

use crate::sched::StreamStats;
use crate::tensor::Tensor;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use tahoma_isa::costs::{cycles_to_us, peak_macs_per_cycle};
use tahoma_isa::program::StreamId;
use tahoma_isa::{machine, Dtype};

/// How a program was run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Program order per stream, semaphores enforced, no time model.
    Functional,
    /// Event-driven per-engine timelines with the spec's costs.
    #[default]
    Timed,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Functional => "functional",
            Mode::Timed => "timed",
        }
    }
}

/// Everything a run produces.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub mode: Mode,
    /// Program outputs by name.
    pub outputs: BTreeMap<String, Tensor>,
    /// Total cycles (timed mode: when the last instruction finished; functional mode: 0).
    pub cycles: u64,
    /// Per stream, in order tensor, vector, scalar, dma0...
    pub streams: Vec<(StreamId, StreamStats)>,
    /// Multiply-accumulates the tensor engine executed (zero padding included).
    pub macs: u64,
    /// The model's own multiply-accumulates, when the program was compiled from a model in this
    /// run ([`RunResult::measure_against`]); the roofline then counts these, not `macs`.
    pub model_macs: Option<u64>,
    /// Bytes DMA moved from and to HBM.
    pub hbm_bytes: u64,
    /// Compulsory HBM bytes: program inputs + constants + outputs, each once (or the model's,
    /// see [`RunResult::measure_against`]).
    pub compulsory_bytes: u64,
    /// `costs::roofline_cycles(macs, compulsory_bytes, precision)` (`model_macs` when known).
    pub roofline_cycles: u64,
    /// The matmul operand dtype with the most MACs (bf16 when there are none).
    pub precision: Dtype,
    /// Wall-clock seconds the emulation took.
    pub emulate_seconds: f64,
    /// The Chrome trace (timed runs asked for one).
    pub trace: Option<Value>,
    /// Per-op profile in order of first start (timed mode; empty in functional mode).
    pub ops: Vec<crate::profile::OpProfile>,
}

fn pct(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        100.0 * a / b
    } else {
        0.0
    }
}

/// How many ops the human summary lists.
const SUMMARY_OPS: usize = 5;

impl RunResult {
    /// Measures the roofline against the model's own work (its MACs and compulsory bytes as the
    /// compiler counts them from the graph) instead of what the program executed and stores:
    /// zero padding a lowering adds (partial tiles, block-diagonal weights) is overhead the
    /// roofline must not credit.
    pub fn measure_against(&mut self, macs: u64, compulsory_bytes: u64) {
        self.model_macs = Some(macs);
        self.compulsory_bytes = compulsory_bytes;
        self.roofline_cycles =
            tahoma_isa::costs::roofline_cycles(macs, compulsory_bytes, self.precision);
    }

    /// The roofline as a percentage of the cycles taken (100% = at the physical limit).
    pub fn roofline_percent(&self) -> f64 {
        pct(self.roofline_cycles as f64, self.cycles as f64)
    }

    /// Busy cycles as a percentage of total cycles for one stream.
    pub fn utilisation(&self, s: &StreamStats) -> f64 {
        pct(s.busy_cycles, self.cycles as f64)
    }

    /// The trace as a JSON string, if one was recorded.
    pub fn trace_json(&self) -> Option<String> {
        self.trace.as_ref().map(Value::to_string)
    }

    /// The machine-readable report: cycles, roofline, MACs, HBM bytes, per-engine counters.
    pub fn report_json(&self) -> Value {
        let mut engines = serde_json::Map::new();
        for (id, s) in &self.streams {
            engines.insert(
                id.to_string(),
                json!({
                    "instructions": s.instructions,
                    "busy_cycles": s.busy_cycles,
                    "stall_cycles": s.stall_cycles,
                    "utilisation_percent": self.utilisation(s),
                }),
            );
        }
        let outputs: BTreeMap<&String, Value> = self
            .outputs
            .iter()
            .map(|(n, t)| (n, json!({"dtype": t.dtype.name(), "shape": t.shape})))
            .collect();
        json!({
            "mode": self.mode.name(),
            "cycles": self.cycles,
            "microseconds": cycles_to_us(self.cycles as f64),
            "roofline_cycles": self.roofline_cycles,
            "roofline_percent": self.roofline_percent(),
            "precision": self.precision.name(),
            "macs": self.macs,
            "model_macs": self.model_macs,
            "hbm_bytes": self.hbm_bytes,
            "compulsory_hbm_bytes": self.compulsory_bytes,
            "engines": engines,
            "ops": self.ops.iter().map(|p| {
                let busy: serde_json::Map<String, Value> =
                    crate::profile::CLASSES.iter().zip(p.busy).map(|(c, b)| (c.to_string(), json!(b))).collect();
                let (bound, bound_cycles) = p.bound();
                let stalls: Vec<Value> = p.stalls.iter().map(|(r, c)| json!({"reason": r, "cycles": c})).collect();
                json!({"name": p.name, "instructions": p.instructions, "start_cycle": p.start, "end_cycle": p.end, "busy_cycles": busy,
                       "hbm_bytes": p.hbm_bytes, "bound": bound.name(), "bound_cycles": bound_cycles,
                       "efficiency_percent": p.efficiency_percent(), "stalls": stalls})
            }).collect::<Vec<_>>(),
            "outputs": outputs,
            "emulate_seconds": self.emulate_seconds,
        })
    }

    /// The human summary printed after a run.
    pub fn summary(&self) -> String {
        let mut o = String::new();
        match self.mode {
            Mode::Timed => {
                let _ = writeln!(
                    o,
                    "cycles: {} ({:.2} us at {} GHz); roofline {} cycles = {:.1}% of achieved",
                    self.cycles,
                    cycles_to_us(self.cycles as f64),
                    machine::CORE_CLOCK_GHZ,
                    self.roofline_cycles,
                    self.roofline_percent()
                );
            }
            Mode::Functional => {
                let _ = writeln!(
                    o,
                    "functional run (no timing); roofline {} cycles",
                    self.roofline_cycles
                );
            }
        }
        let peak = peak_macs_per_cycle(self.precision);
        let useful = self.model_macs.unwrap_or(self.macs);
        match self.model_macs {
            Some(m) => {
                let _ = write!(o, "MACs: {m} of the model, {} executed", self.macs);
            }
            None => {
                let _ = write!(o, "MACs: {}", self.macs);
            }
        }
        let _ = write!(o, " ({} operands", self.precision.name());
        if self.mode == Mode::Timed && self.cycles > 0 {
            let _ = write!(
                o,
                ", {:.1}% of peak",
                pct(useful as f64 / self.cycles as f64, peak)
            );
        }
        let _ = writeln!(o, ")");
        let _ = writeln!(
            o,
            "HBM bytes: {} moved, {} compulsory",
            self.hbm_bytes, self.compulsory_bytes
        );
        let _ = writeln!(
            o,
            "{:<8} {:>8} {:>12} {:>7} {:>12}",
            "engine", "instrs", "busy", "util%", "stall"
        );
        for (id, s) in &self.streams {
            let _ = writeln!(
                o,
                "{:<8} {:>8} {:>12.0} {:>7.1} {:>12.0}",
                id.to_string(),
                s.instructions,
                s.busy_cycles,
                self.utilisation(s),
                s.stall_cycles
            );
        }
        for (name, t) in &self.outputs {
            let (mut lo, mut hi, mut sum) = (f32::INFINITY, f32::NEG_INFINITY, 0f64);
            for &v in &t.data {
                lo = lo.min(v);
                hi = hi.max(v);
                sum += f64::from(v);
            }
            let mean = if t.data.is_empty() {
                0.0
            } else {
                sum / t.data.len() as f64
            };
            let _ = writeln!(
                o,
                "output {name}: {} min {lo} max {hi} mean {mean:.6}",
                t.describe()
            );
        }
        if !self.ops.is_empty() {
            // The ops that took longest, with the engine busiest on each: where to look first.
            let mut top: Vec<&crate::profile::OpProfile> = self.ops.iter().collect();
            top.sort_by(|a, b| {
                b.span()
                    .total_cmp(&a.span())
                    .then_with(|| a.name.cmp(&b.name))
            });
            let shown = top.len().min(SUMMARY_OPS);
            let _ = writeln!(
                o,
                "slowest ops ({shown} of {}), each with its bound and achieved share of it:",
                self.ops.len()
            );
            for p in &top[..shown] {
                let (bound, bc) = p.bound();
                let _ = writeln!(
                    o,
                    "  {:<24} {:>10.0} cycles  {}-bound ({:.0} cycles, {:.1}% of achieved)",
                    p.name,
                    p.span(),
                    bound.name(),
                    bc,
                    p.efficiency_percent()
                );
                for (reason, c) in &p.stalls {
                    let _ = writeln!(o, "      stall {c:>10.0}  {reason}");
                }
            }
        }
        let _ = writeln!(o, "emulated in {:.3} s", self.emulate_seconds);
        o
    }
}
