//! The tiled GEMM from `kernels::gemm` against an ndarray reference, in both modes.

use ndarray::Array2;
use tahoma_isa::{Act, Dtype};
use tahoma_runtime::engines::scalar::activation;
use tahoma_runtime::{kernels, Emulator, Mode, RunOptions};

fn to_array(t: &tahoma_runtime::Tensor) -> Array2<f64> {
    let (r, c) = (t.shape[0] as usize, t.shape[1] as usize);
    Array2::from_shape_vec((r, c), t.data.iter().map(|&v| f64::from(v)).collect()).unwrap()
}

/// Runs the GEMM and checks every element against an f64 reference on the values actually
/// stored (after rounding to `dtype`), within fp32-accumulation error.
fn check(m: u64, k: u64, n: u64, dtype: Dtype, act: Act, mode: Mode) -> tahoma_runtime::RunResult {
    let prog = kernels::gemm(m, k, n, dtype, act).unwrap();
    let mut emu = Emulator::new(prog).unwrap();
    emu.fill_random_inputs(7).unwrap();
    let a = to_array(&emu.read_tensor("a").unwrap());
    let b = to_array(&emu.read_tensor("b").unwrap());
    let opts = RunOptions {
        mode,
        ..RunOptions::default()
    };
    let res = emu.run(&opts).unwrap();
    let c = &res.outputs["c"];
    assert_eq!(c.shape, vec![m, n]);
    let reference = a.dot(&b);
    let mut worst = 0f64;
    for (i, (&got, &want)) in c.data.iter().zip(reference.iter()).enumerate() {
        let want = f64::from(activation(act, want as f32));
        let err = (f64::from(got) - want).abs();
        // fp32 accumulation of k products of magnitude <= 1.
        let tol = 1e-6 * k as f64 + 1e-6 * want.abs();
        assert!(err <= tol, "element {i}: got {got}, want {want}");
        worst = worst.max(err);
    }
    assert_eq!(res.macs, m * k * n);
    res
}

#[test]
fn gemm_bf16_functional_matches_reference() {
    let r = check(256, 256, 512, Dtype::Bf16, Act::Identity, Mode::Functional);
    assert_eq!(r.cycles, 0);
}

#[test]
fn gemm_bf16_timed_matches_reference() {
    let r = check(256, 384, 1024, Dtype::Bf16, Act::Identity, Mode::Timed);
    assert!(r.cycles > 0);
    assert!(r.roofline_cycles > 0 && r.roofline_cycles <= r.cycles);
}

#[test]
fn gemm_fp32_with_relu_epilogue() {
    check(128, 128, 256, Dtype::Fp32, Act::Relu, Mode::Timed);
}

#[test]
fn gemm_fp16_small_tiles_with_gelu() {
    check(64, 32, 96, Dtype::Fp16, Act::Gelu, Mode::Functional);
}

#[test]
fn functional_and_timed_agree_bit_for_bit() {
    let run = |mode| {
        let mut emu =
            Emulator::new(kernels::gemm(128, 256, 512, Dtype::Bf16, Act::Silu).unwrap()).unwrap();
        emu.fill_random_inputs(3).unwrap();
        emu.run(&RunOptions {
            mode,
            ..RunOptions::default()
        })
        .unwrap()
    };
    let (f, t) = (run(Mode::Functional), run(Mode::Timed));
    assert_eq!(f.outputs, t.outputs);
    assert_eq!(f.macs, t.macs);
    assert_eq!(f.hbm_bytes, t.hbm_bytes);
}
