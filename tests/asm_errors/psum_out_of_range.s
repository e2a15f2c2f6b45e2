# expect: E3001 at 4
# PSUM partitions hold 16 KiB; this copy reads 8 KiB starting at 12 KiB.
.stream vector
    TENSOR_COPY dst=sbuf:fp32[0,128]@0x0(2048:1) src=psum:fp32[0,128]@0x3000(2048:1)
    END
