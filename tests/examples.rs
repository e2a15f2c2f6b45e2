//! The hand-written programs of `examples/asm/`, run on the emulator against an ndarray
//! reference computed here, with snapshots of their disassembly and of their cycle reports
//! (separate snapshots, so a cost-model change does not bury a program diff).
//!
//! Tolerances: the bf16 matmul examples compare against an f64 reference of the same
//! bf16-rounded operands; products are exact in fp32, so the only error is fp32 accumulation,
//! bounded per element by 2^-22 * sum_k |a||b| (checked). The fp32 paths (softmax, gelu) compare
//! within 2e-6 relative (fp32 rounding of exp/erf and of sums in a different order).

use ndarray::{Array1, Array2};
use tahoma_isa::rng::Rng;
use tahoma_isa::Dtype;
use tahoma_runtime::emulator::{Emulator, RunOptions};
use tahoma_runtime::report::RunResult;
use tahoma_runtime::tensor::Tensor;

fn example(name: &str) -> tahoma_isa::program::Program {
    let path = format!("{}/examples/asm/{name}.s", env!("CARGO_MANIFEST_DIR"));
    tahoma_isa::asm::assemble(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Seeded values in [-1, 1), rounded to `dtype` so the reference sees what the chip sees.
fn values(dtype: Dtype, n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let v = rng.uniform(-1.0, 1.0);
            match dtype {
                Dtype::Bf16 => half::bf16::from_f32(v).to_f32(),
                Dtype::Fp16 => half::f16::from_f32(v).to_f32(),
                _ => v,
            }
        })
        .collect()
}

fn run(name: &str, inputs: &[(&str, Tensor)], trace: bool) -> RunResult {
    let mut emu = Emulator::new(example(name)).unwrap();
    for (n, t) in inputs {
        emu.set_input(n, t).unwrap();
    }
    assert!(emu.missing_inputs().is_empty());
    let opts = if trace {
        RunOptions::timed().with_trace()
    } else {
        RunOptions::timed()
    };
    let timed = emu.run(&opts).unwrap();
    // The functional mode computes the same values.
    let mut emu = Emulator::new(example(name)).unwrap();
    for (n, t) in inputs {
        emu.set_input(n, t).unwrap();
    }
    let functional = emu.run(&RunOptions::functional()).unwrap();
    assert_eq!(
        functional.outputs, timed.outputs,
        "{name}: functional and timed modes disagree"
    );
    timed
}

fn tensor(dtype: Dtype, shape: &[u64], data: Vec<f32>) -> Tensor {
    Tensor::new(dtype, shape.to_vec(), data)
}

/// Checks `got` against the f64 product of bf16 operands within the fp32-accumulation bound.
fn check_matmul(
    got: &[f32],
    a: &Array2<f64>,
    b: &Array2<f64>,
    epilogue: impl Fn(usize, f64) -> f64,
) {
    let want = a.dot(b);
    let bound = a.mapv(f64::abs).dot(&b.mapv(f64::abs)) * 2f64.powi(-22);
    let n = want.ncols();
    for (i, (&g, w)) in got.iter().zip(want.iter()).enumerate() {
        let (r, c) = (i / n, i % n);
        let w = epilogue(r, *w);
        let err = (f64::from(g) - w).abs();
        assert!(
            err <= bound[[r, c]] + 1e-7,
            "[{r},{c}]: got {g}, want {w} (bound {})",
            bound[[r, c]]
        );
    }
}

fn matmul_inputs() -> (Vec<f32>, Vec<f32>, Array2<f64>, Array2<f64>) {
    let a = values(Dtype::Bf16, 128 * 512, 1);
    let b = values(Dtype::Bf16, 512 * 128, 2);
    let a64 =
        Array2::from_shape_vec((128, 512), a.iter().map(|&v| f64::from(v)).collect()).unwrap();
    let b64 =
        Array2::from_shape_vec((512, 128), b.iter().map(|&v| f64::from(v)).collect()).unwrap();
    (a, b, a64, b64)
}

/// The cycle report without wall-clock time, for snapshots.
fn cycle_report(r: &RunResult) -> String {
    let mut v = r.report_json();
    v.as_object_mut().unwrap().remove("emulate_seconds");
    serde_json::to_string_pretty(&v).unwrap()
}

fn snapshots(name: &str, r: &RunResult) {
    insta::assert_snapshot!(
        format!("{name}_disasm"),
        tahoma_isa::asm::print_program(&example(name), false)
    );
    insta::assert_snapshot!(format!("{name}_cycles"), cycle_report(r));
}

#[test]
fn matmul_matches_ndarray() {
    let (a, b, a64, b64) = matmul_inputs();
    let r = run(
        "matmul",
        &[
            ("a", tensor(Dtype::Bf16, &[128, 512], a)),
            ("b", tensor(Dtype::Bf16, &[512, 128], b)),
        ],
        false,
    );
    check_matmul(&r.outputs["c"].data, &a64, &b64, |_, v| v);
    assert_eq!(r.macs, 128 * 512 * 128);
    // The per-op profile: loads first, the matmul busy on the tensor engine, the store after it.
    let names: Vec<&str> = r.ops.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["load_a", "load_b", "matmul", "store_c"]);
    let (mm, store) = (&r.ops[2], &r.ops[3]);
    assert_eq!(mm.busiest(), "tensor");
    assert!(
        store.start >= mm.end && store.busiest() == "dma",
        "{store:?} after {mm:?}"
    );
    snapshots("matmul", &r);
}

#[test]
fn matmul_bias_relu_matches_ndarray() {
    let (a, b, a64, b64) = matmul_inputs();
    let bias = values(Dtype::Fp32, 128, 3);
    let r = run(
        "matmul_bias_relu",
        &[
            ("a", tensor(Dtype::Bf16, &[128, 512], a)),
            ("b", tensor(Dtype::Bf16, &[512, 128], b)),
            ("bias", tensor(Dtype::Fp32, &[128], bias.clone())),
        ],
        false,
    );
    check_matmul(&r.outputs["y"].data, &a64, &b64, |row, v| {
        (v + f64::from(bias[row])).max(0.0)
    });
    assert!(r.outputs["y"].data.contains(&0.0) && r.outputs["y"].data.iter().any(|&v| v > 0.0));
    snapshots("matmul_bias_relu", &r);
}

#[test]
fn gpsimd_kernels_match_rust_math() {
    let x: Vec<f32> = values(Dtype::Fp32, 128 * 64, 5)
        .iter()
        .map(|v| v * 4.0)
        .collect();
    let n: Vec<f32> = values(Dtype::Fp32, 128 * 64, 6)
        .iter()
        .map(|v| (v * 1000.0).round())
        .collect();
    let r = run(
        "gpsimd",
        &[
            ("x", tensor(Dtype::Fp32, &[128, 64], x.clone())),
            ("n", tensor(Dtype::I32, &[128, 64], n.clone())),
        ],
        false,
    );
    // The host functions are Rust's f32 math, so the results are exact.
    for (i, (&xi, &ni)) in x.iter().zip(&n).enumerate() {
        assert_eq!(r.outputs["y"].data[i], xi.sin() * ni, "y[{i}]");
        assert_eq!(r.outputs["r"].data[i], ni.rem_euclid(7.0), "r[{i}]");
    }
    assert!(
        n.iter().any(|&v| v < 0.0),
        "negative n exercise the flooring mod"
    );
    let k = r.ops.iter().find(|p| p.name == "kernels").unwrap();
    assert_eq!(k.busiest(), "gpsimd");
    snapshots("gpsimd", &r);
}

fn close(got: &[f32], want: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(g) - w).abs() <= atol + rtol * w.abs(),
            "element {i}: got {g}, want {w}"
        );
    }
}

#[test]
fn softmax_matches_ndarray() {
    let x: Vec<f32> = values(Dtype::Fp32, 128 * 512, 4)
        .iter()
        .map(|v| v * 8.0)
        .collect();
    let r = run(
        "softmax",
        &[("x", tensor(Dtype::Fp32, &[128, 512], x.clone()))],
        false,
    );
    let x = Array2::from_shape_vec((128, 512), x.iter().map(|&v| f64::from(v)).collect()).unwrap();
    let mut want = Vec::new();
    for row in x.rows() {
        let m = row.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        let e: Array1<f64> = row.mapv(|v| (v - m).exp());
        let s = e.sum();
        want.extend(e.iter().map(|v| v / s));
    }
    close(&r.outputs["y"].data, &want, 2e-6, 1e-9);
    snapshots("softmax", &r);
}

/// erf to double precision (Abramowitz & Stegun 7.1.26 is too coarse; use the series and the
/// continued fraction).
fn erf(x: f64) -> f64 {
    if x.abs() < 3.0 {
        let (mut term, mut sum, mut n) = (x, x, 0.0);
        while term.abs() > 1e-17 * sum.abs().max(1e-300) {
            n += 1.0;
            term *= -x * x / n;
            sum += term / (2.0 * n + 1.0);
        }
        2.0 / std::f64::consts::PI.sqrt() * sum
    } else {
        // erfc continued fraction for |x| >= 3.
        let a = x.abs();
        let mut f = 0.0;
        for k in (1..60).rev() {
            f = (k as f64 / 2.0) / (a + f);
        }
        let erfc = (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + f);
        (1.0 - erfc).copysign(x)
    }
}

fn gelu_reference(x: &[f32]) -> Vec<f64> {
    x.iter()
        .map(|&v| {
            let v = f64::from(v);
            0.5 * v * (1.0 + erf(v / std::f64::consts::SQRT_2))
        })
        .collect()
}

#[test]
fn pipelined_and_serial_tile_loops_match_ndarray_and_pipelining_pays() {
    let x: Vec<f32> = values(Dtype::Fp32, 512 * 512, 5)
        .iter()
        .map(|v| v * 4.0)
        .collect();
    let want = gelu_reference(&x);
    let piped = run(
        "pipelined",
        &[("x", tensor(Dtype::Fp32, &[512, 512], x.clone()))],
        true,
    );
    let serial = run(
        "serial",
        &[("x", tensor(Dtype::Fp32, &[512, 512], x))],
        false,
    );
    close(&piped.outputs["y"].data, &want, 2e-6, 1e-7);
    close(&serial.outputs["y"].data, &want, 2e-6, 1e-7);
    assert!(
        piped.cycles < serial.cycles,
        "pipelined {} cycles, serial {}",
        piped.cycles,
        serial.cycles
    );

    // The trace shows a DMA transfer running while the scalar engine computes.
    let trace = piped.trace.as_ref().expect("trace recorded");
    let events = trace
        .get("traceEvents")
        .and_then(|e| e.as_array())
        .cloned()
        .unwrap_or_else(|| trace.as_array().cloned().unwrap());
    let name_of = |tid: u64| {
        events
            .iter()
            .find(|e| e["ph"] == "M" && e["name"] == "thread_name" && e["tid"] == tid)
            .map(|e| e["args"]["name"].as_str().unwrap().to_string())
    };
    let slices: Vec<(String, f64, f64)> = events
        .iter()
        .filter(|e| e["ph"] == "X")
        .map(|e| {
            let ts = e["ts"].as_f64().unwrap();
            (
                name_of(e["tid"].as_u64().unwrap()).unwrap(),
                ts,
                ts + e["dur"].as_f64().unwrap(),
            )
        })
        .collect();
    let overlap = slices
        .iter()
        .filter(|s| s.0 == "scalar")
        .any(|(_, s0, e0)| {
            slices
                .iter()
                .any(|(t, s1, e1)| t.starts_with("dma") && s1 < e0 && s0 < e1)
        });
    assert!(
        overlap,
        "no DMA slice overlaps a scalar-engine slice in the pipelined trace"
    );
    snapshots("pipelined", &piped);
    snapshots("serial", &serial);
}

#[test]
fn hand_written_kernel_ir_compiles_and_computes_axpy() {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/kernels/axpy.tk"
    ))
    .unwrap();
    let compiled = tahoma_compiler::driver::compile_kernel_text(&src).unwrap();
    let x = values(Dtype::Fp32, 512 * 256, 6);
    let b = values(Dtype::Fp32, 512 * 256, 7);
    let mut emu = Emulator::new(compiled.program).unwrap();
    emu.set_input("x", &tensor(Dtype::Fp32, &[512, 256], x.clone()))
        .unwrap();
    emu.set_input("b", &tensor(Dtype::Fp32, &[512, 256], b.clone()))
        .unwrap();
    let r = emu.run(&RunOptions::timed()).unwrap();
    // 2x + b is exact in fp32 for these operands up to one rounding of the sum.
    let want: Vec<f64> = x
        .iter()
        .zip(&b)
        .map(|(&x, &b)| f64::from(2.0 * x + b))
        .collect();
    close(&r.outputs["y"].data, &want, 0.0, 0.0);
}
