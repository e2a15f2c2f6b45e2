//! The e-class analysis: for every e-class, the types of the tensor(s) it computes (dtype and
//! static shape, from [`crate::graph::shape::infer`]), whether it is computed only from weights
//! (constants), the value of a constant whose elements are all equal, and for attribute leaves
//! the interned attribute set. The analysis also owns the tables the leaves index: graph input
//! types, constants and interned attribute sets.
//!
//! Everything here is a function of the value a class computes, so it never changes when
//! classes merge; rule conditions that read it stay sound (egg#323).

use super::lang::TNode;
use crate::graph::{shape, Attrs, Op, TensorType, ValueId};
use crate::lower::Precision;
use crate::tensor::Tensor;
use egg::{DidMerge, Id};
use std::collections::HashMap;

/// The optimizer's e-graph.
pub type OptEGraph = egg::EGraph<TNode, TensorAnalysis>;

/// Tables the leaves index, and the lowering precision the cost model assumes.
#[derive(Clone, Debug, Default)]
pub struct TensorAnalysis {
    pub inputs: Vec<TensorType>,
    pub consts: Vec<ConstInfo>,
    pub attrs: Vec<Attrs>,
    attr_index: HashMap<String, u32>,
    pub precision: Precision,
}

impl TensorAnalysis {
    pub fn new(precision: Precision) -> Self {
        TensorAnalysis {
            precision,
            ..Default::default()
        }
    }

    /// The index of an attribute set, interning it on first sight. (Attributes hold floats, so
    /// the key is their `Debug` text, which is exact for floats and ordered by the `BTreeMap`.)
    pub fn intern(&mut self, a: &Attrs) -> u32 {
        let key = format!("{a:?}");
        if let Some(&k) = self.attr_index.get(&key) {
            return k;
        }
        let k = self.attrs.len() as u32;
        self.attrs.push(a.clone());
        self.attr_index.insert(key, k);
        k
    }

    /// A constant owned by the analysis (made by a rule).
    pub fn add_const(&mut self, t: Tensor) -> u32 {
        self.consts.push(ConstInfo {
            ty: TensorType::new(t.dtype(), t.shape()),
            splat: splat_of(&t),
            source: ConstSource::Owned(t),
        });
        (self.consts.len() - 1) as u32
    }

    /// A constant of the input graph, referenced by its value id (weights are not copied).
    pub fn add_graph_const(&mut self, v: ValueId, t: &Tensor) -> u32 {
        self.consts.push(ConstInfo {
            ty: TensorType::new(t.dtype(), t.shape()),
            splat: splat_of(t),
            source: ConstSource::Graph(v),
        });
        (self.consts.len() - 1) as u32
    }
}

/// What the analysis keeps of a constant.
#[derive(Clone, Debug)]
pub struct ConstInfo {
    pub ty: TensorType,
    pub splat: Option<f64>,
    pub source: ConstSource,
}

/// Where a constant's data lives.
#[derive(Clone, Debug)]
pub enum ConstSource {
    /// A constant value of the graph being optimized.
    Graph(ValueId),
    Owned(Tensor),
}

/// What the analysis knows about one e-class.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Data {
    /// Types of the outputs (one for a tensor; several for a multi-output node; none for an
    /// attribute leaf or a node whose operands the op rejects).
    pub tys: Vec<TensorType>,
    /// Computed only from constants (folded at compile time, costed zero).
    pub weight_only: bool,
    /// A floating-point constant whose elements all equal this value.
    pub splat: Option<f64>,
    /// The interned attribute set of an attribute leaf.
    pub attr: Option<u32>,
}

impl Data {
    /// The type of a single-tensor class.
    pub fn ty(&self) -> Option<&TensorType> {
        match self.tys.as_slice() {
            [t] => Some(t),
            _ => None,
        }
    }
}

fn splat_of(t: &Tensor) -> Option<f64> {
    fn same<T: Copy + PartialEq>(a: &ndarray::ArrayD<T>) -> Option<T> {
        let first = *a.iter().next()?;
        a.iter().all(|&x| x == first).then_some(first)
    }
    match t {
        Tensor::F32(a) => same(a).map(f64::from),
        Tensor::F16(a) => same(a).map(|x| f64::from(x.to_f32())),
        Tensor::BF16(a) => same(a).map(|x| f64::from(x.to_f32())),
        _ => None,
    }
}

impl egg::Analysis<TNode> for TensorAnalysis {
    type Data = Data;

    fn make(eg: &mut OptEGraph, enode: &TNode, _id: Id) -> Data {
        match enode {
            TNode::Input(i) => Data {
                tys: eg
                    .analysis
                    .inputs
                    .get(*i as usize)
                    .cloned()
                    .into_iter()
                    .collect(),
                ..Default::default()
            },
            TNode::Const(i) => match eg.analysis.consts.get(*i as usize) {
                Some(c) => Data {
                    tys: vec![c.ty.clone()],
                    weight_only: true,
                    splat: c.splat,
                    attr: None,
                },
                None => Data::default(),
            },
            TNode::Attr(i) => Data {
                attr: Some(*i),
                ..Default::default()
            },
            TNode::Op {
                op,
                n_out,
                children,
            } => {
                let attrs = attrs_of(eg, children[0]);
                let ins: Option<Vec<TensorType>> = children[1..]
                    .iter()
                    .map(|&c| eg[c].data.ty().cloned())
                    .collect();
                let weight_only =
                    children.len() > 1 && children[1..].iter().all(|&c| eg[c].data.weight_only);
                let tys = match (attrs, ins) {
                    (Some(a), Some(ins)) => infer_n(*op, a, &ins, *n_out).unwrap_or_default(),
                    _ => Vec::new(),
                };
                Data {
                    tys,
                    weight_only,
                    ..Default::default()
                }
            }
            TNode::Out(slot, [c]) => {
                let d = &eg[*c].data;
                Data {
                    tys: d.tys.get(*slot as usize).cloned().into_iter().collect(),
                    weight_only: d.weight_only,
                    ..Default::default()
                }
            }
        }
    }

    fn merge(&mut self, a: &mut Data, b: Data) -> DidMerge {
        let mut changed_a = false;
        let mut changed_b = false;
        if a.tys.is_empty() && !b.tys.is_empty() {
            a.tys = b.tys;
            changed_a = true;
        } else if b.tys.is_empty() && !a.tys.is_empty() {
            changed_b = true;
        }
        if b.weight_only && !a.weight_only {
            a.weight_only = true;
            changed_a = true;
        } else if a.weight_only && !b.weight_only {
            changed_b = true;
        }
        if a.splat.is_none() && b.splat.is_some() {
            a.splat = b.splat;
            changed_a = true;
        } else if b.splat.is_none() && a.splat.is_some() {
            changed_b = true;
        }
        if a.attr.is_none() && b.attr.is_some() {
            a.attr = b.attr;
            changed_a = true;
        }
        DidMerge(changed_a, changed_b)
    }
}

/// The inferred types of `op` keeping the first `n_out` outputs.
pub fn infer_n(op: Op, attrs: &Attrs, ins: &[TensorType], n_out: u32) -> Option<Vec<TensorType>> {
    let mut tys = shape::infer(op, attrs, ins).ok()?;
    if tys.len() < n_out as usize {
        return None;
    }
    tys.truncate(n_out as usize);
    Some(tys)
}

/// The attribute set of an attribute-leaf class.
pub fn attrs_of(eg: &OptEGraph, id: Id) -> Option<&Attrs> {
    eg[id]
        .data
        .attr
        .and_then(|k| eg.analysis.attrs.get(k as usize))
}

/// The type of a single-tensor class.
pub fn ty_of(eg: &OptEGraph, id: Id) -> Option<&TensorType> {
    eg[id].data.ty()
}

/// Adds `op(attrs, inputs)` when the op accepts the operands; `None` otherwise, so rules never
/// put an ill-typed node into the e-graph.
pub fn add_op(eg: &mut OptEGraph, op: Op, attrs: &Attrs, inputs: &[Id]) -> Option<Id> {
    let ins: Vec<TensorType> = inputs
        .iter()
        .map(|&c| ty_of(eg, c).cloned())
        .collect::<Option<_>>()?;
    infer_n(op, attrs, &ins, 1)?;
    let k = eg.analysis.intern(attrs);
    let attr = eg.add(TNode::Attr(k));
    Some(eg.add(TNode::op(op, attr, inputs)))
}
