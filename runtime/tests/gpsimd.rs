//! The GpSimd engine at load time: the kernel table round-trips through assembly and `.tbin`,
//! and a kernel that does not parse, breaks the kernel contract or does not match its
//! instruction is refused with a stable code (E2008, E3007), never a panic.

use tahoma_isa::asm::{assemble, print_program};
use tahoma_isa::program::Program;
use tahoma_isa::Dtype;
use tahoma_runtime::emulator::{Emulator, RunOptions};
use tahoma_runtime::tensor::Tensor;

/// A program computing y = k(x) over [128, 4] with `kernel` as the only kernel; `dst_dtype`
/// is the dtype of the result access.
fn program(kernel: &str, in_dtype: &str, dst_dtype: &str) -> String {
    let body: String = kernel.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        r#".input "x" {in_dtype} [128,4] @0x0
.output "y" {dst_dtype} [128,4] @0x1000
.kernel 0 ops=3
{body}.endkernel
.stream dma0
    DMA_COPY src=hbm:{in_dtype}[0,128;4]@0x0(4:1) dst=sbuf:{in_dtype}[0,128]@0x0(4:1) queue=0 signal(s1+=1)
    END
.stream gpsimd
    GPSIMD_KERNEL dst=sbuf:{dst_dtype}[0,128]@0x100(4:1) a=sbuf:{in_dtype}[0,128]@0x0(4:1) kernel=0 inputs=1 wait(s1>=1) signal(s2+=1)
    END
.stream dma1
    DMA_COPY src=sbuf:{dst_dtype}[0,128]@0x100(4:1) dst=hbm:{dst_dtype}[0,128;4]@0x1000(4:1) queue=1 wait(s2>=1)
    END
"#
    )
}

const CUBE: &str = "function %cube(f32) -> f32 {
block0(v0: f32):
    v1 = fmul v0, v0
    v2 = fmul v1, v0   ; x^3
    return v2
}";

fn load_error(text: &str) -> (String, String) {
    let p = assemble(text).unwrap_or_else(|e| panic!("{e}"));
    match Emulator::new(p) {
        Ok(_) => panic!("loaded"),
        Err(e) => (e.code().to_string(), e.to_string()),
    }
}

#[test]
fn kernel_table_round_trips_through_assembly_and_tbin() {
    let p = assemble(&program(CUBE, "fp32", "fp32")).unwrap();
    assert_eq!(p.kernels.len(), 1);
    assert_eq!(p.kernels[0].ops_per_elem, 3);
    let text = print_program(&p, true);
    assert_eq!(assemble(&text).unwrap(), p, "{text}");
    let back = Program::from_bytes(&p.to_bytes().unwrap()).unwrap();
    assert_eq!(back, p);
    // A program without kernels writes no kernel section, as before the engine existed.
    let mut bare = p.clone();
    bare.kernels.clear();
    let bare_bytes = bare.to_bytes().unwrap();
    assert!(bare_bytes.len() + p.kernels[0].clif.len() < p.to_bytes().unwrap().len());
}

#[test]
fn kernel_runs_in_both_modes() {
    let x: Vec<f32> = (0..512).map(|i| i as f32 * 0.25 - 64.0).collect();
    for opts in [RunOptions::functional(), RunOptions::timed()] {
        let mut emu = Emulator::new(assemble(&program(CUBE, "fp32", "bf16")).unwrap()).unwrap();
        emu.set_input("x", &Tensor::new(Dtype::Fp32, vec![128, 4], x.clone()))
            .unwrap();
        let r = emu.run(&opts).unwrap();
        for (i, &v) in x.iter().enumerate() {
            let want = half::bf16::from_f32(v * v * v).to_f32();
            assert_eq!(r.outputs["y"].data[i], want, "y[{i}]");
        }
    }
}

#[test]
fn bad_kernels_are_refused_with_stable_codes() {
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        ("function %k(f32) -> f32 {\nblock0(v0: f32):\n    v1 = fmul v0\n    return v1\n}", "fp32", "fp32", "E2008", "GpSimd kernel 0"),
        (
            "function %k(f32) -> f32 {\nblock0(v0: f32):\n    v1 = iconst.i64 0\n    v2 = load.f32 v1\n    return v2\n}",
            "fp32",
            "fp32",
            "E2008",
            "`load` is not allowed",
        ),
        (
            "function %k(f32) -> f32 {\n    fn0 = %system(f32) -> f32\nblock0(v0: f32):\n    v1 = call fn0(v0)\n    return v1\n}",
            "fp32",
            "fp32",
            "E2008",
            "not a host function",
        ),
        (
            "function %k(f32) -> f32 {\n    fn0 = %tahoma_sinf(f32, f32) -> f32\nblock0(v0: f32):\n    v1 = call fn0(v0, v0)\n    return v1\n}",
            "fp32",
            "fp32",
            "E2008",
            "wrong signature",
        ),
        (
            "function %k(f32) -> f32 {\nblock0(v0: f32):\n    jump block1\nblock1:\n    return v0\n}",
            "fp32",
            "fp32",
            "E2008",
            "exactly one block",
        ),
        ("function %k(i32) -> i32 {\nblock0(v0: i32):\n    v1 = sdiv v0, v0\n    return v1\n}", "i32", "i32", "E2008", "`sdiv` is not allowed"),
        // Well-formed kernels whose signature does not match the instruction's accesses.
        (CUBE, "i32", "fp32", "E3007", "parameter 0 of kernel 0 is f32"),
        (CUBE, "fp32", "i32", "E3007", "kernel 0 returns f32"),
    ];
    for (kernel, din, dout, code, msg) in cases {
        let (c, m) = load_error(&program(kernel, din, dout));
        assert_eq!(&c, code, "{kernel}: {m}");
        assert!(m.contains(msg), "{kernel}: `{m}` lacks `{msg}`");
    }
}
