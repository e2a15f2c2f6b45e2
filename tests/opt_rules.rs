//! Soundness of the optimizer's rules: for every rule, small graphs that satisfy its condition
//! (random shapes and inputs, several seeds) are rewritten by that rule alone, the rewritten
//! side is extracted, and both graphs are evaluated with the reference interpreter and compared
//! (fp32, rtol 1e-5; the scale rules with a C operand distribute a product over a sum and the
//! division rules move one rounding, so they are checked at rtol 1e-4). A rule that did not fire
//! fails its test; guards are checked by graphs that violate them (the rule must not fire).
//! Every rule of `opt::rules::all_rules` must appear here.

use std::collections::BTreeSet;
use tahoma_compiler::graph::{AttrValue, Attrs, Graph, Op, TensorType, ValueId};
use tahoma_compiler::interp::run_graph;
use tahoma_compiler::lower::Precision;
use tahoma_compiler::opt::rules::{all_rules, Phase};
use tahoma_compiler::opt::{apply_rules_preferring_rewrites, optimize, OptLevel, OptOptions};
use tahoma_compiler::tensor::{DType, Tensor};

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [lo, hi].
    fn dim(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
    fn val(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn tensor(&mut self, shape: &[usize]) -> Tensor {
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| self.val()).collect();
        Tensor::from_f32(DType::F32, shape, &v)
    }
}

fn f32t(shape: &[usize]) -> TensorType {
    TensorType::new(DType::F32, shape)
}

fn ints(v: &[i64]) -> AttrValue {
    AttrValue::Ints(v.to_vec())
}

/// Adds a node with inferred output named after it.
fn node(g: &mut Graph, name: &str, op: Op, attrs: Attrs, ins: Vec<ValueId>) -> ValueId {
    let n = g
        .add_node_inferred(name, op, attrs, ins, vec![format!("{name}_out")])
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    g.node(n).outputs[0]
}

fn splat(g: &mut Graph, name: &str, shape: &[usize], v: f32) -> ValueId {
    let n: usize = shape.iter().product();
    g.add_const(name, Tensor::from_f32(DType::F32, shape, &vec![v; n]))
}

fn gemm_attrs(alpha: f32, beta: f32, ta: bool, tb: bool) -> Attrs {
    Attrs::new()
        .with("alpha", AttrValue::Float(alpha))
        .with("beta", AttrValue::Float(beta))
        .with("transA", AttrValue::Int(ta as i64))
        .with("transB", AttrValue::Int(tb as i64))
}

fn transpose(g: &mut Graph, name: &str, x: ValueId, perm: &[i64]) -> ValueId {
    node(
        g,
        name,
        Op::Transpose,
        Attrs::new().with("perm", ints(perm)),
        vec![x],
    )
}

fn rules_named(name: &str) -> Vec<tahoma_compiler::opt::rules::Rule> {
    let rules: Vec<_> = Phase::ALL
        .iter()
        .flat_map(|p| p.rules())
        .filter(|r| r.name.as_str() == name)
        .collect();
    assert_eq!(rules.len(), 1, "rule {name} does not exist");
    rules
}

/// Rewrites `g` with rule `name` alone; checks it fired (or not, when `expect_fire` is false)
/// and that both sides agree within `rtol`. Returns the rewritten graph.
fn check(name: &str, g: &Graph, rng: &mut Rng, rtol: f32, expect_fire: bool) -> Graph {
    tahoma_compiler::graph::verify(g).unwrap();
    let (h, applied) =
        apply_rules_preferring_rewrites(g, &rules_named(name), Precision::Fp32).unwrap();
    let fired = applied.get(name).copied().unwrap_or(0);
    assert_eq!(
        fired > 0,
        expect_fire,
        "rule {name} fired {fired} times on\n{}",
        tahoma_compiler::graph::text::print(g)
    );
    let ins: Vec<Tensor> = g
        .inputs
        .iter()
        .map(|&v| rng.tensor(&g.ty(v).shape))
        .collect();
    let want = run_graph(g, &ins).unwrap();
    let got = run_graph(&h, &ins).unwrap();
    assert_eq!(want.len(), got.len());
    for (w, o) in want.iter().zip(&got) {
        assert_eq!(w.shape(), o.shape(), "{name}: shapes");
        assert_eq!(w.dtype(), o.dtype(), "{name}: dtypes");
        for (a, b) in w.to_f32_vec().iter().zip(o.to_f32_vec()) {
            let tol = rtol * a.abs().max(b.abs()) + 1e-6;
            assert!((a - b).abs() <= tol, "{name}: {a} vs {b}");
        }
    }
    if expect_fire {
        assert_ne!(
            tahoma_compiler::graph::text::print(g),
            tahoma_compiler::graph::text::print(&h),
            "{name}: the extracted graph is the original"
        );
    }
    h
}

const SEEDS: u64 = 6;

fn ops(g: &Graph) -> Vec<Op> {
    g.nodes.iter().map(|n| n.op).collect()
}

#[test]
fn every_rule_has_a_soundness_test() {
    let fusion = fusion_rule_names();
    let tiling = tiling_rule_names();
    let tested: BTreeSet<&str> = TESTED
        .iter()
        .copied()
        .chain(fusion.iter().map(|s| s.as_str()))
        .chain(tiling.iter().map(|(s, _)| s.as_str()))
        .collect();
    for (phase, name) in all_rules() {
        assert!(
            tested.contains(name.as_str()),
            "rule {name} ({}) has no soundness test",
            phase.name()
        );
    }
}

const TESTED: &[&str] = &[
    "identity",
    "transpose-identity",
    "transpose-compose",
    "reshape-compose",
    "reshape-noop",
    "neg-neg",
    "sum-two",
    "conv-batchnorm",
    "conv-bias-batchnorm",
    "mul-one",
    "mul-one-left",
    "div-one",
    "add-zero",
    "add-zero-left",
    "sub-zero",
    "matmul-transpose-a",
    "matmul-transpose-b",
    "gemm-transpose-a",
    "gemm-transpose-a-c",
    "gemm-transpose-b",
    "gemm-transpose-b-c",
    "matmul-bias",
    "matmul-bias-left",
    "matmul-bias-batched",
    "matmul-bias-batched-left",
    "gemm-bias",
    "gemm-bias-left",
    "matmul-scale",
    "matmul-scale-left",
    "matmul-div",
    "gemm-scale",
    "gemm-scale-left",
    "gemm-div",
    "gemm-scale-c",
    "gemm-scale-c-left",
    "gemm-div-c",
    "matmul-scale-batched",
    "matmul-scale-batched-left",
    "matmul-div-batched",
    "gemm-residual",
    "gemm-residual-left",
    "gemm-residual-reshape",
    "gemm-residual-reshape-left",
    "matmul-perm-a",
    "matmul-perm-b",
    "matmul-perm-y",
    "gelu-erf",
];

/// The fusion rules' names (each generated with and without bias, and the FusedConv ones with
/// and without a residual before the activation); all tested by `fusion_rules`.
fn fusion_rule_names() -> Vec<String> {
    let mut v = conv_fusion_rule_names();
    v.extend(gemm_fusion_rule_names());
    v
}

/// The convolution fusions; tested by `fusion_rules`.
fn conv_fusion_rule_names() -> Vec<String> {
    let mut v = Vec::new();
    for b in ["", "-b"] {
        for act in ["relu", "sigmoid", "tanh", "gelu"] {
            v.push(format!("conv-{act}{b}"));
        }
        for base in [
            "conv-silu",
            "conv-silu-left",
            "conv-residual",
            "conv-residual-left",
        ] {
            v.push(format!("{base}{b}"));
        }
        for r in ["", "r"] {
            let sfx = match (b, r) {
                ("", "") => String::new(),
                _ => format!("-{}{r}", &b[b.len().min(1)..]),
            };
            for act in ["relu", "sigmoid", "tanh", "gelu", "silu", "silu-left"] {
                v.push(format!("fused-conv-{act}{sfx}"));
            }
        }
        for base in ["fused-conv-residual-post", "fused-conv-residual-post-left"] {
            v.push(format!("{base}{b}"));
        }
    }
    v
}

/// The Gemm/MatMul activation fusions; tested by `gemm_fusion_rules`.
fn gemm_fusion_rule_names() -> Vec<String> {
    let mut v = Vec::new();
    for act in ["relu", "sigmoid", "tanh", "gelu"] {
        for sfx in ["", "-c", "-reshape", "-c-reshape"] {
            v.push(format!("gemm-{act}{sfx}"));
        }
        v.push(format!("matmul-{act}"));
    }
    v
}

#[test]
fn canonicalise_rules() {
    for seed in 1..=SEEDS {
        let mut r = Rng(seed * 7919);
        let shape: Vec<usize> = (0..r.dim(1, 4)).map(|_| r.dim(1, 5)).collect();
        let rank = shape.len();

        // identity (inside a chain, so the root stays)
        let mut g = Graph::new("t");
        let x = g.add_input("x", f32t(&shape));
        let a = node(&mut g, "a", Op::Relu, Attrs::new(), vec![x]);
        let i = node(&mut g, "i", Op::Identity, Attrs::new(), vec![a]);
        let y = node(&mut g, "y", Op::Exp, Attrs::new(), vec![i]);
        g.outputs.push(y);
        let h = check("identity", &g, &mut r, 1e-5, true);
        assert_eq!(ops(&h), [Op::Relu, Op::Exp]);

        // transpose-identity
        let mut g = Graph::new("t");
        let x = g.add_input("x", f32t(&shape));
        let id: Vec<i64> = (0..rank as i64).collect();
        let t = transpose(&mut g, "t", x, &id);
        let y = node(&mut g, "y", Op::Exp, Attrs::new(), vec![t]);
        g.outputs.push(y);
        check("transpose-identity", &g, &mut r, 1e-5, true);

        // transpose-compose: two random permutations (sometimes inverse, giving x)
        let mut p: Vec<i64> = (0..rank as i64).collect();
        let mut q = p.clone();
        for k in (1..rank).rev() {
            p.swap(k, r.dim(0, k));
            q.swap(k, r.dim(0, k));
        }
        if seed % 2 == 0 {
            // q = p^-1
            for (i, &d) in p.iter().enumerate() {
                q[d as usize] = i as i64;
            }
        }
        let ident = |v: &[i64]| v.iter().enumerate().all(|(i, &d)| d == i as i64);
        if !(ident(&p) && ident(&q)) {
            let mut g = Graph::new("t");
            let x = g.add_input("x", f32t(&shape));
            let t1 = transpose(&mut g, "t1", x, &q);
            let t2 = transpose(&mut g, "t2", t1, &p);
            let y = node(&mut g, "y", Op::Exp, Attrs::new(), vec![t2]);
            g.outputs.push(y);
            let h = check("transpose-compose", &g, &mut r, 1e-5, true);
            assert!(h.nodes.iter().filter(|n| n.op == Op::Transpose).count() <= 1);
        }

        // reshape-compose, reshape-noop
        let n: usize = shape.iter().product();
        let mut g = Graph::new("t");
        let x = g.add_input("x", f32t(&shape));
        let r1 = node(
            &mut g,
            "r1",
            Op::Reshape,
            Attrs::new().with("shape", ints(&[n as i64])),
            vec![x],
        );
        let r2 = node(
            &mut g,
            "r2",
            Op::Reshape,
            Attrs::new().with("shape", ints(&[1, n as i64])),
            vec![r1],
        );
        let y = node(&mut g, "y", Op::Exp, Attrs::new(), vec![r2]);
        g.outputs.push(y);
        let h = check("reshape-compose", &g, &mut r, 1e-5, true);
        assert_eq!(h.nodes.iter().filter(|n| n.op == Op::Reshape).count(), 1);
        let mut g = Graph::new("t");
        let x = g.add_input("x", f32t(&shape));
        let s: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let r1 = node(
            &mut g,
            "r1",
            Op::Reshape,
            Attrs::new().with("shape", ints(&s)),
            vec![x],
        );
        let y = node(&mut g, "y", Op::Exp, Attrs::new(), vec![r1]);
        g.outputs.push(y);
        let h = check("reshape-noop", &g, &mut r, 1e-5, true);
        assert_eq!(ops(&h), [Op::Exp]);

        // neg-neg
        let mut g = Graph::new("t");
        let x = g.add_input("x", f32t(&shape));
        let a = node(&mut g, "a", Op::Neg, Attrs::new(), vec![x]);
        let b = node(&mut g, "b", Op::Neg, Attrs::new(), vec![a]);
        let y = node(&mut g, "y", Op::Exp, Attrs::new(), vec![b]);
        g.outputs.push(y);
        let h = check("neg-neg", &g, &mut r, 1e-5, true);
        assert_eq!(ops(&h), [Op::Exp]);

        // sum-two: a two-operand Sum (broadcasting a trailing-dims operand) is an Add; three
        // operands stay a Sum
        let mut g = Graph::new("t");
        let x = g.add_input("x", f32t(&shape));
        let yb = g.add_input("yb", f32t(&shape[rank - r.dim(1, rank)..]));
        let s2 = node(&mut g, "s", Op::Sum, Attrs::new(), vec![x, yb]);
        g.outputs.push(s2);
        let h = check("sum-two", &g, &mut r, 1e-5, true);
        assert_eq!(ops(&h), [Op::Add]);
        let mut g = Graph::new("t");
        let x = g.add_input("x", f32t(&shape));
        let s3 = node(&mut g, "s", Op::Sum, Attrs::new(), vec![x, x, x]);
        g.outputs.push(s3);
        check("sum-two", &g, &mut r, 1e-5, false);

        // neutral constants: a splat of the trailing dims (or a scalar), never growing x
        let cshape: Vec<usize> = if seed % 3 == 0 {
            vec![]
        } else {
            shape[rank - r.dim(1, rank)..].to_vec()
        };
        for (rule, op, left, v) in [
            ("mul-one", Op::Mul, false, 1.0),
            ("mul-one-left", Op::Mul, true, 1.0),
            ("div-one", Op::Div, false, 1.0),
            ("add-zero", Op::Add, false, 0.0),
            ("add-zero-left", Op::Add, true, 0.0),
            ("sub-zero", Op::Sub, false, 0.0),
        ] {
            let mut g = Graph::new("t");
            let x = g.add_input("x", f32t(&shape));
            let c = splat(&mut g, "c", &cshape, v);
            let ins = if left { vec![c, x] } else { vec![x, c] };
            let m = node(&mut g, "m", op, Attrs::new(), ins);
            let y = node(&mut g, "y", Op::Exp, Attrs::new(), vec![m]);
            g.outputs.push(y);
            let h = check(rule, &g, &mut r, 1e-5, true);
            assert_eq!(ops(&h), [Op::Exp], "{rule}");
            // Guard: a constant that is not neutral, or one that grows x by broadcasting.
            let mut g = Graph::new("t");
            let x = g.add_input("x", f32t(&shape));
            let c = splat(&mut g, "c", &cshape, v + 0.5);
            let ins = if left { vec![c, x] } else { vec![x, c] };
            let m = node(&mut g, "m", op, Attrs::new(), ins);
            g.outputs.push(m);
            check(rule, &g, &mut r, 1e-5, false);
            let mut g = Graph::new("t");
            let x = g.add_input("x", f32t(&shape));
            let mut big = vec![2];
            big.extend_from_slice(&shape);
            let c = splat(&mut g, "c", &big, v);
            let ins = if left { vec![c, x] } else { vec![x, c] };
            let m = node(&mut g, "m", op, Attrs::new(), ins);
            g.outputs.push(m);
            check(rule, &g, &mut r, 1e-5, false);
        }
    }
}

/// A Conv (1-D or 2-D, random group/stride/pads, constant weights, with or without a constant
/// bias) followed by an inference BatchNormalization with constant parameters (positive
/// variances). Returns the graph and whether the weights were constants.
fn conv_bn(r: &mut Rng, with_bias: bool, const_weights: bool) -> Graph {
    let two_d = r.dim(0, 1) == 1;
    let group = r.dim(1, 3);
    let (cin, cout) = (group * r.dim(1, 3), group * r.dim(1, 3));
    let k = r.dim(1, 3);
    let st = r.dim(1, 2) as i64;
    let p = r.dim(0, k - 1) as i64;
    let sp: Vec<usize> = if two_d {
        vec![r.dim(k, 7), r.dim(k, 7)]
    } else {
        vec![r.dim(k, 9)]
    };
    let nsp = sp.len();
    let mut xs = vec![r.dim(1, 2), cin];
    xs.extend(&sp);
    let mut ws = vec![cout, cin / group];
    ws.extend(vec![k; nsp]);
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(&xs));
    let w = if const_weights {
        let t = r.tensor(&ws);
        g.add_const("w", t)
    } else {
        g.add_input("w", f32t(&ws))
    };
    let mut ins = vec![x, w];
    if with_bias {
        let t = r.tensor(&[cout]);
        ins.push(g.add_const("cb", t));
    }
    let attrs = Attrs::new()
        .with("kernel_shape", ints(&vec![k as i64; nsp]))
        .with("strides", ints(&vec![st; nsp]))
        .with("dilations", ints(&vec![1; nsp]))
        .with("pads", ints(&vec![p; 2 * nsp]))
        .with("group", AttrValue::Int(group as i64));
    let c = node(&mut g, "conv", Op::Conv, attrs, ins);
    let mut params = Vec::new();
    for (i, name) in ["s", "b", "m", "v"].iter().enumerate() {
        let mut t = r.tensor(&[cout]).to_f32_vec();
        if i == 3 {
            t.iter_mut().for_each(|v| *v = v.abs() + 0.05);
        }
        params.push(g.add_const(*name, Tensor::from_f32(DType::F32, &[cout], &t)));
    }
    let mut bn_ins = vec![c];
    bn_ins.extend(params);
    let bn = node(
        &mut g,
        "bn",
        Op::BatchNormalization,
        Attrs::new().with("epsilon", AttrValue::Float(1e-5)),
        bn_ins,
    );
    let y = node(&mut g, "y", Op::Relu, Attrs::new(), vec![bn]);
    g.outputs.push(y);
    g
}

/// The BatchNorm fold moves the per-channel scale into the weights (one product per weight
/// instead of one per output): rtol 1e-4.
#[test]
fn batchnorm_folds_into_the_conv_before_it() {
    for seed in 1..=SEEDS {
        let mut r = Rng(seed * 6_700_417);
        for (rule, with_bias) in [("conv-batchnorm", false), ("conv-bias-batchnorm", true)] {
            let g = conv_bn(&mut r, with_bias, true);
            let h = check(rule, &g, &mut r, 1e-4, true);
            assert_eq!(ops(&h), [Op::Conv, Op::Relu], "{rule}");
            // Guard: weights that are not constants stay a BatchNormalization.
            let g = conv_bn(&mut r, with_bias, false);
            check(rule, &g, &mut r, 1e-4, false);
        }
    }
}

#[test]
fn algebra_rules() {
    for seed in 1..=SEEDS {
        let mut r = Rng(seed * 104_729);
        let (m, k, n) = (r.dim(1, 40), r.dim(1, 40), r.dim(1, 40));

        // matmul-transpose-a / -b
        let mut g = Graph::new("t");
        let a = g.add_input("a", f32t(&[k, m]));
        let b = g.add_input("b", f32t(&[k, n]));
        let at = transpose(&mut g, "at", a, &[1, 0]);
        let y = node(&mut g, "y", Op::MatMul, Attrs::new(), vec![at, b]);
        g.outputs.push(y);
        let h = check("matmul-transpose-a", &g, &mut r, 1e-5, true);
        assert_eq!(ops(&h), [Op::Gemm]);
        assert_eq!(h.nodes[0].name, "y", "the Gemm keeps the MatMul's name");
        let mut g = Graph::new("t");
        let a = g.add_input("a", f32t(&[m, k]));
        let b = g.add_input("b", f32t(&[n, k]));
        let bt = transpose(&mut g, "bt", b, &[1, 0]);
        let y = node(&mut g, "y", Op::MatMul, Attrs::new(), vec![a, bt]);
        g.outputs.push(y);
        let h = check("matmul-transpose-b", &g, &mut r, 1e-5, true);
        assert_eq!(ops(&h), [Op::Gemm]);
        // Guard: a batched (3-D) transpose is not a Gemm operand.
        let mut g = Graph::new("t");
        let a = g.add_input("a", f32t(&[2, m, k]));
        let b = g.add_input("b", f32t(&[2, n, k]));
        let bt = transpose(&mut g, "bt", b, &[0, 2, 1]);
        let y = node(&mut g, "y", Op::MatMul, Attrs::new(), vec![a, bt]);
        g.outputs.push(y);
        check("matmul-transpose-b", &g, &mut r, 1e-5, false);

        // gemm-transpose-{a,b}[-c]: random flags, alpha, beta
        let (ta, tb) = (r.next() % 2 == 1, r.next() % 2 == 1);
        let (alpha, beta) = (r.val() * 2.0, r.val() * 2.0);
        for (rule, which, with_c) in [
            ("gemm-transpose-a", 0, false),
            ("gemm-transpose-a-c", 0, true),
            ("gemm-transpose-b", 1, false),
            ("gemm-transpose-b-c", 1, true),
        ] {
            let mut g = Graph::new("t");
            // The operand as the Gemm sees it after the Transpose.
            let a_seen = if ta { [k, m] } else { [m, k] };
            let b_seen = if tb { [n, k] } else { [k, n] };
            let sa = if which == 0 {
                [a_seen[1], a_seen[0]]
            } else {
                a_seen
            };
            let sb = if which == 1 {
                [b_seen[1], b_seen[0]]
            } else {
                b_seen
            };
            let a = g.add_input("a", f32t(&sa));
            let b = g.add_input("b", f32t(&sb));
            let (a, b) = if which == 0 {
                (transpose(&mut g, "t", a, &[1, 0]), b)
            } else {
                (a, transpose(&mut g, "t", b, &[1, 0]))
            };
            let mut ins = vec![a, b];
            if with_c {
                ins.push(g.add_input("c", f32t(&[n])));
            }
            let y = node(&mut g, "y", Op::Gemm, gemm_attrs(alpha, beta, ta, tb), ins);
            g.outputs.push(y);
            let h = check(rule, &g, &mut r, 1e-5, true);
            assert_eq!(ops(&h), [Op::Gemm], "{rule}");
        }

        // matmul-bias[-left], gemm-bias[-left]: bias [N], [1, N] or [M, N]
        let bias_shape = match seed % 3 {
            0 => vec![n],
            1 => vec![1, n],
            _ => vec![m, n],
        };
        for (rule, gemm, left) in [
            ("matmul-bias", false, false),
            ("matmul-bias-left", false, true),
            ("gemm-bias", true, false),
            ("gemm-bias-left", true, true),
        ] {
            let mut g = Graph::new("t");
            let a = g.add_input("a", f32t(&[m, k]));
            let b = g.add_input("b", f32t(&[k, n]));
            let c = g.add_input("bias", f32t(&bias_shape));
            let p = if gemm {
                node(
                    &mut g,
                    "p",
                    Op::Gemm,
                    gemm_attrs(alpha, 0.0, false, false),
                    vec![a, b],
                )
            } else {
                node(&mut g, "p", Op::MatMul, Attrs::new(), vec![a, b])
            };
            let ins = if left { vec![c, p] } else { vec![p, c] };
            let y = node(&mut g, "y", Op::Add, Attrs::new(), ins);
            g.outputs.push(y);
            let h = check(rule, &g, &mut r, 1e-5, true);
            assert_eq!(ops(&h), [Op::Gemm], "{rule}");
            // Guard: a bias that grows the result ([2, M, N]) stays an Add.
            let mut g = Graph::new("t");
            let a = g.add_input("a", f32t(&[m, k]));
            let b = g.add_input("b", f32t(&[k, n]));
            let c = g.add_input("bias", f32t(&[2, m, n]));
            let p = if gemm {
                node(
                    &mut g,
                    "p",
                    Op::Gemm,
                    gemm_attrs(alpha, 0.0, false, false),
                    vec![a, b],
                )
            } else {
                node(&mut g, "p", Op::MatMul, Attrs::new(), vec![a, b])
            };
            let ins = if left { vec![c, p] } else { vec![p, c] };
            let y = node(&mut g, "y", Op::Add, Attrs::new(), ins);
            g.outputs.push(y);
            check(rule, &g, &mut r, 1e-5, false);
        }

        // matmul-bias-batched[-left]: a linear layer over [B.., M, K]
        let batch: Vec<usize> = (0..r.dim(1, 2)).map(|_| r.dim(1, 3)).collect();
        for (rule, left) in [
            ("matmul-bias-batched", false),
            ("matmul-bias-batched-left", true),
        ] {
            let mut sa = batch.clone();
            sa.extend([m, k]);
            let mut g = Graph::new("t");
            let a = g.add_input("a", f32t(&sa));
            let b = g.add_input("w", f32t(&[k, n]));
            let bshape = if seed % 2 == 0 { vec![n] } else { vec![1, n] };
            let c = g.add_input("bias", f32t(&bshape));
            let p = node(&mut g, "p", Op::MatMul, Attrs::new(), vec![a, b]);
            let ins = if left { vec![c, p] } else { vec![p, c] };
            let y = node(&mut g, "y", Op::Add, Attrs::new(), ins);
            g.outputs.push(y);
            let h = check(rule, &g, &mut r, 1e-5, true);
            assert_eq!(ops(&h), [Op::Reshape, Op::Gemm, Op::Reshape], "{rule}");
            // Guard: a bias with a batch dim ([M, N] per row block is not one row vector).
            let mut g = Graph::new("t");
            let a = g.add_input("a", f32t(&sa));
            let b = g.add_input("w", f32t(&[k, n]));
            let c = g.add_input("bias", f32t(&[m, n]));
            let p = node(&mut g, "p", Op::MatMul, Attrs::new(), vec![a, b]);
            let ins = if left { vec![c, p] } else { vec![p, c] };
            let y = node(&mut g, "y", Op::Add, Attrs::new(), ins);
            g.outputs.push(y);
            check(rule, &g, &mut r, 1e-5, false);
        }

        // scale rules: the factor is a scalar or a [1, 1] splat
        let kval = 0.25 + r.val().abs() * 3.0;
        let kshape: Vec<usize> = if seed % 2 == 0 { vec![] } else { vec![1, 1] };
        for (rule, inner, op, left, with_c, rtol) in [
            ("matmul-scale", Op::MatMul, Op::Mul, false, false, 1e-5),
            ("matmul-scale-left", Op::MatMul, Op::Mul, true, false, 1e-5),
            ("matmul-div", Op::MatMul, Op::Div, false, false, 1e-4),
            ("gemm-scale", Op::Gemm, Op::Mul, false, false, 1e-5),
            ("gemm-scale-left", Op::Gemm, Op::Mul, true, false, 1e-5),
            ("gemm-div", Op::Gemm, Op::Div, false, false, 1e-4),
            ("gemm-scale-c", Op::Gemm, Op::Mul, false, true, 1e-4),
            ("gemm-scale-c-left", Op::Gemm, Op::Mul, true, true, 1e-4),
            ("gemm-div-c", Op::Gemm, Op::Div, false, true, 1e-4),
        ] {
            let mut g = Graph::new("t");
            let a = g.add_input("a", f32t(&[m, k]));
            let b = g.add_input("b", f32t(&[k, n]));
            let mut ins = vec![a, b];
            if with_c {
                ins.push(g.add_input("c", f32t(&[m, n])));
            }
            let p = if inner == Op::Gemm {
                node(
                    &mut g,
                    "p",
                    Op::Gemm,
                    gemm_attrs(alpha, beta, false, false),
                    ins,
                )
            } else {
                node(&mut g, "p", Op::MatMul, Attrs::new(), ins)
            };
            let c = splat(&mut g, "k", &kshape, kval);
            let ins = if left { vec![c, p] } else { vec![p, c] };
            let y = node(&mut g, "y", op, Attrs::new(), ins);
            g.outputs.push(y);
            let h = check(rule, &g, &mut r, rtol, true);
            assert_eq!(ops(&h), [Op::Gemm], "{rule}");
            // Guard: a factor that is not a splat (needs two distinct columns).
            if n < 2 {
                continue;
            }
            let mut g = Graph::new("t");
            let a = g.add_input("a", f32t(&[m, k]));
            let b = g.add_input("b", f32t(&[k, n]));
            let mut ins = vec![a, b];
            if with_c {
                ins.push(g.add_input("c", f32t(&[m, n])));
            }
            let p = if inner == Op::Gemm {
                node(
                    &mut g,
                    "p",
                    Op::Gemm,
                    gemm_attrs(alpha, beta, false, false),
                    ins,
                )
            } else {
                node(&mut g, "p", Op::MatMul, Attrs::new(), ins)
            };
            let vals: Vec<f32> = (0..n).map(|i| 1.0 + i as f32).collect();
            let c = g.add_const("k", Tensor::from_f32(DType::F32, &[n], &vals));
            let ins = if left { vec![c, p] } else { vec![p, c] };
            let y = node(&mut g, "y", op, Attrs::new(), ins);
            g.outputs.push(y);
            check(rule, &g, &mut r, rtol, false);
        }
    }
}

/// A linear layer written the way exporters spell it: MatMul by a transposed weight, a bias
/// add and a scale; -O2 turns it into one Gemm, names kept, and the e-graph stays small.
#[test]
fn rules_compose_into_one_gemm_and_the_egraph_stays_small() {
    let mut r = Rng(42);
    let (m, k, n) = (16, 24, 8);
    let mut g = Graph::new("linear");
    let x = g.add_input("x", f32t(&[m, k]));
    let w = g.add_input("w", f32t(&[n, k]));
    let bias = g.add_input("bias", f32t(&[n]));
    let wt = transpose(&mut g, "wt", w, &[1, 0]);
    let id = node(&mut g, "id", Op::Identity, Attrs::new(), vec![wt]);
    let p = node(&mut g, "mm", Op::MatMul, Attrs::new(), vec![x, id]);
    let s = node(&mut g, "add", Op::Add, Attrs::new(), vec![p, bias]);
    let half = splat(&mut g, "half", &[], 0.5);
    let y = node(&mut g, "scale", Op::Mul, Attrs::new(), vec![s, half]);
    g.outputs.push(y);
    let o = optimize(
        &g,
        &OptOptions {
            level: OptLevel::O2,
            precision: Precision::Fp32,
            ..Default::default()
        },
    )
    .unwrap();
    let h = &o.graph;
    assert_eq!(
        ops(h),
        [Op::Gemm],
        "{}",
        tahoma_compiler::graph::text::print(h)
    );
    assert_eq!(h.nodes[0].name, "scale");
    assert_eq!(h.value(h.outputs[0]).name, "scale_out");
    let gemm = &h.nodes[0].attrs;
    assert_eq!(gemm.float("alpha").unwrap(), 0.5);
    assert_eq!(gemm.float("beta").unwrap(), 0.5);
    assert_eq!(gemm.int("transB").unwrap(), 1);
    let ins: Vec<Tensor> = g.inputs.iter().map(|&v| r.tensor(&g.ty(v).shape)).collect();
    let want = run_graph(&g, &ins).unwrap()[0].to_f32_vec();
    let got = run_graph(h, &ins).unwrap()[0].to_f32_vec();
    for (a, b) in want.iter().zip(&got) {
        assert!(
            (a - b).abs() <= 1e-4 * a.abs().max(b.abs()) + 1e-6,
            "{a} vs {b}"
        );
    }
    assert!(o.report.predicted_cycles_after < o.report.predicted_cycles_before);
    let last = o.report.phases.last().unwrap();
    assert!(last.enodes <= 30, "e-graph grew to {} e-nodes", last.enodes);
    assert!(o.report.phases.iter().all(|p| p.stop == "saturated"));
    // -O0 leaves the graph alone; -O1 only canonicalises (the Identity goes).
    let o0 = optimize(
        &g,
        &OptOptions {
            level: OptLevel::O0,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(o0.graph, g);
    let o1 = optimize(
        &g,
        &OptOptions {
            level: OptLevel::O1,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        ops(&o1.graph),
        [Op::Transpose, Op::MatMul, Op::Add, Op::Mul]
    );
}

/// Limits degrade gracefully: a node limit below the graph's size stops a phase with a warning
/// naming it, and the result is still a correct graph.
#[test]
fn a_phase_at_its_limit_warns_and_keeps_the_best_so_far() {
    let mut g = Graph::new("chain");
    let mut v = g.add_input("x", f32t(&[4, 4]));
    for i in 0..20 {
        v = node(&mut g, &format!("n{i}"), Op::Neg, Attrs::new(), vec![v]);
    }
    g.outputs.push(v);
    let mut opts = OptOptions::default();
    opts.limits.nodes = 5;
    let o = optimize(&g, &opts).unwrap();
    assert!(
        o.report
            .warnings
            .iter()
            .any(|w| w.contains("canonicalise") && w.contains("node limit")),
        "{:?}",
        o.report.warnings
    );
    let mut r = Rng(3);
    let ins = vec![r.tensor(&[4, 4])];
    assert_eq!(
        run_graph(&g, &ins).unwrap(),
        run_graph(&o.graph, &ins).unwrap()
    );
    // Without the limit the 20 negations cancel completely.
    let o = optimize(&g, &OptOptions::default()).unwrap();
    assert!(o.graph.nodes.iter().all(|n| n.op == Op::Identity));
}

/// Snapshots of `--emit graph-opt` for graphs of `tests/kernels/` the optimizer changes or
/// must leave alone, with the e-graph sizes of the final phase; each optimised graph is run
/// against the imported one on the interpreter.
#[test]
fn graph_opt_snapshots() {
    use tahoma_compiler::onnx::{import_text, ImportOptions, NoExternalData};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kernels");
    for (name, max_enodes) in [
        // 22: the tiling phase adds a `tile_n = 128` alternative of the 192-column FusedGemm.
        ("mlp_block", 22),
        ("gemm_bias_relu", 10),
        ("transpose", 10),
        ("elementwise_chain", 15),
        ("shape_ops", 40),
        ("residual_conv", 30),
        ("conv", 30),
        ("conv_silu_residual", 40),
    ] {
        let src = std::fs::read_to_string(dir.join(format!("{name}.onnxtxt"))).unwrap();
        let g = import_text(&src, &ImportOptions::default(), &NoExternalData).unwrap();
        let o = optimize(&g, &OptOptions::default()).unwrap();
        let last = o.report.phases.last().unwrap();
        assert!(
            last.enodes <= max_enodes,
            "{name}: {} e-nodes (at most {max_enodes} expected)",
            last.enodes
        );
        assert!(
            o.report.phases.iter().all(|p| p.stop == "saturated"),
            "{name}"
        );
        // The optimised graph computes what the imported one does (interpreter, fp32; the
        // conformance corpora get the same check in tests/opt_conformance.rs).
        let mut r = Rng(7);
        let ins: Vec<Tensor> = g.inputs.iter().map(|&v| r.tensor(&g.ty(v).shape)).collect();
        let (want, got) = (
            run_graph(&g, &ins).unwrap(),
            run_graph(&o.graph, &ins).unwrap(),
        );
        assert_eq!(want.len(), got.len(), "{name}");
        for (w, h) in want.iter().zip(&got) {
            assert_eq!(w.shape(), h.shape(), "{name}");
            for (a, b) in w.to_f32_vec().iter().zip(h.to_f32_vec()) {
                assert!((a - b).abs() <= 1e-5 * a.abs() + 1e-6, "{name}: {a} vs {b}");
            }
        }
        insta::assert_snapshot!(
            format!("graph_opt_{name}"),
            tahoma_compiler::graph::text::print_with(
                &o.graph,
                tahoma_compiler::graph::text::PrintOptions {
                    elide_above: Some(16)
                }
            )
        );
    }
}

/// The activation op a fusion rule's name mentions (`Gelu` with a random approximation).
fn activation_named(name: &str, r: &mut Rng) -> (Op, Attrs) {
    if name.contains("relu") {
        (Op::Relu, Attrs::new())
    } else if name.contains("sigmoid") {
        (Op::Sigmoid, Attrs::new())
    } else if name.contains("tanh") {
        (Op::Tanh, Attrs::new())
    } else {
        let approx = if r.next().is_multiple_of(2) {
            "none"
        } else {
            "tanh"
        };
        (
            Op::Gelu,
            Attrs::new().with("approximate", AttrValue::Str(approx.into())),
        )
    }
}

fn conv_attrs(k: usize, pad: usize) -> Attrs {
    Attrs::new()
        .with("kernel_shape", ints(&[k as i64, k as i64]))
        .with("strides", ints(&[1, 1]))
        .with("dilations", ints(&[1, 1]))
        .with("pads", ints(&[pad as i64; 4]))
        .with("group", AttrValue::Int(1))
}

/// The graph a fusion rule matches, built from its name: the producer (a Conv, or a FusedConv
/// with no activation and perhaps a residual before it; for `residual-post`, a FusedConv with
/// an activation), then the consumer the rule folds in.
fn fusion_case(name: &str, r: &mut Rng) -> Graph {
    let (c, co, h, w, k) = (
        r.dim(1, 4),
        r.dim(1, 5),
        r.dim(3, 7),
        r.dim(3, 7),
        r.dim(1, 3),
    );
    let pad = k / 2;
    let bias = name.ends_with("-b") || name.ends_with("-br");
    let pre_residual = name.ends_with("-r") || name.ends_with("-br");
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(&[1, c, h, w]));
    let wt = g.add_input("w", f32t(&[co, c, k, k]));
    let mut ins = vec![x, wt];
    if bias {
        ins.push(g.add_input("b", f32t(&[co])));
    }
    let out_ty = [1, co, h + 2 * pad - k + 1, w + 2 * pad - k + 1];
    let conv = if name.starts_with("conv-") {
        node(&mut g, "conv", Op::Conv, conv_attrs(k, pad), ins)
    } else {
        let post = name.contains("residual-post");
        let act = if post { "relu" } else { "none" };
        if pre_residual {
            ins.push(g.add_input("r0", f32t(&out_ty)));
        }
        let a = conv_attrs(k, pad)
            .with("activation", AttrValue::Str(act.into()))
            .with("residual", AttrValue::Int(pre_residual as i64));
        node(&mut g, "conv", Op::FusedConv, a, ins)
    };
    let y = if name.contains("silu") {
        let sg = node(&mut g, "sig", Op::Sigmoid, Attrs::new(), vec![conv]);
        let ins = if name.contains("-left") {
            vec![sg, conv]
        } else {
            vec![conv, sg]
        };
        node(&mut g, "y", Op::Mul, Attrs::new(), ins)
    } else if name.contains("residual") {
        let res = g.add_input("res", f32t(&out_ty));
        let ins = if name.contains("-left") {
            vec![res, conv]
        } else {
            vec![conv, res]
        };
        node(&mut g, "y", Op::Add, Attrs::new(), ins)
    } else {
        let (op, attrs) = activation_named(name, r);
        node(&mut g, "y", op, attrs, vec![conv])
    };
    g.outputs.push(y);
    g
}

#[test]
fn fusion_rules() {
    for name in conv_fusion_rule_names() {
        for seed in 1..=SEEDS {
            let mut r = Rng(seed * 7_919);
            let g = fusion_case(&name, &mut r);
            let h = check(&name, &g, &mut r, 1e-5, true);
            assert_eq!(ops(&h), [Op::FusedConv], "{name}");
            assert_eq!(
                h.nodes[0].name, "y",
                "{name}: the fused node keeps the last node's name"
            );
        }
    }
    // Guards: a residual of another shape (broadcast) does not fuse; an activation after a
    // residual added after another activation does not fold in.
    let mut r = Rng(5);
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(&[1, 2, 4, 4]));
    let w = g.add_input("w", f32t(&[3, 2, 1, 1]));
    let c = node(&mut g, "conv", Op::Conv, conv_attrs(1, 0), vec![x, w]);
    let res = g.add_input("res", f32t(&[1, 3, 1, 1]));
    let y = node(&mut g, "y", Op::Add, Attrs::new(), vec![c, res]);
    g.outputs.push(y);
    check("conv-residual", &g, &mut r, 1e-5, false);
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(&[1, 2, 4, 4]));
    let w = g.add_input("w", f32t(&[3, 2, 1, 1]));
    let res = g.add_input("res", f32t(&[1, 3, 4, 4]));
    let a = conv_attrs(1, 0)
        .with("activation", AttrValue::Str("sigmoid".into()))
        .with("residual", AttrValue::Int(2));
    let c = node(&mut g, "conv", Op::FusedConv, a, vec![x, w, res]);
    let y = node(&mut g, "y", Op::Relu, Attrs::new(), vec![c]);
    g.outputs.push(y);
    check("fused-conv-relu-r", &g, &mut r, 1e-5, false);

    // gelu-erf: x * (erf(x / sqrt 2) + 1) * 0.5, as exported from PyTorch.
    for seed in 1..=SEEDS {
        let mut r = Rng(seed * 31);
        let (m, n) = (r.dim(1, 9), r.dim(1, 33));
        let mut g = Graph::new("t");
        let x = g.add_input("x", f32t(&[m, n]));
        let c1 = splat(&mut g, "c1", &[], std::f32::consts::SQRT_2);
        let one = splat(&mut g, "one", &[], 1.0);
        let half = splat(&mut g, "half", &[], 0.5);
        let d = node(&mut g, "div", Op::Div, Attrs::new(), vec![x, c1]);
        let e = node(&mut g, "erf", Op::Erf, Attrs::new(), vec![d]);
        let a = node(&mut g, "add", Op::Add, Attrs::new(), vec![e, one]);
        let m1 = node(&mut g, "mul", Op::Mul, Attrs::new(), vec![x, a]);
        let y = node(&mut g, "y", Op::Mul, Attrs::new(), vec![m1, half]);
        g.outputs.push(y);
        let h = check("gelu-erf", &g, &mut r, 1e-5, true);
        assert_eq!(ops(&h), [Op::Gelu]);
    }
}

#[test]
fn gemm_fusion_rules() {
    for name in gemm_fusion_rule_names() {
        for seed in 1..=SEEDS {
            let mut r = Rng(seed * 6_007);
            let (m, k, n) = (r.dim(1, 20), r.dim(1, 20), r.dim(1, 20));
            let mut g = Graph::new("t");
            let a = g.add_input("a", f32t(&[m, k]));
            let b = g.add_input("b", f32t(&[k, n]));
            let p = if name.starts_with("matmul-") {
                node(&mut g, "p", Op::MatMul, Attrs::new(), vec![a, b])
            } else {
                let mut ins = vec![a, b];
                if name.contains("-c") {
                    ins.push(g.add_input("c", f32t(&[n])));
                }
                let (alpha, beta) = (r.val() * 2.0, r.val() * 2.0);
                node(
                    &mut g,
                    "p",
                    Op::Gemm,
                    gemm_attrs(alpha, beta, false, false),
                    ins,
                )
            };
            let p = if name.ends_with("-reshape") {
                let shape = Attrs::new().with("shape", ints(&[1, m as i64, n as i64]));
                node(&mut g, "rs", Op::Reshape, shape, vec![p])
            } else {
                p
            };
            let (op, attrs) = activation_named(&name, &mut r);
            let y = node(&mut g, "y", op, attrs, vec![p]);
            g.outputs.push(y);
            let h = check(&name, &g, &mut r, 1e-5, true);
            let want: &[Op] = if name.ends_with("-reshape") {
                &[Op::FusedGemm, Op::Reshape]
            } else {
                &[Op::FusedGemm]
            };
            assert_eq!(ops(&h), want, "{name}");
        }
    }
    // Guard: a batched MatMul is not a Gemm.
    let mut r = Rng(3);
    let mut g = Graph::new("t");
    let a = g.add_input("a", f32t(&[2, 3, 4]));
    let b = g.add_input("b", f32t(&[4, 5]));
    let p = node(&mut g, "p", Op::MatMul, Attrs::new(), vec![a, b]);
    let y = node(&mut g, "y", Op::Relu, Attrs::new(), vec![p]);
    g.outputs.push(y);
    check("matmul-relu", &g, &mut r, 1e-5, false);
}

/// The tiling rules with the chunk width each offers; tested by `tiling_rules`.
fn tiling_rule_names() -> Vec<(String, u64)> {
    let mut v = Vec::new();
    for w in tahoma_compiler::opt::rules::tiling::tile_n_candidates() {
        for stem in ["matmul", "gemm", "gemm-c", "fused-gemm", "fused-gemm-c"] {
            let (base, c) = stem.strip_suffix("-c").map_or((stem, ""), |b| (b, "-c"));
            v.push((format!("{base}-tile-n{w}{c}"), w));
        }
    }
    v
}

#[test]
fn tiling_rules() {
    for (name, w) in tiling_rule_names() {
        for seed in 1..=SEEDS {
            let mut r = Rng(seed * 7_919);
            let (m, k) = (r.dim(1, 9), r.dim(1, 9));
            let n = w as usize + r.dim(1, 40);
            // A batched product half of the time for MatMul.
            let batch = if name.starts_with("matmul") && seed % 2 == 0 {
                vec![2]
            } else {
                vec![]
            };
            let mut g = Graph::new("t");
            let a = g.add_input("a", f32t(&[batch.clone(), vec![m, k]].concat()));
            let b = g.add_input("b", f32t(&[k, n]));
            let mut ins = vec![a, b];
            if name.ends_with("-c") {
                ins.push(g.add_input("c", f32t(&[n])));
            }
            let (op, attrs) = if name.starts_with("matmul") {
                (Op::MatMul, Attrs::new())
            } else if name.starts_with("gemm") {
                (
                    Op::Gemm,
                    gemm_attrs(r.val() * 2.0, r.val() * 2.0, false, false),
                )
            } else {
                let act = AttrValue::Str("relu".into());
                (
                    Op::FusedGemm,
                    gemm_attrs(1.0, 1.0, false, false).with("activation", act),
                )
            };
            let p = node(&mut g, "p", op, attrs.clone(), ins.clone());
            g.outputs.push(p);
            let h = check(&name, &g, &mut r, 1e-5, true);
            assert_eq!(ops(&h), [op], "{name}");
            assert_eq!(h.nodes[0].attrs.int("tile_n"), Ok(w as i64), "{name}");

            // Guards: a product already tiled, or no wider than the candidate, is left alone.
            let mut g = Graph::new("t");
            let a = g.add_input("a", f32t(&[m, k]));
            let b = g.add_input("b", f32t(&[k, n]));
            let mut ins2 = vec![a, b];
            if name.ends_with("-c") {
                ins2.push(g.add_input("c", f32t(&[n])));
            }
            let tiled = attrs.clone().with("tile_n", AttrValue::Int(w as i64));
            let p = node(&mut g, "p", op, tiled, ins2);
            g.outputs.push(p);
            check(&name, &g, &mut r, 1e-5, false);
            let mut g = Graph::new("t");
            let a = g.add_input("a", f32t(&[m, k]));
            let b = g.add_input("b", f32t(&[k, w as usize]));
            let mut ins3 = vec![a, b];
            if name.ends_with("-c") {
                ins3.push(g.add_input("c", f32t(&[w as usize])));
            }
            let p = node(&mut g, "p", op, attrs, ins3);
            g.outputs.push(p);
            check(&name, &g, &mut r, 1e-5, false);
        }
    }
}

/// A random permutation of `0..r` (Fisher-Yates).
fn random_perm(r: usize, rng: &mut Rng) -> Vec<usize> {
    let mut p: Vec<usize> = (0..r).collect();
    for i in (1..r).rev() {
        p.swap(i, rng.dim(0, i));
    }
    p
}

fn perm_attr(p: &[usize]) -> Attrs {
    Attrs::new().with(
        "perm",
        ints(&p.iter().map(|&d| d as i64).collect::<Vec<_>>()),
    )
}

#[test]
fn batched_scale_rules() {
    for (name, op, left) in [
        ("matmul-scale-batched", Op::Mul, false),
        ("matmul-scale-batched-left", Op::Mul, true),
        ("matmul-div-batched", Op::Div, false),
    ] {
        for seed in 1..=SEEDS {
            let mut r = Rng(seed * 4_093);
            let (bt, m, k, n) = (r.dim(1, 3), r.dim(1, 9), r.dim(1, 9), r.dim(1, 9));
            let mut g = Graph::new("t");
            let a = g.add_input("a", f32t(&[bt, m, k]));
            let b = g.add_input("b", f32t(&[k, n]));
            let p = node(&mut g, "p", Op::MatMul, Attrs::new(), vec![a, b]);
            let c = splat(&mut g, "c", &[], 0.25 + r.val().abs());
            let ins = if left { vec![c, p] } else { vec![p, c] };
            let y = node(&mut g, "y", op, Attrs::new(), ins);
            g.outputs.push(y);
            let h = check(name, &g, &mut r, 1e-5, true);
            assert_eq!(ops(&h), [Op::MatMul], "{name}");
            assert!(h.nodes[0].attrs.float("alpha").is_ok(), "{name}");
        }
        // Guard: a 2-D product becomes a Gemm instead (matmul-scale), not a scaled MatMul.
        let mut r = Rng(5);
        let mut g = Graph::new("t");
        let a = g.add_input("a", f32t(&[3, 4]));
        let b = g.add_input("b", f32t(&[4, 5]));
        let p = node(&mut g, "p", Op::MatMul, Attrs::new(), vec![a, b]);
        let c = splat(&mut g, "c", &[], 0.5);
        let ins = if left { vec![c, p] } else { vec![p, c] };
        let y = node(&mut g, "y", op, Attrs::new(), ins);
        g.outputs.push(y);
        check(name, &g, &mut r, 1e-5, false);
    }
}

#[test]
fn layout_rules() {
    for name in ["matmul-perm-a", "matmul-perm-b", "matmul-perm-y"] {
        for seed in 1..=SEEDS {
            let mut r = Rng(seed * 3_001);
            let rank = r.dim(3, 4);
            let dims: Vec<usize> = (0..rank).map(|_| r.dim(1, 5)).collect();
            let (k, n) = (r.dim(1, 6), r.dim(1, 6));
            let mut g = Graph::new("t");
            // Operand shapes chosen so that the transposed side has `dims` for its shape.
            let y = match name {
                "matmul-perm-a" => {
                    let p = random_perm(rank, &mut r);
                    let mut src = vec![0; rank];
                    for (i, &d) in p.iter().enumerate() {
                        src[d] = dims[i];
                    }
                    let x = g.add_input("x", f32t(&src));
                    let t = node(&mut g, "t", Op::Transpose, perm_attr(&p), vec![x]);
                    let b = g.add_input("b", f32t(&[dims[rank - 1], n]));
                    node(&mut g, "p", Op::MatMul, Attrs::new(), vec![t, b])
                }
                "matmul-perm-b" => {
                    let p = random_perm(rank, &mut r);
                    let mut src = vec![0; rank];
                    for (i, &d) in p.iter().enumerate() {
                        src[d] = dims[i];
                    }
                    // A is [M = k, K] against t's [.., K, N].
                    let a = g.add_input("a", f32t(&[k, dims[rank - 2]]));
                    let x = g.add_input("x", f32t(&src));
                    let t = node(&mut g, "t", Op::Transpose, perm_attr(&p), vec![x]);
                    node(&mut g, "p", Op::MatMul, Attrs::new(), vec![a, t])
                }
                _ => {
                    let a = g.add_input("a", f32t(&[dims[..rank - 1].to_vec(), vec![k]].concat()));
                    let b = g.add_input("b", f32t(&[k, n]));
                    let p = node(&mut g, "p", Op::MatMul, Attrs::new(), vec![a, b]);
                    let perm = random_perm(rank, &mut r);
                    node(&mut g, "t", Op::Transpose, perm_attr(&perm), vec![p])
                }
            };
            g.outputs.push(y);
            let h = check(name, &g, &mut r, 1e-5, true);
            assert_eq!(
                ops(&h),
                [Op::MatMul],
                "{name}:\n{}",
                tahoma_compiler::graph::text::print(&h)
            );
        }
    }
    // Guards: 2-D products are the algebra phase's (Gemm's trans flags), and a transposed
    // constant is folded at compile time instead.
    let mut r = Rng(9);
    let mut g = Graph::new("t");
    let x = g.add_input("x", f32t(&[4, 3]));
    let t = node(&mut g, "t", Op::Transpose, perm_attr(&[1, 0]), vec![x]);
    let b = g.add_input("b", f32t(&[4, 5]));
    let y = node(&mut g, "p", Op::MatMul, Attrs::new(), vec![t, b]);
    g.outputs.push(y);
    check("matmul-perm-a", &g, &mut r, 1e-5, false);
    let mut g = Graph::new("t");
    let a = g.add_input("a", f32t(&[2, 3, 4]));
    let w = splat(&mut g, "w", &[2, 5, 4], 0.5);
    let t = node(&mut g, "t", Op::Transpose, perm_attr(&[0, 2, 1]), vec![w]);
    let y = node(&mut g, "p", Op::MatMul, Attrs::new(), vec![a, t]);
    g.outputs.push(y);
    check("matmul-perm-b", &g, &mut r, 1e-5, false);
}

#[test]
fn gemm_residual_rules() {
    for name in [
        "gemm-residual",
        "gemm-residual-left",
        "gemm-residual-reshape",
        "gemm-residual-reshape-left",
    ] {
        for seed in 1..=SEEDS {
            let mut r = Rng(seed * 2_027);
            let (m, k, n) = (r.dim(1, 9), r.dim(1, 9), r.dim(1, 9));
            let tb = seed % 2 == 0;
            let mut g = Graph::new("t");
            let a = g.add_input("a", f32t(&[m, k]));
            let b = g.add_input("b", f32t(&if tb { [n, k] } else { [k, n] }));
            let c = g.add_input("c", f32t(&[n]));
            let (alpha, beta) = (r.val() * 2.0, r.val() * 2.0);
            let p = node(
                &mut g,
                "p",
                Op::Gemm,
                gemm_attrs(alpha, beta, false, tb),
                vec![a, b, c],
            );
            let reshape = name.contains("reshape");
            let (p, rshape) = if reshape {
                let shape = Attrs::new().with("shape", ints(&[1, m as i64, n as i64]));
                (
                    node(&mut g, "rs", Op::Reshape, shape, vec![p]),
                    vec![1, m, n],
                )
            } else {
                (p, vec![m, n])
            };
            let res = g.add_input("r", f32t(&rshape));
            let ins = if name.ends_with("-left") {
                vec![res, p]
            } else {
                vec![p, res]
            };
            let y = node(&mut g, "y", Op::Add, Attrs::new(), ins);
            g.outputs.push(y);
            let h = check(name, &g, &mut r, 1e-5, true);
            let want: &[Op] = if reshape {
                &[Op::Reshape, Op::FusedGemm, Op::Reshape]
            } else {
                &[Op::FusedGemm]
            };
            assert_eq!(ops(&h), want, "{name}");
        }
    }
    // Guard: a residual that broadcasts is not the sum's type.
    let mut r = Rng(11);
    let mut g = Graph::new("t");
    let a = g.add_input("a", f32t(&[4, 3]));
    let b = g.add_input("b", f32t(&[3, 5]));
    let c = g.add_input("c", f32t(&[5]));
    let p = node(
        &mut g,
        "p",
        Op::Gemm,
        gemm_attrs(1.0, 1.0, false, false),
        vec![a, b, c],
    );
    let res = g.add_input("r", f32t(&[1, 5]));
    let y = node(&mut g, "y", Op::Add, Attrs::new(), vec![p, res]);
    g.outputs.push(y);
    check("gemm-residual", &g, &mut r, 1e-5, false);
}
