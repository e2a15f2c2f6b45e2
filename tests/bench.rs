//! `tahoma bench` on its smallest workload (one run, no onnxruntime): the table and the JSON
//! are well formed. Figures are not asserted (performance is measured, not tested); the
//! corpus-missing and bad-filter errors are checked without compiling anything.

use std::process::Command;

fn tahoma(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tahoma"))
        .args(args)
        .output()
        .expect("run the tahoma binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("tahoma-bench-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn gemm512_table_and_json() {
    let dir = scratch("json");
    let json = dir.join("bench.json");
    let (ok, stdout, stderr) = tahoma(&[
        "bench",
        "--filter",
        "gemm512",
        "--repeat",
        "1",
        "--no-onnxruntime",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(ok, "tahoma bench failed: {stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("workload"), "{stdout}");
    for col in [
        "cycles",
        "roofline",
        "%roof",
        "O0/O2",
        "compile s",
        "emulate s",
        "ort ms",
    ] {
        assert!(lines[0].contains(col), "missing column {col}: {stdout}");
    }
    assert!(
        lines[1].starts_with("gemm512") && lines[1].contains("-O0"),
        "{stdout}"
    );
    assert!(
        lines[2].contains("-O2") && lines[2].contains('x'),
        "{stdout}"
    );
    assert!(stdout.contains("M=512 K=512 N=512"), "{stdout}");
    assert!(stdout.contains("geometric mean"), "{stdout}");
    assert!(stdout.contains("Spearman"), "{stdout}");

    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let ws = v["workloads"].as_array().unwrap();
    assert_eq!(ws.len(), 1);
    let w = &ws[0];
    assert_eq!(w["name"], "gemm512");
    assert!(w["error"].is_null(), "{w}");
    let levels = w["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 2);
    for (l, name) in levels.iter().zip(["O0", "O2"]) {
        assert_eq!(l["level"], name);
        assert!(l["cycles"].as_u64().unwrap() > 0);
        assert!(l["roofline_cycles"].as_u64().unwrap() > 0);
        let pct = l["roofline_percent"].as_f64().unwrap();
        assert!(pct > 0.0 && pct <= 100.0, "{pct}");
        assert!(l["compile_seconds"].as_f64().unwrap() >= 0.0);
        assert_eq!(l["emulate_seconds_runs"].as_array().unwrap().len(), 1);
        let k = l["kernels"].as_array().unwrap();
        assert!(!k.is_empty(), "no kernel matched its prediction: {l}");
        assert!(k[0]["emulated_cycles"].as_f64().unwrap() > 0.0);
        // A GEMM alone is the whole program: run alone, it takes the whole run's cycles.
        assert_eq!(
            k[0]["emulated_cycles"].as_f64().unwrap(),
            l["cycles"].as_f64().unwrap()
        );
        let active = k[0]["active_cycles"].as_f64().unwrap();
        assert!(active > 0.0 && active <= k[0]["span_cycles"].as_f64().unwrap());
        assert!(k[0]["predicted_cycles"].as_f64().unwrap() > 0.0);
        // The optimizer's model lowers the node alone: for a one-node graph that is the
        // kernel-IR model's prediction of the whole graph.
        assert_eq!(
            k[0]["extraction_cycles"].as_f64().unwrap(),
            k[0]["predicted_cycles"].as_f64().unwrap()
        );
    }
    assert!(w["o0_over_o2"].as_f64().unwrap() > 0.0);
    assert!(w["onnxruntime"]["median_seconds"].is_null());
    assert!(v["summary"]["spearman"].is_object());
    assert!(v["summary"]["spearman_extraction"].is_object());
    assert_eq!(v["extraction"], "greedy");
    assert_eq!(v["repeat"], 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn emitted_models_import() {
    let dir = scratch("emit");
    let (ok, stdout, stderr) = tahoma(&[
        "bench",
        "--emit-models",
        dir.to_str().unwrap(),
        "--filter",
        "gemm512",
        "--filter",
        "conv14-1x1-256",
    ]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    for name in ["gemm512", "conv14-1x1-256-1024"] {
        let bytes = std::fs::read(dir.join(format!("{name}.onnx"))).unwrap();
        let g = tahoma_compiler::onnx::import_bytes(
            &bytes,
            &Default::default(),
            &tahoma_compiler::onnx::NoExternalData,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!g.nodes.is_empty());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_corpus_and_bad_filter_are_clear_errors() {
    let (ok, stdout, stderr) = Command::new(env!("CARGO_BIN_EXE_tahoma"))
        .args(["bench", "--filter", "yolov8n", "--no-onnxruntime"])
        .env("TAHOMA_CORPUS_DIR", "/nonexistent/tahoma-corpus")
        .output()
        .map(|o| {
            (
                o.status.success(),
                String::from_utf8_lossy(&o.stdout).to_string(),
                String::from_utf8_lossy(&o.stderr).to_string(),
            )
        })
        .unwrap();
    assert!(!ok);
    assert!(
        stdout.contains("yolov8n-320") && stdout.contains("error"),
        "{stdout}"
    );
    assert!(
        stderr.contains("E0007") && stderr.contains("tests/corpus/fetch.sh"),
        "{stderr}"
    );

    let (ok, _, stderr) = tahoma(&["bench", "--filter", "no-such-workload"]);
    assert!(!ok);
    assert!(
        stderr.contains("E0003") && stderr.contains("gemm512"),
        "{stderr}"
    );
}
