//! Tests of the graph dispatcher: whole graphs through `run_graph`, type checks on inputs and
//! produced values, and a sweep over every op with malformed operands and attributes that
//! must return errors, never panic.

use super::{evaluate, run_graph, run_graph_named, run_op};
use crate::graph::{AttrValue, Attrs, Graph, Op, TensorType};
use crate::tensor::{DType, Tensor};
use std::collections::HashMap;

fn f(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_f32(DType::F32, shape, v)
}

fn conv_relu_pool() -> Graph {
    let mut g = Graph::new("t");
    let x = g.add_input("X", TensorType::new(DType::F32, [1, 1, 4, 4]));
    let w = g.add_const("W", f(&[1, 1, 3, 3], &[1.0; 9]));
    let attrs = Attrs::new()
        .with("kernel_shape", AttrValue::Ints(vec![3, 3]))
        .with("strides", AttrValue::Ints(vec![1, 1]))
        .with("dilations", AttrValue::Ints(vec![1, 1]))
        .with("pads", AttrValue::Ints(vec![1, 1, 1, 1]))
        .with("group", AttrValue::Int(1));
    let c = g
        .add_node_inferred("conv", Op::Conv, attrs, vec![x, w], vec!["c".into()])
        .unwrap();
    let cv = g.node(c).outputs[0];
    let r = g
        .add_node_inferred("relu", Op::Relu, Attrs::new(), vec![cv], vec!["r".into()])
        .unwrap();
    let rv = g.node(r).outputs[0];
    let p = g
        .add_node_inferred(
            "pool",
            Op::GlobalAveragePool,
            Attrs::new(),
            vec![rv],
            vec!["y".into()],
        )
        .unwrap();
    g.outputs.push(g.node(p).outputs[0]);
    g
}

fn x4() -> Tensor {
    f(
        &[1, 1, 4, 4],
        &(1..=16).map(|v| v as f32).collect::<Vec<_>>(),
    )
}

#[test]
fn conv_relu_pool_graph_matches_hand_computation() {
    // Each input element is counted by 4 (corner), 6 (edge) or 9 (inner) windows:
    // 34 * 4 + 68 * 6 + 34 * 9 = 850 over 16 outputs.
    let y = run_graph(&conv_relu_pool(), &[x4()]).unwrap();
    assert_eq!(y.len(), 1);
    assert_eq!(y[0].shape(), &[1, 1, 1, 1]);
    assert!((y[0].to_f32_vec()[0] - 53.125).abs() < 1e-5);
}

#[test]
fn inputs_are_checked_against_declared_types() {
    let g = conv_relu_pool();
    let e = run_graph(&g, &[f(&[1, 1, 4, 5], &[0.0; 20])]).unwrap_err();
    assert!(
        e.message.contains("input 'X'") && e.message.contains("[1, 1, 4, 5]"),
        "{e}"
    );
    let e = run_graph(&g, &[]).unwrap_err();
    assert!(e.message.contains("takes 1 inputs, got 0"), "{e}");
    let e = run_graph(
        &g,
        &[Tensor::from_f32(DType::F16, &[1, 1, 4, 4], &[0.0; 16])],
    )
    .unwrap_err();
    assert!(e.message.contains("float16"), "{e}");
    let named: HashMap<String, Tensor> = HashMap::new();
    let e = run_graph_named(&g, &named).unwrap_err();
    assert!(e.message.contains("'X'"), "{e}");
    let named: HashMap<String, Tensor> = [("X".to_string(), x4())].into_iter().collect();
    assert_eq!(
        run_graph_named(&g, &named).unwrap(),
        run_graph(&g, &[x4()]).unwrap()
    );
}

#[test]
fn a_wrong_declared_output_type_names_the_node() {
    let mut g = Graph::new("bad");
    let x = g.add_input("X", TensorType::new(DType::F32, [2]));
    let n = g.add_node(
        "the_relu",
        Op::Relu,
        Attrs::new(),
        vec![x],
        vec![("y".into(), TensorType::new(DType::F32, [3]))],
    );
    g.outputs.push(g.node(n).outputs[0]);
    let e = run_graph(&g, &[f(&[2], &[1.0, -1.0])]).unwrap_err();
    assert_eq!(e.node.as_deref(), Some("the_relu"));
    assert!(e.message.contains("declares"), "{e}");
}

#[test]
fn evaluate_keeps_every_value_when_asked() {
    let g = conv_relu_pool();
    let all = evaluate(&g, &[x4()], None).unwrap();
    assert!(
        all.iter().all(|v| v.is_some()),
        "every value computed and kept"
    );
    let kept = evaluate(&g, &[x4()], Some(&g.outputs)).unwrap();
    assert!(kept[g.outputs[0].index()].is_some());
    assert!(
        kept.iter().filter(|v| v.is_some()).count() < all.len(),
        "dead values are dropped"
    );
}

#[test]
fn multi_output_ops_return_every_result() {
    let x = f(&[1, 1, 2, 2], &[1.0, 4.0, 3.0, 2.0]);
    let attrs = Attrs::new()
        .with("kernel_shape", AttrValue::Ints(vec![2, 2]))
        .with("strides", AttrValue::Ints(vec![1, 1]))
        .with("dilations", AttrValue::Ints(vec![1, 1]))
        .with("pads", AttrValue::Ints(vec![0, 0, 0, 0]))
        .with("ceil_mode", AttrValue::Int(0));
    let r = run_op(Op::MaxPool, &attrs, &[&x], 2).unwrap();
    assert_eq!(r[0].to_f32_vec(), vec![4.0]);
    assert_eq!(r[1].to_i64_vec(), vec![1]);
    let s = Attrs::new()
        .with("axis", AttrValue::Int(0))
        .with("split", AttrValue::Ints(vec![1, 3]));
    let parts = run_op(Op::Split, &s, &[&f(&[4], &[1.0, 2.0, 3.0, 4.0])], 2).unwrap();
    assert_eq!(parts[1].to_f32_vec(), vec![2.0, 3.0, 4.0]);
}

fn malformed_attrs() -> Vec<Attrs> {
    let bad = Attrs::new()
        .with("axis", AttrValue::Int(99))
        .with("axes", AttrValue::Ints(vec![99, -99]))
        .with("perm", AttrValue::Ints(vec![5, 5]))
        .with("pads", AttrValue::Ints(vec![-3, 7]))
        .with("kernel_shape", AttrValue::Ints(vec![0, 0]))
        .with("strides", AttrValue::Ints(vec![0, 0]))
        .with("dilations", AttrValue::Ints(vec![0]))
        .with("group", AttrValue::Int(0))
        .with("shape", AttrValue::Ints(vec![-1, 0, 7]))
        .with("split", AttrValue::Ints(vec![1, 1, 100]))
        .with("starts", AttrValue::Ints(vec![i64::MIN]))
        .with("ends", AttrValue::Ints(vec![i64::MAX, 3]))
        .with("steps", AttrValue::Ints(vec![0]))
        .with("repeats", AttrValue::Ints(vec![-1]))
        .with("to", AttrValue::Type(DType::Bool))
        .with("scales", AttrValue::Floats(vec![0.0, -1.0]))
        .with("sizes", AttrValue::Ints(vec![0]))
        .with("size", AttrValue::Int(0))
        .with("batch_dims", AttrValue::Int(7))
        .with("mode", AttrValue::Str("nope".into()))
        .with("epsilon", AttrValue::Str("wrong kind".into()))
        .with("alpha", AttrValue::Ints(vec![1]));
    let zeros = Attrs::new()
        .with("axis", AttrValue::Int(0))
        .with("axes", AttrValue::Ints(vec![]))
        .with("perm", AttrValue::Ints(vec![]))
        .with("pads", AttrValue::Ints(vec![]))
        .with("kernel_shape", AttrValue::Ints(vec![1]))
        .with("shape", AttrValue::Ints(vec![]))
        .with("split", AttrValue::Ints(vec![]))
        .with("starts", AttrValue::Ints(vec![]))
        .with("ends", AttrValue::Ints(vec![]))
        .with("repeats", AttrValue::Ints(vec![]))
        .with("scales", AttrValue::Floats(vec![]))
        .with("sizes", AttrValue::Ints(vec![]))
        .with("size", AttrValue::Int(1));
    let huge = Attrs::new()
        .with("axis", AttrValue::Int(i64::MIN))
        .with("axes", AttrValue::Ints(vec![i64::MAX]))
        .with(
            "pads",
            AttrValue::Ints(vec![i64::MAX, i64::MIN, i64::MAX, i64::MAX]),
        )
        .with("kernel_shape", AttrValue::Ints(vec![i64::MAX, 1]))
        .with("strides", AttrValue::Ints(vec![i64::MAX, i64::MAX]))
        .with("shape", AttrValue::Ints(vec![i64::MAX, i64::MAX, 2]))
        .with("split", AttrValue::Ints(vec![i64::MAX, i64::MAX, 2]))
        .with("starts", AttrValue::Ints(vec![i64::MIN, i64::MAX]))
        .with("ends", AttrValue::Ints(vec![i64::MAX, i64::MIN]))
        .with("steps", AttrValue::Ints(vec![i64::MIN, i64::MAX]))
        .with("repeats", AttrValue::Ints(vec![i64::MAX, i64::MAX]))
        .with(
            "scales",
            AttrValue::Floats(vec![1e30, f32::INFINITY, f32::NAN, 1.0]),
        )
        .with("sizes", AttrValue::Ints(vec![i64::MAX, i64::MAX, 1, 1]))
        .with("size", AttrValue::Int(i64::MAX))
        .with("group", AttrValue::Int(i64::MAX))
        .with("dilations", AttrValue::Ints(vec![i64::MAX, i64::MAX]))
        .with("output_padding", AttrValue::Ints(vec![i64::MAX, i64::MAX]))
        .with("batch_dims", AttrValue::Int(i64::MIN));
    vec![Attrs::new(), bad, zeros, huge]
}

fn odd_tensors() -> Vec<Tensor> {
    vec![
        f(&[], &[1.5]),
        f(&[0], &[]),
        f(&[2, 3], &[1.0, -2.0, 3.0, 0.0, 5.0, f32::NAN]),
        f(&[1, 1, 4, 4], &[0.5; 16]),
        f(&[1, 2, 0, 3], &[]),
        Tensor::from_f32(DType::I64, &[3], &[-5.0, 0.0, 9.0]),
        Tensor::from_f32(DType::I32, &[1, 1, 2], &[1.0, 0.0]),
        Tensor::from_f32(DType::Bool, &[2], &[1.0, 0.0]),
        Tensor::from_f32(DType::F16, &[3, 1], &[1.0, 2.0, 3.0]),
        Tensor::from_f32(DType::BF16, &[1, 3, 1, 1, 1, 1], &[1.0, 2.0, 3.0]),
    ]
}

#[test]
fn no_op_panics_on_malformed_operands_or_attributes() {
    let ts = odd_tensors();
    let mut combos: Vec<Vec<&Tensor>> = vec![vec![]];
    for a in &ts {
        combos.push(vec![a]);
        for b in &ts {
            combos.push(vec![a, b]);
        }
    }
    for a in &ts {
        combos.push(vec![a, &ts[2], &ts[5]]);
        combos.push(vec![a, &ts[0], &ts[0], &ts[0], &ts[0]]);
    }
    let attr_sets = malformed_attrs();
    let mut panics = Vec::new();
    for &op in Op::ALL {
        for attrs in &attr_sets {
            for ins in &combos {
                for n_out in [1usize, 3] {
                    let r = std::panic::catch_unwind(|| run_op(op, attrs, ins, n_out));
                    if r.is_err() {
                        let shapes: Vec<String> = ins
                            .iter()
                            .map(|t| format!("{}{:?}", t.dtype(), t.shape()))
                            .collect();
                        panics.push(format!(
                            "{op} on {shapes:?} with {:?}",
                            attrs.iter().map(|(k, _)| k).collect::<Vec<_>>()
                        ));
                    }
                }
            }
        }
    }
    assert!(
        panics.is_empty(),
        "{} panics, e.g.:\n{}",
        panics.len(),
        panics
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
