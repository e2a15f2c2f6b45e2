# expect: E3002 at 4
# 64 partitions may start only at 0 or 64.
.stream vector
    MEMSET dst=sbuf:fp32[32,64]@0x0(16:1) value=0.0
    END
