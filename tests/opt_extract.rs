//! Extraction: greedy DAG cost against the exact branch and bound (`opt::exact`).
//!
//! On every graph of `tests/kernels/` and `tests/graphs/` (the graph-opt and lowering snapshot
//! graphs) the optimizer runs at -O2 with each extraction over the same saturated e-graph: the
//! exact search must finish (prove optimality), never cost more than greedy, and greedy must be
//! within [`GREEDY_WITHIN`] of it; the exact graph must compute what the imported one does.
//! (Hand-built e-graphs in `compiler/src/opt/exact.rs` check what greedy cannot do, cycles and
//! the budget.)

use tahoma_compiler::graph::Graph;
use tahoma_compiler::interp::run_graph;
use tahoma_compiler::onnx::{import_text, ImportOptions, NoExternalData};
use tahoma_compiler::opt::{optimize, ExtractMode, OptLevel, OptOptions};
use tahoma_compiler::tensor::Tensor;

/// Greedy's DAG cost may exceed the optimum by at most this fraction on the snapshot graphs.
const GREEDY_WITHIN: f64 = 0.02;

fn snapshot_graphs() -> Vec<(String, Graph)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut out = Vec::new();
    for dir in ["kernels", "graphs"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "onnxtxt"))
            .collect();
        files.sort();
        for p in files {
            let src = std::fs::read_to_string(&p).unwrap();
            // The import tests' bindings of the symbolic dims of tests/graphs/.
            let mut opts = ImportOptions::default();
            for (k, v) in [("N", 2), ("B", 1), ("S", 3)] {
                opts.dims.insert(k.to_string(), v);
            }
            let g = import_text(&src, &opts, &NoExternalData)
                .unwrap_or_else(|e| panic!("{}: {e:?}", p.display()));
            let name = format!("{dir}/{}", p.file_stem().unwrap().to_string_lossy());
            out.push((name, g));
        }
    }
    out
}

/// Seeded inputs of a graph's types (floats in [-1, 1), integers small and non-negative).
fn inputs(g: &Graph) -> Vec<Tensor> {
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    g.inputs
        .iter()
        .map(|&v| {
            let ty = g.ty(v);
            let n: usize = ty.shape.iter().product();
            let vals: Vec<f32> = (0..n)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    let u = (s >> 40) as f32 / (1u64 << 24) as f32;
                    if ty.dtype.is_float() {
                        u * 2.0 - 1.0
                    } else {
                        (u * 2.0).floor()
                    }
                })
                .collect();
            Tensor::from_f32(ty.dtype, &ty.shape, &vals)
        })
        .collect()
}

#[test]
fn greedy_is_within_a_few_percent_of_exact_on_the_snapshot_graphs() {
    let graphs = snapshot_graphs();
    assert!(graphs.len() >= 30, "{} graphs", graphs.len());
    let mut worst = (0.0f64, String::new());
    let mut improved = 0;
    for (name, g) in &graphs {
        let run = |extract| {
            optimize(
                g,
                &OptOptions {
                    level: OptLevel::O2,
                    extract,
                    ..Default::default()
                },
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        let (greedy, exact) = (run(ExtractMode::Greedy), run(ExtractMode::Exact));
        let (gc, ec) = (
            greedy.report.extracted_cycles.unwrap(),
            exact.report.extracted_cycles.unwrap(),
        );
        let st = exact
            .report
            .exact
            .unwrap_or_else(|| panic!("{name}: no exact stats"));
        assert!(st.optimal, "{name}: exact search hit its budget: {st:?}");
        assert_eq!(
            st.greedy_cost, gc,
            "{name}: both runs saturate the same e-graph"
        );
        assert!(ec <= gc, "{name}: exact {ec} > greedy {gc}");
        assert!(ec > 0.0, "{name}");
        let gap = gc / ec - 1.0;
        assert!(
            gap <= GREEDY_WITHIN,
            "{name}: greedy {gc:.0} is {:.2}% above exact {ec:.0}",
            gap * 100.0
        );
        if ec < gc {
            improved += 1;
        }
        if gap >= worst.0 {
            worst = (gap, name.clone());
        }
        // The exact graph computes what the imported one does.
        let ins = inputs(g);
        let (want, got) = (
            run_graph(g, &ins).unwrap(),
            run_graph(&exact.graph, &ins).unwrap_or_else(|e| panic!("{name}: {e:?}")),
        );
        assert_eq!(want.len(), got.len(), "{name}");
        for (w, h) in want.iter().zip(&got) {
            assert_eq!(w.shape(), h.shape(), "{name}");
            for (a, b) in w.to_f32_vec().iter().zip(h.to_f32_vec()) {
                let tol = 1e-4 * a.abs().max(b.abs()) + 1e-5;
                assert!(
                    (a - b).abs() <= tol || (a.is_nan() && b.is_nan()),
                    "{name}: {a} vs {b}"
                );
            }
        }
    }
    eprintln!(
        "{} graphs: exact cheaper than greedy on {improved}; largest greedy excess {:.3}% ({})",
        graphs.len(),
        worst.0 * 100.0,
        worst.1
    );
}

/// `--extract exact` on the CLI: the report names the extraction, its search and the greedy
/// cost it started from, and the program is the same as greedy's when greedy is optimal.
#[test]
fn cli_extract_exact_reports_its_search() {
    let model =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kernels/mlp_block.onnxtxt");
    let run = |extract: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tahoma"))
            .args([
                "compile",
                model.to_str().unwrap(),
                "--opt-report",
                "--emit",
                "graph-opt",
                "--extract",
                extract,
            ])
            .output()
            .expect("run the tahoma binary");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let (greedy, exact) = (run("greedy"), run("exact"));
    assert!(greedy.contains("extraction greedy: "), "{greedy}");
    assert!(greedy.contains("cost model: kernel IR"), "{greedy}");
    assert!(
        exact.contains("extraction exact: ") && exact.contains(", optimal)"),
        "{exact}"
    );
    let graph = |s: &str| {
        s.lines()
            .skip_while(|l| !l.starts_with('<') && !l.starts_with("graph"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(graph(&greedy), graph(&exact));
    assert!(!graph(&greedy).is_empty(), "{greedy}");
}
