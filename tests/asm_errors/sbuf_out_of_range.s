# expect: E3001 at 4
# The partition holds 196608 bytes; 512 fp32 starting at byte 196000 run past its end.
.stream vector
    MEMSET dst=sbuf:fp32[0,128]@196000(512:1) value=0.0
    END
