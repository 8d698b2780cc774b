"""torch.matmul baseline for bench/gemm/gemm-bench.ts: same shapes, bf16, CUDA-event medians.
Usage: python3 torch_gemm.py '<json list of [m,k,n,layout]>' [warmup] [reps] [idle_ms] -> one JSON line.
Sleeps idle_ms before each shape, as gemm-bench.ts does (the H100 lowers its clocks under sustained
GEMM load, so both sides start each shape rested)."""
import json
import sys
import time

import torch

def main() -> None:
    shapes = json.loads(sys.argv[1])
    warmup = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    idle_s = (int(sys.argv[4]) if len(sys.argv) > 4 else 500) / 1000
    torch.backends.cuda.matmul.allow_tf32 = False
    out = []
    for m, k, n, layout in shapes:
        g = torch.Generator(device="cuda").manual_seed(0)
        a = torch.rand(m, k, device="cuda", dtype=torch.bfloat16, generator=g) * 2 - 1
        if layout.startswith("nt"):
            w = torch.rand(n, k, device="cuda", dtype=torch.bfloat16, generator=g) * 2 - 1
            f = lambda: torch.matmul(a, w.t())
        else:
            b = torch.rand(k, n, device="cuda", dtype=torch.bfloat16, generator=g) * 2 - 1
            f = lambda: torch.matmul(a, b)
        torch.cuda.synchronize()
        time.sleep(idle_s)
        for _ in range(warmup):
            f()
        torch.cuda.synchronize()
        times = []
        for _ in range(reps):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            f()
            e.record()
            e.synchronize()
            times.append(s.elapsed_time(e))
        times.sort()
        med = times[len(times) // 2]
        out.append({"m": m, "k": k, "n": n, "layout": layout, "ms": med, "tflops": 2 * m * n * k / med / 1e9})
        del a
    print(json.dumps({"torch": torch.__version__, "device": torch.cuda.get_device_name(), "results": out}))

if __name__ == "__main__":
    main()
