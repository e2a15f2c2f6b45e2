//! End to end through the chip: every graph in `tests/kernels/` (ONNX text, or graph IR text
//! for what ONNX cannot say) is imported, run on the graph interpreter (the oracle), compiled at
//! both precisions and run on the emulator with the same seeded inputs. Checked for each:
//!
//! * fp32: every output element within rtol 1e-3, atol 1e-5 of the interpreter (onnx's backend
//!   tolerance);
//! * bf16 (matmul operands rounded to bf16, fp32 accumulation): cosine similarity >= 0.999 per
//!   output, and the largest error relative to the output's largest magnitude below 2^-6;
//! * the kernel IR and the assembly print and parse back to equal programs;
//! * snapshots of the kernel IR and the assembly (bf16) and, separately, of the cycle counts.

use std::path::{Path, PathBuf};
use tahoma_compiler::driver::compile_graph;
use tahoma_compiler::graph::Graph;
use tahoma_compiler::kernel::text as ktext;
use tahoma_compiler::lower::{chip_dtype, LowerOptions, Precision};
use tahoma_compiler::onnx::{import_text, ImportOptions, NoExternalData};
use tahoma_compiler::tensor::Tensor as HostTensor;
use tahoma_isa::program::{IoEntry, IoKind};
use tahoma_runtime::emulator::{Emulator, RunOptions};
use tahoma_runtime::tensor::Tensor;

/// The graphs of `tests/kernels/` and the bundled example models of `examples/models/`.
fn graphs() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for dir in ["tests/kernels", "examples/models"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let files = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path());
        v.extend(files.filter(|p| {
            p.extension()
                .is_some_and(|e| e == "onnxtxt" || e == "graph")
        }));
    }
    v.sort();
    assert!(
        v.len() >= 10,
        "tests/kernels or examples/models is missing its graphs"
    );
    v
}

/// An ONNX text model, or graph IR text (`.graph`: for what ONNX cannot say, such as the
/// optimizer's `tile_n`).
fn import(path: &Path) -> Graph {
    let src = std::fs::read_to_string(path).unwrap();
    if path.extension().is_some_and(|e| e == "graph") {
        return tahoma_compiler::graph::text::parse(&src)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    import_text(&src, &ImportOptions::default(), &NoExternalData)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Seeded inputs: the values `tahoma run` would feed (input i uses seed i).
fn inputs(g: &Graph) -> Vec<(String, Vec<u64>, Vec<f32>)> {
    g.inputs
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let val = g.value(v);
            let shape: Vec<u64> = val.ty.shape.iter().map(|&d| d as u64).collect();
            let e = IoEntry {
                name: val.name.clone(),
                kind: IoKind::Input,
                dtype: chip_dtype(val.ty.dtype).unwrap(),
                shape: shape.clone(),
                addr: 0,
            };
            let vals = tahoma_runtime::inputs::random_values(&e, i as u64)
                .into_iter()
                .map(|x| x as f32)
                .collect();
            (val.name.clone(), shape, vals)
        })
        .collect()
}

struct Comparison {
    cosine: f64,
    max_rel_to_peak: f64,
    worst_allclose: f64,
}

fn compare(got: &[f32], want: &[f32]) -> Comparison {
    assert_eq!(got.len(), want.len());
    let (mut dot, mut ng, mut nw, mut peak, mut maxerr, mut worst) =
        (0f64, 0f64, 0f64, 0f64, 0f64, 0f64);
    for (&g, &w) in got.iter().zip(want) {
        let (g, w) = (f64::from(g), f64::from(w));
        dot += g * w;
        ng += g * g;
        nw += w * w;
        peak = peak.max(w.abs());
        maxerr = maxerr.max((g - w).abs());
        // How far past onnx's allclose(rtol=1e-3, atol=1e-5) bound this element is (<= 1 passes).
        worst = worst.max((g - w).abs() / (1e-5 + 1e-3 * w.abs()));
    }
    let cosine = if ng == 0.0 && nw == 0.0 {
        1.0
    } else {
        dot / (ng.sqrt() * nw.sqrt()).max(f64::MIN_POSITIVE)
    };
    Comparison {
        cosine,
        max_rel_to_peak: if peak > 0.0 { maxerr / peak } else { maxerr },
        worst_allclose: worst,
    }
}

fn run_case(
    path: &Path,
    precision: Precision,
) -> (
    tahoma_compiler::driver::Compiled,
    tahoma_runtime::report::RunResult,
) {
    let g = import(path);
    let compiled = compile_graph(&g, LowerOptions { precision })
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // Round trips of both texts.
    let text = ktext::print(&compiled.kernel);
    assert!(
        ktext::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            == compiled.kernel,
        "{}: kernel IR round trip",
        path.display()
    );
    assert_eq!(ktext::print(&ktext::parse(&text).unwrap()), text);
    let asm = tahoma_isa::asm::print_program(&compiled.program, true);
    assert!(
        tahoma_isa::asm::assemble(&asm).unwrap() == compiled.program,
        "{}: asm round trip",
        path.display()
    );
    let mut emu = Emulator::new(compiled.program.clone()).unwrap();
    for (name, shape, vals) in inputs(&g) {
        let dtype = emu
            .program()
            .io
            .iter()
            .find(|e| e.name == name)
            .unwrap()
            .dtype;
        emu.set_input(&name, &Tensor::new(dtype, shape, vals))
            .unwrap();
    }
    let result = emu
        .run(&RunOptions::timed())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (compiled, result)
}

fn reference(path: &Path) -> Vec<(String, Vec<f32>)> {
    let g = import(path);
    let ins: Vec<HostTensor> = inputs(&g)
        .into_iter()
        .zip(&g.inputs)
        .map(|((_, shape, vals), &v)| {
            HostTensor::from_f32(
                g.ty(v).dtype,
                &shape.iter().map(|&d| d as usize).collect::<Vec<_>>(),
                &vals,
            )
        })
        .collect();
    let outs = tahoma_compiler::interp::run_graph(&g, &ins).unwrap();
    g.outputs
        .iter()
        .zip(outs)
        .map(|(&v, t)| (g.value(v).name.clone(), t.to_f32_vec()))
        .collect()
}

#[test]
fn every_kernel_graph_matches_the_interpreter_at_both_precisions() {
    let mut table = String::from(
        "graph                  output  fp32-allclose  bf16-cosine  bf16-maxerr/peak\n",
    );
    for path in graphs() {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let want = reference(&path);
        let (_, fp32) = run_case(&path, Precision::Fp32);
        let (compiled, bf16) = run_case(&path, Precision::Bf16);
        for (out, w) in &want {
            let c32 = compare(&fp32.outputs[out].data, w);
            let c16 = compare(&bf16.outputs[out].data, w);
            assert!(
                c32.worst_allclose <= 1.0,
                "{name}/{out}: fp32 outside rtol 1e-3/atol 1e-5 ({:.2}x the bound)",
                c32.worst_allclose
            );
            assert!(
                c16.cosine >= 0.999,
                "{name}/{out}: bf16 cosine {}",
                c16.cosine
            );
            assert!(
                c16.max_rel_to_peak < 1.0 / 64.0,
                "{name}/{out}: bf16 max error {} of the peak",
                c16.max_rel_to_peak
            );
            table.push_str(&format!(
                "{name:<22} {out:<7} {:>13.3} {:>12.6} {:>17.2e}\n",
                c32.worst_allclose, c16.cosine, c16.max_rel_to_peak
            ));
        }
        insta::assert_snapshot!(
            format!("{name}_kernel"),
            ktext::print_with(
                &compiled.kernel,
                ktext::PrintOptions {
                    elide_above: Some(16)
                }
            )
        );
        insta::assert_snapshot!(
            format!("{name}_asm"),
            tahoma_isa::asm::print_program(&compiled.program, false)
        );
        insta::assert_snapshot!(
            format!("{name}_cycles"),
            format!(
                "bf16: {} cycles (roofline {}), fp32: {} cycles (roofline {})\n",
                bf16.cycles, bf16.roofline_cycles, fp32.cycles, fp32.roofline_cycles
            )
        );
    }
    println!("{table}");
}

/// `-O2`: every graph, optimized and compiled at fp32, still matches the interpreter run on the
/// unoptimized graph (the optimizer keeps the interface names).
#[test]
fn every_kernel_graph_optimized_at_o2_matches_the_interpreter() {
    use tahoma_compiler::driver::{compile_graph_opt, CompileOptions};
    use tahoma_compiler::opt::OptLevel;
    for path in graphs() {
        let g = import(&path);
        let want = reference(&path);
        let opts = CompileOptions {
            lower: LowerOptions {
                precision: Precision::Fp32,
            },
            opt_level: OptLevel::O2,
            keep_phase_graphs: false,
        };
        let (compiled, _) =
            compile_graph_opt(&g, &opts).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut emu = Emulator::new(compiled.program).unwrap();
        for (name, shape, vals) in inputs(&g) {
            let dtype = emu
                .program()
                .io
                .iter()
                .find(|e| e.name == name)
                .unwrap()
                .dtype;
            emu.set_input(&name, &Tensor::new(dtype, shape, vals))
                .unwrap();
        }
        let result = emu.run(&RunOptions::timed()).unwrap();
        for (out, w) in &want {
            let c = compare(&result.outputs[out].data, w);
            assert!(
                c.worst_allclose <= 1.0,
                "{}/{out} at -O2: fp32 outside rtol 1e-3/atol 1e-5 ({:.2}x the bound)",
                path.display(),
                c.worst_allclose
            );
        }
    }
}
