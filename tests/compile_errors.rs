//! Compiler errors on bad input, file-driven: each file in `tests/kernel_errors/` names on its
//! first line the code it must produce and, for syntax errors, the line and column
//! (`# expect: CODE at LINE:COLUMN`; `0:0` when the error concerns a kernel rather than a position).
//! Graphs with ops the chip cannot run yet are refused listing every such node at once.

use std::path::Path;
use tahoma_compiler::driver::{compile_graph, compile_kernel_text};
use tahoma_compiler::lower::LowerOptions;
use tahoma_compiler::onnx::{import_text, ImportOptions, NoExternalData};

#[test]
fn each_bad_kernel_file_gives_its_code_and_position() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kernel_errors");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 8, "the kernel error corpus is missing");
    let mut report = String::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let spec = text
            .lines()
            .next()
            .unwrap()
            .strip_prefix("# expect: ")
            .expect("first line is `# expect: CODE at L:C`");
        let (code, loc) = spec.split_once(" at ").unwrap();
        let (line, col): (u32, u32) = loc
            .split_once(':')
            .map(|(l, c)| (l.parse().unwrap(), c.parse().unwrap()))
            .unwrap();
        let err = match compile_kernel_text(&text) {
            Ok(_) => panic!("{name}: compiled, expected {code}"),
            Err(e) => e,
        };
        assert_eq!(err.code.as_str(), code, "{name}: {err}");
        let pos = err.pos.map(|p| (p.line, p.col)).unwrap_or((0, 0));
        assert_eq!(pos, (line, col), "{name}: {err}");
        if line == 0 {
            assert!(
                err.node.is_some(),
                "{name}: the error names no kernel: {err}"
            );
        }
        report.push_str(&format!("{name}: {err}\n"));
    }
    insta::assert_snapshot!("kernel_error_messages", report);
}

#[test]
fn unsupported_ops_are_listed_all_at_once_with_node_and_op() {
    let src = r#"
<ir_version: 8, opset_import: ["" : 17]>
g (float[4, 8] X) => (float[4, 8] Y) {
   [ax] A = Constant <value = int64 {1}> ()
   [cum] F = CumSum(X, A)
   [relu] R = Relu(F)
   [rev_cum] Y = CumSum <reverse = 1> (R, A)
}"#;
    let g = import_text(src, &ImportOptions::default(), &NoExternalData).unwrap();
    let err = compile_graph(&g, LowerOptions::default()).unwrap_err();
    let nodes: Vec<(&str, &str)> = err
        .0
        .iter()
        .map(|d| (d.node.as_deref().unwrap(), d.op.as_deref().unwrap()))
        .collect();
    assert_eq!(nodes, vec![("cum", "CumSum"), ("rev_cum", "CumSum")]);
    assert!(err.0.iter().all(|d| d.code.as_str() == "E1301"), "{err}");
}

#[test]
fn pool_limits_are_errors_naming_node_and_op() {
    // A 3-D MaxPool lowers, but not its Indices output; an argmax plane too large for SBUF.
    let src = r#"
<ir_version: 8, opset_import: ["" : 17]>
g (float[1, 2, 4, 4, 4] X, float[1, 1, 300, 300] Z) => (float[1, 2, 2, 2, 2] Y, int64[1, 2, 2, 2, 2] I, float[1, 1, 150, 150] P, int64[1, 1, 150, 150] J) {
   [mp3] Y, I = MaxPool <kernel_shape = [2, 2, 2], strides = [2, 2, 2]> (X)
   [mpbig] P, J = MaxPool <kernel_shape = [2, 2], strides = [2, 2]> (Z)
}"#;
    let g = import_text(src, &ImportOptions::default(), &NoExternalData).unwrap();
    let err = compile_graph(&g, LowerOptions::default()).unwrap_err();
    let nodes: Vec<(&str, &str, &str)> = err
        .0
        .iter()
        .map(|d| {
            (
                d.node.as_deref().unwrap(),
                d.op.as_deref().unwrap(),
                d.code.as_str(),
            )
        })
        .collect();
    assert_eq!(
        nodes,
        vec![("mp3", "MaxPool", "E1301"), ("mpbig", "MaxPool", "E1301")],
        "{err}"
    );
    assert!(err.to_string().contains("Indices"), "{err}");
}

/// Index and selection ops beyond what their lowerings handle are refused naming the node, the
/// op, the shape and what is supported.
#[test]
fn index_ops_beyond_their_lowerings_say_node_op_and_shape() {
    let src = r#"
<ir_version: 8, opset_import: ["" : 17]>
g (float[2, 9000] D, int64[2, 3] J, int64[2, 0, 3] E) => (float[2, 3] Z, int64[2, 1, 3] M, int64[2, 1] A) {
   [long_axis] Z = GatherElements <axis = 1> (D, J)
   [int_max] M = ReduceMax <axes = [1], keepdims = 1> (E)
   [long_argmax] A = ArgMax <axis = 1> (D)
}"#;
    let g = import_text(src, &ImportOptions::default(), &NoExternalData).unwrap();
    let err = compile_graph(&g, LowerOptions::default()).unwrap_err();
    let got: Vec<(&str, &str, &str)> = err
        .0
        .iter()
        .map(|d| {
            (
                d.node.as_deref().unwrap(),
                d.op.as_deref().unwrap(),
                d.code.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("long_axis", "GatherElements", "E1301"),
            ("int_max", "ReduceMax", "E1301"),
            ("long_argmax", "ArgMax", "E1301"),
        ],
        "{err}"
    );
    let text = err.to_string();
    for shape in ["[2, 9000]", "int64[2, 0, 3]"] {
        assert!(text.contains(shape), "no shape {shape} in: {text}");
    }
    assert!(text.contains("only sums"), "{text}");
    assert!(text.contains("axes of up to"), "{text}");
}
