//! Reference kernels against ONNX node-test data directly, for kernels or kernel features that
//! the importer does not route yet (LayerNormalization's Mean/InvStdDev, MaxPool indices,
//! cubic, tf_crop_and_resize and antialiased Resize, and ops outside the graph IR such as Mod,
//! ArgMax, GatherElements, PRelu, CumSum, Trilu), and for the kernels' own `auto_pad`/`output_shape` handling of Conv,
//! ConvTranspose and the pools (the importer resolves those into pads). Each single-node test
//! of the onnx 1.23.2 corpus whose name matches a family below is run through the kernel with
//! the node's ONNX attributes and compared with its golden outputs (rtol 1e-3, atol 1e-7).
//! Cases with element types tahoma does not support are counted as not applicable; every other
//! case must pass or be listed in `KNOWN`. Needs the corpus from `tests/corpus/fetch.sh`; a
//! missing corpus fails.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tahoma_compiler::conformance::{compare, decode_test_tensor, Tolerance};
use tahoma_compiler::interp::elementwise::{self as ew, BinaryOp, UnaryOp, VariadicOp};
use tahoma_compiler::interp::{
    conv, index_ops, normalize, pool, reduce, resize, shape_ops, InterpError,
};
use tahoma_compiler::onnx::decode_model;
use tahoma_compiler::onnx::proto::{AttributeProto, NodeProto};
use tahoma_compiler::tensor::Tensor;

/// Cases whose kernel is expected to refuse them, with the reason.
const KNOWN: &[(&str, &str)] = &[];

struct Attrs<'a>(&'a [AttributeProto]);

impl Attrs<'_> {
    fn get(&self, n: &str) -> Option<&AttributeProto> {
        self.0.iter().find(|a| a.name.as_deref() == Some(n))
    }
    fn i(&self, n: &str, d: i64) -> i64 {
        self.get(n).and_then(|a| a.i).unwrap_or(d)
    }
    fn f(&self, n: &str, d: f32) -> f32 {
        self.get(n).and_then(|a| a.f).unwrap_or(d)
    }
    fn s(&self, n: &str, d: &str) -> String {
        self.get(n)
            .and_then(|a| a.s.clone())
            .map(|b| String::from_utf8_lossy(&b).to_string())
            .unwrap_or(d.to_string())
    }
    fn ints(&self, n: &str) -> Option<Vec<i64>> {
        self.get(n).map(|a| a.ints.clone())
    }
    fn usizes(&self, n: &str) -> Vec<usize> {
        self.ints(n)
            .unwrap_or_default()
            .iter()
            .map(|&v| v as usize)
            .collect()
    }
}

type Ins = [Option<Tensor>];
type Kernel = fn(&Attrs, &Ins, i64) -> Result<Vec<Tensor>, InterpError>;
/// A boxed kernel adapter: ONNX attributes + operands + opset -> outputs.
type Family = Box<dyn Fn(&Attrs, &Ins, i64) -> Result<Vec<Tensor>, InterpError>>;

fn req(ins: &Ins, i: usize) -> Result<&Tensor, InterpError> {
    ins.get(i)
        .and_then(|t| t.as_ref())
        .ok_or_else(|| InterpError::new("test", format!("input {i} missing")))
}

fn ints_of(t: Option<&Tensor>) -> Option<Vec<i64>> {
    t.map(|t| t.to_i64_vec())
}

fn layer_norm(a: &Attrs, ins: &Ins, _: i64) -> Result<Vec<Tensor>, InterpError> {
    let r = normalize::layer_norm(
        req(ins, 0)?,
        req(ins, 1)?,
        ins.get(2).and_then(|t| t.as_ref()),
        a.i("axis", -1),
        a.f("epsilon", 1e-5),
    )?;
    Ok(vec![r.y, r.mean, r.inv_std_dev])
}

fn resize_k(a: &Attrs, ins: &Ins, _: i64) -> Result<Vec<Tensor>, InterpError> {
    let p = resize::ResizeParams {
        mode: resize::ResizeMode::parse(&a.s("mode", "nearest")).expect("mode"),
        coord: resize::CoordMode::parse(&a.s("coordinate_transformation_mode", "half_pixel"))
            .expect("coord"),
        nearest: resize::NearestMode::parse(&a.s("nearest_mode", "round_prefer_floor"))
            .expect("nearest"),
        cubic_coeff_a: a.f("cubic_coeff_a", -0.75),
        exclude_outside: a.i("exclude_outside", 0) != 0,
        extrapolation_value: a.f("extrapolation_value", 0.0),
        antialias: a.i("antialias", 0) != 0,
        axes: a.ints("axes"),
        aspect: resize::AspectPolicy::parse(&a.s("keep_aspect_ratio_policy", "stretch"))
            .expect("policy"),
    };
    let opt = |i: usize| {
        ins.get(i)
            .and_then(|t| t.as_ref())
            .filter(|t| !t.is_empty())
    };
    let roi = opt(1).map(|t| t.to_f32_vec());
    let scales = opt(2).map(|t| t.to_f32_vec());
    let sizes = ints_of(opt(3));
    Ok(vec![resize::resize(
        req(ins, 0)?,
        roi.as_deref(),
        scales.as_deref(),
        sizes.as_deref(),
        &p,
    )?])
}

fn maxpool_idx(a: &Attrs, ins: &Ins, _: i64) -> Result<Vec<Tensor>, InterpError> {
    let p = pool::PoolParams {
        kernel_shape: a.usizes("kernel_shape"),
        strides: a.usizes("strides"),
        pads: a.usizes("pads"),
        dilations: a.usizes("dilations"),
        auto_pad: tahoma_compiler::interp::window::AutoPad::parse(&a.s("auto_pad", "NOTSET"))
            .expect("auto_pad"),
        ceil_mode: a.i("ceil_mode", 0) != 0,
        storage_order: a.i("storage_order", 0),
        ..Default::default()
    };
    let (y, i) = pool::max_pool(req(ins, 0)?, &p)?;
    Ok(vec![y, i])
}

fn reduce_with(
    op: reduce::ReduceOp,
) -> impl Fn(&Attrs, &Ins, i64) -> Result<Vec<Tensor>, InterpError> {
    move |a, ins, opset| {
        // Axes moved from attribute to input in opset 18 (13 for ReduceSum).
        let from_input = opset >= 18 || (op == reduce::ReduceOp::Sum && opset >= 13);
        let axes = if from_input {
            ints_of(ins.get(1).and_then(|t| t.as_ref()))
        } else {
            a.ints("axes")
        };
        let p = reduce::ReduceParams {
            axes,
            keepdims: a.i("keepdims", 1) != 0,
            noop_with_empty_axes: a.i("noop_with_empty_axes", 0) != 0,
        };
        Ok(vec![reduce::reduce(op, req(ins, 0)?, &p)?])
    }
}

fn auto_pad(a: &Attrs) -> tahoma_compiler::interp::window::AutoPad {
    tahoma_compiler::interp::window::AutoPad::parse(&a.s("auto_pad", "NOTSET")).expect("auto_pad")
}

fn pool_params(a: &Attrs) -> pool::PoolParams {
    pool::PoolParams {
        kernel_shape: a.usizes("kernel_shape"),
        strides: a.usizes("strides"),
        pads: a.usizes("pads"),
        dilations: a.usizes("dilations"),
        auto_pad: auto_pad(a),
        ceil_mode: a.i("ceil_mode", 0) != 0,
        count_include_pad: a.i("count_include_pad", 0) != 0,
        storage_order: a.i("storage_order", 0),
        p: a.i("p", 2) as f32,
    }
}

fn conv_k(a: &Attrs, ins: &Ins, _: i64) -> Result<Vec<Tensor>, InterpError> {
    let p = conv::ConvParams {
        kernel_shape: a.usizes("kernel_shape"),
        strides: a.usizes("strides"),
        pads: a.usizes("pads"),
        dilations: a.usizes("dilations"),
        group: a.i("group", 1) as usize,
        auto_pad: auto_pad(a),
    };
    Ok(vec![conv::conv(
        req(ins, 0)?,
        req(ins, 1)?,
        ins.get(2).and_then(|t| t.as_ref()),
        &p,
    )?])
}

fn conv_transpose_k(a: &Attrs, ins: &Ins, _: i64) -> Result<Vec<Tensor>, InterpError> {
    let p = conv::ConvTransposeParams {
        kernel_shape: a.usizes("kernel_shape"),
        strides: a.usizes("strides"),
        pads: a.usizes("pads"),
        dilations: a.usizes("dilations"),
        group: a.i("group", 1) as usize,
        auto_pad: auto_pad(a),
        output_padding: a.usizes("output_padding"),
        signed_pads: None,
        output_shape: a.usizes("output_shape"),
    };
    let b = ins.get(2).and_then(|t| t.as_ref());
    Ok(vec![conv::conv_transpose(
        req(ins, 0)?,
        req(ins, 1)?,
        b,
        &p,
    )?])
}

fn families() -> Vec<(&'static str, Family)> {
    let un =
        |u: UnaryOp| -> Family { Box::new(move |_, ins, _| Ok(vec![ew::unary(u, req(ins, 0)?)?])) };
    let k = |f: Kernel| -> Family { Box::new(f) };
    vec![
        ("test_layer_normalization_", k(layer_norm)),
        ("test_resize_", k(resize_k)),
        ("test_maxpool_with_argmax_", k(maxpool_idx)),
        (
            "test_maxpool_",
            Box::new(|a: &Attrs, ins: &Ins, _| {
                Ok(vec![pool::max_pool(req(ins, 0)?, &pool_params(a))?.0])
            }),
        ),
        (
            "test_averagepool_",
            Box::new(|a: &Attrs, ins: &Ins, _| {
                Ok(vec![pool::average_pool(req(ins, 0)?, &pool_params(a))?])
            }),
        ),
        (
            "test_lppool_",
            Box::new(|a: &Attrs, ins: &Ins, _| {
                Ok(vec![pool::lp_pool(req(ins, 0)?, &pool_params(a))?])
            }),
        ),
        ("test_basic_conv_", k(conv_k)),
        ("test_conv_with_", k(conv_k)),
        ("test_convtranspose", k(conv_transpose_k)),
        (
            "test_reduce_prod_",
            Box::new(reduce_with(reduce::ReduceOp::Prod)),
        ),
        (
            "test_reduce_l1_",
            Box::new(reduce_with(reduce::ReduceOp::L1)),
        ),
        (
            "test_reduce_l2_",
            Box::new(reduce_with(reduce::ReduceOp::L2)),
        ),
        (
            "test_reduce_sum_square_",
            Box::new(reduce_with(reduce::ReduceOp::SumSquare)),
        ),
        (
            "test_reduce_log_sum_exp_",
            Box::new(reduce_with(reduce::ReduceOp::LogSumExp)),
        ),
        (
            "test_reduce_log_sum_asc_axes",
            Box::new(reduce_with(reduce::ReduceOp::LogSum)),
        ),
        (
            "test_reduce_log_sum_default",
            Box::new(reduce_with(reduce::ReduceOp::LogSum)),
        ),
        (
            "test_reduce_log_sum_empty_set",
            Box::new(reduce_with(reduce::ReduceOp::LogSum)),
        ),
        (
            "test_reduce_log_sum_negative_axes",
            Box::new(reduce_with(reduce::ReduceOp::LogSum)),
        ),
        (
            "test_reduce_log_sum_desc_axes",
            Box::new(reduce_with(reduce::ReduceOp::LogSum)),
        ),
        (
            "test_gather_elements_",
            Box::new(|a: &Attrs, ins: &Ins, _| {
                Ok(vec![index_ops::gather_elements(
                    req(ins, 0)?,
                    req(ins, 1)?,
                    a.i("axis", 0),
                )?])
            }),
        ),
        (
            "test_argmax_",
            Box::new(|a: &Attrs, ins: &Ins, _| {
                Ok(vec![reduce::arg_reduce(
                    req(ins, 0)?,
                    a.i("axis", 0),
                    a.i("keepdims", 1) != 0,
                    a.i("select_last_index", 0) != 0,
                    true,
                )?])
            }),
        ),
        (
            "test_argmin_",
            Box::new(|a: &Attrs, ins: &Ins, _| {
                Ok(vec![reduce::arg_reduce(
                    req(ins, 0)?,
                    a.i("axis", 0),
                    a.i("keepdims", 1) != 0,
                    a.i("select_last_index", 0) != 0,
                    false,
                )?])
            }),
        ),
        (
            "test_mod_",
            Box::new(|a: &Attrs, ins: &Ins, _| {
                let op = if a.i("fmod", 0) != 0 {
                    BinaryOp::Fmod
                } else {
                    BinaryOp::Mod
                };
                Ok(vec![ew::binary(op, req(ins, 0)?, req(ins, 1)?)?])
            }),
        ),
        (
            "test_mean_",
            Box::new(|_: &Attrs, ins: &Ins, _| {
                let xs: Vec<&Tensor> = ins.iter().flatten().collect();
                Ok(vec![ew::variadic(VariadicOp::Mean, &xs)?])
            }),
        ),
        (
            "test_elu",
            Box::new(|a: &Attrs, ins: &Ins, _| Ok(vec![ew::elu(req(ins, 0)?, a.f("alpha", 1.0))?])),
        ),
        ("test_round", un(UnaryOp::Round)),
        ("test_softplus", un(UnaryOp::Softplus)),
        ("test_softsign", un(UnaryOp::Softsign)),
        ("test_sin", un(UnaryOp::Sin)),
        ("test_tan", un(UnaryOp::Tan)),
        ("test_asin", un(UnaryOp::Asin)),
        ("test_acos", un(UnaryOp::Acos)),
        ("test_atan", un(UnaryOp::Atan)),
        ("test_sinh", un(UnaryOp::Sinh)),
        ("test_cosh", un(UnaryOp::Cosh)),
        ("test_asinh", un(UnaryOp::Asinh)),
        ("test_acosh", un(UnaryOp::Acosh)),
        ("test_atanh", un(UnaryOp::Atanh)),
        ("test_mish", un(UnaryOp::Mish)),
        (
            "test_selu",
            Box::new(|a: &Attrs, ins: &Ins, _| {
                Ok(vec![ew::selu(
                    req(ins, 0)?,
                    a.f("alpha", 1.673_263_2),
                    a.f("gamma", 1.050_701),
                )?])
            }),
        ),
        (
            "test_celu",
            Box::new(|a: &Attrs, ins: &Ins, _| {
                Ok(vec![ew::celu(req(ins, 0)?, a.f("alpha", 1.0))?])
            }),
        ),
        (
            "test_thresholdedrelu",
            Box::new(|a: &Attrs, ins: &Ins, _| {
                Ok(vec![ew::thresholded_relu(req(ins, 0)?, a.f("alpha", 1.0))?])
            }),
        ),
        (
            "test_shrink_",
            Box::new(|a: &Attrs, ins: &Ins, _| {
                Ok(vec![ew::shrink(
                    req(ins, 0)?,
                    a.f("bias", 0.0),
                    a.f("lambd", 0.5),
                )?])
            }),
        ),
        (
            "test_swish",
            Box::new(|a: &Attrs, ins: &Ins, _| {
                Ok(vec![ew::swish(req(ins, 0)?, a.f("alpha", 1.0))?])
            }),
        ),
        (
            "test_prelu_",
            Box::new(|_: &Attrs, ins: &Ins, _| Ok(vec![ew::prelu(req(ins, 0)?, req(ins, 1)?)?])),
        ),
        (
            "test_cumsum_",
            Box::new(|a: &Attrs, ins: &Ins, _| {
                let axis = req(ins, 1)?.to_i64_vec().first().copied().unwrap_or(0);
                Ok(vec![reduce::cumsum(
                    req(ins, 0)?,
                    axis,
                    a.i("exclusive", 0) != 0,
                    a.i("reverse", 0) != 0,
                )?])
            }),
        ),
        (
            "test_tril",
            Box::new(|_: &Attrs, ins: &Ins, _| {
                let k = ins
                    .get(1)
                    .and_then(|t| t.as_ref())
                    .map_or(0, |t| t.to_i64_vec().first().copied().unwrap_or(0));
                Ok(vec![index_ops::trilu(req(ins, 0)?, k, false)?])
            }),
        ),
        (
            "test_triu",
            Box::new(|_: &Attrs, ins: &Ins, _| {
                let k = ins
                    .get(1)
                    .and_then(|t| t.as_ref())
                    .map_or(0, |t| t.to_i64_vec().first().copied().unwrap_or(0));
                Ok(vec![index_ops::trilu(req(ins, 0)?, k, true)?])
            }),
        ),
        ("test_cos", un(UnaryOp::Cos)),
        (
            "test_hardmax_",
            Box::new(|a: &Attrs, ins: &Ins, opset| {
                Ok(vec![normalize::hardmax(
                    req(ins, 0)?,
                    a.i("axis", if opset >= 13 { -1 } else { 1 }),
                    opset < 13,
                )?])
            }),
        ),
        (
            "test_softmax_",
            Box::new(|a: &Attrs, ins: &Ins, opset| {
                Ok(vec![normalize::softmax(
                    req(ins, 0)?,
                    a.i("axis", if opset >= 13 { -1 } else { 1 }),
                    opset < 13,
                )?])
            }),
        ),
        (
            "test_logsoftmax_",
            Box::new(|a: &Attrs, ins: &Ins, opset| {
                Ok(vec![normalize::log_softmax(
                    req(ins, 0)?,
                    a.i("axis", if opset >= 13 { -1 } else { 1 }),
                    opset < 13,
                )?])
            }),
        ),
        (
            "test_instancenorm_",
            Box::new(|a: &Attrs, ins: &Ins, _| {
                Ok(vec![normalize::instance_norm(
                    req(ins, 0)?,
                    req(ins, 1)?,
                    req(ins, 2)?,
                    a.f("epsilon", 1e-5),
                )?])
            }),
        ),
        (
            "test_depthtospace_",
            Box::new(|a: &Attrs, ins: &Ins, _| {
                Ok(vec![shape_ops::depth_to_space(
                    req(ins, 0)?,
                    a.i("blocksize", 1) as usize,
                    a.s("mode", "DCR") == "CRD",
                )?])
            }),
        ),
        (
            "test_spacetodepth",
            Box::new(|a: &Attrs, ins: &Ins, _| {
                Ok(vec![shape_ops::space_to_depth(
                    req(ins, 0)?,
                    a.i("blocksize", 1) as usize,
                    a.s("mode", "DCR") == "CRD",
                )?])
            }),
        ),
        (
            "test_size",
            Box::new(|_: &Attrs, ins: &Ins, _| Ok(vec![shape_ops::size_of(req(ins, 0)?)])),
        ),
    ]
}

fn node_dir() -> PathBuf {
    let base = std::env::var_os("TAHOMA_CORPUS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/corpus"));
    base.join("onnx-1.23.2/node")
}

enum Loaded {
    NotApplicable,
    Case {
        node: Box<NodeProto>,
        opset: i64,
        ins: Vec<Option<Tensor>>,
        outs: Vec<Tensor>,
    },
}

fn load(dir: &Path) -> Loaded {
    let model =
        decode_model(&std::fs::read(dir.join("model.onnx")).expect("model.onnx")).expect("decodes");
    let g = model.graph.as_ref().expect("graph");
    if g.node.len() != 1 {
        return Loaded::NotApplicable;
    }
    let opset = model
        .opset_import
        .iter()
        .find(|o| {
            o.domain.as_deref().unwrap_or("").is_empty() || o.domain.as_deref() == Some("ai.onnx")
        })
        .and_then(|o| o.version)
        .unwrap_or(0);
    let data = dir.join("test_data_set_0");
    let mut by_name: HashMap<String, Tensor> = HashMap::new();
    for (k, vi) in g.input.iter().enumerate() {
        let p = data.join(format!("input_{k}.pb"));
        match decode_test_tensor(
            &std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
        ) {
            Ok(Some(t)) => {
                by_name.insert(vi.name.clone().unwrap_or_default(), t);
            }
            Ok(None) => return Loaded::NotApplicable,
            Err(e) => panic!("{}: {e}", p.display()),
        }
    }
    let mut outs = Vec::new();
    for k in 0..g.output.len() {
        let p = data.join(format!("output_{k}.pb"));
        match decode_test_tensor(
            &std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
        ) {
            Ok(Some(t)) => outs.push(t),
            Ok(None) => return Loaded::NotApplicable,
            Err(e) => panic!("{}: {e}", p.display()),
        }
    }
    let node = Box::new(g.node[0].clone());
    let ins = node
        .input
        .iter()
        .map(|n| {
            if n.is_empty() {
                None
            } else {
                by_name.get(n).cloned()
            }
        })
        .collect();
    Loaded::Case {
        node,
        opset,
        ins,
        outs,
    }
}

#[test]
fn kernels_match_onnx_node_tests_the_importer_does_not_route() {
    let dir = node_dir();
    assert!(
        dir.is_dir(),
        "ONNX node-test corpus {} is missing: run `bash tests/corpus/fetch.sh`",
        dir.display()
    );
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("read corpus")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .filter(|n| !n.ends_with("_expanded") && !n.contains("_expanded_"))
        .collect();
    names.sort();
    let fams = families();
    let (mut pass, mut na, mut known) = (0, 0, 0);
    let mut failures = Vec::new();
    for name in &names {
        // A family ending in `_` matches by prefix; otherwise the op name must end there
        // (`test_sin` and `test_sin_example`, not `test_sinh`).
        let matches = |p: &str| {
            if p.ends_with('_') {
                name.starts_with(p)
            } else {
                name == p || name.starts_with(&format!("{p}_"))
            }
        };
        let Some((_, kernel)) = fams.iter().find(|(p, _)| matches(p)) else {
            continue;
        };
        let (node, opset, ins, outs) = match load(&dir.join(name)) {
            Loaded::NotApplicable => {
                na += 1;
                continue;
            }
            Loaded::Case {
                node,
                opset,
                ins,
                outs,
            } => (node, opset, ins, outs),
        };
        let attrs = Attrs(&node.attribute);
        let expected_refusal = KNOWN.iter().find(|(n, _)| n == name);
        match kernel(&attrs, &ins, opset) {
            Err(e) if expected_refusal.is_some() => {
                known += 1;
                let _ = e;
            }
            Err(e) => failures.push(format!("{name}: kernel error: {e}")),
            Ok(got) => {
                if expected_refusal.is_some() {
                    failures.push(format!(
                        "{name}: now runs; remove it from KNOWN and check its values"
                    ));
                    continue;
                }
                let mut ok = true;
                for (k, want) in outs.iter().enumerate() {
                    let Some(g) = got.get(k) else {
                        failures.push(format!(
                            "{name}: kernel gave {} outputs, test has {}",
                            got.len(),
                            outs.len()
                        ));
                        ok = false;
                        break;
                    };
                    if let Err(m) = compare(want, g, Tolerance::default()) {
                        failures.push(format!("{name}: output {k}: {m}"));
                        ok = false;
                        break;
                    }
                }
                if ok {
                    pass += 1;
                }
            }
        }
    }
    println!("kernel node tests: pass {pass}, expected refusals {known}, not applicable (dtypes) {na}, fail {}", failures.len());
    assert!(
        failures.is_empty(),
        "{} kernel node tests fail:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
    assert!(
        pass >= 150,
        "only {pass} kernel node tests ran; the corpus looks incomplete"
    );
}
