# expect: E3000 at 11
# The GpSimd engine has no PSUM port (constraint sbuf_only).
.kernel 0 ops=1
    function %neg(f32) -> f32 {
    block0(v0: f32):
        v1 = fneg v0
        return v1
    }
.endkernel
.stream gpsimd
    GPSIMD_KERNEL dst=sbuf:fp32[0,128]@0x0(8:1) a=psum:fp32[0,128]@0x0(8:1) kernel=0 inputs=1
    END
