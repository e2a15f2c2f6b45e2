# expect: E3006 at 3
.stream scalar
    MEMSET dst=sbuf:fp32[0,128]@0x0(16:1) value=0.0
    END
