//! Conformance cases: runs one ONNX backend-style test case (a model plus
//! `test_data_set_N/{input,output}_K.pb` tensors) through import and the reference
//! interpreter and compares with the tolerance of onnx's backend runner. Pure: the caller
//! reads the files (the CLI's `tahoma conformance` and the tests do).
//!
//! A case is `Unsupported` when import reports an op, element type, model version or
//! run-time-computed shape tahoma does not handle; any other failure is a `Fail`.

use crate::diag::{Code, Diagnostics};
use crate::graph::Graph;
use crate::interp;
use crate::onnx::proto::{ModelProto, TensorProto};
use crate::onnx::{
    decode_model, import_model, tensor::tensor_from_proto, ExternalData, ImportOptions,
};
use crate::tensor::{DType, Tensor};
use prost::Message;
use std::fmt;

/// Outcome class of a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    Unsupported,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Unsupported => "unsupported",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Status plus a one-line reason (empty on pass).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub status: Status,
    pub reason: String,
}

impl Outcome {
    fn fail(reason: impl Into<String>) -> Self {
        Outcome {
            status: Status::Fail,
            reason: reason.into(),
        }
    }
    fn unsupported(reason: impl Into<String>) -> Self {
        Outcome {
            status: Status::Unsupported,
            reason: reason.into(),
        }
    }
}

/// Element-wise tolerance: `|got - want| <= atol + rtol * |want|`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    pub rtol: f64,
    pub atol: f64,
}

impl Default for Tolerance {
    /// onnx's backend runner defaults.
    fn default() -> Self {
        Tolerance {
            rtol: 1e-3,
            atol: 1e-7,
        }
    }
}

/// Why an executor could not produce a case's outputs.
#[derive(Clone, Debug, PartialEq)]
pub enum ExecError {
    /// The target cannot run this graph (an op or dtype it does not support yet).
    Unsupported(String),
    /// The target ran, or tried to, and failed.
    Failed(String),
}

/// What runs an imported graph on the case's inputs: the reference interpreter, or (from the
/// CLI, which owns the runtime) compilation plus the emulator.
pub type Executor<'a> = &'a dyn Fn(&Graph, &[Tensor]) -> Result<Vec<Tensor>, ExecError>;

/// The reference interpreter as an executor.
pub fn interpreter(g: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>, ExecError> {
    interp::run_graph(g, inputs)
        .map_err(|e| ExecError::Failed(format!("interpreter: {}", one_line(&e.to_string()))))
}

/// The serialized tensors of one `test_data_set_N` folder, in `K` order.
#[derive(Clone, Debug, Default)]
pub struct DataSet {
    pub inputs: Vec<Vec<u8>>,
    pub outputs: Vec<Vec<u8>>,
}

fn one_line(s: &str) -> String {
    let mut l = s.lines().next().unwrap_or("").to_string();
    if l.len() > 300 {
        let mut cut = 300;
        while !l.is_char_boundary(cut) {
            cut -= 1;
        }
        l.truncate(cut);
        l.push_str("...");
    }
    l
}

fn is_unsupported(code: Code) -> bool {
    matches!(
        code,
        Code::UnsupportedOp | Code::UnsupportedDtype | Code::UnsupportedModel
    )
}

/// Classifies import errors: any unsupported-kind diagnostic makes the case unsupported.
fn import_outcome(d: &Diagnostics) -> Outcome {
    let text =
        d.0.iter()
            .map(|x| one_line(&x.to_string()))
            .collect::<Vec<_>>()
            .join("; ");
    if d.0.iter().any(|x| is_unsupported(x.code)) {
        Outcome::unsupported(format!("import: {text}"))
    } else if d.0.iter().any(|x| x.code == Code::DynamicValue) {
        Outcome::unsupported(format!("import: run-time shapes: {text}"))
    } else {
        Outcome::fail(format!("import: {text}"))
    }
}

fn decode_tensor(bytes: &[u8], what: &str) -> Result<TensorProto, Outcome> {
    TensorProto::decode(bytes).map_err(|e| Outcome::fail(format!("{what}: not a TensorProto: {e}")))
}

/// Converts a test-data tensor; an unsupported element type makes the case unsupported.
fn load_tensor(t: &TensorProto, ext: &dyn ExternalData, what: &str) -> Result<Tensor, Outcome> {
    tensor_from_proto(t, ext).map_err(|d| {
        if is_unsupported(d.code) {
            Outcome::unsupported(format!("{what}: {}", one_line(&d.message)))
        } else {
            Outcome::fail(format!("{what}: {}", one_line(&d.to_string())))
        }
    })
}

/// Decodes a serialized test-data `TensorProto` (an `input_K.pb`/`output_K.pb` file).
/// `Ok(None)` when its element type is one tahoma does not support.
pub fn decode_test_tensor(bytes: &[u8]) -> Result<Option<Tensor>, String> {
    let t = TensorProto::decode(bytes).map_err(|e| format!("not a TensorProto: {e}"))?;
    match tensor_from_proto(&t, &crate::onnx::NoExternalData) {
        Ok(t) => Ok(Some(t)),
        Err(d) if is_unsupported(d.code) => Ok(None),
        Err(d) => Err(one_line(&d.to_string())),
    }
}

/// Compares an interpreter result with a golden tensor: same dtype, same shape, values within
/// `tol` for floats (NaN matches NaN, infinities must match exactly), exact otherwise.
pub fn compare(want: &Tensor, got: &Tensor, tol: Tolerance) -> Result<(), String> {
    if want.dtype() != got.dtype() {
        return Err(format!(
            "dtype {} but expected {}",
            got.dtype(),
            want.dtype()
        ));
    }
    if want.shape() != got.shape() {
        return Err(format!(
            "shape {:?} but expected {:?}",
            got.shape(),
            want.shape()
        ));
    }
    if !want.dtype().is_float() {
        let (w, g) = (want.to_i64_vec(), got.to_i64_vec());
        if let Some(i) = (0..w.len()).find(|&i| w[i] != g[i]) {
            return Err(format!("element {i} is {} but expected {}", g[i], w[i]));
        }
        return Ok(());
    }
    let (w, g) = (want.to_f32_vec(), got.to_f32_vec());
    let mut worst: Option<(usize, f64)> = None;
    let mut bad = 0usize;
    for i in 0..w.len() {
        let (a, b) = (w[i] as f64, g[i] as f64);
        let ok = if a.is_nan() || b.is_nan() {
            a.is_nan() && b.is_nan()
        } else if a.is_infinite() || b.is_infinite() {
            a == b
        } else {
            (a - b).abs() <= tol.atol + tol.rtol * a.abs()
        };
        if !ok {
            bad += 1;
            let excess = if a.is_finite() && b.is_finite() {
                (a - b).abs() / (tol.atol + tol.rtol * a.abs())
            } else {
                f64::INFINITY
            };
            if worst.is_none_or(|(_, e)| excess > e) {
                worst = Some((i, excess));
            }
        }
    }
    match worst {
        None => Ok(()),
        Some((i, _)) => Err(format!(
            "{bad} of {} elements differ (rtol {}, atol {}); worst at {i}: got {} expected {}",
            w.len(),
            tol.rtol,
            tol.atol,
            g[i],
            w[i]
        )),
    }
}

/// Graph inputs of a model that are not initializers, in order.
fn runtime_inputs(m: &ModelProto) -> Vec<String> {
    let Some(g) = &m.graph else { return vec![] };
    let inits: std::collections::HashSet<&str> = g
        .initializer
        .iter()
        .filter_map(|t| t.name.as_deref())
        .collect();
    g.input
        .iter()
        .filter_map(|v| v.name.clone())
        .filter(|n| !inits.contains(n.as_str()))
        .collect()
}

/// Sequence, map, optional and sparse graph inputs/outputs are outside tahoma's value model.
fn non_tensor_interface(m: &ModelProto) -> Option<Outcome> {
    use crate::onnx::proto::type_proto::Value;
    let g = m.graph.as_ref()?;
    for (what, v) in g
        .input
        .iter()
        .map(|v| ("input", v))
        .chain(g.output.iter().map(|v| ("output", v)))
    {
        let kind = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            None | Some(Value::TensorType(_)) => continue,
            Some(Value::SequenceType(_)) => "a sequence",
            Some(Value::MapType(_)) => "a map",
            Some(Value::OptionalType(_)) => "an optional",
            Some(Value::SparseTensorType(_)) => "a sparse tensor",
            Some(_) => "not a tensor",
        };
        let name = v.name.as_deref().unwrap_or("");
        return Some(Outcome::unsupported(format!(
            "graph {what} '{name}' is {kind}; only dense tensors are supported"
        )));
    }
    None
}

/// Replaces the listed graph inputs by initializers holding `values` (the case's own input
/// data), so inputs that tahoma needs at compile time (shapes, axes, pads) become constants.
fn freeze_inputs(m: &ModelProto, values: &[(String, TensorProto)]) -> ModelProto {
    let mut m = m.clone();
    if let Some(g) = m.graph.as_mut() {
        let names: Vec<&str> = values.iter().map(|(n, _)| n.as_str()).collect();
        g.input
            .retain(|v| !v.name.as_deref().is_some_and(|n| names.contains(&n)));
        for (n, t) in values {
            let mut t = t.clone();
            t.name = Some(n.clone());
            g.initializer.push(t);
        }
    }
    m
}

/// Runs one case through import and the interpreter over all its data sets.
pub fn run_case(
    model_bytes: &[u8],
    ext: &dyn ExternalData,
    sets: &[DataSet],
    tol: Tolerance,
) -> Outcome {
    run_case_on(model_bytes, ext, sets, tol, &interpreter)
}

/// Like [`run_case`] with the graph run by `exec`.
pub fn run_case_on(
    model_bytes: &[u8],
    ext: &dyn ExternalData,
    sets: &[DataSet],
    tol: Tolerance,
    exec: Executor,
) -> Outcome {
    let model = match decode_model(model_bytes) {
        Ok(m) => m,
        Err(d) => return Outcome::fail(format!("decode: {}", one_line(&d.to_string()))),
    };
    if sets.is_empty() {
        return Outcome::fail("no test_data_set_N folders");
    }
    if let Some(o) = non_tensor_interface(&model) {
        return o;
    }
    let names = runtime_inputs(&model);
    for (si, set) in sets.iter().enumerate() {
        let r = run_set(&model, &names, ext, set, tol, exec);
        if r.status != Status::Pass {
            let reason = if sets.len() > 1 {
                format!("data set {si}: {}", r.reason)
            } else {
                r.reason
            };
            return Outcome {
                status: r.status,
                reason,
            };
        }
    }
    Outcome {
        status: Status::Pass,
        reason: String::new(),
    }
}

/// The text round trip of an imported graph (every graph, whatever the size of its weights):
/// `None` when it prints, parses back bit-identical ([`crate::graph::text::identical`]) and
/// re-verifies, else a failing outcome saying what broke.
fn round_trip(g: &crate::graph::Graph) -> Option<Outcome> {
    let text = crate::graph::text::print(g);
    match crate::graph::text::parse(&text) {
        Ok(back) if crate::graph::text::identical(&back, g) => match crate::graph::verify(&back) {
            Ok(()) => None,
            Err(d) => Some(Outcome::fail(format!(
                "the re-parsed graph does not verify: {}",
                one_line(&d.to_string())
            ))),
        },
        Ok(_) => Some(Outcome::fail(
            "graph IR text round trip: parse(print(g)) differs from g",
        )),
        Err(d) => Some(Outcome::fail(format!(
            "graph IR text round trip: {}",
            one_line(&d.to_string())
        ))),
    }
}

fn run_set(
    model: &ModelProto,
    names: &[String],
    ext: &dyn ExternalData,
    set: &DataSet,
    tol: Tolerance,
    exec: Executor,
) -> Outcome {
    // Inputs: matched to graph inputs by the tensor's name, else by position.
    let mut protos: Vec<(String, TensorProto)> = Vec::new();
    for (k, bytes) in set.inputs.iter().enumerate() {
        let t = match decode_tensor(bytes, &format!("input_{k}.pb")) {
            Ok(t) => t,
            Err(o) => return o,
        };
        let name = match t.name.as_deref().filter(|n| names.iter().any(|m| m == n)) {
            Some(n) => n.to_string(),
            None => match names.get(k) {
                Some(n) => n.clone(),
                None => return Outcome::fail(format!("input_{k}.pb has no matching graph input")),
            },
        };
        protos.push((name, t));
    }
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (n, p) in &protos {
        match load_tensor(p, ext, &format!("input '{n}'")) {
            Ok(t) => tensors.push((n.clone(), t)),
            Err(o) => return o,
        }
    }
    let mut opts = ImportOptions::default();
    for (n, t) in &tensors {
        opts.shapes.insert(n.clone(), t.shape().to_vec());
    }
    let graph = match import_model(model, &opts, ext) {
        Ok(g) => g,
        Err(d) if d.0.iter().any(|x| x.code == Code::DynamicValue) => {
            // Values tahoma needs at compile time (shapes, axes, pads, scales) are fed as graph
            // inputs by many backend tests. As tract's harness does, freeze them into constants
            // from the case's own data: first the integer inputs, then every input but the first.
            let int_inputs: Vec<usize> = (0..tensors.len())
                .filter(|&i| matches!(tensors[i].1.dtype(), DType::I64 | DType::I32))
                .collect();
            let all_but_first: Vec<usize> = (1..tensors.len()).collect();
            let mut last = d;
            let mut found = None;
            for freeze in [int_inputs, all_but_first] {
                if freeze.is_empty() {
                    continue;
                }
                let frozen: Vec<(String, TensorProto)> =
                    freeze.iter().map(|&i| protos[i].clone()).collect();
                let frozen_model = freeze_inputs(model, &frozen);
                let mut opts2 = ImportOptions::default();
                for (i, (n, t)) in tensors.iter().enumerate() {
                    if !freeze.contains(&i) {
                        opts2.shapes.insert(n.clone(), t.shape().to_vec());
                    }
                }
                match import_model(&frozen_model, &opts2, ext) {
                    Ok(g) => {
                        found = Some((g, freeze));
                        break;
                    }
                    Err(d) => {
                        let dynamic = d.0.iter().any(|x| x.code == Code::DynamicValue);
                        last = d;
                        if !dynamic {
                            break;
                        }
                    }
                }
            }
            match found {
                Some((g, freeze)) => {
                    let mut i = 0;
                    tensors.retain(|_| {
                        let keep = !freeze.contains(&i);
                        i += 1;
                        keep
                    });
                    g
                }
                None => return import_outcome(&last),
            }
        }
        Err(d) => return import_outcome(&d),
    };
    if let Some(o) = round_trip(&graph) {
        return o;
    }
    // Feed in the graph's input order.
    let mut feed = Vec::with_capacity(graph.inputs.len());
    for &v in &graph.inputs {
        let n = &graph.value(v).name;
        match tensors.iter().find(|(m, _)| m == n) {
            Some((_, t)) => feed.push(t.clone()),
            None => return Outcome::fail(format!("no test data for graph input '{n}'")),
        }
    }
    let got = match exec(&graph, &feed) {
        Ok(v) => v,
        Err(ExecError::Unsupported(m)) => return Outcome::unsupported(one_line(&m)),
        Err(ExecError::Failed(m)) => return Outcome::fail(one_line(&m)),
    };
    if got.len() != set.outputs.len() {
        return Outcome::fail(format!(
            "graph has {} outputs, test data has {}",
            got.len(),
            set.outputs.len()
        ));
    }
    for (k, bytes) in set.outputs.iter().enumerate() {
        let p = match decode_tensor(bytes, &format!("output_{k}.pb")) {
            Ok(t) => t,
            Err(o) => return o,
        };
        let want = match load_tensor(&p, ext, &format!("output_{k}.pb")) {
            Ok(t) => t,
            Err(o) => return o,
        };
        if let Err(m) = compare(&want, &got[k], tol) {
            let name = graph.value(graph.outputs[k]).name.clone();
            return Outcome::fail(format!("output {k} ('{name}'): {m}"));
        }
    }
    Outcome {
        status: Status::Pass,
        reason: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_applies_rtol_and_atol_and_nan_rules() {
        let t = |v: &[f32]| Tensor::from_f32(DType::F32, &[v.len()], v);
        let tol = Tolerance::default();
        assert!(compare(&t(&[1.0, f32::NAN]), &t(&[1.0009, f32::NAN]), tol).is_ok());
        assert!(compare(&t(&[1.0]), &t(&[1.0011]), tol).is_err());
        assert!(compare(&t(&[0.0]), &t(&[1e-6]), tol).is_err());
        assert!(compare(&t(&[f32::INFINITY]), &t(&[f32::INFINITY]), tol).is_ok());
        assert!(compare(&t(&[1.0]), &Tensor::from_f32(DType::F16, &[1], &[1.0]), tol).is_err());
        assert!(compare(
            &t(&[1.0, 2.0]),
            &Tensor::from_f32(DType::F32, &[2, 1], &[1.0, 2.0]),
            tol
        )
        .is_err());
    }

    #[test]
    fn garbage_model_bytes_fail_with_a_decode_reason() {
        let o = run_case(
            b"not a model",
            &crate::onnx::NoExternalData,
            &[DataSet::default()],
            Tolerance::default(),
        );
        assert_eq!(o.status, Status::Fail);
        assert!(o.reason.starts_with("decode:"), "{}", o.reason);
    }
}
