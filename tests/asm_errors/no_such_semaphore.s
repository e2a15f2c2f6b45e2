# expect: E3005 at 3
.stream vector
    MEMSET dst=sbuf:fp32[0,128]@0x0(16:1) value=0.0 signal(s64+=1)
    END
