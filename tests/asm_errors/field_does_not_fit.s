# expect: E2102 at 4:18
.stream dma0
    DMA_COPY src=hbm:fp32[0,128;512]@0x0(512:1) dst=sbuf:fp32[0,128]@0x0(512:1) queue=0 signal(s1+=1)
    DMA_COPY src=hbm:fp32[0,128;512]@0x0(70000:1) dst=sbuf:fp32[0,128]@0x0(512:1) queue=0
    END
