//! Extraction by DAG cost, and the rebuilt graph.
//!
//! Every e-node has an own cost ([`own_costs`], from [`super::node_cost`]: the kernels its
//! one-node graph lowers to). A choice of one e-node per needed e-class costs the sum of the
//! own costs of the classes it computes, each counted once, so a subgraph shared by two
//! consumers is paid for once (egg's `Extractor` counts tree cost and would pay twice).
//!
//! [`greedy_dag`] (the default) gives each candidate the set of e-classes its choice would
//! compute (itself plus the union of its children's sets) and relaxes classes in rounds until
//! no choice improves; a node whose children's sets contain its own class would be a cycle and
//! is skipped. Ties keep the first node in egg's sorted order, so extraction is deterministic.
//! Greedy can miss the optimum when sharing pays off only for a combination of choices.
//!
//! [`exact_dag`] (`--extract exact`) finds the optimum by branch and bound over the e-class
//! choices ([`super::exact`]), starting from greedy's result as the bound, within a search
//! budget; past it, it keeps the best found (never worse than greedy) and says so.
//!
//! [`to_graph`] rebuilds a [`Graph`] from the choice: graph inputs keep their order and names,
//! constants their names, every node the name of the original node whose e-class it landed in
//! (a node produced by a rewrite keeps the name of the node it replaced), and graph outputs
//! their names. Nodes whose operands are all constants are folded with the interpreter.

use super::analysis::{attrs_of, ConstSource, OptEGraph};
use super::lang::{Names, TNode};
use super::node_cost::INFEASIBLE;
use crate::diag::{Code, Diagnostic};
use crate::graph::{Graph, Op, ValueDef, ValueId};
use egg::{Id, Language};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

pub use super::exact::{exact_dag, ExactLimits, ExactStats};

/// Own cost of every e-node, by (canonical class, index in the class's node list).
pub type OwnCosts = HashMap<(Id, usize), f64>;

/// The own cost of every e-node of `eg` from `cost(class, node)`.
pub fn own_costs(eg: &OptEGraph, cost: &dyn Fn(Id, &TNode) -> f64) -> OwnCosts {
    eg.classes()
        .flat_map(|c| {
            c.nodes
                .iter()
                .enumerate()
                .map(move |(i, n)| ((c.id, i), cost(c.id, n)))
        })
        .collect()
}

/// The chosen e-node per canonical class, and the DAG cost of what the roots need.
#[derive(Clone, Debug)]
pub struct Choice {
    pub best: HashMap<Id, TNode>,
    pub cost: f64,
}

#[derive(Debug)]
struct Cand {
    node: TNode,
    /// Every class this choice computes, with the own cost of its chosen node.
    set: Rc<BTreeMap<Id, f64>>,
    total: f64,
}

/// The error of an extraction that found no finite form of a graph output.
pub(crate) fn no_form() -> Diagnostic {
    Diagnostic::new(
        Code::OptExtract,
        "the optimizer found no acyclic, well-typed form of a graph output",
    )
    .help("run with -O0 and report the model")
}

/// Greedy DAG-cost extraction for the given roots with the e-nodes' own costs `own`.
pub fn greedy_dag(eg: &OptEGraph, roots: &[Id], own: &OwnCosts) -> Result<Choice, Diagnostic> {
    let mut ids: Vec<Id> = eg.classes().map(|c| c.id).collect();
    ids.sort();
    let mut best: HashMap<Id, Cand> = HashMap::new();
    // Each round can only lower totals; the bound is a safety net for adversarial e-graphs.
    for _round in 0..ids.len() + 2 {
        let mut changed = false;
        for &c in &ids {
            for (i, n) in eg[c].nodes.iter().enumerate() {
                let kids: Vec<Id> = n.children().iter().map(|&k| eg.find(k)).collect();
                if kids.iter().any(|k| !best.contains_key(k)) {
                    continue;
                }
                if kids.iter().any(|k| *k == c || best[k].set.contains_key(&c)) {
                    continue; // a cycle through this class
                }
                let mut set: BTreeMap<Id, f64> = match kids.first() {
                    Some(k) => (*best[k].set).clone(),
                    None => BTreeMap::new(),
                };
                for k in kids.iter().skip(1) {
                    for (&cls, &cost) in best[k].set.iter() {
                        set.insert(cls, cost);
                    }
                }
                set.insert(c, own.get(&(c, i)).copied().unwrap_or(INFEASIBLE));
                let total: f64 = set.values().sum();
                let better = match best.get(&c) {
                    None => true,
                    Some(old) => total < old.total * (1.0 - 1e-12) - 1e-9,
                };
                if better {
                    best.insert(
                        c,
                        Cand {
                            node: n.clone(),
                            set: Rc::new(set),
                            total,
                        },
                    );
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let best: HashMap<Id, TNode> = best.into_iter().map(|(k, c)| (k, c.node)).collect();
    let cost = dag_cost(eg, roots, &best, own).ok_or_else(no_form)?;
    if cost >= INFEASIBLE {
        return Err(Diagnostic::new(
            Code::OptExtract,
            "the optimizer's best form of the graph contains an ill-typed node",
        )
        .help("run with -O0 and report the model"));
    }
    Ok(Choice { best, cost })
}

/// The DAG cost of what `roots` need under the choice `best`: the own cost of every class
/// reached from them, each once. `None` when a reached class has no chosen node or the choice
/// has a cycle.
pub fn dag_cost(
    eg: &OptEGraph,
    roots: &[Id],
    best: &HashMap<Id, TNode>,
    own: &OwnCosts,
) -> Option<f64> {
    // 0: unseen, 1: on the current path, 2: done.
    let mut state: HashMap<Id, u8> = HashMap::new();
    let mut cost = 0.0;
    for &r in roots {
        let mut stack: Vec<(Id, bool)> = vec![(eg.find(r), false)];
        while let Some((c, leaving)) = stack.pop() {
            if leaving {
                state.insert(c, 2);
                continue;
            }
            match state.get(&c) {
                Some(2) => continue,
                Some(_) => return None,
                None => {}
            }
            state.insert(c, 1);
            let node = best.get(&c)?;
            let i = eg[c].nodes.iter().position(|n| n == node)?;
            cost += own.get(&(c, i)).copied().unwrap_or(INFEASIBLE);
            stack.push((c, true));
            for &k in node.children() {
                let k = eg.find(k);
                match state.get(&k) {
                    Some(2) => {}
                    Some(_) => return None,
                    None => stack.push((k, false)),
                }
            }
        }
    }
    Some(cost)
}

/// Rebuilds a graph from a choice. `orig` gives the interface (inputs, output names).
pub fn to_graph(
    eg: &OptEGraph,
    choice: &Choice,
    roots: &[Id],
    names: &Names,
    orig: &Graph,
) -> Result<Graph, Diagnostic> {
    let mut b = Builder {
        eg,
        choice,
        names,
        g: Graph::new(orig.name.clone()),
        done: HashMap::new(),
        consts: HashMap::new(),
        fresh: 0,
        orig,
    };
    for &v in &orig.inputs {
        let val = orig.value(v);
        b.g.add_input(val.name.clone(), val.ty.clone());
    }
    let mut claimed: HashMap<ValueId, ValueId> = HashMap::new();
    for (i, &r) in roots.iter().enumerate() {
        let want = orig.outputs[i];
        let want_name = orig.value(want).name.clone();
        let hint = match orig.value(want).def {
            ValueDef::Node { node, .. } => orig.node(node).name.clone(),
            _ => want_name.clone(),
        };
        let v = b.emit(eg.find(r), &hint)?;
        let reuse = claimed.get(&v).is_none_or(|&w| w == want);
        let v = if matches!(b.g.value(v).def, ValueDef::Node { .. }) && reuse {
            b.g.values[v.index()].name = want_name;
            v
        } else if reuse && b.g.value(v).name == want_name {
            v
        } else {
            // An input, constant or already-named value: keep the interface name with an alias.
            let ty = b.g.ty(v).clone();
            let n = b.g.add_node(
                hint,
                Op::Identity,
                Default::default(),
                vec![v],
                vec![(want_name, ty)],
            );
            b.g.node(n).outputs[0]
        };
        claimed.insert(v, want);
        b.g.outputs.push(v);
    }
    Ok(b.g)
}

struct Builder<'a> {
    eg: &'a OptEGraph,
    choice: &'a Choice,
    names: &'a Names,
    g: Graph,
    /// Emitted classes: their values (one per output).
    done: HashMap<Id, Vec<ValueId>>,
    consts: HashMap<u32, ValueId>,
    fresh: usize,
    orig: &'a Graph,
}

impl Builder<'_> {
    fn value_name(&mut self, class: Id) -> String {
        match self.names.value.get(&class) {
            Some(n) => n.clone(),
            None => {
                self.fresh += 1;
                format!("opt_{}", self.fresh)
            }
        }
    }

    /// Emits a single-tensor class.
    fn emit(&mut self, class: Id, hint: &str) -> Result<ValueId, Diagnostic> {
        let vs = self.emit_all(class, hint)?;
        match vs.as_slice() {
            [v] => Ok(*v),
            _ => Err(Diagnostic::new(
                Code::OptExtract,
                "a multi-output node was used as a single tensor",
            )),
        }
    }

    /// Emits a class (and, first, everything it needs), iteratively in post order so deep
    /// graphs do not exhaust the stack.
    fn emit_all(&mut self, root: Id, hint: &str) -> Result<Vec<ValueId>, Diagnostic> {
        let mut stack: Vec<(Id, String, bool)> = vec![(root, hint.to_string(), false)];
        while let Some((c, hint, expanded)) = stack.pop() {
            if self.done.contains_key(&c) {
                continue;
            }
            let node = self.choice.best.get(&c).ok_or_else(|| {
                Diagnostic::new(Code::OptExtract, "an e-class without a chosen node")
            })?;
            let name = self.names.node.get(&c).cloned().unwrap_or(hint.clone());
            if !expanded {
                stack.push((c, hint, true));
                for &k in node.children() {
                    let k = self.eg.find(k);
                    if !self.done.contains_key(&k) && self.eg[k].data.attr.is_none() {
                        let op_name = match self.choice.best.get(&k) {
                            Some(TNode::Op { op, .. }) => op.name().to_lowercase(),
                            _ => String::new(),
                        };
                        stack.push((k, format!("{name}/{op_name}"), false));
                    }
                }
                continue;
            }
            let vals = self.build(c, node, &name)?;
            self.done.insert(c, vals);
        }
        Ok(self.done[&root].clone())
    }

    fn build(&mut self, c: Id, node: &TNode, name: &str) -> Result<Vec<ValueId>, Diagnostic> {
        let eg = self.eg;
        Ok(match node {
            TNode::Input(i) => vec![*self.g.inputs.get(*i as usize).ok_or_else(|| {
                Diagnostic::new(Code::OptExtract, "an input leaf outside the graph's inputs")
            })?],
            TNode::Const(i) => {
                if let Some(&v) = self.consts.get(i) {
                    return Ok(vec![v]);
                }
                let t = match &eg.analysis.consts[*i as usize].source {
                    ConstSource::Owned(t) => t.clone(),
                    ConstSource::Graph(v) => {
                        self.orig.const_value(*v).cloned().ok_or_else(|| {
                            Diagnostic::new(Code::OptExtract, "a constant leaf outside the graph")
                        })?
                    }
                };
                let vname = self.value_name(c);
                let v = self.g.add_const(vname, t);
                self.consts.insert(*i, v);
                vec![v]
            }
            TNode::Attr(_) => Vec::new(),
            TNode::Out(slot, [k]) => {
                let vs = &self.done[&eg.find(*k)];
                vec![*vs.get(*slot as usize).ok_or_else(|| {
                    Diagnostic::new(Code::OptExtract, "an output slot the node does not have")
                })?]
            }
            TNode::Op {
                op,
                n_out,
                children,
            } => {
                let attrs = attrs_of(eg, children[0])
                    .ok_or_else(|| Diagnostic::new(Code::OptExtract, "a node without attributes"))?
                    .clone();
                let mut inputs = Vec::new();
                for &k in &children[1..] {
                    let vs = &self.done[&eg.find(k)];
                    match vs.as_slice() {
                        [v] => inputs.push(*v),
                        _ => {
                            return Err(Diagnostic::new(
                                Code::OptExtract,
                                "a multi-output node used as an operand",
                            ))
                        }
                    }
                }
                let tys = eg[c].data.tys.clone();
                let out_names: Vec<String> = if *n_out == 1 {
                    vec![self.value_name(c)]
                } else {
                    (0..*n_out)
                        .map(|s| {
                            let oc = eg
                                .lookup(TNode::Out(s, [c]))
                                .map(|o| eg.find(o))
                                .unwrap_or(c);
                            if oc == c {
                                self.fresh += 1;
                                format!("opt_{}", self.fresh)
                            } else {
                                self.value_name(oc)
                            }
                        })
                        .collect()
                };
                // Operands all constant: fold now (the cost model already charged nothing).
                let all_const =
                    !inputs.is_empty() && inputs.iter().all(|&v| self.g.const_value(v).is_some());
                if all_const {
                    let ins: Vec<&crate::tensor::Tensor> = inputs
                        .iter()
                        .map(|&v| self.g.const_value(v).unwrap())
                        .collect();
                    if let Ok(outs) = crate::interp::run_op(*op, &attrs, &ins, *n_out as usize) {
                        if outs.len() == out_names.len()
                            && outs
                                .iter()
                                .zip(&tys)
                                .all(|(t, ty)| t.dtype() == ty.dtype && t.shape() == ty.shape)
                        {
                            return Ok(outs
                                .into_iter()
                                .zip(out_names)
                                .map(|(t, n)| self.g.add_const(n, t))
                                .collect());
                        }
                    }
                }
                if tys.len() != *n_out as usize {
                    return Err(
                        Diagnostic::new(Code::OptExtract, "an ill-typed node was chosen")
                            .at_node(name, op.name()),
                    );
                }
                let outs = out_names.into_iter().zip(tys).collect();
                let n = self.g.add_node(name, *op, attrs, inputs, outs);
                self.g.node(n).outputs.clone()
            }
        })
    }
}
