//! The e-graph language over the graph IR and the conversion of a [`Graph`] into an e-graph.
//!
//! One e-node per graph op ([`TNode::Op`]): its first child is an attribute leaf
//! ([`TNode::Attr`], an index into the analysis' interned attribute table, so two nodes with
//! equal attributes share one leaf), the rest are its tensor operands. Graph inputs
//! ([`TNode::Input`]) and constants ([`TNode::Const`]) are leaves indexing the analysis' tables.
//! A node with several outputs (`Split`) is one e-class holding the tuple; [`TNode::Out`] projects
//! one output out of it. Ops print as their graph-IR names, so rules are written as patterns:
//! `(Transpose ?p (Transpose ?q ?x))`. A node with `n != 1` outputs prints as `Split#n`.
//!
//! [`to_egraph`] adds a graph and records, per e-class, the node and value names it came from
//! ([`Provenance`]); [`crate::opt::extract`] turns a choice of e-nodes back into a graph.

use super::analysis::{OptEGraph, TensorAnalysis};
use crate::graph::{Graph, Op, ValueId};
use egg::{Id, Language};
use std::collections::HashMap;
use std::fmt;

/// An e-node of the optimizer's language.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TNode {
    /// Graph input number `i` (signature order).
    Input(u32),
    /// Constant number `i` of the analysis' constant table.
    Const(u32),
    /// Attribute set number `i` of the analysis' interned attribute table.
    Attr(u32),
    /// An op with `n_out` outputs; `children[0]` is its attribute leaf, the rest its operands.
    Op {
        op: Op,
        n_out: u32,
        children: Box<[Id]>,
    },
    /// Output `slot` of a multi-output node.
    Out(u32, [Id; 1]),
}

impl TNode {
    /// A single-output op node.
    pub fn op(op: Op, attr: Id, inputs: &[Id]) -> TNode {
        let mut children = Vec::with_capacity(inputs.len() + 1);
        children.push(attr);
        children.extend_from_slice(inputs);
        TNode::Op {
            op,
            n_out: 1,
            children: children.into_boxed_slice(),
        }
    }
}

/// What [`TNode::discriminant`] returns: nodes match when these agree.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Disc {
    Input(u32),
    Const(u32),
    Attr(u32),
    Op(Op, u32, usize),
    Out(u32),
}

impl Language for TNode {
    type Discriminant = Disc;

    fn discriminant(&self) -> Disc {
        match self {
            TNode::Input(i) => Disc::Input(*i),
            TNode::Const(i) => Disc::Const(*i),
            TNode::Attr(i) => Disc::Attr(*i),
            TNode::Op {
                op,
                n_out,
                children,
            } => Disc::Op(*op, *n_out, children.len()),
            TNode::Out(s, _) => Disc::Out(*s),
        }
    }

    fn matches(&self, other: &Self) -> bool {
        self.discriminant() == other.discriminant()
    }

    fn children(&self) -> &[Id] {
        match self {
            TNode::Input(_) | TNode::Const(_) | TNode::Attr(_) => &[],
            TNode::Op { children, .. } => children,
            TNode::Out(_, c) => c,
        }
    }

    fn children_mut(&mut self) -> &mut [Id] {
        match self {
            TNode::Input(_) | TNode::Const(_) | TNode::Attr(_) => &mut [],
            TNode::Op { children, .. } => children,
            TNode::Out(_, c) => c,
        }
    }
}

impl fmt::Display for TNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TNode::Input(i) => write!(f, "in{i}"),
            TNode::Const(i) => write!(f, "c{i}"),
            TNode::Attr(i) => write!(f, "a{i}"),
            TNode::Op { op, n_out: 1, .. } => write!(f, "{op}"),
            TNode::Op { op, n_out, .. } => write!(f, "{op}#{n_out}"),
            TNode::Out(s, _) => write!(f, "out{s}"),
        }
    }
}

impl egg::FromOp for TNode {
    type Error = String;

    fn from_op(op: &str, children: Vec<Id>) -> Result<Self, String> {
        let leaf = |prefix: &str| -> Option<u32> {
            op.strip_prefix(prefix)
                .filter(|r| !r.is_empty())
                .and_then(|r| r.parse().ok())
        };
        if children.is_empty() {
            if let Some(i) = leaf("in") {
                return Ok(TNode::Input(i));
            }
            if let Some(i) = leaf("c") {
                return Ok(TNode::Const(i));
            }
            if let Some(i) = leaf("a") {
                return Ok(TNode::Attr(i));
            }
        }
        if let (Some(s), [c]) = (leaf("out"), children.as_slice()) {
            return Ok(TNode::Out(s, [*c]));
        }
        let (name, n_out) = match op.split_once('#') {
            Some((n, k)) => (
                n,
                k.parse()
                    .map_err(|_| format!("bad output count in '{op}'"))?,
            ),
            None => (op, 1),
        };
        let op = Op::from_name(name).ok_or_else(|| format!("unknown op '{name}'"))?;
        if children.is_empty() {
            return Err(format!("{op} needs an attribute child"));
        }
        Ok(TNode::Op {
            op,
            n_out,
            children: children.into_boxed_slice(),
        })
    }
}

/// Names recorded while a graph is added: per e-class (as added, before any union), the first
/// node and the first value name that defined it. [`Provenance::canonical`] re-keys them by the
/// classes' current representatives after rewriting.
#[derive(Clone, Debug, Default)]
pub struct Provenance {
    /// (class, node name) in program order.
    pub nodes: Vec<(Id, String)>,
    /// (class, value name) in arena order of definition: inputs, constants, node outputs.
    pub values: Vec<(Id, String)>,
}

/// Provenance keyed by canonical class: the first name recorded for each class wins.
#[derive(Clone, Debug, Default)]
pub struct Names {
    pub node: HashMap<Id, String>,
    pub value: HashMap<Id, String>,
}

impl Provenance {
    pub fn canonical(&self, eg: &OptEGraph) -> Names {
        let mut n = Names::default();
        for (id, name) in &self.nodes {
            n.node.entry(eg.find(*id)).or_insert_with(|| name.clone());
        }
        for (id, name) in &self.values {
            n.value.entry(eg.find(*id)).or_insert_with(|| name.clone());
        }
        n
    }
}

/// A graph added to an e-graph: the classes of the graph outputs and the recorded names.
#[derive(Clone, Debug)]
pub struct Added {
    pub egraph: OptEGraph,
    /// Class of each graph output, in signature order (not canonicalised).
    pub roots: Vec<Id>,
    pub provenance: Provenance,
}

/// Adds every value of `g` to a fresh e-graph whose analysis is `analysis` (its tables are
/// filled from the graph: inputs, constants, attributes).
pub fn to_egraph(g: &Graph, mut analysis: TensorAnalysis) -> Added {
    analysis.inputs = g.inputs.iter().map(|&v| g.ty(v).clone()).collect();
    let mut eg = OptEGraph::new(analysis);
    let mut class: HashMap<ValueId, Id> = HashMap::new();
    let mut prov = Provenance::default();
    for (i, &v) in g.inputs.iter().enumerate() {
        let id = eg.add(TNode::Input(i as u32));
        class.insert(v, id);
        prov.values.push((id, g.value(v).name.clone()));
    }
    for (v, t) in g.constants() {
        let k = eg.analysis.add_graph_const(v, t);
        let id = eg.add(TNode::Const(k));
        class.insert(v, id);
        prov.values.push((id, g.value(v).name.clone()));
    }
    for nid in g.node_ids() {
        let node = g.node(nid);
        let k = eg.analysis.intern(&node.attrs);
        let attr = eg.add(TNode::Attr(k));
        let mut children = vec![attr];
        // Program order guarantees operands are already present (the verifier checked it).
        children.extend(node.inputs.iter().map(|v| class[v]));
        let n_out = node.outputs.len() as u32;
        let id = eg.add(TNode::Op {
            op: node.op,
            n_out,
            children: children.into_boxed_slice(),
        });
        prov.nodes.push((id, node.name.clone()));
        if n_out == 1 {
            class.insert(node.outputs[0], id);
            prov.values
                .push((id, g.value(node.outputs[0]).name.clone()));
        } else {
            for (slot, &o) in node.outputs.iter().enumerate() {
                let oid = eg.add(TNode::Out(slot as u32, [id]));
                class.insert(o, oid);
                prov.nodes.push((oid, node.name.clone()));
                prov.values.push((oid, g.value(o).name.clone()));
            }
        }
    }
    eg.rebuild();
    let roots = g.outputs.iter().map(|v| class[v]).collect();
    Added {
        egraph: eg,
        roots,
        provenance: prov,
    }
}
