//! Exact DAG-cost extraction by branch and bound (`--extract exact`).
//!
//! The search decides one e-class at a time: it keeps the classes the decided e-nodes need but
//! that are not decided yet (the *pending* set, starting with the roots), picks the pending
//! class with the fewest candidate e-nodes, and tries each candidate (greedy's choice first,
//! then by own cost). Choosing a node adds its cost once and makes its undecided children
//! pending, so a class shared by several consumers is paid for once, exactly the objective of
//! [`super::extract::greedy_dag`]. A node whose child reaches its class through decided nodes
//! would close a cycle and is skipped. A branch is cut when its cost so far plus a lower bound
//! of what is left cannot beat the best complete choice. The bound counts, once each, the
//! classes that some pending class needs whatever is chosen for it (its *must* set) and that
//! are not decided yet, each at the cheapest cost of its own node plus the classes *private*
//! to that node (read by no other node, so never shared); both are fixpoints computed once
//! over the e-graph. Classes whose choice can cost zero all the way down (leaves, weights) are
//! decided before the search. The first bound to beat is greedy's cost, so the result is never
//! worse than greedy, and only a strictly cheaper choice replaces it (ties keep greedy's graph).
//!
//! The search stops at [`ExactLimits`] (search nodes, then wall time); it then returns the
//! best choice found and reports that optimality was not proved.

use super::analysis::OptEGraph;
use super::extract::{no_form, Choice, OwnCosts};
use super::lang::TNode;
use super::node_cost::INFEASIBLE;
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

/// For every class, the classes every acyclic choice for it computes (itself included), as
/// bit sets: the least fixpoint of `must(c) = {c} ∪ ⋂_node ⋃_child must(child)` from `{c}`,
/// which never holds a class some acyclic choice avoids (each iterate is below the true sets).
fn must_sets(cands: &[Vec<Cand>], n: usize) -> Vec<Vec<u64>> {
    let words = n.div_ceil(64);
    let mut must: Vec<Vec<u64>> = (0..n)
        .map(|c| {
            let mut v = vec![0u64; words];
            v[c / 64] |= 1u64 << (c % 64);
            v
        })
        .collect();
    for _round in 0..n + 1 {
        let mut changed = false;
        for c in 0..n {
            let mut inter: Option<Vec<u64>> = None;
            for cand in &cands[c] {
                let mut un = vec![0u64; words];
                for &k in &cand.kids {
                    for (w, m) in un.iter_mut().zip(&must[k]) {
                        *w |= m;
                    }
                }
                inter = Some(match inter {
                    None => un,
                    Some(mut i) => {
                        for (w, m) in i.iter_mut().zip(&un) {
                            *w &= m;
                        }
                        i
                    }
                });
            }
            if let Some(i) = inter {
                for (w, m) in must[c].iter_mut().zip(&i) {
                    if *w | m != *w {
                        *w |= m;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    must
}

/// Classes only one candidate node reads (and that are not roots) are *private* to its class,
/// their owner: such a class is computed exactly when that node is chosen, so its cost can be
/// charged to the owner without being shared. Returns each class's owner, and a lower bound
/// of what choosing each class costs with its private classes: the least fixpoint of
/// `lb(c) = min_node (own + Σ_private child lb(child))` from the cheapest own cost (every
/// iterate is below the true cost, so the search may stop iterating at any point).
fn private_bounds(
    cands: &[Vec<Cand>],
    min_own: &[f64],
    roots: &[usize],
) -> (Vec<Option<usize>>, Vec<f64>) {
    let n = cands.len();
    let mut readers = vec![0usize; n];
    let mut owner: Vec<Option<usize>> = vec![None; n];
    for (c, cs) in cands.iter().enumerate() {
        for cand in cs {
            for &k in &cand.kids {
                readers[k] += 1;
                owner[k] = Some(c);
            }
        }
    }
    for (k, o) in owner.iter_mut().enumerate() {
        if readers[k] != 1 || roots.contains(&k) {
            *o = None;
        }
    }
    let mut lb = min_own.to_vec();
    for _round in 0..n + 1 {
        let mut changed = false;
        for c in 0..n {
            let best = cands[c]
                .iter()
                .map(|cand| {
                    cand.own
                        + cand
                            .kids
                            .iter()
                            .filter(|&&k| owner[k] == Some(c))
                            .map(|&k| lb[k])
                            .sum::<f64>()
                })
                .fold(INFEASIBLE, f64::min)
                .min(INFEASIBLE);
            if best > lb[c] {
                lb[c] = best;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    (owner, lb)
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
    let must = must_sets(&cands, n);
    let root_set: Vec<usize> = roots.iter().map(|&r| index[&eg.find(r)]).collect();
    let (owner, private_lb) = private_bounds(&cands, &min_own, &root_set);
    let words = n.div_ceil(64);
    let mut decided = vec![0u64; words];
    let bit = |set: &[u64], c: usize| set[c / 64] & (1u64 << (c % 64)) != 0;
    // The strong bound: every class some pending class or `extra` class needs whatever is
    // chosen and that is not decided yet, at its private bound, except a private class whose
    // owner is counted too (its bound already holds it, or the owner's cheapest form avoids it).
    let must_lb = |pending: &BTreeSet<usize>, extra: &[usize], decided: &[u64]| -> f64 {
        let mut u = vec![0u64; words];
        for &p in pending.iter().chain(extra) {
            for (w, m) in u.iter_mut().zip(&must[p]) {
                *w |= m;
            }
        }
        for (w, d) in u.iter_mut().zip(decided) {
            *w &= !d;
        }
        let mut sum = 0.0;
        for (i, &w) in u.iter().enumerate() {
            let mut bits = w;
            while bits != 0 {
                let d = i * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if owner[d].is_some_and(|o| bit(&u, o)) {
                    continue;
                }
                sum += private_lb[d];
            }
        }
        sum
    };
    let mut chosen: Vec<Option<usize>> = vec![None; n];
    // Classes with a choice costing zero all the way down (leaves, weights, views of them) are
    // decided first: nothing is cheaper for them, and since their choices read only each other
    // they cannot close a cycle or make anything else dearer. (Without this the search would
    // try every combination of equally free forms.)
    loop {
        let mut changed = false;
        for c in 0..n {
            if chosen[c].is_some() {
                continue;
            }
            let free = cands[c]
                .iter()
                .position(|k| k.own == 0.0 && k.kids.iter().all(|&k| chosen[k].is_some()));
            if let Some(j) = free {
                chosen[c] = Some(j);
                decided[c / 64] |= 1u64 << (c % 64);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut pending: BTreeSet<usize> = roots
        .iter()
        .map(|&r| index[&eg.find(r)])
        .filter(|&r| chosen[r].is_none())
        .collect();
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
            decided[c / 64] &= !(1u64 << (c % 64));
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
            // `c` is being decided: mark it so its own must-set entry is not counted twice.
            decided[c / 64] |= 1u64 << (c % 64);
            let strong = cost + cand.own + must_lb(&pending, &cand.kids, &decided);
            decided[c / 64] &= !(1u64 << (c % 64));
            if !better(strong, best_cost) {
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
                || (stats.search_nodes.is_multiple_of(1024) && t0.elapsed() >= limits.time)
            {
                stopped = true;
            }
            chosen[c] = Some(j);
            decided[c / 64] |= 1u64 << (c % 64);
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
        assert_eq!(
            dag_cost(eg, &roots, &stopped.best, &own),
            Some(stopped.cost)
        );
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

    /// Random small e-graphs (unary and binary nodes over earlier classes, then random unions,
    /// which may make cycles) with hashed own costs: exact equals the optimum found by trying
    /// every choice, and greedy is never below it.
    #[test]
    fn exact_matches_brute_force_on_random_egraphs() {
        use std::hash::{Hash, Hasher};
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
        let mut checked = 0;
        let mut greedy_worse = 0;
        for _case in 0..300 {
            let mut h = Hand::new();
            let mut classes = vec![h.x];
            for _ in 0..7 {
                let a = classes[next(classes.len() as u64) as usize];
                let id = if next(2) == 0 {
                    let op = [Op::Neg, Op::Relu, Op::Abs][next(3) as usize];
                    h.op(op, a)
                } else {
                    let b = classes[next(classes.len() as u64) as usize];
                    let op = [Op::Add, Op::Mul][next(2) as usize];
                    h.eg.add(TNode::op(op, h.attr, &[a, b]))
                };
                classes.push(id);
            }
            for _ in 0..3 {
                let a = classes[next(classes.len() as u64) as usize];
                let b = classes[next(classes.len() as u64) as usize];
                h.eg.union(a, b);
            }
            h.eg.rebuild();
            let eg = &h.eg;
            let own = own_costs(eg, &|_, n| {
                let mut hs = std::collections::hash_map::DefaultHasher::new();
                format!("{n:?}").hash(&mut hs);
                match n {
                    TNode::Op { .. } => (hs.finish() % 20) as f64,
                    _ => 0.0,
                }
            });
            let roots = [classes[classes.len() - 1], classes[classes.len() - 2]];
            let Ok(greedy) = greedy_dag(eg, &roots, &own) else {
                continue;
            };
            // Every choice of one node per class.
            let ids: Vec<Id> = eg.classes().map(|c| c.id).collect();
            let sizes: Vec<usize> = ids.iter().map(|&c| eg[c].nodes.len()).collect();
            let combos: usize = sizes.iter().product();
            assert!(combos <= 100_000, "{combos}");
            let mut brute = f64::INFINITY;
            for mut k in 0..combos {
                let mut best = HashMap::new();
                for (i, &c) in ids.iter().enumerate() {
                    best.insert(c, eg[c].nodes[k % sizes[i]].clone());
                    k /= sizes[i];
                }
                if let Some(c) = dag_cost(eg, &roots, &best, &own) {
                    brute = brute.min(c);
                }
            }
            let (exact, st) = exact_dag(eg, &roots, &own, &greedy, ExactLimits::default()).unwrap();
            assert!(st.optimal);
            assert_eq!(exact.cost, brute, "case {_case}");
            assert_eq!(dag_cost(eg, &roots, &exact.best, &own), Some(exact.cost));
            assert!(greedy.cost >= brute);
            checked += 1;
            if greedy.cost > brute {
                greedy_worse += 1;
            }
        }
        assert!(checked >= 200, "{checked}");
        assert!(greedy_worse > 0, "no case where greedy misses the optimum");
    }
}
