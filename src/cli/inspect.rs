//! `tahoma inspect MODEL`: what a model is made of — inputs and outputs with shapes, the op
//! histogram, parameter count, and every unsupported op with its node name.

use super::model::{import, load_proto, ModelArgs};
use super::CliError;
use std::fmt::Write;
use std::path::Path;
use tahoma_compiler::onnx::{model_op_histogram, SUPPORTED_OPS};

pub fn inspect(path: &Path, args: &ModelArgs) -> Result<(), CliError> {
    print!("{}", report(path, args)?);
    Ok(())
}

/// The inspect report as text. Unsupported ops do not make it fail: they are listed; other
/// import errors (unbound dims, bad data) are reported under `import:`.
pub fn report(path: &Path, args: &ModelArgs) -> Result<String, CliError> {
    let proto = load_proto(path)?;
    let mut s = String::new();
    let gp = proto.graph.clone().unwrap_or_default();
    let _ = writeln!(s, "model: {}", path.display());
    let opsets: Vec<String> = proto
        .opset_import
        .iter()
        .map(|o| {
            format!(
                "{}:{}",
                o.domain
                    .as_deref()
                    .filter(|d| !d.is_empty())
                    .unwrap_or("ai.onnx"),
                o.version.unwrap_or(0)
            )
        })
        .collect();
    let _ = writeln!(
        s,
        "ir_version: {}, opsets: {}",
        proto.ir_version.unwrap_or(0),
        opsets.join(", ")
    );
    if let Some(p) = proto.producer_name.as_deref().filter(|p| !p.is_empty()) {
        let _ = writeln!(
            s,
            "producer: {p} {}",
            proto.producer_version.as_deref().unwrap_or("")
        );
    }
    let imported = import(path, &proto, args);
    match &imported {
        Ok(g) => {
            let _ = writeln!(s, "inputs:");
            for &v in &g.inputs {
                let _ = writeln!(s, "  {}: {}", g.value(v).name, g.ty(v));
            }
            let _ = writeln!(s, "outputs:");
            for &v in &g.outputs {
                let _ = writeln!(s, "  {}: {}", g.value(v).name, g.ty(v));
            }
            let params = g.parameter_count();
            let bytes: usize = g
                .constants()
                .map(|(_, t)| t.len() * t.dtype().size_bytes())
                .sum();
            let _ = writeln!(
                s,
                "parameters: {params} ({bytes} bytes in {} constants)",
                g.constants().count()
            );
            let _ = writeln!(s, "graph IR nodes after import: {}", g.nodes.len());
        }
        Err(e) => {
            let _ = writeln!(s, "inputs (declared):");
            for vi in &gp.input {
                let _ = writeln!(s, "  {}", vi.name.as_deref().unwrap_or(""));
            }
            let _ = writeln!(s, "import: error[{}]: {}", e.code, e.message);
        }
    }
    let hist = model_op_histogram(&proto);
    let total: usize = hist.values().sum();
    let _ = writeln!(s, "ops ({total} nodes, {} kinds):", hist.len());
    let mut by_count: Vec<_> = hist.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (op, c) in by_count {
        let _ = writeln!(s, "  {c:6}  {op}");
    }
    let mut unsupported = Vec::new();
    for (i, n) in gp.node.iter().enumerate() {
        let op = n.op_type.clone().unwrap_or_default();
        let default_domain = matches!(n.domain.as_deref(), None | Some("") | Some("ai.onnx"));
        if !default_domain || !SUPPORTED_OPS.contains(&op.as_str()) {
            let name = n
                .name
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| format!("{op}_{i}"));
            let q = if default_domain {
                op
            } else {
                format!("{}.{op}", n.domain.as_deref().unwrap_or(""))
            };
            unsupported.push(format!("  {q}  (node '{name}')"));
        }
    }
    if unsupported.is_empty() {
        let _ = writeln!(s, "unsupported ops: none");
    } else {
        let _ = writeln!(s, "unsupported ops ({}):", unsupported.len());
        for u in unsupported {
            let _ = writeln!(s, "{u}");
        }
    }
    Ok(s)
}
