//! The graph verifier. Checks, collecting every violation rather than stopping at the first:
//!
//! * every id a node or the interface mentions is inside the arenas;
//! * each value's [`ValueDef`] agrees with where it is defined: graph inputs are listed in
//!   `inputs` exactly once, node outputs name their node and slot, constants' data match their
//!   type;
//! * nodes read only values defined before them (graph inputs, constants, earlier nodes), which
//!   also rules out cycles, since node order is program order;
//! * each node's stored output types equal what [`shape::infer`](super::shape::infer) gives for
//!   its op, attributes and operand types (so dtype and shape errors are caught);
//! * value names are unique when non-empty.
//!
//! Run it after import and after every pass in tests.

use super::{shape, Graph, NodeId, ValueDef, ValueId};
use crate::diag::{Code, Diagnostic, Diagnostics};
use std::collections::HashMap;

/// Checks every invariant of `g`; returns all violations found.
pub fn verify(g: &Graph) -> Result<(), Diagnostics> {
    let mut errs = Vec::new();
    let nv = g.values.len();
    let in_range = |v: ValueId| v.index() < nv;

    // Where each value is actually defined: input list position, constant, node output.
    let mut defined_at: Vec<Option<usize>> = vec![None; nv]; // program point: 0 = before all nodes
    let mut def_count = vec![0u32; nv];
    for &v in &g.inputs {
        if !in_range(v) {
            errs.push(Diagnostic::new(
                Code::IrBadId,
                format!("graph input {v} is not a value"),
            ));
            continue;
        }
        def_count[v.index()] += 1;
        defined_at[v.index()] = Some(0);
        if g.values[v.index()].def != ValueDef::Input {
            errs.push(Diagnostic::new(
                Code::IrBadId,
                format!("graph input {v} is not defined as an input"),
            ));
        }
    }
    for (i, val) in g.values.iter().enumerate() {
        let v = ValueId(i as u32);
        match &val.def {
            ValueDef::Input => {
                if def_count[i] == 0 {
                    errs.push(Diagnostic::new(
                        Code::IrBadId,
                        format!("{v} is an input but not in the graph's input list"),
                    ));
                }
            }
            ValueDef::Const(t) => {
                def_count[i] += 1;
                defined_at[i] = Some(0);
                if t.dtype() != val.ty.dtype || t.shape() != val.ty.shape.as_slice() {
                    errs.push(Diagnostic::new(
                        Code::IrTypeError,
                        format!(
                            "constant {v} holds {}{:?} but is typed {}",
                            t.dtype(),
                            t.shape(),
                            val.ty
                        ),
                    ));
                }
            }
            ValueDef::Node { node, slot } => {
                let ok = g
                    .nodes
                    .get(node.index())
                    .and_then(|n| n.outputs.get(*slot as usize))
                    .is_some_and(|&o| o == v);
                if !ok {
                    errs.push(Diagnostic::new(
                        Code::IrBadId,
                        format!(
                            "{v} claims to be output {slot} of {node}, which does not produce it"
                        ),
                    ));
                }
            }
        }
    }
    for (ni, n) in g.nodes.iter().enumerate() {
        for (slot, &o) in n.outputs.iter().enumerate() {
            if !in_range(o) {
                errs.push(
                    Diagnostic::new(Code::IrBadId, format!("output {o} is not a value"))
                        .at_node(&n.name, n.op.name()),
                );
                continue;
            }
            def_count[o.index()] += 1;
            defined_at[o.index()] = Some(ni + 1);
            let expect = ValueDef::Node {
                node: NodeId(ni as u32),
                slot: slot as u32,
            };
            if g.values[o.index()].def != expect {
                errs.push(
                    Diagnostic::new(
                        Code::IrBadId,
                        format!("output {o} is not defined as output {slot} of this node"),
                    )
                    .at_node(&n.name, n.op.name()),
                );
            }
        }
    }
    for (i, &c) in def_count.iter().enumerate() {
        if c > 1 {
            errs.push(Diagnostic::new(
                Code::IrBadId,
                format!("%{i} is defined {c} times"),
            ));
        }
    }

    // Use-before-def, then types.
    for (ni, n) in g.nodes.iter().enumerate() {
        let mut operands_ok = true;
        for &u in &n.inputs {
            if !in_range(u) {
                errs.push(
                    Diagnostic::new(Code::IrBadId, format!("operand {u} is not a value"))
                        .at_node(&n.name, n.op.name()),
                );
                operands_ok = false;
                continue;
            }
            match defined_at[u.index()] {
                Some(p) if p <= ni => {}
                Some(_) => {
                    errs.push(
                        Diagnostic::new(Code::IrUseBeforeDef, format!("operand {u} is used before it is defined (cycle or misordered nodes)"))
                            .at_node(&n.name, n.op.name()),
                    );
                    operands_ok = false;
                }
                None => {
                    errs.push(
                        Diagnostic::new(
                            Code::IrUseBeforeDef,
                            format!("operand {u} is never defined"),
                        )
                        .at_node(&n.name, n.op.name()),
                    );
                    operands_ok = false;
                }
            }
        }
        if !operands_ok || n.outputs.iter().any(|&o| !in_range(o)) {
            continue;
        }
        let in_tys: Vec<_> = n.inputs.iter().map(|&u| g.ty(u).clone()).collect();
        match shape::infer(n.op, &n.attrs, &in_tys) {
            Ok(tys) => {
                let stored: Vec<_> = n.outputs.iter().map(|&o| g.ty(o).clone()).collect();
                if tys != stored {
                    let show = |ts: &[super::TensorType]| {
                        ts.iter()
                            .map(|t| t.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    errs.push(
                        Diagnostic::new(
                            Code::IrTypeError,
                            format!(
                                "outputs are typed ({}) but the op gives ({})",
                                show(&stored),
                                show(&tys)
                            ),
                        )
                        .at_node(&n.name, n.op.name()),
                    );
                }
            }
            Err(e) => errs
                .push(Diagnostic::new(Code::IrTypeError, e.message).at_node(&n.name, n.op.name())),
        }
    }
    for &o in &g.outputs {
        if !in_range(o) {
            errs.push(Diagnostic::new(
                Code::IrBadId,
                format!("graph output {o} is not a value"),
            ));
        } else if defined_at[o.index()].is_none() {
            errs.push(Diagnostic::new(
                Code::IrUseBeforeDef,
                format!("graph output {o} is never defined"),
            ));
        }
    }
    let mut names: HashMap<&str, ValueId> = HashMap::new();
    for (i, v) in g.values.iter().enumerate() {
        if v.name.is_empty() {
            continue;
        }
        if let Some(prev) = names.insert(&v.name, ValueId(i as u32)) {
            errs.push(Diagnostic::new(
                Code::IrBadId,
                format!("value name '{}' is used by {prev} and %{i}", v.name),
            ));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(Diagnostics(errs))
    }
}
