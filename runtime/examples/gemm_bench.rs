//! Benchmark: functional emulation of a generated 1024x1024x1024 bf16 GEMM program against
//! ndarray's f32 GEMM of the same size, in the same run.
//!
//! `cargo run --release -p tahoma-runtime --example gemm_bench [-- SIZE]`

use ndarray::Array2;
use std::time::Instant;
use tahoma_isa::{Act, Dtype};
use tahoma_runtime::{kernels, Emulator, RunOptions};

fn main() {
    let size: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024);
    let prog = kernels::gemm(size, size, size, Dtype::Bf16, Act::Identity).expect("gemm program");
    let insts: usize = prog.streams.iter().map(|s| s.insts.len()).sum();
    let mut emu = Emulator::new(prog).expect("valid program");
    emu.fill_random_inputs(1).expect("inputs");
    let a = emu.read_tensor("a").expect("a");
    let b = emu.read_tensor("b").expect("b");
    let n = size as usize;
    let a = Array2::from_shape_vec((n, n), a.data).expect("shape");
    let b = Array2::from_shape_vec((n, n), b.data).expect("shape");

    let t = Instant::now();
    let reference = a.dot(&b);
    let gemm_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let res = emu.run(&RunOptions::functional()).expect("run");
    let emu_s = t.elapsed().as_secs_f64();

    let c = &res.outputs["c"];
    let max_err = c
        .data
        .iter()
        .zip(reference.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    println!(
        "{size}x{size}x{size} bf16 GEMM, {insts} instructions, {} MACs",
        res.macs
    );
    println!("ndarray f32 GEMM:      {:.4} s", gemm_s);
    println!("functional emulation:  {:.4} s", emu_s);
    println!("ratio emulation/GEMM:  {:.2}x", emu_s / gemm_s);
    println!("max |emulated - reference| = {max_err:e}");
}
