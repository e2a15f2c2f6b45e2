# expect: E2101 at 3:5
.stream vector
    MEMSETT dst=sbuf:fp32[0,128]@0x0(512:1) value=1.0
    END
