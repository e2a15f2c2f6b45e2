# expect: E3003 at 5
# One MATMUL streams at most 512 moving columns (one PSUM bank of fp32).
.stream tensor
    LOAD_STATIONARY src=sbuf:bf16[0,128]@0x0(128:1)
    MATMUL moving=sbuf:bf16[0,128]@0x100(1024:1) dst=psum:fp32[0,128]@0x0(1024:1) accumulate=false
    END
