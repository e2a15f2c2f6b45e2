# expect: E2101 at 4:66
.input "x" fp32 [128,512] @0x0
.stream vector
    MEMSET dst=sbuf:fp32[0,128]@0x0(512:1) value=1.0 wait(s1>=1) bogus
    END
