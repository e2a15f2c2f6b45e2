//! Benchmark: functional emulation of a generated 1024x1024x1024 bf16 GEMM program against
//! ndarray's f32 GEMM of the same size, in the same run; medians of repeated runs.
//!
//! `cargo run --release -p tahoma-runtime --example gemm_bench [-- SIZE [REPEATS]]`

use ndarray::Array2;
use std::time::Instant;
use tahoma_isa::{Act, Dtype};
use tahoma_runtime::{kernels, Emulator, RunOptions};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let arg = |i: usize, default: u64| {
        std::env::args()
            .nth(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let (size, repeats) = (arg(1, 1024), arg(2, 5).max(1));
    let prog = kernels::gemm(size, size, size, Dtype::Bf16, Act::Identity).expect("gemm program");
    let insts: usize = prog.streams.iter().map(|s| s.insts.len()).sum();
    let (mut gemm_t, mut emu_t, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = None;
    for _ in 0..repeats {
        let mut emu = Emulator::new(prog.clone()).expect("valid program");
        emu.fill_random_inputs(1).expect("inputs");
        let a = emu.read_tensor("a").expect("a");
        let b = emu.read_tensor("b").expect("b");
        let n = size as usize;
        let a = Array2::from_shape_vec((n, n), a.data).expect("shape");
        let b = Array2::from_shape_vec((n, n), b.data).expect("shape");
        let t = Instant::now();
        let reference = a.dot(&b);
        let g = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let res = emu.run(&RunOptions::functional()).expect("run");
        let e = t.elapsed().as_secs_f64();
        gemm_t.push(g);
        emu_t.push(e);
        ratios.push(e / g);
        last = Some((res, reference));
    }
    let (res, reference) = last.expect("at least one run");
    let max_err = res.outputs["c"]
        .data
        .iter()
        .zip(reference.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    println!(
        "{size}x{size}x{size} bf16 GEMM, {insts} instructions, {} MACs, {repeats} runs (medians)",
        res.macs
    );
    println!("ndarray f32 GEMM:      {:.4} s", median(gemm_t));
    println!("functional emulation:  {:.4} s", median(emu_t));
    println!(
        "ratio emulation/GEMM:  {:.2}x (median of per-run ratios)",
        median(ratios)
    );
    println!("max |emulated - reference| = {max_err:e}");
}
