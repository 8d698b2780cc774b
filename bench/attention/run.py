"""GPU check + benchmark of the generated attention kernels (run on the device machine).

Reads plan.json written by gen.mjs (kernel entries, launch args exactly as emitAttention().args()
returns them), compiles each .cu to an sm_90a cubin with nvcc (and once through NVRTC via CuPy),
checks every case against an fp32 PyTorch reference (fresh random inputs, poisoned outputs), and
times the bench cases with CUDA events (median of N after warm-up) next to torch SDPA in the same run.
Usage: python3 run.py [dir]   (dir holds plan.json and the .cu files)
"""
import json
import math
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import cupy as cp
import numpy as np
import torch
import torch.nn.functional as F

HERE = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
PLAN = json.load(open(os.path.join(HERE, "plan.json")))
DT = {"bf16": torch.bfloat16, "f16": torch.float16}
MASK_DT = {"additive-f32": torch.float32, "additive-bf16": torch.bfloat16, "additive-f16": torch.float16, "bool": torch.bool}
REPS = 30


def compile_all():
    def one(name):
        cu = os.path.join(HERE, name + ".cu")
        cubin = os.path.join(HERE, name + ".cubin")
        r = subprocess.run(["nvcc", "-gencode", "arch=compute_90a,code=sm_90a", "-std=c++17", "-cubin",
                            "-Xptxas", "-v", "-o", cubin, cu], capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"nvcc failed for {name}:\n{r.stderr}")
        regs = [l.strip() for l in r.stderr.splitlines() if "spill" in l or "Used" in l or "C75" in l]
        return name, cubin, regs
    with ThreadPoolExecutor(8) as ex:
        built = list(ex.map(one, PLAN["kernels"].keys()))
    funcs = {}
    for name, cubin, regs in built:
        k = PLAN["kernels"][name]
        mod = cp.RawModule(path=cubin)
        f = mod.get_function(k["entry"])
        f.max_dynamic_shared_size_bytes = k["smem"]
        funcs[name] = (mod, f)
        print(f"[build] {name}: {' | '.join(regs)}")
    # NVRTC: the runtime compiles the same source at load time when nvcc is absent.
    for name in list(PLAN["kernels"].keys())[:3]:
        src = open(os.path.join(HERE, name + ".cu")).read()
        try:
            m = cp.RawModule(code=src, backend="nvrtc", options=("-std=c++17", "-arch=sm_90a"))
            m.get_function(PLAN["kernels"][name]["entry"])
            print(f"[nvrtc] {name}: ok")
        except Exception as e:  # report, do not stop the benchmark
            print(f"[nvrtc] {name}: FAILED {str(e)[:600]}")
    return funcs


def make_inputs(c, spec):
    B, H, HKV, SQ, SKV = c["launch"]["batch"], c["launch"]["heads"], c["launch"]["kvHeads"], c["launch"]["sq"], c["launch"]["skv"]
    D, DV = spec["headDim"], spec.get("headDimV", spec["headDim"])
    dt = DT[spec["dtype"]]
    dev = "cuda"
    if c["layout"] == "bshd":  # q/k/v/o read and written inside [B, S, heads*D] buffers
        qs = torch.randn(B, SQ, H, D, device=dev).to(dt)
        ks = torch.randn(B, SKV, HKV, D, device=dev).to(dt)
        vs = torch.randn(B, SKV, HKV, DV, device=dev).to(dt)
        os_ = torch.empty(B, SQ, H, DV, device=dev, dtype=dt)
        views = [t.permute(0, 2, 1, 3) for t in (qs, ks, vs, os_)]
    else:
        qs = torch.randn(B, H, SQ, D, device=dev).to(dt)
        ks = torch.randn(B, HKV, SKV, D, device=dev).to(dt)
        vs = torch.randn(B, HKV, SKV, DV, device=dev).to(dt)
        os_ = torch.empty(B, H, SQ, DV, device=dev, dtype=dt)
        views = [qs, ks, vs, os_]
    for name, t in zip("qkvo", views):
        st = c["launch"][name]
        if t.numel() > 0:  # torch gives empty tensors arbitrary strides
            assert list(t.stride())[:3] == [st["b"], st["h"], st["s"]], (name, t.stride(), st)
    mask = None
    if spec["mask"] != "none":
        mb, mh = c["maskShape"]
        if c.get("maskTransposed"):
            store = torch.randn(mb, mh, SKV, SQ, device=dev)
            m = store.transpose(2, 3)
        else:
            store = torch.randn(mb, mh, SQ, SKV, device=dev)
            m = store
        if spec["mask"] == "bool":
            m = m > -1.3  # ~90% keep
            if c.get("deadRows"):
                m[..., ::7, :] = False  # fully masked rows
        else:
            m = m * 2.0
            if c.get("deadRows"):
                m[..., ::7, :] = -math.inf
        m = m.to(MASK_DT[spec["mask"]])
        if c.get("maskTransposed"):
            m = m.transpose(2, 3).contiguous().transpose(2, 3)
        else:
            m = m.contiguous()
        st = c["launch"]["mask"]
        exp = [st["b"], st["h"], st["q"], st["k"]]
        got = [0 if mb == 1 else m.stride(0), 0 if mh == 1 else m.stride(1), m.stride(2), m.stride(3)]
        assert exp == got, (exp, got)
        mask = m
    lse = torch.empty(B, H, SQ, device=dev, dtype=torch.float32) if spec["withLse"] else None
    return views, os_, mask, lse


def reference(views, mask, spec, c):
    q, k, v, _ = views
    H, HKV = c["launch"]["heads"], c["launch"]["kvHeads"]
    qf, kf, vf = q.float(), k.float().repeat_interleave(H // HKV, 1), v.float().repeat_interleave(H // HKV, 1)
    s = (qf @ kf.transpose(-1, -2)) * c["launch"]["scale"]
    if mask is not None:
        if mask.dtype == torch.bool:
            s = s.masked_fill(~mask, -math.inf)
        else:
            s = s + mask.float()
    lse = torch.logsumexp(s, -1)
    p = torch.softmax(s, -1).nan_to_num(0.0)
    return p @ vf, lse


def launch(func, c, k, ptrs):
    args = []
    for a in c["args"]:
        if a["kind"] == "ptr":
            args.append(np.uint64(ptrs[a["name"]]))
        elif a["kind"] == "i32":
            args.append(np.int32(a["v"]))
        elif a["kind"] == "i64":
            args.append(np.int64(a["v"]))
        else:
            args.append(np.float32(a["v"]))
    func(tuple(c["grid"]), tuple(k["block"]), tuple(args), shared_mem=k["smem"])


def time_ms(fn):
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(REPS):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times), min(times), max(times)


def main():
    funcs = compile_all()
    print(f"device: {torch.cuda.get_device_name()}")
    rows, ok_all = [], True
    for c in PLAN["cases"]:
        try:
            ok_all = run_case(c, funcs, rows) and ok_all
        except Exception as e:  # a broken case must not hide the others
            print(f"[check] {c['name']}: FAIL {type(e).__name__}: {e}", flush=True)
            ok_all = False
        torch.cuda.empty_cache()
    print("\n| case | median ms | TFLOP/s | min | max |\n|---|---|---|---|---|")
    for n, med, tf, lo, hi in rows:
        print(f"| {n} | {med:.3f} | {tf:.0f} | {lo:.3f} | {hi:.3f} |")
    print("ALL CHECKS PASS" if ok_all else "SOME CHECKS FAILED")


def run_case(c, funcs, rows):
    k = PLAN["kernels"][c["kernel"]]
    spec = k["spec"]
    torch.manual_seed(c.get("seed", 0))
    views, o_store, mask, lse = make_inputs(c, spec)
    ptrs = {"q": views[0].data_ptr(), "k": views[1].data_ptr(), "v": views[2].data_ptr(), "o": o_store.data_ptr()}
    if mask is not None:
        ptrs["mask"] = mask.data_ptr()
    if lse is not None:
        ptrs["lse"] = lse.data_ptr()
    o_store.fill_(float("nan"))
    if lse is not None:
        lse.fill_(float("nan"))
    func = funcs[c["kernel"]][1]
    launch(func, c, k, ptrs)
    torch.cuda.synchronize()
    ref, ref_lse = reference(views, mask, spec, c)
    out = views[3].float()
    unwritten = int(torch.isnan(out).sum())
    err = (out - ref).abs().max().item() / max(ref.abs().max().item(), 1e-6)
    rel_l2 = ((out - ref).norm() / max(ref.norm().item(), 1e-6)).item()
    good = unwritten == 0 and err <= 2e-2 and rel_l2 <= 1e-2
    msg = f"maxerr/max {err:.2e} relL2 {rel_l2:.2e} unwritten {unwritten}"
    if lse is not None:
        fin = torch.isfinite(ref_lse)
        same_inf = bool(torch.equal(torch.isneginf(lse), torch.isneginf(ref_lse)))
        lerr = (lse[fin] - ref_lse[fin]).abs().max().item() if fin.any() else 0.0
        good = good and same_inf and lerr <= 2e-3 and not torch.isnan(lse).any()
        msg += f" lse maxabs {lerr:.2e} -inf rows match {same_inf} ({int((~fin).sum())} dead)"
    print(f"[check] {c['name']}: {'PASS' if good else 'FAIL'} {msg}", flush=True)
    if c.get("bench"):
        L = c["launch"]
        flops = 4 * L["batch"] * L["heads"] * L["sq"] * L["skv"] * spec["headDim"]
        med, lo, hi = time_ms(lambda: launch(func, c, k, ptrs))
        rows.append((c["name"], med, flops / med / 1e9, lo, hi))
        if c.get("sdpa"):
            q = views[0].contiguous(); kk = views[1].contiguous(); v = views[2].contiguous()
            am = None
            if mask is not None:
                am = mask if mask.dtype == torch.bool else mask.to(q.dtype)
            fn = lambda: F.scaled_dot_product_attention(q, kk, v, attn_mask=am, scale=L["scale"], enable_gqa=L["heads"] != L["kvHeads"])
            med, lo, hi = time_ms(fn)
            rows.append(("  torch SDPA same shape", med, flops / med / 1e9, lo, hi))
    return good


if __name__ == "__main__":
    main()
