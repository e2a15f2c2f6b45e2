//! The e-graph optimizer (egg): the graph is added to an e-graph ([`lang`]), rewritten by
//! staged runners ([`runner`]: canonicalise -> algebra -> fusion -> layout -> tiling, rules in
//! [`rules`]) under an analysis of types, weight-only values and constants ([`analysis`]),
//! and the cheapest form by the chip's cycle estimate is extracted by DAG cost ([`extract`],
//! greedy by default, [`exact`] branch and bound on request) back into a graph that keeps the
//! original node names. Every e-node is costed by the kernels its one-node graph lowers to
//! ([`node_cost`], read off the kernel IR by [`kernel_cost`]; [`cost`] keeps the closed-form
//! `op_cycles` for what does not lower). [`report`] records what happened.
//!
//! Levels: `-O0` skips the optimizer; `-O1` runs canonicalise and fusion; `-O2` (the default of
//! the CLI) runs every phase.

pub mod analysis;
pub mod cost;
pub mod exact;
pub mod extract;
pub mod kernel_cost;
pub mod lang;
pub mod node_cost;
pub mod report;
pub mod rules;
pub mod runner;

use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::graph::{verify, Graph};
use crate::lower::Precision;
use analysis::TensorAnalysis;
use exact::ExactLimits;
use node_cost::NodeCoster;
use report::OptReport;
use rules::Phase;
use runner::Limits;
use std::time::Instant;

/// Optimisation level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OptLevel {
    /// No e-graph: the graph is lowered as imported.
    O0,
    /// Canonicalise and fusion.
    O1,
    /// Every phase.
    #[default]
    O2,
}

impl OptLevel {
    pub fn name(self) -> &'static str {
        match self {
            OptLevel::O0 => "O0",
            OptLevel::O1 => "O1",
            OptLevel::O2 => "O2",
        }
    }

    /// The phases this level runs, in order.
    pub fn phases(self) -> &'static [Phase] {
        match self {
            OptLevel::O0 => &[],
            OptLevel::O1 => &[Phase::Canonicalise, Phase::Fusion],
            OptLevel::O2 => &Phase::ALL,
        }
    }
}

/// How the optimized graph is extracted from the e-graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ExtractMode {
    /// Greedy DAG cost ([`extract::greedy_dag`]).
    #[default]
    Greedy,
    /// Branch and bound from greedy's result ([`extract::exact_dag`]) within
    /// [`OptOptions::exact_limits`].
    Exact,
}

impl ExtractMode {
    pub fn name(self) -> &'static str {
        match self {
            ExtractMode::Greedy => "greedy",
            ExtractMode::Exact => "exact",
        }
    }
}

/// Options of [`optimize`].
#[derive(Clone, Copy, Debug, Default)]
pub struct OptOptions {
    pub level: OptLevel,
    pub extract: ExtractMode,
    /// The budget of exact extraction.
    pub exact_limits: ExactLimits,
    /// The lowering precision the cost model assumes.
    pub precision: Precision,
    /// Budgets of each phase.
    pub limits: Limits,
    /// Extract and keep the graph after every phase (`--print-after-all`).
    pub keep_phase_graphs: bool,
}

/// The optimizer's result.
#[derive(Clone, Debug)]
pub struct Optimized {
    pub graph: Graph,
    pub report: OptReport,
    /// (phase name, graph after it) when [`OptOptions::keep_phase_graphs`] is set.
    pub phase_graphs: Vec<(String, Graph)>,
}

/// Optimizes a verified graph. The result is verified again; an error here is an optimizer bug
/// (codes `E14xx`), never a property of the user's model, and `-O0` avoids it.
pub fn optimize(g: &Graph, opts: &OptOptions) -> Result<Optimized, Diagnostics> {
    let t0 = Instant::now();
    let coster = NodeCoster::new(opts.precision);
    let before = coster.graph_cycles(g);
    let mut report = OptReport {
        level: opts.level.name().to_string(),
        extraction: opts.extract.name().to_string(),
        nodes_before: g.nodes.len(),
        nodes_after: g.nodes.len(),
        predicted_cycles_before: before,
        predicted_cycles_after: before,
        ..Default::default()
    };
    let phases = opts.level.phases();
    if phases.is_empty() {
        report.cost_model = coster.stats();
        report.total_seconds = t0.elapsed().as_secs_f64();
        return Ok(Optimized {
            graph: g.clone(),
            report,
            phase_graphs: Vec::new(),
        });
    }
    let added = lang::to_egraph(g, TensorAnalysis::new(opts.precision));
    let (roots, prov) = (added.roots, added.provenance);
    let mut eg = added.egraph;
    let mut phase_graphs = Vec::new();
    let extract = |eg: &analysis::OptEGraph,
                   mode: ExtractMode|
     -> Result<(Graph, f64, Option<exact::ExactStats>), Diagnostic> {
        let own = extract::own_costs(eg, &|c, n| coster.enode_cycles(eg, c, n, g));
        let greedy = extract::greedy_dag(eg, &roots, &own)?;
        let (choice, stats) = match mode {
            ExtractMode::Greedy => (greedy, None),
            ExtractMode::Exact => {
                let (c, st) = extract::exact_dag(eg, &roots, &own, &greedy, opts.exact_limits)?;
                (c, Some(st))
            }
        };
        let names = prov.canonical(eg);
        let graph = extract::to_graph(eg, &choice, &roots, &names, g)?;
        Ok((graph, choice.cost, stats))
    };
    for &phase in phases {
        let (next, mut pr) = runner::run_phase(phase, eg, opts.limits);
        eg = next;
        if let Some(w) = &pr.warning {
            report.warnings.push(w.clone());
        }
        if opts.keep_phase_graphs {
            let (pg, cost, _) = extract(&eg, ExtractMode::Greedy)?;
            pr.predicted_cycles = Some(cost);
            phase_graphs.push((phase.name().to_string(), pg));
        }
        report.phases.push(pr);
    }
    let t1 = Instant::now();
    let (graph, extracted, exact_stats) = extract(&eg, opts.extract)?;
    report.extract_seconds = t1.elapsed().as_secs_f64();
    report.extracted_cycles = Some(extracted);
    if let Some(st) = exact_stats {
        if !st.optimal {
            report.warnings.push(format!(
                "exact extraction stopped at its budget ({} choices, {:.1} s) without proving \
                 optimality; using the best graph found ({:.0} cycles, greedy {:.0})",
                st.search_nodes, st.seconds, extracted, st.greedy_cost
            ));
        }
        report.exact = Some(st);
    }
    let after = coster.graph_cycles(&graph);
    // A graph neither predicted faster nor smaller than the input is not worth its reordering:
    // keep the input (the rebuilt graph orders nodes and values by use, which the emulator
    // can feel).
    let better = after < before || graph.nodes.len() < g.nodes.len();
    let graph = if better { graph } else { g.clone() };
    report.predicted_cycles_after = after.min(before);
    report.nodes_after = graph.nodes.len();
    report.cost_model = coster.stats();
    verify(&graph).map_err(|d| {
        let mut v = vec![Diagnostic::new(
            Code::OptInvalid,
            format!("the optimized graph is invalid ({} problems)", d.0.len()),
        )
        .help("compile with -O0 and report the model")];
        v.extend(d.0);
        Diagnostics(v)
    })?;
    report.total_seconds = t0.elapsed().as_secs_f64();
    Ok(Optimized {
        graph,
        report,
        phase_graphs,
    })
}

/// Applies `rules` alone to `g` (default limits) and extracts the cheapest graph that avoids
/// the original nodes wherever a rewrite gave an alternative: the "right-hand side" graph the
/// soundness tests evaluate against `g`. Returns it with the number of times each rule fired.
pub fn apply_rules_preferring_rewrites(
    g: &Graph,
    rules: &[rules::Rule],
    precision: Precision,
) -> Result<(Graph, std::collections::BTreeMap<String, usize>), Diagnostics> {
    use egg::Language;
    let added = lang::to_egraph(g, TensorAnalysis::new(precision));
    let (roots, prov) = (added.roots, added.provenance);
    let original: Vec<lang::TNode> = added.egraph.nodes().to_vec();
    let limits = Limits::default();
    let runner: egg::Runner<lang::TNode, TensorAnalysis> =
        egg::Runner::new(TensorAnalysis::default())
            .with_egraph(added.egraph)
            .with_node_limit(limits.nodes)
            .with_iter_limit(limits.iterations)
            .with_time_limit(limits.time)
            .with_scheduler(egg::SimpleScheduler)
            .run(rules);
    let mut applied = std::collections::BTreeMap::new();
    for it in &runner.iterations {
        for (name, n) in &it.applied {
            *applied.entry(name.to_string()).or_insert(0) += n;
        }
    }
    let eg = runner.egraph;
    let canon = |n: &lang::TNode| n.clone().map_children(|c| eg.find(c));
    let original: std::collections::HashSet<lang::TNode> = original.iter().map(canon).collect();
    let penalty = |n: &lang::TNode| {
        if matches!(n, lang::TNode::Op { .. }) && original.contains(&canon(n)) {
            1e12
        } else {
            0.0
        }
    };
    let coster = NodeCoster::new(precision);
    let own = extract::own_costs(&eg, &|c, n| coster.enode_cycles(&eg, c, n, g) + penalty(n));
    let choice = extract::greedy_dag(&eg, &roots, &own)?;
    let names = prov.canonical(&eg);
    let out = extract::to_graph(&eg, &choice, &roots, &names, g)?;
    verify(&out)?;
    Ok((out, applied))
}
