//! Front-end tests: every graph in `tests/graphs/` imports, verifies, prints, parses back
//! equal and matches its snapshot; binary ONNX round-trips through prost; every kind of bad
//! input gives its own stable error code and no panic.

use std::path::Path;
use tahoma_compiler::diag::{Code, Diagnostics, Pos};
use tahoma_compiler::graph::{text, verify};
use tahoma_compiler::onnx::{self, ImportOptions, NoExternalData};
use tahoma_compiler::onnx_text::parse_model;

fn opts() -> ImportOptions {
    let mut o = ImportOptions::default();
    for (k, v) in [("N", 2), ("B", 1), ("S", 3)] {
        o.dims.insert(k.to_string(), v);
    }
    o
}

fn import(src: &str) -> Result<tahoma_compiler::graph::Graph, Diagnostics> {
    onnx::import_text(src, &opts(), &NoExternalData)
}

fn code_of(src: &str) -> (Code, Diagnostics) {
    match import(src) {
        Ok(g) => panic!("imported, expected an error:\n{}", text::print(&g)),
        Err(d) => (d.code().expect("at least one diagnostic"), d),
    }
}

#[test]
fn every_test_graph_imports_round_trips_and_matches_its_snapshot() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/graphs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/graphs exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnxtxt"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 3,
        "expected test graphs in {}",
        dir.display()
    );
    for f in files {
        let src = std::fs::read_to_string(&f).expect("readable");
        let g = import(&src).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        verify(&g).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let printed = text::print(&g);
        let back =
            text::parse(&printed).unwrap_or_else(|e| panic!("{}: {e}\n{printed}", f.display()));
        assert_eq!(back, g, "{}: parse(print(g)) != g", f.display());
        verify(&back).expect("re-verifies");
        assert_eq!(text::print(&back), printed);
        // Binary: the same model through protobuf bytes gives the same graph.
        let model = parse_model(&src).expect("parses");
        let bytes = onnx::encode_model(&model);
        let g2 = onnx::import_bytes(&bytes, &opts(), &NoExternalData).expect("binary import");
        assert_eq!(g2, g, "{}: binary and text import differ", f.display());
        let name = f
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name")
            .to_string();
        insta::assert_snapshot!(name, printed);
    }
}

#[test]
fn shape_arithmetic_folds_to_a_static_reshape() {
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/graphs/mlp.onnxtxt"),
    )
    .unwrap();
    let g = import(&src).unwrap();
    let ops: Vec<&str> = g.nodes.iter().map(|n| n.op.name()).collect();
    assert_eq!(ops, ["MatMul", "Add", "Relu", "Reshape", "MatMul"]);
    let reshape = g.nodes.iter().find(|n| n.name == "reshape").unwrap();
    assert_eq!(reshape.attrs.ints("shape").unwrap(), &[2, 8]);
}

#[test]
fn non_protobuf_and_truncated_files_are_refused() {
    let e = onnx::decode_model(b"\xff\xff\xff\xffnot an onnx model at all").unwrap_err();
    assert_eq!(e.code, Code::NotProtobuf);
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/graphs/conv.onnxtxt"),
    )
    .unwrap();
    let bytes = onnx::encode_model(&parse_model(&src).unwrap());
    for cut in [1, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
        let e = onnx::import_bytes(&bytes[..cut], &opts(), &NoExternalData).unwrap_err();
        assert_eq!(e.code(), Some(Code::NotProtobuf), "cut at {cut}: {e}");
    }
}

#[test]
fn missing_initializer_or_input_names_the_node() {
    let (c, d) = code_of(
        "<opset_import: [\"\": 17]> g (float[2] X) => (float[2] Y) { [adder] Y = Add(X, W) }",
    );
    assert_eq!(c, Code::UndefinedValue);
    assert_eq!(d.0[0].node.as_deref(), Some("adder"));
    assert!(d.0[0].message.contains("'W'"), "{d}");
}

#[test]
fn type_mismatch() {
    let (c, d) = code_of("<opset_import: [\"\": 17]> g (float[2] X, int64[2] I) => (float[2] Y) { [add] Y = Add(X, I) }");
    assert_eq!(c, Code::TypeMismatch, "{d}");
    assert_eq!(d.0[0].op.as_deref(), Some("Add"));
}

#[test]
fn shape_mismatch_names_the_shapes() {
    let (c, d) = code_of("<opset_import: [\"\": 17]> g (float[2, 3] A, float[4, 5] B) => (float[2, 5] Y) { [mm] Y = MatMul(A, B) }");
    assert_eq!(c, Code::ShapeMismatch, "{d}");
    assert!(d.to_string().contains("float[2, 3]"), "{d}");
}

#[test]
fn declared_output_shape_is_checked() {
    let (c, _) =
        code_of("<opset_import: [\"\": 17]> g (float[2, 3] A) => (float[3, 2] Y) { Y = Relu(A) }");
    assert_eq!(c, Code::ShapeMismatch);
}

#[test]
fn cycles_are_reported_with_node_names() {
    let (c, d) = code_of(
        "<opset_import: [\"\": 17]> g (float[2] X) => (float[2] Y) { [a] T = Add(X, U) [b] U = Relu(T) [c] Y = Relu(U) }",
    );
    assert_eq!(c, Code::Cycle);
    assert!(
        d.to_string().contains("'a'") && d.to_string().contains("'b'"),
        "{d}"
    );
}

#[test]
fn all_unsupported_ops_are_listed_at_once() {
    let (c, d) = code_of(
        "<opset_import: [\"\": 17]> g (float[2] X) => (float[2] Y) { [s] T = Det(X) [l] U = LSTM(T) [k] Y = com.ms.Fancy(U) }",
    );
    assert_eq!(c, Code::UnsupportedOp);
    let nodes: Vec<_> = d.0.iter().map(|x| x.node.clone().unwrap()).collect();
    assert_eq!(nodes, ["s", "l", "k"]);
    assert!(d.0.iter().all(|x| x.code == Code::UnsupportedOp));
}

#[test]
fn unbound_symbolic_dim_names_it_and_both_flags() {
    let e = onnx::import_text(
        "<opset_import: [\"\": 17]> g (float[batch, 4] X) => (float[batch, 4] Y) { Y = Relu(X) }",
        &ImportOptions::default(),
        &NoExternalData,
    )
    .unwrap_err();
    assert_eq!(e.code(), Some(Code::UnboundDim));
    let text = e.to_string();
    assert!(
        text.contains("'batch'") && text.contains("--dim batch=") && text.contains("--shape X="),
        "{text}"
    );
    // `?` dims need --shape.
    let mut o = ImportOptions::default();
    let e = onnx::import_text(
        "<opset_import: [\"\": 17]> g (float[?, 4] X) => (float[?, 4] Y) { Y = Relu(X) }",
        &o,
        &NoExternalData,
    )
    .unwrap_err();
    assert_eq!(e.code(), Some(Code::UnboundDim));
    o.shapes.insert("X".into(), vec![3, 4]);
    let g = onnx::import_text(
        "<opset_import: [\"\": 17]> g (float[?, 4] X) => (float[?, 4] Y) { Y = Relu(X) }",
        &o,
        &NoExternalData,
    )
    .unwrap();
    assert_eq!(g.ty(g.outputs[0]).shape, [3, 4]);
}

#[test]
fn external_data_escaping_the_folder_is_refused() {
    for loc in ["../w.bin", "/etc/passwd", "a/../../w.bin"] {
        let src = format!(
            "<opset_import: [\"\": 17]> g (float[2] X) => (float[2] Y) <float[2] W = [\"location\": \"{loc}\"]> {{ Y = Add(X, W) }}"
        );
        let (c, _) = code_of(&src);
        assert_eq!(c, Code::ExternalDataPath, "{loc}");
    }
    let (c, _) = code_of(
        "<opset_import: [\"\": 17]> g (float[2] X) => (float[2] Y) <float[2] W = [\"location\": \"w.bin\"]> { Y = Add(X, W) }",
    );
    assert_eq!(c, Code::ExternalDataRead);
}

#[test]
fn text_syntax_errors_carry_line_and_column() {
    let (c, d) = code_of(
        "<opset_import: [\"\": 17]>\ng (float[2] X) => (float[2] Y) {\n  Y = Relu(X,\n  Z = 3\n}",
    );
    assert_eq!(c, Code::TextSyntax);
    assert_eq!(d.0[0].pos, Some(Pos { line: 4, col: 5 }));
}

#[test]
fn opset_migrations_give_the_same_graph() {
    // Squeeze/Unsqueeze/ReduceSum/Clip/Split/Slice with attributes (opset 10) and inputs (opset 18).
    let old = "<opset_import: [\"\": 10]> g (float[1, 4, 6] X) => (float[4, 1] Y, float[1, 4, 3] P, float[1, 4, 3] Q, float[1, 3, 6] Z)
        { A = Squeeze <axes = [0]> (X)  B = ReduceSum <axes = [1], keepdims = 1> (A)  Y = Clip <min = -1.0, max = 1.0> (B)
          P, Q = Split <axis = 2, split = [3, 3]> (X)  Z = Slice <starts = [1], ends = [100], axes = [1]> (X, s, e) }";
    // Opset-10 Slice already takes inputs; rewrite that node for the old form.
    let old = old
        .replace(
            "Slice <starts = [1], ends = [100], axes = [1]> (X, s, e)",
            "Slice (X, s, e, ax)",
        )
        .replace(
            "{ A =",
            "<int64[1] s = {1}, int64[1] e = {100}, int64[1] ax = {1}> { A =",
        );
    let new = "<opset_import: [\"\": 18]> g (float[1, 4, 6] X) => (float[4, 1] Y, float[1, 4, 3] P, float[1, 4, 3] Q, float[1, 3, 6] Z)
        <int64[1] s = {1}, int64[1] e = {100}, int64[1] ax = {1}, int64[1] zero = {0}, int64[1] one = {1}, float lo = {-1}, float hi = {1}, int64[2] sp = {3, 3}>
        { A = Squeeze(X, zero)  B = ReduceSum <keepdims = 1> (A, one)  Y = Clip(B, lo, hi)
          P, Q = Split <axis = 2> (X, sp)  Z = Slice (X, s, e, ax) }";
    let g_old = import(&old).unwrap();
    let g_new = import(new).unwrap();
    let sig = |g: &tahoma_compiler::graph::Graph| -> Vec<String> {
        g.nodes
            .iter()
            .map(|n| {
                format!(
                    "{} {:?} {:?}",
                    n.op,
                    n.attrs,
                    n.outputs
                        .iter()
                        .map(|&o| g.ty(o).to_string())
                        .collect::<Vec<_>>()
                )
            })
            .collect()
    };
    assert_eq!(sig(&g_old), sig(&g_new));
}

#[test]
fn legacy_opsets_convert_to_the_same_graph() {
    // Opset 6 binary broadcasting with `axis`, BatchNormalization `is_test`, Reshape-1's
    // `shape` attribute, Pad-1's `paddings`, Cast-1's string type, Concat-1's default axis.
    let old = "<opset_import: [\"\": 1]> g (float[2, 3, 4] X, float[3] b) => (float[2, 3, 4] Y, float[2, 12] R, float[2, 3, 6] P, int64[2, 3, 4] C, float[2, 6, 4] K)
        { Y = Add <broadcast = 1, axis = 1> (X, b)  R = Reshape <shape = [2, 12]> (X)
          P = Pad <paddings = [0, 0, 1, 0, 0, 1]> (X)  C = Cast <to = \"INT64\"> (X)  K = Concat (X, X) }";
    let new = "<opset_import: [\"\": 17]> g (float[2, 3, 4] X, float[3] b) => (float[2, 3, 4] Y, float[2, 12] R, float[2, 3, 6] P, int64[2, 3, 4] C, float[2, 6, 4] K)
        <int64[2] s = {2, 12}, int64[6] p = {0, 0, 1, 0, 0, 1}, int64[2] bs = {3, 1}>
        { bb = Reshape (b, bs)  Y = Add (X, bb)  R = Reshape (X, s)
          P = Pad (X, p)  C = Cast <to = 7> (X)  K = Concat <axis = 1> (X, X) }";
    let g_old = import(old).unwrap();
    let g_new = import(new).unwrap();
    let sig = |g: &tahoma_compiler::graph::Graph| -> Vec<String> {
        g.nodes
            .iter()
            .map(|n| {
                let ins: Vec<String> = n.inputs.iter().map(|&v| g.ty(v).to_string()).collect();
                format!("{} {:?} {ins:?}", n.op, n.attrs)
            })
            .collect()
    };
    assert_eq!(sig(&g_old), sig(&g_new));
    // Legacy forms tahoma does not convert are reported per node, as unsupported.
    let (c, d) = code_of(
        "<opset_import: [\"\": 5]> g (float[2, 3] X, int64[1] t, int64[1] a) => (float[4, 3] Y) { [tile] Y = Tile (X, t, a) }",
    );
    assert_eq!(c, Code::UnsupportedOp);
    assert_eq!(d.0[0].node.as_deref(), Some("tile"));
    // Without broadcast=1, opset-6 operands must have one shape.
    let (c, _) = code_of(
        "<opset_import: [\"\": 6]> g (float[2, 3] X, float[3] b) => (float[2, 3] Y) { Y = Add (X, b) }",
    );
    assert_eq!(c, Code::ShapeMismatch);
    // Training-mode BatchNormalization (is_test = 0, the opset-6 default) is reported as unsupported.
    let (c, _) = code_of(
        "<opset_import: [\"\": 6]> g (float[2, 3] X, float[3] s, float[3] b, float[3] m, float[3] v) => (float[2, 3] Y) { Y = BatchNormalization (X, s, b, m, v) }",
    );
    assert_eq!(c, Code::UnsupportedOp);
}

#[test]
fn dropout_mask_is_all_true_in_inference() {
    let g = import(
        "<opset_import: [\"\": 13]> g (float[2, 3] X) => (float[2, 3] Y, bool[2, 3] M) { Y, M = Dropout (X) }",
    )
    .unwrap();
    let m = g.const_value(g.outputs[1]).expect("the mask is a constant");
    assert!(m.to_i64_vec().iter().all(|&v| v == 1));
    // Opset 7-9: the mask has the input's type.
    let g = import(
        "<opset_import: [\"\": 9]> g (float[2, 3] X) => (float[2, 3] Y, float[2, 3] M) { Y, M = Dropout (X) }",
    )
    .unwrap();
    assert_eq!(g.ty(g.outputs[1]).to_string(), "float[2, 3]");
}

#[test]
fn extra_outputs_and_wider_forms_import_and_interpret() {
    use tahoma_compiler::interp::run_graph;
    use tahoma_compiler::tensor::{DType, Tensor};
    // LayerNormalization Mean/InvStdDev, MaxPool Indices, a Resize with axes in descending
    // order, a ConvTranspose whose output_shape exceeds the full output (negative pads).
    let g = import(
        "<opset_import: [\"\": 18]> g (float[1, 1, 2, 4] X) => (float[1, 1, 2, 4] Y, float[1, 1, 1, 1] M, float[1, 1, 1, 1] I, float[1, 1, 1, 2] P, int64[1, 1, 1, 2] K, float[1, 1, 4, 8] R, float[1, 1, 5, 10] T)
         <float[1] s = {1}, float[2] sc = {2, 2}, float[1, 1, 1, 1] w = {1}>
         { Y, M, I = LayerNormalization <axis = 1> (X, s)  P, K = MaxPool <kernel_shape = [2, 2], strides = [2, 2]> (X)
           R = Resize <axes = [3, 2], mode = \"nearest\"> (X, , sc)  T = ConvTranspose <strides = [2, 2], output_shape = [5, 10]> (X, w) }",
    )
    .unwrap();
    verify(&g).unwrap();
    let back = text::parse(&text::print(&g)).unwrap();
    assert_eq!(back, g);
    let x: Vec<f32> = (0..8).map(|v| v as f32).collect();
    let outs = run_graph(&g, &[Tensor::from_f32(DType::F32, &[1, 1, 2, 4], &x)]).unwrap();
    assert!((outs[1].to_f32_vec()[0] - 3.5).abs() < 1e-6);
    assert_eq!(outs[3].to_f32_vec(), [5.0, 7.0]);
    assert_eq!(outs[4].to_i64_vec(), [5, 7]);
    assert_eq!(outs[5].shape(), [1, 1, 4, 8]);
    // Stride-2 transpose of a 1x1 kernel spreads X over every other position; output_shape
    // [5, 10] exceeds the full [3, 7] output, so pads are (-1, -1) and (-1, -2): X[i, j] lands
    // at (2i + 1, 2j + 1) and the rest holds zeros.
    let t = outs[6].to_f32_vec();
    assert_eq!(t.len(), 50);
    assert_eq!(
        (t[0], t[13], t[15], t[31], t[49]),
        (0.0, 1.0, 2.0, 4.0, 0.0)
    );
}

#[test]
fn dead_values_are_removed_after_import() {
    // The Shape result, the unused initializer and the node nobody reads all go.
    let g = import(
        "<opset_import: [\"\": 17]> g (float[2, 3] X, float[3] unused_in) => (float[6] Y)
         <float[4] w = {1, 2, 3, 4}, int64[1] six = {6}> { s = Shape (X)  Y = Reshape (X, six)  dead = Relu (X) }",
    )
    .unwrap();
    verify(&g).unwrap();
    let ops: Vec<&str> = g.nodes.iter().map(|n| n.op.name()).collect();
    assert_eq!(ops, ["Reshape"]);
    assert_eq!(g.parameter_count(), 0, "{}", text::print(&g));
    assert_eq!(g.inputs.len(), 2, "graph inputs stay even when unused");
}
