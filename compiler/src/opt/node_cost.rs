//! The optimizer's cost of one node: the kernels the lowering emits for it, costed from their
//! kernel IR ([`super::kernel_cost`]). Extraction, the report's before/after prediction and
//! `tahoma bench`'s extraction figure all read it, so the optimizer predicts with the same model
//! that ranks the emulated kernels.
//!
//! A node is costed by building the one-node graph it stands for: its run-time operands become
//! graph inputs of their types, its constant operands constants (the lowering reads some of
//! them: pre-arranged convolution and matmul weights, a one-element operand becoming an
//! immediate, constant Gather indices), and its outputs typed as given and not marked as graph
//! outputs (so a view lowers to no kernel and costs zero rather than an output copy). The
//! graph is lowered with [`crate::lower::lower`] and every kernel it emits is list-scheduled
//! ([`super::kernel_cost::schedule_cycles`], the resource bound past its unroll limit). A
//! one-node graph the lowering refuses gets [`super::cost::op_cycles`]'s estimate, counted in
//! [`CostStats::fallbacks`]. (Extraction charges nothing for an e-node computed only from
//! weights, which it folds; a graph node is costed as the lowering would emit it.)
//!
//! [`NodeCoster`] caches by what the lowering's kernels depend on: op, attributes, operand
//! types, which operands are the same value, which are constants (with their values when they
//! are small or are Gather indices; large weights only by type: the lowering lays them out
//! but never branches on them), output types and the precision. The one-node graph gets the
//! values of the constants keyed by value; the others (and constants whose values are not at
//! hand: computed from weights, folded only when extracted) are zero tensors of their type.

use super::analysis::{attrs_of, ConstSource, OptEGraph};
use super::cost::op_cycles;
use super::kernel_cost::{kernel_work, schedule_cycles};
use super::lang::TNode;
use crate::graph::{Attrs, Graph, Op, TensorType, ValueId};
use crate::lower::{lower, LowerOptions, Precision};
use crate::tensor::Tensor;
use egg::Id;
use std::cell::RefCell;
use std::collections::HashMap;

/// A cost high enough never to be chosen but finite, so sums never overflow (an e-node the
/// types reject).
pub const INFEASIBLE: f64 = 1e30;

/// Constants with at most this many elements are part of the cache key by value.
const SMALL_CONST: usize = 64;

/// What the costing has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct CostStats {
    /// Distinct nodes (cache keys) lowered and scheduled.
    pub lowered: usize,
    /// Of those, the nodes whose one-node graph did not lower (costed with `op_cycles`).
    pub fallbacks: usize,
    /// Cost queries answered from the cache.
    pub hits: usize,
    /// Wall seconds spent lowering and scheduling the one-node graphs.
    pub seconds: f64,
}

/// One operand of a node to cost.
#[derive(Clone, Copy, Debug)]
pub struct Operand<'a> {
    pub ty: &'a TensorType,
    /// `None` for a run-time value; `Some(t)` for a constant, `t` its value when at hand.
    pub constant: Option<Option<&'a Tensor>>,
    /// Index of the first operand that is the same value (itself when none is).
    pub same_as: usize,
}

/// How an operand enters the cache key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum ConstKey {
    Runtime,
    /// A constant known only by its type (large, or its value not at hand).
    Const,
    /// A constant by value (f64 bits of each element).
    Values(Vec<u64>),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    op: Op,
    attrs: String,
    ins: Vec<(TensorType, usize, ConstKey)>,
    outs: Vec<TensorType>,
}

/// Whether the lowering's kernels depend on the values of operand `k` of `op` (beyond its
/// type): constant Gather indices select what the DMAs copy.
fn values_matter(op: Op, k: usize) -> bool {
    op == Op::Gather && k == 1
}

/// Whether constant operand `k` (value `t`) of `op` is keyed, and lowered, by its values.
fn by_value(op: Op, k: usize, t: &Tensor) -> bool {
    t.len() <= SMALL_CONST || values_matter(op, k)
}

/// The cached kernel-IR cost of single nodes at one precision (see the module doc).
#[derive(Debug)]
pub struct NodeCoster {
    precision: Precision,
    cache: RefCell<HashMap<Key, f64>>,
    stats: RefCell<CostStats>,
}

impl NodeCoster {
    pub fn new(precision: Precision) -> Self {
        NodeCoster {
            precision,
            cache: RefCell::new(HashMap::new()),
            stats: RefCell::new(CostStats::default()),
        }
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn stats(&self) -> CostStats {
        *self.stats.borrow()
    }

    /// Predicted cycles of `op(attrs)` on `ins` producing `outs`. `attrs_key` identifies the
    /// attribute set (its `Debug` text; the e-graph passes its interned text).
    pub fn cycles(
        &self,
        op: Op,
        attrs: &Attrs,
        attrs_key: &str,
        ins: &[Operand],
        outs: &[TensorType],
    ) -> f64 {
        let key = Key {
            op,
            attrs: attrs_key.to_string(),
            ins: ins
                .iter()
                .enumerate()
                .map(|(k, o)| {
                    let c = match o.constant {
                        None => ConstKey::Runtime,
                        Some(Some(t)) if by_value(op, k, t) => ConstKey::Values(
                            t.to_f32_vec()
                                .iter()
                                .map(|&x| f64::from(x).to_bits())
                                .collect(),
                        ),
                        Some(_) => ConstKey::Const,
                    };
                    (o.ty.clone(), o.same_as, c)
                })
                .collect(),
            outs: outs.to_vec(),
        };
        if let Some(&c) = self.cache.borrow().get(&key) {
            self.stats.borrow_mut().hits += 1;
            return c;
        }
        let t0 = std::time::Instant::now();
        let lowered = self.lower_alone(op, attrs, ins, outs);
        let mut st = self.stats.borrow_mut();
        st.lowered += 1;
        st.seconds += t0.elapsed().as_secs_f64();
        let c = lowered.unwrap_or_else(|| {
            st.fallbacks += 1;
            let tys: Vec<&TensorType> = ins.iter().map(|o| o.ty).collect();
            op_cycles(op, &tys, outs, false, self.precision)
        });
        self.cache.borrow_mut().insert(key, c);
        c
    }

    /// Lowers the one-node graph and sums its kernels' scheduled cycles; `None` when the
    /// lowering refuses it.
    fn lower_alone(
        &self,
        op: Op,
        attrs: &Attrs,
        ins: &[Operand],
        outs: &[TensorType],
    ) -> Option<f64> {
        let mut g = Graph::new("cost");
        let mut ids: Vec<ValueId> = Vec::with_capacity(ins.len());
        for (k, o) in ins.iter().enumerate() {
            if o.same_as < k {
                ids.push(ids[o.same_as]);
                continue;
            }
            let name = format!("x{k}");
            // A constant's values matter only where they are in the key; others are zeros
            // of their type (cheaper than a copy of the weights, the same kernels).
            let id = match o.constant {
                None => g.add_input(name, o.ty.clone()),
                Some(Some(t)) if by_value(op, k, t) => g.add_const(name, t.clone()),
                Some(_) => g.add_const(name, Tensor::zeros(o.ty.dtype, &o.ty.shape)),
            };
            ids.push(id);
        }
        let outs = outs
            .iter()
            .enumerate()
            .map(|(k, t)| (format!("y{k}"), t.clone()))
            .collect();
        g.add_node("n", op, attrs.clone(), ids, outs);
        let kp = lower(
            &g,
            LowerOptions {
                precision: self.precision,
            },
        )
        .ok()?;
        Some(
            kp.kernels
                .iter()
                .map(|k| schedule_cycles(&kp, k).unwrap_or_else(|| kernel_work(&kp, k).cycles()))
                .sum(),
        )
    }

    /// Predicted cycles of each node of `g` (in node order) by this model; the sum is the
    /// graph's prediction.
    pub fn node_cycles(&self, g: &Graph) -> Vec<f64> {
        g.nodes
            .iter()
            .map(|node| {
                let ins: Vec<Operand> = node
                    .inputs
                    .iter()
                    .enumerate()
                    .map(|(k, &v)| Operand {
                        ty: g.ty(v),
                        constant: g.const_value(v).map(Some),
                        same_as: node.inputs.iter().position(|&w| w == v).unwrap_or(k),
                    })
                    .collect();
                let outs: Vec<TensorType> = node.outputs.iter().map(|&v| g.ty(v).clone()).collect();
                let key = format!("{:?}", node.attrs);
                self.cycles(node.op, &node.attrs, &key, &ins, &outs)
            })
            .collect()
    }

    /// Predicted cycles of a whole graph: the sum of [`Self::node_cycles`].
    pub fn graph_cycles(&self, g: &Graph) -> f64 {
        self.node_cycles(g).iter().sum()
    }
}

/// The value of a weight-only e-class when one of its nodes is a constant leaf (`orig` holds
/// the input graph's constants).
fn class_constant<'a>(eg: &'a OptEGraph, class: Id, orig: &'a Graph) -> Option<&'a Tensor> {
    eg[class].nodes.iter().find_map(|n| match n {
        TNode::Const(i) => match &eg.analysis.consts.get(*i as usize)?.source {
            ConstSource::Owned(t) => Some(t),
            ConstSource::Graph(v) => orig.const_value(*v),
        },
        _ => None,
    })
}

/// An e-node's own cost for extraction (`class` is its e-class, `orig` the graph the e-graph
/// was built from): zero for leaves and for a node computed only from weights (extraction
/// folds it), [`INFEASIBLE`] for a node without types, else [`NodeCoster::cycles`] with
/// weight-only operands as constants.
impl NodeCoster {
    pub fn enode_cycles(&self, eg: &OptEGraph, class: Id, node: &TNode, orig: &Graph) -> f64 {
        let TNode::Op { op, children, .. } = node else {
            return 0.0;
        };
        let data = &eg[class].data;
        let Some(attrs) = attrs_of(eg, children[0]) else {
            return INFEASIBLE;
        };
        if data.tys.is_empty() {
            return INFEASIBLE;
        }
        let kids: Vec<Id> = children[1..].iter().map(|&k| eg.find(k)).collect();
        if !kids.is_empty() && kids.iter().all(|&k| eg[k].data.weight_only) {
            return 0.0;
        }
        let mut ins = Vec::with_capacity(kids.len());
        for (i, &k) in kids.iter().enumerate() {
            let Some(ty) = eg[k].data.ty() else {
                return INFEASIBLE;
            };
            ins.push(Operand {
                ty,
                constant: eg[k].data.weight_only.then(|| class_constant(eg, k, orig)),
                same_as: kids.iter().position(|&j| j == k).unwrap_or(i),
            });
        }
        let c = self.cycles(*op, attrs, &format!("{attrs:?}"), &ins, &data.tys);
        // A tiling alternative must win by more than the model's error on products.
        if attrs.get(super::rules::tiling::TILE_N).is_some() {
            c * (1.0 + super::rules::tiling::TILE_N_MARGIN)
        } else {
            c
        }
    }
}
