"""PyTorch baseline for flux-dev-2x4: our own FLUX transformer (FLUX.1-dev widths: 3072 wide,
24 heads x 128, MLP x4; 2 double-stream + 4 single-stream blocks; 4096 image + 512 text tokens),
random bf16 weights (seeded). Prints median step times (CUDA events, after warm-up) for eager and
torch.compile, and for the pieces a First Block Cache step runs (first block + head).

Usage (GPU machine): python3 bench/flux/baseline.py [--steps 20] [--no-compile]
"""
import argparse, json, math, statistics, sys
import torch
import torch.nn as nn
import torch.nn.functional as F

D, HEADS, HD, MLP = 3072, 24, 128, 4 * 3072
IMG, TXT = 4096, 512


def rope_tables(ids, dims=(16, 56, 56), theta=10000.0):
    # ids [S, 3] -> cos/sin [S, 128] in interleaved-pair layout (FLUX EmbedND)
    cos, sin = [], []
    for i, d in enumerate(dims):
        freqs = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float64, device=ids.device) / d))
        ang = ids[:, i:i + 1].double() * freqs[None]
        cos.append(ang.cos().repeat_interleave(2, dim=-1))
        sin.append(ang.sin().repeat_interleave(2, dim=-1))
    return torch.cat(cos, -1).float(), torch.cat(sin, -1).float()


def apply_rope(x, cos, sin):
    # x [B, H, S, D]; interleaved pairs (x0, x1) -> (x0 c - x1 s, x1 c + x0 s)
    x2 = x.float().unflatten(-1, (-1, 2))
    rot = torch.stack((-x2[..., 1], x2[..., 0]), -1).flatten(-2)
    return (x.float() * cos + rot * sin).to(x.dtype)


class RMS(nn.Module):
    def __init__(s):
        super().__init__(); s.w = nn.Parameter(torch.ones(HD))
    def forward(s, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype) * s.w


def ln(x):
    return F.layer_norm(x.float(), (D,), eps=1e-6).to(x.dtype)


def heads(x):
    b, s, _ = x.shape
    return x.view(b, s, HEADS, HD).transpose(1, 2)


class Double(nn.Module):
    def __init__(s):
        super().__init__()
        s.mod_i, s.mod_t = nn.Linear(D, 6 * D), nn.Linear(D, 6 * D)
        s.qkv_i, s.qkv_t = nn.Linear(D, 3 * D), nn.Linear(D, 3 * D)
        s.nq_i, s.nk_i, s.nq_t, s.nk_t = RMS(), RMS(), RMS(), RMS()
        s.o_i, s.o_t = nn.Linear(D, D), nn.Linear(D, D)
        s.f1_i, s.f2_i = nn.Linear(D, MLP), nn.Linear(MLP, D)
        s.f1_t, s.f2_t = nn.Linear(D, MLP), nn.Linear(MLP, D)

    def forward(s, x, c, temb, cos, sin):
        mi = s.mod_i(F.silu(temb))[:, None].chunk(6, -1)
        mt = s.mod_t(F.silu(temb))[:, None].chunk(6, -1)
        xi = ln(x) * (1 + mi[1]) + mi[0]
        ct = ln(c) * (1 + mt[1]) + mt[0]
        qi, ki, vi = s.qkv_i(xi).chunk(3, -1)
        qt, kt, vt = s.qkv_t(ct).chunk(3, -1)
        q = torch.cat([s.nq_t(heads(qt)), s.nq_i(heads(qi))], 2)
        k = torch.cat([s.nk_t(heads(kt)), s.nk_i(heads(ki))], 2)
        v = torch.cat([heads(vt), heads(vi)], 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2)
        at, ai = a[:, :TXT], a[:, TXT:]
        x = x + mi[2] * s.o_i(ai)
        x = x + mi[5] * s.f2_i(F.gelu(s.f1_i(ln(x) * (1 + mi[4]) + mi[3]), approximate='tanh'))
        c = c + mt[2] * s.o_t(at)
        c = c + mt[5] * s.f2_t(F.gelu(s.f1_t(ln(c) * (1 + mt[4]) + mt[3]), approximate='tanh'))
        return x, c


class Single(nn.Module):
    def __init__(s):
        super().__init__()
        s.mod = nn.Linear(D, 3 * D)
        s.qkv = nn.Linear(D, 3 * D)
        s.mlp = nn.Linear(D, MLP)
        s.nq, s.nk = RMS(), RMS()
        s.out = nn.Linear(D + MLP, D)

    def forward(s, h, temb, cos, sin):
        m = s.mod(F.silu(temb))[:, None].chunk(3, -1)
        n = ln(h) * (1 + m[1]) + m[0]
        q, k, v = s.qkv(n).chunk(3, -1)
        q, k = apply_rope(s.nq(heads(q)), cos, sin), apply_rope(s.nk(heads(k)), cos, sin)
        a = F.scaled_dot_product_attention(q, k, heads(v)).transpose(1, 2).flatten(2)
        y = s.out(torch.cat([a, F.gelu(s.mlp(n), approximate='tanh')], -1))
        return h + m[2] * y


def timestep_embedding(t, dim=256):
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    a = t.float()[:, None] * 1000 * freqs[None]
    return torch.cat([a.cos(), a.sin()], -1)


class Flux(nn.Module):
    def __init__(s, nd=2, ns=4):
        super().__init__()
        s.x_emb, s.c_emb = nn.Linear(64, D), nn.Linear(4096, D)
        s.t1, s.t2 = nn.Linear(256, D), nn.Linear(D, D)
        s.g1, s.g2 = nn.Linear(256, D), nn.Linear(D, D)
        s.p1, s.p2 = nn.Linear(768, D), nn.Linear(D, D)
        s.doubles = nn.ModuleList(Double() for _ in range(nd))
        s.singles = nn.ModuleList(Single() for _ in range(ns))
        s.mod_out, s.proj_out = nn.Linear(D, 2 * D), nn.Linear(D, 64)

    def embed(s, x, c, pooled, t, g, img_ids, txt_ids):
        temb = s.t2(F.silu(s.t1(timestep_embedding(t).to(x.dtype))))
        temb = temb + s.g2(F.silu(s.g1(timestep_embedding(g).to(x.dtype))))
        temb = temb + s.p2(F.silu(s.p1(pooled)))
        cos, sin = rope_tables(torch.cat([txt_ids, img_ids], 0))
        return s.x_emb(x), s.c_emb(c), temb, cos, sin

    def head(s, x, temb):
        sc, sh = s.mod_out(F.silu(temb))[:, None].chunk(2, -1)
        return s.proj_out(ln(x) * (1 + sc) + sh)

    def forward(s, x, c, pooled, t, g, img_ids, txt_ids, first_only=False):
        x, c, temb, cos, sin = s.embed(x, c, pooled, t, g, img_ids, txt_ids)
        x, c = s.doubles[0](x, c, temb, cos, sin)
        if first_only:  # a First Block Cache cached step: first block, reuse residual, head
            return s.head(x, temb)
        for b in s.doubles[1:]:
            x, c = b(x, c, temb, cos, sin)
        h = torch.cat([c, x], 1)
        for b in s.singles:
            h = b(h, temb, cos, sin)
        return s.head(h[:, TXT:], temb)


def median_ms(fn, steps, warmup=5):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(steps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--steps', type=int, default=20)
    ap.add_argument('--no-compile', action='store_true')
    args = ap.parse_args()
    torch.manual_seed(0)
    dev = 'cuda'
    m = Flux().to(dev, torch.bfloat16).eval()
    inp = dict(x=torch.randn(1, IMG, 64, device=dev, dtype=torch.bfloat16),
               c=torch.randn(1, TXT, 4096, device=dev, dtype=torch.bfloat16),
               pooled=torch.randn(1, 768, device=dev, dtype=torch.bfloat16),
               t=torch.tensor([0.5], device=dev, dtype=torch.bfloat16),
               g=torch.tensor([3.5], device=dev, dtype=torch.bfloat16),
               img_ids=torch.rand(IMG, 3, device=dev) * 64, txt_ids=torch.zeros(TXT, 3, device=dev))
    res = {'device': torch.cuda.get_device_name(), 'torch': torch.__version__}
    with torch.inference_mode():
        res['eager_ms'] = median_ms(lambda: m(**inp), args.steps)
        res['eager_first_block_ms'] = median_ms(lambda: m(**inp, first_only=True), args.steps)
        if not args.no_compile:
            cm = torch.compile(m)
            res['compile_ms'] = median_ms(lambda: cm(**inp), args.steps, warmup=3)
    print(json.dumps(res))


if __name__ == '__main__':
    sys.exit(main())
