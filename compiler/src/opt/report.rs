//! What the optimizer did, for `--opt-report`, `-v` and `tahoma run --report`: per phase the
//! rules that fired, the e-graph size, the stop reason and the time; the predicted cycles of
//! the graph before and after and of the extracted choice (the kernel-IR model of
//! [`super::node_cost`], the one extraction minimises), how many distinct nodes that model
//! lowered and how many it had to cost with `op_cycles` instead, and what exact extraction did.

use super::exact::ExactStats;
use super::node_cost::CostStats;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// One phase of the staged runner.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PhaseReport {
    pub phase: String,
    /// Number of rules the phase ran.
    pub rules: usize,
    /// Why the runner stopped (`saturated`, or the limit it hit).
    pub stop: String,
    /// Set when the phase hit a limit.
    pub warning: Option<String>,
    pub iterations: usize,
    pub enodes: usize,
    pub eclasses: usize,
    /// Rules that fired and how many times.
    pub applied: BTreeMap<String, usize>,
    pub seconds: f64,
    /// Predicted cycles of the best graph after the phase (when extracted per phase).
    pub predicted_cycles: Option<f64>,
}

/// The whole optimisation.
#[derive(Clone, Debug, Serialize, PartialEq, Default)]
pub struct OptReport {
    /// `O0`, `O1` or `O2`.
    pub level: String,
    /// `greedy` or `exact`.
    pub extraction: String,
    pub phases: Vec<PhaseReport>,
    pub nodes_before: usize,
    pub nodes_after: usize,
    pub predicted_cycles_before: f64,
    pub predicted_cycles_after: f64,
    /// The DAG cost of the extracted choice (before the optimizer compares it with the
    /// input graph).
    pub extracted_cycles: Option<f64>,
    /// Exact extraction's search, when it ran.
    pub exact: Option<ExactStats>,
    /// The per-node cost model's work (lowered nodes, `op_cycles` fallbacks, cache hits).
    pub cost_model: CostStats,
    pub extract_seconds: f64,
    pub total_seconds: f64,
    pub warnings: Vec<String>,
}

impl OptReport {
    /// The human-readable report.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "optimizer -{}: {} -> {} nodes, predicted {:.0} -> {:.0} cycles ({:.2}x), {:.3} s ({:.3} s extraction)",
            self.level,
            self.nodes_before,
            self.nodes_after,
            self.predicted_cycles_before,
            self.predicted_cycles_after,
            self.predicted_cycles_before / self.predicted_cycles_after.max(1.0),
            self.total_seconds,
            self.extract_seconds
        );
        for p in &self.phases {
            let _ = writeln!(
                s,
                "  phase {:<13} {:>2} rules, {:>2} iterations, {:>6} e-nodes, {:>6} e-classes, {}, {:.3} s{}",
                p.phase,
                p.rules,
                p.iterations,
                p.enodes,
                p.eclasses,
                p.stop,
                p.seconds,
                p.predicted_cycles
                    .map(|c| format!(", predicted {c:.0} cycles"))
                    .unwrap_or_default()
            );
            for (rule, n) in &p.applied {
                let _ = writeln!(s, "    {rule:<24} fired {n}");
            }
        }
        let cm = &self.cost_model;
        let _ = writeln!(
            s,
            "  cost model: kernel IR of each node lowered alone, {} distinct nodes lowered in {:.3} s ({} did not lower and got op_cycles), {} cache hits",
            cm.lowered, cm.seconds, cm.fallbacks, cm.hits
        );
        if let Some(c) = self.extracted_cycles {
            let _ = write!(s, "  extraction {}: {c:.0} cycles", self.extraction);
            if let Some(e) = &self.exact {
                let _ = write!(
                    s,
                    " (greedy {:.0}, {:.2}% lower; {} choices searched in {:.3} s, {})",
                    e.greedy_cost,
                    100.0 * (1.0 - c / e.greedy_cost.max(1e-9)),
                    e.search_nodes,
                    e.seconds,
                    if e.optimal {
                        "optimal"
                    } else {
                        "budget hit, not proved optimal"
                    }
                );
            }
            let _ = writeln!(s);
        }
        for w in &self.warnings {
            let _ = writeln!(s, "  warning: {w}");
        }
        s
    }
}
