# expect: E2102 at 3:5
.stream tensor
    MATMUL moving=sbuf:bf16[0,128]@0x0(128:1) accumulate=false
    END
