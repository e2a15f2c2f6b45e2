# y = gelu(x) over x[512,512] fp32, processed as four row tiles of [128,512] (256 KiB each),
# software-pipelined: while the scalar engine computes tile i, DMA queues already load tile i+1
# and store tile i-1. Compare with serial.s, which does the same work one step at a time; the
# test suite checks that this version takes fewer cycles and that its trace shows the overlap.
#
# Two input buffers (SBUF bytes 0x0 and 0x800) and two output buffers (0x1000, 0x1800) rotate:
# even tiles use buffer 0, odd tiles buffer 1. Semaphores:
#   s1 / s2: loads into input buffer 0 / 1 completed     (signalled by dma0 / dma1)
#   s3 / s4: computes from buffer 0 / 1 completed        (signalled by scalar)
#   s5 / s6: stores from output buffer 0 / 1 completed   (signalled by dma2 / dma3)
# A load may overwrite an input buffer once the compute reading it is done; a compute may
# overwrite an output buffer once the store reading it is done.
.input  "x" fp32 [512,512] @0x0
.output "y" fp32 [512,512] @0x100000

.stream dma0
.op "load_even"
    DMA_COPY src=hbm:fp32[0,128;512]@0x0(512:1) dst=sbuf:fp32[0,128]@0x0(512:1) queue=0 signal(s1+=1)
    DMA_COPY src=hbm:fp32[0,128;512]@0x80000(512:1) dst=sbuf:fp32[0,128]@0x0(512:1) queue=0 wait(s3>=1) signal(s1+=1)
    END

.stream dma1
.op "load_odd"
    DMA_COPY src=hbm:fp32[0,128;512]@0x40000(512:1) dst=sbuf:fp32[0,128]@0x800(512:1) queue=1 signal(s2+=1)
    DMA_COPY src=hbm:fp32[0,128;512]@0xc0000(512:1) dst=sbuf:fp32[0,128]@0x800(512:1) queue=1 wait(s4>=1) signal(s2+=1)
    END

.stream scalar
.op "gelu"
    ACTIVATE dst=sbuf:fp32[0,128]@0x1000(512:1) src=sbuf:fp32[0,128]@0x0(512:1) func=gelu wait(s1>=1) signal(s3+=1)
    ACTIVATE dst=sbuf:fp32[0,128]@0x1800(512:1) src=sbuf:fp32[0,128]@0x800(512:1) func=gelu wait(s2>=1) signal(s4+=1)
    ACTIVATE dst=sbuf:fp32[0,128]@0x1000(512:1) src=sbuf:fp32[0,128]@0x0(512:1) func=gelu wait(s1>=2) wait(s5>=1) signal(s3+=1)
    ACTIVATE dst=sbuf:fp32[0,128]@0x1800(512:1) src=sbuf:fp32[0,128]@0x800(512:1) func=gelu wait(s2>=2) wait(s6>=1) signal(s4+=1)
    END

.stream dma2
.op "store_even"
    DMA_COPY src=sbuf:fp32[0,128]@0x1000(512:1) dst=hbm:fp32[0,128;512]@0x100000(512:1) queue=2 wait(s3>=1) signal(s5+=1)
    DMA_COPY src=sbuf:fp32[0,128]@0x1000(512:1) dst=hbm:fp32[0,128;512]@0x180000(512:1) queue=2 wait(s3>=2) signal(s5+=1)
    END

.stream dma3
.op "store_odd"
    DMA_COPY src=sbuf:fp32[0,128]@0x1800(512:1) dst=hbm:fp32[0,128;512]@0x140000(512:1) queue=3 wait(s4>=1) signal(s6+=1)
    DMA_COPY src=sbuf:fp32[0,128]@0x1800(512:1) dst=hbm:fp32[0,128;512]@0x1c0000(512:1) queue=3 wait(s4>=2) signal(s6+=1)
    END
