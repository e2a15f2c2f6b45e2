# expect: E3007 at 11
# The kernel table has one entry (kernel 0); kernel=1 names none.
.kernel 0 ops=1
    function %neg(f32) -> f32 {
    block0(v0: f32):
        v1 = fneg v0
        return v1
    }
.endkernel
.stream gpsimd
    GPSIMD_KERNEL dst=sbuf:fp32[0,128]@0x0(8:1) a=sbuf:fp32[0,128]@0x100(8:1) kernel=1 inputs=1
    END
