#!/usr/bin/env python3
"""Reads the driver's outputs for every case of a check folder and prints a pass/fail table:
relative L2 and max abs error against the CPU interpreter (small cases) or a PyTorch fp32
reference (FLUX-sized cases), kernel time and bandwidth, and for the FLUX cases the same op in
PyTorch eager (bf16) timed with CUDA events in this run. Usage: compare.py <checkDir>"""
import json, os, sys
import numpy as np

DT = {"f32": np.float32, "f64": np.float64, "f16": np.float16, "i64": np.int64, "i32": np.int32, "bool": np.uint8, "u8": np.uint8}

def load(path, dtype, shape):
    raw = open(path, "rb").read()
    if dtype == "bf16":
        u = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
        a = u.view(np.float32)
    else:
        a = np.frombuffer(raw, dtype=DT[dtype]).astype(np.float64 if dtype in ("i64", "i32", "bool", "u8", "f64") else np.float32)
    return a.reshape(shape).astype(np.float64)

def errors(got, ref):
    d = got - ref
    denom = np.sqrt(np.sum(ref * ref)) or 1.0
    both_nan = np.isnan(got) & np.isnan(ref)
    d = np.where(both_nan, 0.0, d)
    return float(np.sqrt(np.sum(d * d)) / denom), float(np.max(np.abs(d))) if d.size else 0.0

def torch_case(kind, ins, out_meta):
    import torch
    dev = "cuda"
    t = [torch.from_numpy(np.ascontiguousarray(x)).to(dev) for x in ins]
    bf = [x.to(torch.bfloat16) for x in t]
    f32 = [x.float() for x in bf]
    if kind == "ln_modulate":
        x, w, b, shift, scale = f32
        ref = torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, 1e-6).bfloat16().float() * (1 + scale) + shift
        X, W, Bb, SH, SC = bf
        fn = lambda: torch.nn.functional.layer_norm(X, (X.shape[-1],), W, Bb, 1e-6) * (1 + SC) + SH
    elif kind == "rms_rope":
        x, w = f32[0], f32[1]
        cos, sin = t[2].float(), t[3].float()
        y = (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w).bfloat16().float()
        yr = torch.stack((-y[..., 1::2], y[..., 0::2]), dim=-1).flatten(-2)
        ref = y * cos + yr * sin
        X, W = bf[0], bf[1]
        C, S = t[2].float(), t[3].float()
        def fn():
            yy = torch.nn.functional.rms_norm(X, (X.shape[-1],), W, 1e-6)
            r = torch.stack((-yy[..., 1::2], yy[..., 0::2]), dim=-1).flatten(-2)
            return (yy.float() * C + r.float() * S).bfloat16()
    elif kind == "gated_residual":
        x, g, y = f32
        ref = x + g * y
        X, G, Y = bf
        fn = lambda: X + G * Y
    elif kind == "gelu_tanh":
        ref = torch.nn.functional.gelu(f32[0], approximate="tanh")
        X = bf[0]
        fn = lambda: torch.nn.functional.gelu(X, approximate="tanh")
    elif kind == "head_transpose":
        ref = f32[0].reshape(1, 4608, 24, 128).transpose(1, 2)
        X = bf[0]
        fn = lambda: X.reshape(1, 4608, 24, 128).transpose(1, 2).contiguous()
    elif kind == "fbcache_diff":
        ref = (f32[0] - f32[1]).bfloat16().float().abs().mean()
        X, Y = bf
        fn = lambda: (X - Y).abs().mean()
    else:
        raise ValueError(kind)
    for _ in range(5): fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(50):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); b.synchronize()
        times.append(a.elapsed_time(b) * 1000.0)
    times.sort()
    return ref.double().cpu().numpy(), times[len(times) // 2]

def main():
    root = sys.argv[1]
    names = [l.strip() for l in open(os.path.join(root, "cases.txt")) if l.strip()]
    rows, ok_all = [], True
    for name in names:
        c = os.path.join(root, name)
        meta = json.load(open(os.path.join(c, "meta.json")))
        log = open(os.path.join(c, "driver.log")).read() if os.path.exists(os.path.join(c, "driver.log")) else ""
        us = next((float(l.split()[1]) for l in log.splitlines() if l.startswith("RESULT")), None)
        if us is None:
            rows.append((name, "FAIL", "no result (compile or run failed)", "", "", "", "")); ok_all = False; continue
        torch_us, worst, status = None, (0.0, 0.0), "PASS"
        for o in meta["outputs"]:
            got = load(os.path.join(c, o["file"]), o["dtype"], o["shape"])
            if "expected" in o:
                ref = np.frombuffer(open(os.path.join(c, o["expected"]), "rb").read(), dtype=np.float64).reshape(o["shape"])
            else:
                ins = [load(os.path.join(c, i["file"]), i["dtype"], i["shape"]).astype(np.float32) for i in meta["inputs"]]
                ref, torch_us = torch_case(meta["torch"], ins, o)
            rel, mx = errors(got, ref)
            tol = o["tol"] if o["tol"] > 0 else 0.0
            bad = rel > tol if tol > 0 else mx > 0
            if bad: status = "FAIL"
            worst = (max(worst[0], rel), max(worst[1], mx))
        ok_all &= status == "PASS"
        gbs = meta["bytes"] / (us * 1e-6) / 1e9
        tgbs = f"{meta['bytes'] / (torch_us * 1e-6) / 1e9:8.0f}" if torch_us else ""
        rows.append((name, status, f"{worst[0]:.2e}", f"{worst[1]:.2e}", f"{us:9.1f}", f"{gbs:8.0f}", (f"{torch_us:9.1f}" if torch_us else "") + ("  " + tgbs if tgbs else "")))
    print(f"{'case':34} {'status':6} {'relL2':>9} {'maxabs':>9} {'us':>9} {'GB/s':>8}  torch(us, GB/s same bytes)")
    for r in rows:
        print(f"{r[0]:34} {r[1]:6} {r[2]:>9} {r[3]:>9} {r[4]:>9} {r[5]:>8}  {r[6]}")
    print("ALL PASS" if ok_all else "SOME FAILED")
    return 0 if ok_all else 1

if __name__ == "__main__":
    sys.exit(main())
