//! Each kernel run alone: the node becomes a one-node graph (its non-constant operands graph
//! inputs, its constant operands the same constants), compiled at -O0 and run on the timed
//! emulator with seeded random inputs. Its cycles are the kernel's own time on an otherwise
//! idle machine: what the per-kernel cost model predicts, free of the queue and engine sharing
//! and the dependency waits that overlapping kernels cause in a whole-model run (those are
//! a property of the schedule, measured by the model's total cycles).

use std::collections::HashMap;
use tahoma_compiler::driver::{compile_graph_opt, CompileOptions};
use tahoma_compiler::graph::{Graph, Node, ValueId};
use tahoma_compiler::lower::{LowerOptions, Precision};
use tahoma_compiler::opt::OptLevel;
use tahoma_runtime::emulator::{Emulator, RunOptions};

/// `node` of `g` as a graph of its own.
pub fn node_graph(g: &Graph, node: &Node) -> Graph {
    let mut h = Graph::new(node.name.clone());
    let mut map: HashMap<ValueId, ValueId> = HashMap::new();
    let mut ins = Vec::with_capacity(node.inputs.len());
    for &v in &node.inputs {
        let id = *map.entry(v).or_insert_with(|| {
            let val = g.value(v);
            match g.const_value(v) {
                Some(t) => h.add_const(val.name.clone(), t.clone()),
                None => h.add_input(val.name.clone(), val.ty.clone()),
            }
        });
        ins.push(id);
    }
    let outs = node
        .outputs
        .iter()
        .map(|&v| (g.value(v).name.clone(), g.ty(v).clone()))
        .collect();
    let n = h.add_node(node.name.clone(), node.op, node.attrs.clone(), ins, outs);
    h.outputs = h.node(n).outputs.clone();
    h
}

/// Emulated cycles of `node` run alone (see the module doc); `None` when the one-node graph
/// does not compile or run (the point is then left out).
pub fn cycles(g: &Graph, node: &Node, precision: Precision, seed: u64) -> Option<f64> {
    let h = node_graph(g, node);
    let opts = CompileOptions {
        lower: LowerOptions { precision },
        opt_level: OptLevel::O0,
        keep_phase_graphs: false,
    };
    let (compiled, _) = compile_graph_opt(&h, &opts).ok()?;
    let mut emu = Emulator::new(compiled.program).ok()?;
    emu.fill_random_inputs(seed).ok()?;
    let r = emu.run(&RunOptions::timed()).ok()?;
    Some(r.cycles as f64)
}
