//! Staged equality saturation: one egg `Runner` per phase (canonicalise -> algebra -> fusion ->
//! layout -> tiling), each with node, iteration and time limits set before it runs and egg's
//! `SimpleScheduler` (predictable, and it never bans the conditional rules whose raw matches
//! mostly fail their conditions). The e-graph is carried from phase to phase, so later phases
//! see every equality found earlier. A phase that stops on a limit keeps what it found and
//! the report carries a warning naming the phase and the limit.

use super::analysis::{OptEGraph, TensorAnalysis};
use super::lang::TNode;
use super::report::PhaseReport;
use super::rules::Phase;
use egg::{Runner, SimpleScheduler, StopReason};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Budgets of one phase.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub nodes: usize,
    pub iterations: usize,
    pub time: Duration,
}

impl Default for Limits {
    /// 50k e-nodes, 15 iterations, 2 s per phase (the research note's budgets).
    fn default() -> Self {
        Limits {
            nodes: 50_000,
            iterations: 15,
            time: Duration::from_secs(2),
        }
    }
}

/// Runs one phase's rules on `eg` and reports what happened.
pub fn run_phase(phase: Phase, eg: OptEGraph, limits: Limits) -> (OptEGraph, PhaseReport) {
    let rules = phase.rules();
    let t0 = Instant::now();
    let runner: Runner<TNode, TensorAnalysis> = Runner::new(TensorAnalysis::default())
        .with_egraph(eg)
        .with_node_limit(limits.nodes)
        .with_iter_limit(limits.iterations)
        .with_time_limit(limits.time)
        .with_scheduler(SimpleScheduler)
        .run(&rules);
    let seconds = t0.elapsed().as_secs_f64();
    let mut applied: BTreeMap<String, usize> = BTreeMap::new();
    for it in &runner.iterations {
        for (name, n) in &it.applied {
            if *n > 0 {
                *applied.entry(name.to_string()).or_default() += n;
            }
        }
    }
    let (stop, warning) = match &runner.stop_reason {
        Some(StopReason::Saturated) | None => ("saturated".to_string(), None),
        Some(StopReason::IterationLimit(n)) => (
            format!("iteration limit ({n})"),
            Some(format!(
                "phase {} stopped at its iteration limit ({}); using the best graph found so far",
                phase.name(),
                limits.iterations
            )),
        ),
        Some(StopReason::NodeLimit(n)) => (
            format!("node limit ({n} e-nodes)"),
            Some(format!(
                "phase {} stopped at its node limit ({} e-nodes); using the best graph found so far",
                phase.name(),
                limits.nodes
            )),
        ),
        Some(StopReason::TimeLimit(t)) => (
            format!("time limit ({t:.3} s)"),
            Some(format!(
                "phase {} stopped at its time limit ({:.3} s); using the best graph found so far",
                phase.name(),
                limits.time.as_secs_f64()
            )),
        ),
        Some(StopReason::Other(s)) => (format!("other: {s}"), None),
    };
    let eg = runner.egraph;
    let report = PhaseReport {
        phase: phase.name().to_string(),
        rules: rules.len(),
        stop,
        warning,
        iterations: runner.iterations.len(),
        enodes: eg.total_number_of_nodes(),
        eclasses: eg.number_of_classes(),
        applied,
        seconds,
        predicted_cycles: None,
    };
    (eg, report)
}
