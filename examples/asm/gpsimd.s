# The programmable (GpSimd) engine: y = sin(x) * n and r = n mod 7 (flooring, the sign of 7)
# over [128, 64] tensors, x fp32 and n i32.
#
# GPSIMD_KERNEL calls a kernel of the program's kernel table once per element. Kernels are
# Cranelift IR (CLIF) functions, JIT-compiled by the emulator when it loads the program: one
# f32 parameter per input access (i32 for an i32 access) and one result (f32, or i32 when dst
# is i32). Straight-line code only: scalar arithmetic, comparisons, selects and calls to the
# emulator's host functions (`%tahoma_sinf`, `%tahoma_smod`, ... listed in ISA.md). `ops=` is
# the kernel's cost in ops per element: a host math call counts `gpsimd_math_call_ops`.
.input  "x" fp32 [128,64] @0x0
.input  "n" i32 [128,64] @0x8000
.output "y" fp32 [128,64] @0x10000
.output "r" i32 [128,64] @0x18000

# Kernel 0: sin(x) * float(n). The CLIF lines are indented four spaces; `;` starts a CLIF comment.
.kernel 0 ops=22
    function %sin_times(f32, i32) -> f32 {
        fn0 = %tahoma_sinf(f32) -> f32     ; host function: Rust's f32::sin
    block0(v0: f32, v1: i32):
        v2 = call fn0(v0)
        v3 = fcvt_from_sint.f32 v1
        v4 = fmul v2, v3
        return v4
    }
.endkernel
# Kernel 1: n mod 7 in i32 (an i32 parameter and result: no trip through fp32).
.kernel 1 ops=21
    function %mod7(i32) -> i32 {
        fn0 = %tahoma_smod(i32, i32) -> i32
    block0(v0: i32):
        v1 = iconst.i32 7
        v2 = call fn0(v0, v1)
        return v2
    }
.endkernel

# Queue 0 loads x, queue 1 loads n: one row per partition.
.stream dma0
.op "load"
    DMA_COPY src=hbm:fp32[0,128;64]@0x0(64:1) dst=sbuf:fp32[0,128]@0x0(64:1) queue=0 signal(s1+=1)
    END
.stream dma1
.op "load"
    DMA_COPY src=hbm:i32[0,128;64]@0x8000(64:1) dst=sbuf:i32[0,128]@0x100(64:1) queue=1 signal(s1+=1)
    END

# The GpSimd engine waits for both loads (s1 counts them), runs the two kernels (SBUF only: it
# has no PSUM port), and signals the stores.
.stream gpsimd
.op "kernels"
    GPSIMD_KERNEL dst=sbuf:fp32[0,128]@0x200(64:1) a=sbuf:fp32[0,128]@0x0(64:1) b=sbuf:i32[0,128]@0x100(64:1) kernel=0 inputs=2 wait(s1>=2)
    GPSIMD_KERNEL dst=sbuf:i32[0,128]@0x300(64:1) a=sbuf:i32[0,128]@0x100(64:1) kernel=1 inputs=1 signal(s2+=1)
    END

.stream dma2
.op "store"
    DMA_COPY src=sbuf:fp32[0,128]@0x200(64:1) dst=hbm:fp32[0,128;64]@0x10000(64:1) queue=2 wait(s2>=1)
    DMA_COPY src=sbuf:i32[0,128]@0x300(64:1) dst=hbm:i32[0,128;64]@0x18000(64:1) queue=2
    END
