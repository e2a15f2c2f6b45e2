# The serial version of pipelined.s: the same y = gelu(x) over four [128,512] fp32 tiles, with
# one buffer and one DMA queue, so every load, compute and store waits for the step before it.
# It exists to show what pipelining buys (compare the cycle counts of the two).
#   s1: loads completed, s2: computes completed.
.input  "x" fp32 [512,512] @0x0
.output "y" fp32 [512,512] @0x100000

.stream dma0
.op "load"
    DMA_COPY src=hbm:fp32[0,128;512]@0x0(512:1) dst=sbuf:fp32[0,128]@0x0(512:1) queue=0 signal(s1+=1)
.op "store"
    DMA_COPY src=sbuf:fp32[0,128]@0x1000(512:1) dst=hbm:fp32[0,128;512]@0x100000(512:1) queue=0 wait(s2>=1)
.op "load"
    DMA_COPY src=hbm:fp32[0,128;512]@0x40000(512:1) dst=sbuf:fp32[0,128]@0x0(512:1) queue=0 signal(s1+=1)
.op "store"
    DMA_COPY src=sbuf:fp32[0,128]@0x1000(512:1) dst=hbm:fp32[0,128;512]@0x140000(512:1) queue=0 wait(s2>=2)
.op "load"
    DMA_COPY src=hbm:fp32[0,128;512]@0x80000(512:1) dst=sbuf:fp32[0,128]@0x0(512:1) queue=0 signal(s1+=1)
.op "store"
    DMA_COPY src=sbuf:fp32[0,128]@0x1000(512:1) dst=hbm:fp32[0,128;512]@0x180000(512:1) queue=0 wait(s2>=3)
.op "load"
    DMA_COPY src=hbm:fp32[0,128;512]@0xc0000(512:1) dst=sbuf:fp32[0,128]@0x0(512:1) queue=0 signal(s1+=1)
.op "store"
    DMA_COPY src=sbuf:fp32[0,128]@0x1000(512:1) dst=hbm:fp32[0,128;512]@0x1c0000(512:1) queue=0 wait(s2>=4)
    END

.stream scalar
.op "gelu"
    ACTIVATE dst=sbuf:fp32[0,128]@0x1000(512:1) src=sbuf:fp32[0,128]@0x0(512:1) func=gelu wait(s1>=1) signal(s2+=1)
    ACTIVATE dst=sbuf:fp32[0,128]@0x1000(512:1) src=sbuf:fp32[0,128]@0x0(512:1) func=gelu wait(s1>=2) signal(s2+=1)
    ACTIVATE dst=sbuf:fp32[0,128]@0x1000(512:1) src=sbuf:fp32[0,128]@0x0(512:1) func=gelu wait(s1>=3) signal(s2+=1)
    ACTIVATE dst=sbuf:fp32[0,128]@0x1000(512:1) src=sbuf:fp32[0,128]@0x0(512:1) func=gelu wait(s1>=4) signal(s2+=1)
    END
