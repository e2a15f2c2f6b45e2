# expect: E3004 at 5
# 512 fp32 fill one 2 KiB bank exactly; starting at byte 1024 crosses into the next bank.
.stream tensor
    LOAD_STATIONARY src=sbuf:bf16[0,128]@0x0(128:1)
    MATMUL moving=sbuf:bf16[0,128]@0x100(512:1) dst=psum:fp32[0,128]@0x400(512:1) accumulate=false
    END
