//! The graph IR: a static-shaped dataflow graph of tensor ops, the form every model takes after
//! import and the input of the optimizer and the interpreter.
//!
//! * Values and nodes live in arenas ([`Graph::values`], [`Graph::nodes`]) indexed by the
//!   newtype ids [`ValueId`] (`%N` in text) and [`NodeId`].
//! * Every value has an element type and a static shape ([`TensorType`]) and one definition
//!   ([`ValueDef`]): a graph input, a constant (initializer or folded value), or output `slot`
//!   of a node.
//! * Nodes are kept in program order: a node only reads values defined by graph inputs,
//!   constants or earlier nodes. The verifier ([`verify`]) checks this and every other invariant.
//! * A node carries its [`Op`], its attributes as typed values ([`Attrs`]) in the canonical form
//!   documented on each [`Op`] variant, and the ONNX node name it came from (provenance).
//!
//! The text form ([`text::print`], [`text::parse`]) prints deterministically and parses back to
//! an equal graph.

pub mod attr;
pub mod op;
pub mod shape;
pub mod text;
pub mod verify;

pub use attr::{AttrValue, Attrs};
pub use op::{FusedAct, Op};
pub use verify::verify;

use crate::tensor::{DType, Tensor};
use std::fmt;

/// Index of a value in [`Graph::values`]. Printed `%N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);

/// Index of a node in [`Graph::nodes`] (which is also its position in program order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl ValueId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl NodeId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node{}", self.0)
    }
}

/// Element type and static shape of a value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl TensorType {
    pub fn new(dtype: DType, shape: impl Into<Vec<usize>>) -> Self {
        TensorType {
            dtype,
            shape: shape.into(),
        }
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[", self.dtype)?;
        for (i, d) in self.shape.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

/// Where a value comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum ValueDef {
    /// A graph input, fed at run time.
    Input,
    /// A compile-time constant (an initializer or a folded value). Its dtype and shape equal
    /// the value's [`TensorType`].
    Const(Tensor),
    /// Output number `slot` of `node`.
    Node { node: NodeId, slot: u32 },
}

/// A tensor-valued SSA value.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    /// The ONNX value name (unique within a graph; may be empty for values created by passes).
    pub name: String,
    pub ty: TensorType,
    pub def: ValueDef,
}

/// One op application.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The ONNX node name it came from (provenance, kept down to instructions). Unique names
    /// are not required; importers invent `<op>_<index>` for unnamed ONNX nodes.
    pub name: String,
    pub op: Op,
    pub attrs: Attrs,
    pub inputs: Vec<ValueId>,
    pub outputs: Vec<ValueId>,
}

/// A whole graph: arenas of values and nodes plus the interface.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Graph {
    pub name: String,
    /// Value arena, indexed by [`ValueId`].
    pub values: Vec<Value>,
    /// Node arena in program order, indexed by [`NodeId`].
    pub nodes: Vec<Node>,
    /// Graph inputs in signature order (each defined [`ValueDef::Input`]).
    pub inputs: Vec<ValueId>,
    /// Graph outputs in signature order (any value; the same value may appear twice).
    pub outputs: Vec<ValueId>,
}

impl Graph {
    pub fn new(name: impl Into<String>) -> Self {
        Graph {
            name: name.into(),
            ..Default::default()
        }
    }

    /// The value with id `v`. Panics if `v` is not in this graph (ids come from this graph).
    pub fn value(&self, v: ValueId) -> &Value {
        &self.values[v.index()]
    }

    /// The node with id `n`. Panics if `n` is not in this graph.
    pub fn node(&self, n: NodeId) -> &Node {
        &self.nodes[n.index()]
    }

    /// The type of value `v`.
    pub fn ty(&self, v: ValueId) -> &TensorType {
        &self.value(v).ty
    }

    /// The constant data of `v`, if `v` is a constant.
    pub fn const_value(&self, v: ValueId) -> Option<&Tensor> {
        match &self.value(v).def {
            ValueDef::Const(t) => Some(t),
            _ => None,
        }
    }

    /// All value ids in arena order.
    pub fn value_ids(&self) -> impl Iterator<Item = ValueId> {
        (0..self.values.len() as u32).map(ValueId)
    }

    /// All node ids in program order.
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> {
        (0..self.nodes.len() as u32).map(NodeId)
    }

    /// Constants in arena order.
    pub fn constants(&self) -> impl Iterator<Item = (ValueId, &Tensor)> {
        self.values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| match &v.def {
                ValueDef::Const(t) => Some((ValueId(i as u32), t)),
                _ => None,
            })
    }

    /// Adds a graph input of type `ty` and returns its id.
    pub fn add_input(&mut self, name: impl Into<String>, ty: TensorType) -> ValueId {
        let id = self.push_value(Value {
            name: name.into(),
            ty,
            def: ValueDef::Input,
        });
        self.inputs.push(id);
        id
    }

    /// Adds a constant; its type is taken from the tensor.
    pub fn add_const(&mut self, name: impl Into<String>, t: Tensor) -> ValueId {
        let ty = TensorType::new(t.dtype(), t.shape());
        self.push_value(Value {
            name: name.into(),
            ty,
            def: ValueDef::Const(t),
        })
    }

    /// Appends a node computing `op` and creates its output values with the given names and
    /// types. The caller is responsible for the types being what [`shape::infer`] gives; the
    /// verifier checks it.
    pub fn add_node(
        &mut self,
        name: impl Into<String>,
        op: Op,
        attrs: Attrs,
        inputs: Vec<ValueId>,
        outputs: Vec<(String, TensorType)>,
    ) -> NodeId {
        let node = NodeId(self.nodes.len() as u32);
        let mut outs = Vec::with_capacity(outputs.len());
        for (slot, (vname, ty)) in outputs.into_iter().enumerate() {
            let def = ValueDef::Node {
                node,
                slot: slot as u32,
            };
            outs.push(self.push_value(Value {
                name: vname,
                ty,
                def,
            }));
        }
        self.nodes.push(Node {
            name: name.into(),
            op,
            attrs,
            inputs,
            outputs: outs,
        });
        node
    }

    /// Appends a node whose output types are inferred from the op; returns the node id.
    pub fn add_node_inferred(
        &mut self,
        name: impl Into<String>,
        op: Op,
        attrs: Attrs,
        inputs: Vec<ValueId>,
        output_names: Vec<String>,
    ) -> Result<NodeId, shape::InferError> {
        let in_tys: Vec<TensorType> = inputs.iter().map(|&v| self.ty(v).clone()).collect();
        let out_tys = shape::infer(op, &attrs, &in_tys)?;
        if out_tys.len() != output_names.len() {
            return Err(shape::InferError::from(format!(
                "{op} produces {} outputs, {} names given",
                out_tys.len(),
                output_names.len()
            )));
        }
        let outs = output_names.into_iter().zip(out_tys).collect();
        Ok(self.add_node(name, op, attrs, inputs, outs))
    }

    /// Dead-value elimination: removes nodes none of whose outputs is read (transitively
    /// from the graph outputs) and constants nothing reads; graph inputs stay (they are the
    /// signature). Surviving values and nodes keep their relative order; ids are renumbered.
    /// Returns how many values were removed.
    pub fn remove_dead_values(&mut self) -> usize {
        let nv = self.values.len();
        let mut live = vec![false; nv];
        for &o in &self.outputs {
            live[o.index()] = true;
        }
        let mut keep_node = vec![false; self.nodes.len()];
        for (ni, n) in self.nodes.iter().enumerate().rev() {
            if n.outputs.iter().any(|o| live[o.index()]) {
                keep_node[ni] = true;
                for &v in &n.outputs {
                    live[v.index()] = true;
                }
                for &v in &n.inputs {
                    live[v.index()] = true;
                }
            }
        }
        for &v in &self.inputs {
            live[v.index()] = true;
        }
        let removed = live.iter().filter(|&&l| !l).count();
        if removed == 0 && keep_node.iter().all(|&k| k) {
            return 0;
        }
        let mut node_map = vec![u32::MAX; self.nodes.len()];
        let mut next = 0u32;
        for (ni, &k) in keep_node.iter().enumerate() {
            if k {
                node_map[ni] = next;
                next += 1;
            }
        }
        let mut value_map = vec![u32::MAX; nv];
        let mut values = Vec::with_capacity(nv - removed);
        for (vi, v) in std::mem::take(&mut self.values).into_iter().enumerate() {
            if !live[vi] {
                continue;
            }
            value_map[vi] = values.len() as u32;
            let def = match v.def {
                ValueDef::Node { node, slot } => ValueDef::Node {
                    node: NodeId(node_map[node.index()]),
                    slot,
                },
                d => d,
            };
            values.push(Value { def, ..v });
        }
        self.values = values;
        let remap = |v: &mut ValueId| *v = ValueId(value_map[v.index()]);
        let nodes = std::mem::take(&mut self.nodes);
        self.nodes = nodes
            .into_iter()
            .zip(keep_node)
            .filter_map(|(mut n, k)| {
                k.then(|| {
                    n.inputs.iter_mut().for_each(remap);
                    n.outputs.iter_mut().for_each(remap);
                    n
                })
            })
            .collect();
        self.inputs.iter_mut().for_each(remap);
        self.outputs.iter_mut().for_each(remap);
        removed
    }

    /// Number of parameters: elements in all constants.
    pub fn parameter_count(&self) -> usize {
        self.constants().map(|(_, t)| t.len()).sum()
    }

    fn push_value(&mut self, v: Value) -> ValueId {
        let id = ValueId(self.values.len() as u32);
        self.values.push(v);
        id
    }
}
