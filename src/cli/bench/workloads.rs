//! The workloads of `tahoma bench`: synthetic models written as small ONNX-text templates (bf16
//! GEMMs, ResNet-50 conv layers, an MLP block, transformer encoder layers) and the real models of
//! the corpus (`tests/corpus/fetch.sh`).
//!
//! Template convention: a declaration in a template's `<...>` list without `= {...}` is a
//! weight; [`build_model`] turns it into an initializer of seeded random values (uniform in
//! `[-1, 1) / sqrt(fan_in)`), so the model carries constant weights like an exported one.
//! Declarations with `= {...}` (reshape targets, scales) are ordinary initializers.

use std::path::{Path, PathBuf};
use tahoma_compiler::onnx::proto::{tensor_proto::DataType, type_proto, ModelProto, TensorProto};
use tahoma_isa::rng::Rng;

/// Where a workload's model comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// An ONNX-text template (weights filled by [`build_model`]).
    Template(String),
    /// A model of the corpus: the path under the corpus folder (`*` matches one folder name,
    /// for the package version) and the `--dim`/`--shape` bindings.
    Corpus {
        pattern: &'static str,
        dims: Vec<String>,
        shapes: Vec<String>,
    },
}

/// One benchmark workload.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Short unique name (what `--filter` matches).
    pub name: String,
    /// `gemm`, `conv`, `mlp`, `encoder` or `model`.
    pub family: &'static str,
    /// The shape in words (GEMMs: M x K x N).
    pub shape: String,
    pub source: Source,
}

impl Workload {
    fn template(name: String, family: &'static str, shape: String, text: String) -> Workload {
        Workload {
            name,
            family,
            shape,
            source: Source::Template(text),
        }
    }
}

const HEADER: &str = r#"<ir_version: 8, opset_import: ["" : 17]>"#;

/// `Y = A @ B` with bf16 inputs and output: A is [M, K], B is [K, N].
pub fn gemm(m: usize, k: usize, n: usize) -> Workload {
    let name = if m == k && k == n {
        format!("gemm{m}")
    } else {
        format!("gemm{m}x{k}x{n}")
    };
    let text = format!(
        "{HEADER}
{name} (bfloat16[{m}, {k}] A, bfloat16[{k}, {n}] B) => (bfloat16[{m}, {n}] Y) {{
  Y = MatMul(A, B)
}}
"
    );
    Workload::template(name, "gemm", format!("M={m} K={k} N={n} bf16"), text)
}

/// One convolution with bias at batch 1: `cin -> cout` channels, `k x k` kernel, stride 1,
/// padding `k / 2` (same size), on an `hw x hw` image.
pub fn conv(hw: usize, k: usize, cin: usize, cout: usize) -> Workload {
    let name = format!("conv{hw}-{k}x{k}-{cin}-{cout}");
    let p = k / 2;
    let text = format!(
        "{HEADER}
{} (float[1, {cin}, {hw}, {hw}] x) => (float[1, {cout}, {hw}, {hw}] y)
  <float[{cout}, {cin}, {k}, {k}] w, float[{cout}] b>
{{
  y = Conv <kernel_shape = [{k}, {k}], pads = [{p}, {p}, {p}, {p}], strides = [1, 1]> (x, w, b)
}}
",
        name.replace('-', "_")
    );
    let shape = format!(
        "{hw}x{hw} {k}x{k} {cin}->{cout}{}",
        if p > 0 { " pad 1" } else { "" }
    );
    Workload::template(name, "conv", shape, text)
}

/// A feed-forward block: `relu(x @ w1 + b1) @ w2 + b2`, x is [tokens, hidden].
pub fn mlp(tokens: usize, hidden: usize, ffn: usize) -> Workload {
    let name = format!("mlp{tokens}x{hidden}x{ffn}");
    let text = format!(
        "{HEADER}
mlp (float[{tokens}, {hidden}] x) => (float[{tokens}, {hidden}] y)
  <float[{hidden}, {ffn}] w1, float[{ffn}] b1, float[{ffn}, {hidden}] w2, float[{hidden}] b2>
{{
  h_mm = MatMul(x, w1)
  h = Add(h_mm, b1)
  a = Relu(h)
  y_mm = MatMul(a, w2)
  y = Add(y_mm, b2)
}}
"
    );
    let shape = format!("[{tokens},{hidden}] {hidden}->{ffn} relu ->{hidden}");
    Workload::template(name, "mlp", shape, text)
}

/// A post-norm transformer encoder layer (BERT style) at batch 1: multi-head self-attention
/// (Q/K/V projections, scaled dot product, softmax, output projection), residual + LayerNorm,
/// then a GELU feed-forward block (GELU in the erf form exporters write), residual + LayerNorm.
pub fn encoder(label: &str, seq: usize, hidden: usize, heads: usize, ffn: usize) -> Workload {
    let d = hidden / heads;
    let scale = 1.0 / (d as f64).sqrt();
    let name = format!("encoder-{label}");
    let text = format!(
        "{HEADER}
encoder (float[1, {seq}, {hidden}] x) => (float[1, {seq}, {hidden}] y)
  <float[{hidden}, {hidden}] wq, float[{hidden}] bq, float[{hidden}, {hidden}] wk, float[{hidden}] bk,
   float[{hidden}, {hidden}] wv, float[{hidden}] bv, float[{hidden}, {hidden}] wo, float[{hidden}] bo,
   float[{hidden}] ln1_g, float[{hidden}] ln1_b, float[{hidden}, {ffn}] w1, float[{ffn}] b1,
   float[{ffn}, {hidden}] w2, float[{hidden}] b2, float[{hidden}] ln2_g, float[{hidden}] ln2_b,
   int64[4] split_heads = {{1, {seq}, {heads}, {d}}}, int64[3] merge_heads = {{1, {seq}, {hidden}}},
   float[1] scale = {{{scale}}}, float[1] sqrt2 = {{1.4142135}}, float[1] one = {{1.0}},
   float[1] half = {{0.5}}>
{{
  q_mm = MatMul(x, wq)
  q = Add(q_mm, bq)
  q_h = Reshape(q, split_heads)
  q_t = Transpose <perm = [0, 2, 1, 3]> (q_h)
  k_mm = MatMul(x, wk)
  k = Add(k_mm, bk)
  k_h = Reshape(k, split_heads)
  k_t = Transpose <perm = [0, 2, 3, 1]> (k_h)
  v_mm = MatMul(x, wv)
  v = Add(v_mm, bv)
  v_h = Reshape(v, split_heads)
  v_t = Transpose <perm = [0, 2, 1, 3]> (v_h)
  scores = MatMul(q_t, k_t)
  scaled = Mul(scores, scale)
  probs = Softmax <axis = -1> (scaled)
  ctx = MatMul(probs, v_t)
  ctx_t = Transpose <perm = [0, 2, 1, 3]> (ctx)
  ctx_m = Reshape(ctx_t, merge_heads)
  attn_mm = MatMul(ctx_m, wo)
  attn = Add(attn_mm, bo)
  res1 = Add(attn, x)
  ln1 = LayerNormalization <axis = -1, epsilon = 1e-12> (res1, ln1_g, ln1_b)
  f_mm = MatMul(ln1, w1)
  f = Add(f_mm, b1)
  f_s = Div(f, sqrt2)
  f_erf = Erf(f_s)
  f_1 = Add(f_erf, one)
  f_x = Mul(f, f_1)
  gelu = Mul(f_x, half)
  g_mm = MatMul(gelu, w2)
  g = Add(g_mm, b2)
  res2 = Add(g, ln1)
  y = LayerNormalization <axis = -1, epsilon = 1e-12> (res2, ln2_g, ln2_b)
}}
"
    );
    let shape = format!("seq {seq} hidden {hidden} {heads} heads FFN {ffn}");
    Workload::template(name, "encoder", shape, text)
}

/// A real model of the corpus.
fn corpus_model(
    name: &str,
    shape: &str,
    pattern: &'static str,
    dims: &[&str],
    shapes: &[&str],
) -> Workload {
    Workload {
        name: name.to_string(),
        family: "model",
        shape: shape.to_string(),
        source: Source::Corpus {
            pattern,
            dims: dims.iter().map(|s| s.to_string()).collect(),
            shapes: shapes.iter().map(|s| s.to_string()).collect(),
        },
    }
}

/// The whole suite, in the order the table prints it.
pub fn suite() -> Vec<Workload> {
    vec![
        gemm(512, 512, 512),                      // not-hw: workload shape
        gemm(1024, 1024, 1024),                   // not-hw: workload shape
        gemm(2048, 4096, 1024),                   // not-hw: workload shape
        conv(56, 1, 64, 64),                      // not-hw: workload shape
        conv(56, 3, 64, 64),                      // not-hw: workload shape
        conv(56, 1, 64, 256),                     // not-hw: workload shape
        conv(14, 3, 256, 256),                    // not-hw: workload shape
        conv(14, 1, 1024, 256),                   // not-hw: workload shape
        conv(14, 1, 256, 1024),                   // not-hw: workload shape
        mlp(128, 768, 3072),                      // not-hw: workload shape
        encoder("minilm", 128, 384, 12, 1536),    // not-hw: workload shape
        encoder("bert-base", 128, 768, 12, 3072), // not-hw: workload shape
        corpus_model(
            "minilm-l3",
            "batch 1, seq 128",
            "models/minilm-*/minilm_l3/model.onnx",
            &["batch_size=1", "sequence_length=128"],
            &[],
        ),
        corpus_model(
            "light-resnet50",
            "1x3x224x224",
            "onnx-*/light/light_resnet50/model.onnx",
            &[],
            &[],
        ),
        corpus_model(
            "yolov8n-320",
            "1x3x320x320",
            "models/nudenet-*/yolov8n_320/model.onnx",
            &[],
            &["images=1,3,320,320"],
        ),
    ]
}

/// Finds `pattern` (a relative path whose `*` components match any one folder name) under
/// `root`; the first match in sorted order.
pub fn find_in_corpus(root: &Path, pattern: &str) -> Option<PathBuf> {
    let mut found = vec![root.to_path_buf()];
    for part in pattern.split('/') {
        let mut next = Vec::new();
        for dir in &found {
            if let Some((pre, post)) = part.split_once('*') {
                let Ok(rd) = std::fs::read_dir(dir) else {
                    continue;
                };
                let mut names: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .filter(|e| e.path().is_dir())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| {
                        n.len() >= pre.len() + post.len() && n.starts_with(pre) && n.ends_with(post)
                    })
                    .collect();
                names.sort();
                next.extend(names.into_iter().map(|n| dir.join(n)));
            } else {
                let p = dir.join(part);
                if p.exists() {
                    next.push(p);
                }
            }
        }
        found = next;
    }
    found.into_iter().find(|p| p.is_file())
}

/// The dims of a value-info's tensor type (None when it is not a static tensor type).
fn tensor_dims(t: Option<&type_proto::Value>) -> Option<(i32, Vec<i64>)> {
    let Some(type_proto::Value::TensorType(tt)) = t else {
        return None;
    };
    let dims = tt
        .shape
        .as_ref()?
        .dim
        .iter()
        .map(|d| match d.value {
            Some(tahoma_compiler::onnx::proto::tensor_shape_proto::dimension::Value::DimValue(
                v,
            )) => Some(v),
            _ => None,
        })
        .collect::<Option<Vec<i64>>>()?;
    Some((tt.elem_type.unwrap_or(0), dims))
}

/// Parses a template and turns each weight declaration (a `<...>` entry without data) into an
/// initializer of seeded random values. Errors name the workload.
pub fn build_model(name: &str, text: &str, seed: u64) -> Result<ModelProto, String> {
    let mut m = tahoma_compiler::onnx_text::parse_model(text)
        .map_err(|d| format!("workload {name}: template does not parse: {d}"))?;
    let Some(g) = m.graph.as_mut() else {
        return Err(format!("workload {name}: template has no graph"));
    };
    let mut rng = Rng::new(seed);
    for vi in std::mem::take(&mut g.value_info) {
        let ty = vi.r#type.as_ref().and_then(|t| t.value.as_ref());
        let vname = vi.name.clone().unwrap_or_default();
        let Some((elem, dims)) = tensor_dims(ty) else {
            return Err(format!(
                "workload {name}: weight `{vname}` needs a static tensor type"
            ));
        };
        if elem != DataType::Float as i32 {
            return Err(format!("workload {name}: weight `{vname}` must be float"));
        }
        let numel: i64 = dims.iter().product();
        // [in, out] matrices, [out, in, kh, kw] kernels, vectors: the fan-in scales the values.
        let fan_in = match dims.len() {
            2 => dims[0],
            4 => dims[1] * dims[2] * dims[3],
            _ => 1,
        };
        let s = 1.0 / (fan_in.max(1) as f32).sqrt();
        let mut raw = Vec::with_capacity(numel.max(0) as usize * 4);
        for _ in 0..numel {
            raw.extend_from_slice(&(rng.uniform(-1.0, 1.0) * s).to_le_bytes());
        }
        g.initializer.push(TensorProto {
            name: Some(vname),
            dims,
            data_type: Some(DataType::Float as i32),
            raw_data: Some(raw),
            ..Default::default()
        });
    }
    Ok(m)
}

/// A copy of `m` with every bfloat16 graph input/output type made float: onnxruntime has no CPU
/// kernel for bf16 MatMul, so the bf16 GEMMs are timed there at fp32. None when `m` has no
/// bf16 interface.
pub fn fp32_variant(m: &ModelProto) -> Option<ModelProto> {
    let mut out = m.clone();
    let g = out.graph.as_mut()?;
    let mut changed = false;
    for vi in g.input.iter_mut().chain(g.output.iter_mut()) {
        if let Some(type_proto::Value::TensorType(tt)) =
            vi.r#type.as_mut().and_then(|t| t.value.as_mut())
        {
            if tt.elem_type == Some(DataType::Bfloat16 as i32) {
                tt.elem_type = Some(DataType::Float as i32);
                changed = true;
            }
        }
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses_and_gets_its_weights() {
        for w in suite() {
            if let Source::Template(text) = &w.source {
                let m = build_model(&w.name, text, 1).unwrap();
                let g = m.graph.unwrap();
                assert!(g.value_info.is_empty(), "{}", w.name);
                assert!(
                    g.initializer.iter().all(|t| t.dims.iter().all(|&d| d > 0)),
                    "{}",
                    w.name
                );
            }
        }
    }

    #[test]
    fn names_are_unique() {
        let s = suite();
        let mut names: Vec<&str> = s.iter().map(|w| w.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), s.len());
    }
}
