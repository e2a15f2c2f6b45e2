//! Exact DAG-cost extraction by branch and bound (`--extract exact`).
//!
//! The search decides one e-class at a time: it keeps the classes the decided e-nodes need but
//! that are not decided yet (the *pending* set, starting with the roots), picks the pending
//! class with the fewest candidate e-nodes, and tries each candidate (greedy's choice first,
//! then by own cost). Choosing a node adds its cost once and makes its undecided children
//! pending, so a class shared by several consumers is paid for once, exactly the objective of
//! [`super::extract::greedy_dag`]. A node whose child reaches its class through decided nodes
//! would close a cycle and is skipped. A branch is cut when its cost so far plus the cheapest
//! node of every pending class (each is still to be paid, once) cannot beat the best complete
//! choice; the first bound is greedy's cost, so the result is never worse than greedy, and
//! only a strictly cheaper choice replaces it (ties keep greedy's graph).
//!
//! The search stops at [`ExactLimits`] (search nodes, then wall time); it then returns the
//! best choice found and reports that optimality was not proved.

use super::analysis::OptEGraph;
use super::extract::{no_form, Choice, OwnCosts};
use super::node_cost::INFEASIBLE;
use super::lang::TNode;
use crate::diag::Diagnostic;
use egg::{Id, Language};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// Budget of [`exact_dag`].
#[derive(Clone, Copy, Debug)]
pub struct ExactLimits {
    /// Most candidate choices tried.
    pub search_nodes: u64,
    /// Most wall time.
    pub time: Duration,
}

impl Default for ExactLimits {
    /// 2 million choices, 10 s.
    fn default() -> Self {
        ExactLimits {
            search_nodes: 2_000_000,
            time: Duration::from_secs(10),
        }
    }
}

/// What the search did.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct ExactStats {
    /// Candidate choices tried.
    pub search_nodes: u64,
    /// Whether the search finished (the result is optimal) rather than hitting a limit.
    pub optimal: bool,
    /// The cost greedy's choice started from.
    pub greedy_cost: f64,
    pub seconds: f64,
}

/// One candidate of a class: its node index, distinct canonical children and own cost.
struct Cand {
    node: usize,
    kids: Vec<usize>,
    own: f64,
}

/// A decision on the search stack.
struct Frame {
    class: usize,
    /// Candidate indices in the order they are tried.
    order: Vec<usize>,
    next: usize,
    /// The candidate applied now and the children it made pending.
    applied: Option<(usize, Vec<usize>)>,
}

/// Exact DAG-cost extraction (see the module doc) from greedy's `greedy` choice with the
/// e-nodes' own costs `own`.
pub fn exact_dag(
    eg: &OptEGraph,
    roots: &[Id],
    own: &OwnCosts,
    greedy: &Choice,
    limits: ExactLimits,
) -> Result<(Choice, ExactStats), Diagnostic> {
    let t0 = Instant::now();
    let mut ids: Vec<Id> = eg.classes().map(|c| c.id).collect();
    ids.sort();
    let index: HashMap<Id, usize> = ids.iter().enumerate().map(|(i, &c)| (c, i)).collect();
    // Candidates per class, greedy's choice first, then by own cost (stable: egg's order).
    let cands: Vec<Vec<Cand>> = ids
        .iter()
        .map(|&c| {
            let mut v: Vec<Cand> = eg[c]
                .nodes
                .iter()
                .enumerate()
                .filter_map(|(i, n)| {
                    let cost = own.get(&(c, i)).copied().unwrap_or(INFEASIBLE);
                    let mut kids: Vec<usize> =
                        n.children().iter().map(|&k| index[&eg.find(k)]).collect();
                    kids.sort_unstable();
                    kids.dedup();
                    (cost < INFEASIBLE && !kids.contains(&index[&c])).then_some(Cand {
                        node: i,
                        kids,
                        own: cost,
                    })
                })
                .collect();
            let g = greedy.best.get(&c);
            v.sort_by(|a, b| {
                let ga = g == Some(&eg[c].nodes[a.node]);
                let gb = g == Some(&eg[c].nodes[b.node]);
                gb.cmp(&ga).then(a.own.total_cmp(&b.own))
            });
            v
        })
        .collect();
    let min_own: Vec<f64> = cands
        .iter()
        .map(|v| v.iter().map(|c| c.own).fold(INFEASIBLE, f64::min))
        .collect();
    let n = ids.len();
    let mut chosen: Vec<Option<usize>> = vec![None; n];
    let mut pending: BTreeSet<usize> = roots.iter().map(|&r| index[&eg.find(r)]).collect();
    let mut pending_lb: f64 = pending.iter().map(|&p| min_own[p]).sum();
    let mut cost = 0.0;
    let mut best_cost = greedy.cost;
    let mut best: Option<Vec<Option<usize>>> = None;
    let mut stats = ExactStats {
        greedy_cost: greedy.cost,
        ..Default::default()
    };
    let better = |c: f64, than: f64| c < than * (1.0 - 1e-12) - 1e-9;
    // Whether `to` is reachable from `from` through decided nodes.
    let reaches = |chosen: &[Option<usize>], from: usize, to: usize| -> bool {
        let mut seen = vec![false; n];
        let mut stack = vec![from];
        while let Some(x) = stack.pop() {
            if x == to {
                return true;
            }
            if std::mem::replace(&mut seen[x], true) {
                continue;
            }
            if let Some(j) = chosen[x] {
                stack.extend(cands[x][j].kids.iter().copied());
            }
        }
        false
    };
    let open = |pending: &BTreeSet<usize>| -> Option<Frame> {
        let class = *pending.iter().min_by_key(|&&p| cands[p].len())?;
        Some(Frame {
            class,
            order: (0..cands[class].len()).collect(),
            next: 0,
            applied: None,
        })
    };
    let mut stack: Vec<Frame> = Vec::new();
    let mut stopped = false;
    if let Some(f) = open(&pending) {
        pending.remove(&f.class);
        pending_lb -= min_own[f.class];
        stack.push(f);
    }
    while let Some(f) = stack.last_mut() {
        let c = f.class;
        if let Some((j, added)) = f.applied.take() {
            chosen[c] = None;
            cost -= cands[c][j].own;
            for k in added {
                pending.remove(&k);
                pending_lb -= min_own[k];
            }
        }
        let mut pushed = None;
        while f.next < f.order.len() && !stopped {
            let j = f.order[f.next];
            f.next += 1;
            let cand = &cands[c][j];
            let added: Vec<usize> = cand
                .kids
                .iter()
                .copied()
                .filter(|&k| chosen[k].is_none() && !pending.contains(&k))
                .collect();
            let lb = cost + cand.own + pending_lb + added.iter().map(|&k| min_own[k]).sum::<f64>();
            if !better(lb, best_cost) {
                continue;
            }
            if cand
                .kids
                .iter()
                .any(|&k| chosen[k].is_some() && reaches(&chosen, k, c))
            {
                continue;
            }
            stats.search_nodes += 1;
            if stats.search_nodes >= limits.search_nodes
                || (stats.search_nodes % 1024 == 0 && t0.elapsed() >= limits.time)
            {
                stopped = true;
            }
            chosen[c] = Some(j);
            cost += cand.own;
            for &k in &added {
                pending.insert(k);
                pending_lb += min_own[k];
            }
            f.applied = Some((j, added));
            match open(&pending) {
                None => {
                    // Every needed class is decided: a complete choice.
                    if better(cost, best_cost) {
                        best_cost = cost;
                        best = Some(chosen.clone());
                    }
                }
                Some(next) => pushed = Some(next),
            }
            break;
        }
        match pushed {
            Some(next) => {
                pending.remove(&next.class);
                pending_lb -= min_own[next.class];
                stack.push(next);
            }
            None => {
                let f = stack.last().expect("the frame just examined");
                if f.applied.is_none() && (f.next >= f.order.len() || stopped) {
                    let f = stack.pop().expect("the frame just examined");
                    pending.insert(f.class);
                    pending_lb += min_own[f.class];
                }
            }
        }
    }
    stats.optimal = !stopped;
    stats.seconds = t0.elapsed().as_secs_f64();
    let Some(best) = best else {
        return Ok((greedy.clone(), stats));
    };
    let mut map: HashMap<Id, TNode> = HashMap::new();
    for (i, j) in best.iter().enumerate() {
        if let Some(j) = j {
            map.insert(ids[i], eg[ids[i]].nodes[cands[i][*j].node].clone());
        }
    }
    for &r in roots {
        if !map.contains_key(&eg.find(r)) {
            return Err(no_form());
        }
    }
    Ok((
        Choice {
            best: map,
            cost: best_cost,
        },
        stats,
    ))
}

#[cfg(test)]
mod tests {
    //! Hand-built e-graphs: what greedy cannot do (share a class two outputs both need), cycles
    //! refused, and a search stopped by its budget keeping the best found.
    use super::*;
    use crate::graph::{Attrs, Op};
    use crate::opt::analysis::TensorAnalysis;
    use crate::opt::extract::{dag_cost, greedy_dag, own_costs};

    /// An e-graph over one input `x` with the own costs of its op nodes given by op.
    struct Hand {
        eg: OptEGraph,
        attr: Id,
        x: Id,
    }

    impl Hand {
        fn new() -> Self {
            let mut analysis = TensorAnalysis::default();
            let k = analysis.intern(&Attrs::new());
            let mut eg = OptEGraph::new(analysis);
            let attr = eg.add(TNode::Attr(k));
            let x = eg.add(TNode::Input(0));
            Hand { eg, attr, x }
        }
        fn op(&mut self, op: Op, kid: Id) -> Id {
            self.eg.add(TNode::op(op, self.attr, &[kid]))
        }
    }

    fn cost_by_op(n: &TNode) -> f64 {
        match n {
            TNode::Op { op, .. } => match op {
                Op::Neg => 5.0,
                Op::Relu | Op::Tanh => 1.0,
                Op::Sigmoid | Op::Exp => 4.0,
                Op::Abs => 1.0,
                _ => 0.0,
            },
            TNode::Input(_) => 10.0,
            _ => 0.0,
        }
    }

    /// Two outputs can each be computed alone for 4, or both from a shared Neg (5) for 1 each:
    /// greedy decides each output alone (4 + 4), exact shares (5 + 1 + 1).
    #[test]
    fn exact_finds_the_sharing_greedy_misses() {
        let mut h = Hand::new();
        let x = h.x;
        let s = h.op(Op::Neg, x);
        let r1 = h.op(Op::Relu, s);
        let r1b = h.op(Op::Sigmoid, x);
        let r2 = h.op(Op::Tanh, s);
        let r2b = h.op(Op::Exp, x);
        h.eg.union(r1, r1b);
        h.eg.union(r2, r2b);
        h.eg.rebuild();
        let eg = &h.eg;
        let own = own_costs(eg, &|_, n| cost_by_op(n));
        let roots = [r1, r2];
        let greedy = greedy_dag(eg, &roots, &own).unwrap();
        assert_eq!(greedy.cost, 10.0 + 4.0 + 4.0);
        let (exact, st) = exact_dag(eg, &roots, &own, &greedy, ExactLimits::default()).unwrap();
        assert!(st.optimal);
        assert_eq!(exact.cost, 10.0 + 5.0 + 1.0 + 1.0);
        assert_eq!(dag_cost(eg, &roots, &exact.best, &own), Some(exact.cost));
        assert!(matches!(
            exact.best[&eg.find(r1)],
            TNode::Op { op: Op::Relu, .. }
        ));
        // A budget of one choice stops the search: not proved, and never worse than greedy.
        let tight = ExactLimits {
            search_nodes: 1,
            ..Default::default()
        };
        let (stopped, st) = exact_dag(eg, &roots, &own, &greedy, tight).unwrap();
        assert!(!st.optimal);
        assert!(stopped.cost <= greedy.cost);
        assert_eq!(dag_cost(eg, &roots, &stopped.best, &own), Some(stopped.cost));
    }

    /// A class whose cheap node reads a class that needs it back is a cycle: exact must take the
    /// expensive leaf instead.
    #[test]
    fn exact_refuses_cycles() {
        let mut h = Hand::new();
        let x = h.x;
        // a = {x, Abs(b)}, b = {Relu(a)}: choosing Abs(b) for a would make a depend on itself.
        let b = h.op(Op::Relu, x);
        let abs_b = h.op(Op::Abs, b);
        h.eg.union(x, abs_b);
        h.eg.rebuild();
        let eg = &h.eg;
        let own = own_costs(eg, &|_, n| cost_by_op(n));
        let roots = [b];
        let greedy = greedy_dag(eg, &roots, &own).unwrap();
        let (exact, st) = exact_dag(eg, &roots, &own, &greedy, ExactLimits::default()).unwrap();
        assert!(st.optimal);
        assert_eq!(exact.cost, 10.0 + 1.0);
        assert_eq!(exact.best[&eg.find(x)], TNode::Input(0));
        assert_eq!(dag_cost(eg, &roots, &exact.best, &own), Some(11.0));
    }
}
