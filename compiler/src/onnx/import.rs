//! The import walk: op-set check, input binding, initializers, topological order, per-node
//! conversion (in `ops`), output checks, verification.

use super::proto::{
    tensor_shape_proto::dimension::Value as DimValue, type_proto, ModelProto, NodeProto,
    ValueInfoProto,
};
use super::tensor::{onnx_type_name, tensor_from_proto};
use super::{ops, ExternalData, ImportOptions, MAX_OPSET, MIN_OPSET};
use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::graph::{verify, Graph, TensorType, ValueId};
use crate::tensor::DType;
use std::collections::{BTreeMap, HashMap, HashSet};

/// ONNX op types (default domain) the importer accepts.
pub const SUPPORTED_OPS: &[&str] = &[
    "Abs",
    "Acos",
    "Acosh",
    "Add",
    "And",
    "ArgMax",
    "ArgMin",
    "Asin",
    "Asinh",
    "Atan",
    "Atanh",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "CastLike",
    "Ceil",
    "Celu",
    "Clip",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "ConvTranspose",
    "Cos",
    "Cosh",
    "CumSum",
    "DepthToSpace",
    "Div",
    "Dropout",
    "Elu",
    "Equal",
    "Erf",
    "Exp",
    "Expand",
    "Flatten",
    "Floor",
    "Gather",
    "GatherElements",
    "GatherND",
    "Gelu",
    "Gemm",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Greater",
    "GreaterOrEqual",
    "HardSigmoid",
    "HardSwish",
    "Hardmax",
    "Identity",
    "InstanceNormalization",
    "IsInf",
    "IsNaN",
    "LRN",
    "LayerNormalization",
    "LeakyRelu",
    "Less",
    "LessOrEqual",
    "Log",
    "LogSoftmax",
    "LpPool",
    "MatMul",
    "Max",
    "MaxPool",
    "Min",
    "Mish",
    "Mod",
    "Mul",
    "Neg",
    "Not",
    "Or",
    "PRelu",
    "Pad",
    "Pow",
    "Range",
    "Reciprocal",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceSum",
    "Relu",
    "Reshape",
    "Resize",
    "Round",
    "Selu",
    "Shape",
    "Shrink",
    "Sigmoid",
    "Sign",
    "Sin",
    "Sinh",
    "Size",
    "Slice",
    "Softmax",
    "Softplus",
    "Softsign",
    "SpaceToDepth",
    "Split",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Sum",
    "Swish",
    "Tan",
    "Tanh",
    "ThresholdedRelu",
    "Tile",
    "Transpose",
    "Trilu",
    "Unsqueeze",
    "Where",
    "Xor",
];

/// Op types of the model's main graph with their counts (the ONNX view, before folding).
pub fn model_op_histogram(m: &ModelProto) -> BTreeMap<String, usize> {
    let mut h = BTreeMap::new();
    for n in m.graph.iter().flat_map(|g| &g.node) {
        *h.entry(qualified_op(n)).or_insert(0) += 1;
    }
    h
}

fn qualified_op(n: &NodeProto) -> String {
    let op = n.op_type.clone().unwrap_or_default();
    match n.domain.as_deref() {
        None | Some("") | Some("ai.onnx") => op,
        Some(d) => format!("{d}.{op}"),
    }
}

/// The node's name, or `<op>_<index>` for unnamed nodes.
pub(super) fn node_name(n: &NodeProto, index: usize) -> String {
    match n.name.as_deref() {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => format!("{}_{index}", n.op_type.as_deref().unwrap_or("node")),
    }
}

pub(super) fn import(
    m: &ModelProto,
    opts: &ImportOptions,
    ext: &dyn ExternalData,
) -> Result<Graph, Diagnostics> {
    let Some(gp) = &m.graph else {
        return Err(Diagnostic::new(Code::NotProtobuf, "the model has no graph").into());
    };
    let opset = m
        .opset_import
        .iter()
        .find(|o| matches!(o.domain.as_deref(), None | Some("") | Some("ai.onnx")))
        .and_then(|o| o.version)
        .unwrap_or(if m.opset_import.is_empty() {
            MAX_OPSET
        } else {
            0
        });
    if !(MIN_OPSET..=MAX_OPSET).contains(&opset) {
        return Err(Diagnostic::new(
            Code::UnsupportedModel,
            format!("default-domain opset {opset} is outside the supported range {MIN_OPSET}..={MAX_OPSET}"),
        )
        .help("convert the model with onnx.version_converter to an opset in range")
        .into());
    }

    // 1. Every unsupported op, all at once.
    let supported: HashSet<&str> = SUPPORTED_OPS.iter().copied().collect();
    let mut unsupported = Vec::new();
    for (i, n) in gp.node.iter().enumerate() {
        let op = qualified_op(n);
        if !supported.contains(op.as_str()) {
            unsupported.push(
                Diagnostic::new(Code::UnsupportedOp, format!("op {op} is not supported"))
                    .at_node(node_name(n, i), op)
                    .help("run `tahoma inspect MODEL` to list every unsupported op; replace or decompose them before import"),
            );
        }
    }
    if !unsupported.is_empty() {
        return Err(Diagnostics(unsupported));
    }

    let mut g = Graph::new(gp.name.clone().unwrap_or_default());
    let mut env: HashMap<String, ValueId> = HashMap::new();

    // 2. Initializers (an initializer that is also a graph input is a constant).
    let mut errs = Vec::new();
    for t in &gp.initializer {
        let name = t.name.clone().unwrap_or_default();
        match tensor_from_proto(t, ext) {
            Ok(tensor) => {
                if env.contains_key(&name) {
                    errs.push(Diagnostic::new(
                        Code::DuplicateValue,
                        format!("initializer '{name}' is defined twice"),
                    ));
                    continue;
                }
                let v = g.add_const(name.clone(), tensor);
                env.insert(name, v);
            }
            Err(d) => errs.push(d),
        }
    }
    // 3. Graph inputs with bound shapes.
    let input_names: HashSet<&str> = gp
        .input
        .iter()
        .filter_map(|vi| vi.name.as_deref())
        .collect();
    for name in opts.shapes.keys() {
        if !input_names.contains(name.as_str()) {
            let list: Vec<&str> = gp
                .input
                .iter()
                .filter_map(|vi| vi.name.as_deref())
                .collect();
            errs.push(
                Diagnostic::new(
                    Code::BadBinding,
                    format!("--shape names '{name}', which is not a graph input"),
                )
                .help(format!("graph inputs are: {}", list.join(", "))),
            );
        }
    }
    for vi in &gp.input {
        let name = vi.name.clone().unwrap_or_default();
        if env.contains_key(&name) {
            continue;
        }
        match input_type(vi, opts) {
            Ok(ty) => {
                let v = g.add_input(name.clone(), ty);
                env.insert(name, v);
            }
            Err(mut ds) => errs.append(&mut ds),
        }
    }
    if !errs.is_empty() {
        return Err(Diagnostics(errs));
    }

    // 4. Topological order.
    let order = topo_order(gp, &env)?;

    // 5. Nodes.
    let mut cx = ops::Cx { g, env, opset, ext };
    for i in order {
        cx.node(&gp.node[i], i)?;
    }

    // 6. Outputs, with declared types checked.
    let mut g = cx.g;
    let mut errs = Vec::new();
    for vi in &gp.output {
        let name = vi.name.clone().unwrap_or_default();
        let Some(&v) = cx.env.get(&name) else {
            errs.push(
                Diagnostic::new(
                    Code::UndefinedValue,
                    format!("graph output '{name}' is not produced by any node"),
                )
                .help("check the model's output names"),
            );
            continue;
        };
        if let Err(d) = check_declared(vi, g.ty(v), opts) {
            errs.push(d);
        }
        g.outputs.push(v);
    }
    if !errs.is_empty() {
        return Err(Diagnostics(errs));
    }
    // Folded intermediates (Shape results, shape arithmetic) and unused initializers go.
    g.remove_dead_values();
    verify(&g)?;
    Ok(g)
}

fn tensor_type_of(vi: &ValueInfoProto) -> Option<&type_proto::Tensor> {
    match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => Some(t),
        _ => None,
    }
}

fn input_type(vi: &ValueInfoProto, opts: &ImportOptions) -> Result<TensorType, Vec<Diagnostic>> {
    let name = vi.name.clone().unwrap_or_default();
    let Some(tt) = tensor_type_of(vi) else {
        return Err(vec![Diagnostic::new(
            Code::UnsupportedDtype,
            format!("graph input '{name}' is not a tensor (sequences, maps and optionals are not supported)"),
        )]);
    };
    let code = tt.elem_type.unwrap_or(0);
    let dtype = DType::from_onnx_code(code).ok_or_else(|| {
        vec![Diagnostic::new(
            Code::UnsupportedDtype,
            format!(
                "graph input '{name}' has element type {}, which tahoma does not support",
                onnx_type_name(code)
            ),
        )
        .help("supported element types: float, float16, bfloat16, int64, int32, bool")]
    })?;
    if let Some(shape) = opts.shapes.get(&name) {
        if let Some(s) = &tt.shape {
            if s.dim.len() != shape.len() {
                return Err(vec![Diagnostic::new(
                    Code::BadBinding,
                    format!(
                        "--shape {name} gives {} dims but the input has rank {}",
                        shape.len(),
                        s.dim.len()
                    ),
                )]);
            }
            for (i, (d, &b)) in s.dim.iter().zip(shape).enumerate() {
                if let Some(DimValue::DimValue(v)) = d.value {
                    if v != b as i64 {
                        return Err(vec![Diagnostic::new(
                            Code::BadBinding,
                            format!(
                                "--shape {name} sets dim {i} to {b} but the model fixes it at {v}"
                            ),
                        )]);
                    }
                }
            }
        }
        return Ok(TensorType::new(dtype, shape.clone()));
    }
    let Some(s) = &tt.shape else {
        return Err(vec![Diagnostic::new(
            Code::UnboundDim,
            format!("graph input '{name}' has no shape"),
        )
        .help(format!(
            "give its whole shape with --shape {name}=D0,D1,..."
        ))]);
    };
    let mut shape = Vec::with_capacity(s.dim.len());
    let mut errs = Vec::new();
    for (i, d) in s.dim.iter().enumerate() {
        match &d.value {
            Some(DimValue::DimValue(v)) if *v >= 0 => shape.push(*v as usize),
            Some(DimValue::DimParam(p)) if !p.is_empty() => match opts.dims.get(p) {
                Some(&b) => shape.push(b),
                None => errs.push(
                    Diagnostic::new(
                        Code::UnboundDim,
                        format!("symbolic dim '{p}' (dim {i} of input '{name}') is not bound"),
                    )
                    .help(format!("bind it with --dim {p}=VALUE or give the input's whole shape with --shape {name}=D0,D1,...")),
                ),
            },
            _ => errs.push(
                Diagnostic::new(Code::UnboundDim, format!("dim {i} of input '{name}' is unknown ('?')"))
                    .help(format!("give the input's whole shape with --shape {name}=D0,D1,... (--dim NAME=VALUE binds named dims)")),
            ),
        }
    }
    if errs.is_empty() {
        Ok(TensorType::new(dtype, shape))
    } else {
        Err(errs)
    }
}

/// Checks an output's declared type (where given) against the inferred one.
fn check_declared(
    vi: &ValueInfoProto,
    got: &TensorType,
    opts: &ImportOptions,
) -> Result<(), Diagnostic> {
    let name = vi.name.clone().unwrap_or_default();
    let Some(tt) = tensor_type_of(vi) else {
        return Ok(());
    };
    if let Some(code) = tt.elem_type.filter(|&c| c != 0) {
        if DType::from_onnx_code(code) != Some(got.dtype) {
            return Err(Diagnostic::new(
                Code::TypeMismatch,
                format!(
                    "graph output '{name}' is declared {} but computes {}",
                    onnx_type_name(code),
                    got.dtype
                ),
            )
            .help("fix the declared output type or the ops producing it"));
        }
    }
    if let Some(s) = &tt.shape {
        let ok = s.dim.len() == got.rank()
            && s.dim.iter().zip(&got.shape).all(|(d, &g)| match &d.value {
                Some(DimValue::DimValue(v)) => *v == g as i64,
                Some(DimValue::DimParam(p)) => opts.dims.get(p).is_none_or(|&b| b == g),
                None => true,
            });
        if !ok {
            let decl: Vec<String> = s
                .dim
                .iter()
                .map(|d| match &d.value {
                    Some(DimValue::DimValue(v)) => v.to_string(),
                    Some(DimValue::DimParam(p)) => p.clone(),
                    None => "?".into(),
                })
                .collect();
            return Err(Diagnostic::new(
                Code::ShapeMismatch,
                format!(
                    "graph output '{name}' is declared [{}] but computes {got}",
                    decl.join(", ")
                ),
            )
            .help("fix the declared output shape, or the input shapes bound with --dim/--shape"));
        }
    }
    Ok(())
}

/// Orders nodes so every input is defined first. Errors: inputs nobody defines (E1003) and
/// cycles (E1010), each naming the nodes.
fn topo_order(
    gp: &super::proto::GraphProto,
    env: &HashMap<String, ValueId>,
) -> Result<Vec<usize>, Diagnostics> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    let mut errs = Vec::new();
    for (i, n) in gp.node.iter().enumerate() {
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            if env.contains_key(o) || producer.insert(o, i).is_some() {
                errs.push(
                    Diagnostic::new(
                        Code::DuplicateValue,
                        format!("value '{o}' is defined more than once"),
                    )
                    .at_node(node_name(n, i), qualified_op(n))
                    .help("ONNX graphs are SSA: give each value one producer"),
                );
            }
        }
    }
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); gp.node.len()];
    for (i, n) in gp.node.iter().enumerate() {
        for inp in n.input.iter().filter(|s| !s.is_empty()) {
            if env.contains_key(inp) {
                continue;
            }
            match producer.get(inp.as_str()) {
                Some(&p) => deps[i].push(p),
                None => errs.push(
                    Diagnostic::new(
                        Code::UndefinedValue,
                        format!("input '{inp}' is not a graph input, initializer or node output"),
                    )
                    .at_node(node_name(n, i), qualified_op(n))
                    .help(format!(
                        "add '{inp}' as a graph input or initializer, or fix the node's input name"
                    )),
                ),
            }
        }
    }
    if !errs.is_empty() {
        return Err(Diagnostics(errs));
    }
    // Kahn's algorithm, keeping the file order among ready nodes.
    let mut indeg: Vec<usize> = deps.iter().map(|d| d.len()).collect();
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); gp.node.len()];
    for (i, d) in deps.iter().enumerate() {
        for &p in d {
            users[p].push(i);
        }
    }
    let mut ready: std::collections::BTreeSet<usize> =
        (0..gp.node.len()).filter(|&i| indeg[i] == 0).collect();
    let mut order = Vec::with_capacity(gp.node.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &u in &users[i] {
            indeg[u] -= 1;
            if indeg[u] == 0 {
                ready.insert(u);
            }
        }
    }
    if order.len() < gp.node.len() {
        let stuck: Vec<String> = (0..gp.node.len())
            .filter(|&i| indeg[i] > 0)
            .map(|i| {
                format!(
                    "'{}' ({})",
                    node_name(&gp.node[i], i),
                    qualified_op(&gp.node[i])
                )
            })
            .collect();
        return Err(Diagnostic::new(
            Code::Cycle,
            format!("the graph has a cycle through nodes {}", stuck.join(", ")),
        )
        .help("ONNX graphs must be acyclic; break the cycle in the exporter")
        .into());
    }
    Ok(order)
}
