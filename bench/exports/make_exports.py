"""Tiny held-out DiT families exported from PyTorch to ONNX model-zoo folders.

usage: python3 bench/exports/make_exports.py OUT_DIR

Writes OUT_DIR/exported.tar.gz holding one folder per (model, exporter):
model.onnx (weights inlined), test_data_set_0/input_K.pb, output_0.pb (PyTorch fp32 outputs),
and checks each with onnxruntime. Models are hand-written, diffusers-like, random weights
(torch.manual_seed per model), tiny sizes. Families:
  pixart   self-attn + cross-attn to text with an additive padding mask, AdaLN-single (SDPA)
  hunyuan  dual-stream blocks (joint attention, boolean text mask) then single-stream (SDPA)
  mochi    asymmetric joint attention (text dim 32 != image dim 48), manual softmax + mask
  ltx      GQA (4 q heads, 2 kv heads), RMSNorm q/k over the inner dim, rotate-half RoPE
"""
import io
import json
import math
import os
import sys
import tarfile
import traceback

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import onnx
from onnx import numpy_helper

# ----------------------------------------------------------------------------- shared pieces


def timestep_sinusoid(t, dim):
    half = dim // 2
    exponent = -math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half
    args = t[:, None].float() * torch.exp(exponent)[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TimestepEmbedding(nn.Module):
    def __init__(self, freq_dim, dim):
        super().__init__()
        self.freq_dim = freq_dim
        self.linear_1 = nn.Linear(freq_dim, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, t):
        return self.linear_2(F.silu(self.linear_1(timestep_sinusoid(t, self.freq_dim))))


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(1.0 + 0.1 * torch.randn(dim))

    def forward(self, x):
        var = x.pow(2).mean(-1, keepdim=True)
        return x * torch.rsqrt(var + self.eps) * self.weight


def layer_norm(x):
    return F.layer_norm(x, (x.shape[-1],), eps=1e-6)


def modulate(x, shift, scale):
    return x * (1 + scale) + shift


class FeedForward(nn.Module):
    def __init__(self, dim, hidden, out=None):
        super().__init__()
        self.proj_in = nn.Linear(dim, hidden)
        self.proj_out = nn.Linear(hidden, out or dim)

    def forward(self, x):
        return self.proj_out(F.gelu(self.proj_in(x), approximate="tanh"))


def rope_real_imag(x, cos, sin):
    """x [B, H, N, D]; cos/sin [N, D] with each frequency repeated twice (interleaved pairs)."""
    x_real, x_imag = x.reshape(*x.shape[:-1], -1, 2).unbind(-1)
    x_rot = torch.stack([-x_imag, x_real], dim=-1).flatten(3)
    return x * cos + x_rot * sin


def rope_rotate_half(x, cos, sin):
    """x [B, N, C]; cos/sin [N, C] (halves)."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


def rope_tables_3d(t, h, w, axes, theta=10000.0):
    """Interleaved cos/sin tables [t*h*w, sum(axes)] for a (t, h, w) grid."""
    grid = torch.stack(torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij"), -1).reshape(-1, 3).float()
    angles = []
    for i, d in enumerate(axes):
        freqs = 1.0 / theta ** (torch.arange(0, d, 2).float() / d)
        angles.append(grid[:, i:i + 1] * freqs[None, :])
    ang = torch.cat(angles, -1).repeat_interleave(2, -1)
    return ang.cos(), ang.sin()


def sincos_pos_2d(dim, h, w):
    gy, gx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter).float() / quarter)
    parts = []
    for g in (gy.reshape(-1), gx.reshape(-1)):
        out = g[:, None] * omega[None]
        parts += [out.sin(), out.cos()]
    return torch.cat(parts, -1)[None]


# ----------------------------------------------------------------------------- (a) PixArt-like


class PixArtAttention(nn.Module):
    def __init__(self, dim, heads, cross_dim=None):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(cross_dim or dim, dim)
        self.to_v = nn.Linear(cross_dim or dim, dim)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x, context=None, attention_mask=None):
        b, n, c = x.shape
        context = x if context is None else context
        q = self.to_q(x).view(b, -1, self.heads, c // self.heads).transpose(1, 2)
        k = self.to_k(context).view(b, -1, self.heads, c // self.heads).transpose(1, 2)
        v = self.to_v(context).view(b, -1, self.heads, c // self.heads).transpose(1, 2)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask)
        return self.to_out(o.transpose(1, 2).reshape(b, n, c))


class PixArtBlock(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.attn1 = PixArtAttention(dim, heads)
        self.attn2 = PixArtAttention(dim, heads)
        self.ff = FeedForward(dim, 2 * dim)
        self.scale_shift_table = nn.Parameter(torch.randn(6, dim) / dim ** 0.5)

    def forward(self, x, context, mask_bias, t6):
        sh_msa, sc_msa, g_msa, sh_mlp, sc_mlp, g_mlp = (self.scale_shift_table[None] + t6.reshape(x.shape[0], 6, -1)).chunk(6, dim=1)
        x = x + g_msa * self.attn1(modulate(layer_norm(x), sh_msa, sc_msa))
        x = x + self.attn2(x, context, mask_bias)
        x = x + g_mlp * self.ff(modulate(layer_norm(x), sh_mlp, sc_mlp))
        return x


class PixArtLike(nn.Module):
    def __init__(self, dim=48, heads=2, depth=2, in_ch=4, size=8, patch=2, text_dim=32):
        super().__init__()
        self.patch, self.in_ch, self.size = patch, in_ch, size
        self.pos_embed = nn.Conv2d(in_ch, dim, patch, stride=patch)
        self.register_buffer("pos", sincos_pos_2d(dim, size // patch, size // patch))
        self.time_embed = TimestepEmbedding(64, dim)
        self.t_block = nn.Linear(dim, 6 * dim)
        self.caption_projection = FeedForward(text_dim, dim, dim)
        self.transformer_blocks = nn.ModuleList([PixArtBlock(dim, heads) for _ in range(depth)])
        self.scale_shift_table = nn.Parameter(torch.randn(2, dim) / dim ** 0.5)
        self.proj_out = nn.Linear(dim, patch * patch * in_ch)

    def forward(self, hidden_states, timestep, encoder_hidden_states, encoder_attention_mask):
        b = hidden_states.shape[0]
        x = self.pos_embed(hidden_states).flatten(2).transpose(1, 2) + self.pos
        temb = self.time_embed(timestep)
        t6 = self.t_block(F.silu(temb))
        ctx = self.caption_projection(encoder_hidden_states)
        bias = ((1.0 - encoder_attention_mask) * -10000.0)[:, None, None, :]
        for blk in self.transformer_blocks:
            x = blk(x, ctx, bias, t6)
        shift, scale = (self.scale_shift_table[None] + temb[:, None]).chunk(2, dim=1)
        x = self.proj_out(modulate(layer_norm(x), shift, scale))
        g, p = self.size // self.patch, self.patch
        x = x.reshape(b, g, g, p, p, self.in_ch).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(b, self.in_ch, self.size, self.size)


def pixart_inputs(batch, gen):
    mask = torch.ones(batch, 8)
    mask[0, 5:] = 0
    if batch > 1:
        mask[1, 3:] = 0
    return {
        "hidden_states": torch.randn(batch, 4, 8, 8, generator=gen),
        "timestep": torch.tensor([500.0, 500.0][:batch]),
        "encoder_hidden_states": torch.randn(batch, 8, 32, generator=gen),
        "encoder_attention_mask": mask,
    }


# ----------------------------------------------------------------------------- (b) HunyuanVideo-like


class QKVStream(nn.Module):
    """One stream's projections: modulation, qkv with RMSNorm q/k, output proj, MLP."""

    def __init__(self, dim, heads, nmod=6):
        super().__init__()
        self.heads = heads
        self.mod = nn.Linear(dim, nmod * dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.norm_q = RMSNorm(dim // heads)
        self.norm_k = RMSNorm(dim // heads)
        self.proj = nn.Linear(dim, dim)
        self.mlp = FeedForward(dim, 2 * dim)

    def qkv_heads(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        return self.norm_q(q), self.norm_k(k), v


class HunyuanDualBlock(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.img = QKVStream(dim, heads)
        self.txt = QKVStream(dim, heads)

    def forward(self, img, txt, vec, cos, sin, mask):
        ni = img.shape[1]
        im = self.img.mod(F.silu(vec))[:, None].chunk(6, dim=-1)
        tm = self.txt.mod(F.silu(vec))[:, None].chunk(6, dim=-1)
        iq, ik, iv = self.img.qkv_heads(modulate(layer_norm(img), im[0], im[1]))
        tq, tk, tv = self.txt.qkv_heads(modulate(layer_norm(txt), tm[0], tm[1]))
        iq, ik = rope_real_imag(iq, cos, sin), rope_real_imag(ik, cos, sin)
        q, k, v = torch.cat([iq, tq], 2), torch.cat([ik, tk], 2), torch.cat([iv, tv], 2)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        o = o.transpose(1, 2).flatten(2)
        img = img + im[2] * self.img.proj(o[:, :ni])
        txt = txt + tm[2] * self.txt.proj(o[:, ni:])
        img = img + im[5] * self.img.mlp(modulate(layer_norm(img), im[3], im[4]))
        txt = txt + tm[5] * self.txt.mlp(modulate(layer_norm(txt), tm[3], tm[4]))
        return img, txt


class HunyuanSingleBlock(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.dim = heads, dim
        self.mod = nn.Linear(dim, 3 * dim)
        self.linear1 = nn.Linear(dim, 3 * dim + 2 * dim)
        self.norm_q = RMSNorm(dim // heads)
        self.norm_k = RMSNorm(dim // heads)
        self.linear2 = nn.Linear(dim + 2 * dim, dim)

    def forward(self, x, ni, vec, cos, sin, mask):
        b, n, c = x.shape
        shift, scale, gate = self.mod(F.silu(vec))[:, None].chunk(3, dim=-1)
        qkv, mlp = torch.split(self.linear1(modulate(layer_norm(x), shift, scale)), [3 * c, 2 * c], dim=-1)
        q, k, v = qkv.reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.norm_q(q), self.norm_k(k)
        q = torch.cat([rope_real_imag(q[:, :, :ni], cos, sin), q[:, :, ni:]], 2)
        k = torch.cat([rope_real_imag(k[:, :, :ni], cos, sin), k[:, :, ni:]], 2)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).flatten(2)
        return x + gate * self.linear2(torch.cat([o, F.gelu(mlp, approximate="tanh")], -1))


class HunyuanLike(nn.Module):
    def __init__(self, dim=32, heads=2, dual=2, single=2, in_ch=4, frames=2, size=8, text_dim=32):
        super().__init__()
        self.in_ch, self.frames, self.size = in_ch, frames, size
        self.x_embedder = nn.Conv3d(in_ch, dim, (1, 2, 2), stride=(1, 2, 2))
        self.context_embedder = nn.Linear(text_dim, dim)
        self.time_embed = TimestepEmbedding(64, dim)
        self.transformer_blocks = nn.ModuleList([HunyuanDualBlock(dim, heads) for _ in range(dual)])
        self.single_transformer_blocks = nn.ModuleList([HunyuanSingleBlock(dim, heads) for _ in range(single)])
        self.norm_out = nn.Linear(dim, 2 * dim)
        self.proj_out = nn.Linear(dim, 4 * in_ch)
        hd = dim // heads
        a = hd // 4
        cos, sin = rope_tables_3d(frames, size // 2, size // 2, [hd - 2 * a, a, a])
        self.register_buffer("rope_cos", cos)
        self.register_buffer("rope_sin", sin)

    def forward(self, hidden_states, timestep, encoder_hidden_states, encoder_attention_mask):
        b = hidden_states.shape[0]
        img = self.x_embedder(hidden_states).flatten(2).transpose(1, 2)
        ni = img.shape[1]
        txt = self.context_embedder(encoder_hidden_states)
        vec = self.time_embed(timestep)
        keep = torch.cat([torch.ones(b, ni, dtype=torch.bool), encoder_attention_mask], 1)
        mask = keep[:, None, None, :]
        for blk in self.transformer_blocks:
            img, txt = blk(img, txt, vec, self.rope_cos, self.rope_sin, mask)
        x = torch.cat([img, txt], 1)
        for blk in self.single_transformer_blocks:
            x = blk(x, ni, vec, self.rope_cos, self.rope_sin, mask)
        shift, scale = self.norm_out(F.silu(vec))[:, None].chunk(2, dim=-1)
        x = self.proj_out(modulate(layer_norm(x[:, :ni]), shift, scale))
        g = self.size // 2
        x = x.reshape(b, self.frames, g, g, 2, 2, self.in_ch).permute(0, 6, 1, 2, 4, 3, 5)
        return x.reshape(b, self.in_ch, self.frames, self.size, self.size)


def hunyuan_inputs(batch, gen):
    mask = torch.ones(batch, 8, dtype=torch.bool)
    mask[0, 6:] = False
    if batch > 1:
        mask[1, 2:] = False
    return {
        "hidden_states": torch.randn(batch, 4, 2, 8, 8, generator=gen),
        "timestep": torch.tensor([700.0, 700.0][:batch]),
        "encoder_hidden_states": torch.randn(batch, 8, 32, generator=gen),
        "encoder_attention_mask": mask,
    }


# ----------------------------------------------------------------------------- (c) Mochi-like


class MochiBlock(nn.Module):
    def __init__(self, dim, text_dim, heads):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.Linear(dim, 4 * dim)
        self.norm1_context = nn.Linear(dim, 4 * text_dim)
        self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.add_qkv_proj = nn.Linear(text_dim, 3 * dim, bias=False)
        self.norm_q = RMSNorm(dim // heads)
        self.norm_k = RMSNorm(dim // heads)
        self.norm_added_q = RMSNorm(dim // heads)
        self.norm_added_k = RMSNorm(dim // heads)
        self.to_out = nn.Linear(dim, dim)
        self.to_add_out = nn.Linear(dim, text_dim)
        self.ff = FeedForward(dim, 2 * dim)
        self.ff_context_in = nn.Linear(text_dim, 4 * text_dim, bias=False)
        self.ff_context_out = nn.Linear(2 * text_dim, text_dim, bias=False)

    def split(self, t, b, n):
        q, k, v = t.view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        return q, k, v

    def forward(self, x, ctx, temb, cos, sin, bias):
        b, n, _ = x.shape
        m = ctx.shape[1]
        sc_msa, g_msa, sc_mlp, g_mlp = self.norm1(F.silu(temb))[:, None].chunk(4, -1)
        csc_msa, cg_msa, csc_mlp, cg_mlp = self.norm1_context(F.silu(temb))[:, None].chunk(4, -1)
        q, k, v = self.split(self.to_qkv(layer_norm(x) * (1 + sc_msa)), b, n)
        cq, ck, cv = self.split(self.add_qkv_proj(layer_norm(ctx) * (1 + csc_msa)), b, m)
        q, k = rope_real_imag(self.norm_q(q), cos, sin), rope_real_imag(self.norm_k(k), cos, sin)
        cq, ck = self.norm_added_q(cq), self.norm_added_k(ck)
        q, k, v = torch.cat([q, cq], 2), torch.cat([k, ck], 2), torch.cat([v, cv], 2)
        scores = torch.matmul(q, k.transpose(-1, -2)) * (q.shape[-1] ** -0.5) + bias
        o = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).flatten(2)
        x = x + torch.tanh(g_msa) * self.to_out(o[:, :n])
        ctx = ctx + torch.tanh(cg_msa) * self.to_add_out(o[:, n:])
        x = x + torch.tanh(g_mlp) * self.ff(layer_norm(x) * (1 + sc_mlp))
        a, gte = self.ff_context_in(layer_norm(ctx) * (1 + csc_mlp)).chunk(2, -1)
        ctx = ctx + torch.tanh(cg_mlp) * self.ff_context_out(F.silu(a) * gte)
        return x, ctx


class MochiLike(nn.Module):
    def __init__(self, dim=48, text_dim=32, heads=2, depth=2, in_ch=4, size=8, patch=2):
        super().__init__()
        self.in_ch, self.size, self.patch = in_ch, size, patch
        self.patch_embed = nn.Linear(in_ch * patch * patch, dim)
        self.time_embed = TimestepEmbedding(64, dim)
        self.caption_proj = nn.Linear(48, text_dim)
        self.transformer_blocks = nn.ModuleList([MochiBlock(dim, text_dim, heads) for _ in range(depth)])
        self.norm_out = nn.Linear(dim, 2 * dim)
        self.proj_out = nn.Linear(dim, patch * patch * in_ch)
        hd = dim // heads
        cos, sin = rope_tables_3d(1, size // patch, size // patch, [0, hd // 2, hd // 2])
        self.register_buffer("rope_cos", cos)
        self.register_buffer("rope_sin", sin)

    def forward(self, hidden_states, timestep, encoder_hidden_states, encoder_attention_mask):
        b = hidden_states.shape[0]
        g, p = self.size // self.patch, self.patch
        x = hidden_states.reshape(b, self.in_ch, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(b, g * g, -1)
        x = self.patch_embed(x)
        temb = self.time_embed(timestep)
        ctx = self.caption_proj(encoder_hidden_states)
        keep = torch.cat([torch.ones(b, g * g), encoder_attention_mask], 1)
        bias = ((1.0 - keep) * -10000.0)[:, None, None, :]
        for blk in self.transformer_blocks:
            x, ctx = blk(x, ctx, temb, self.rope_cos, self.rope_sin, bias)
        shift, scale = self.norm_out(F.silu(temb))[:, None].chunk(2, -1)
        x = self.proj_out(modulate(layer_norm(x), shift, scale))
        x = x.reshape(b, g, g, self.in_ch, p, p).permute(0, 3, 1, 4, 2, 5)
        return x.reshape(b, self.in_ch, self.size, self.size)


def mochi_inputs(batch, gen):
    mask = torch.ones(batch, 8)
    mask[0, 4:] = 0
    if batch > 1:
        mask[1, 6:] = 0
    return {
        "hidden_states": torch.randn(batch, 4, 8, 8, generator=gen),
        "timestep": torch.tensor([300.0, 300.0][:batch]),
        "encoder_hidden_states": torch.randn(batch, 8, 48, generator=gen),
        "encoder_attention_mask": mask,
    }


# ----------------------------------------------------------------------------- (d) LTX/Lumina-like


class GQAAttention(nn.Module):
    def __init__(self, dim, heads, kv_heads, cross_dim=None, rope=True):
        super().__init__()
        self.heads, self.kv_heads, self.hd, self.rope = heads, kv_heads, dim // heads, rope
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(cross_dim or dim, kv_heads * self.hd)
        self.to_v = nn.Linear(cross_dim or dim, kv_heads * self.hd)
        self.norm_q = RMSNorm(dim)
        self.norm_k = RMSNorm(kv_heads * self.hd)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x, context=None, cos=None, sin=None, mask=None):
        b, n, c = x.shape
        context = x if context is None else context
        q, k = self.norm_q(self.to_q(x)), self.norm_k(self.to_k(context))
        v = self.to_v(context)
        if self.rope:
            q = rope_rotate_half(q, cos, sin)
            h, half = k.shape[-1] // 2, cos.shape[-1] // 2
            kcos = torch.cat([cos[:, :h], cos[:, half:half + h]], -1)
            ksin = torch.cat([sin[:, :h], sin[:, half:half + h]], -1)
            k = rope_rotate_half(k, kcos, ksin)
        q = q.view(b, n, self.heads, self.hd).transpose(1, 2)
        k = k.view(b, -1, self.kv_heads, self.hd).transpose(1, 2)
        v = v.view(b, -1, self.kv_heads, self.hd).transpose(1, 2)
        rep = self.heads // self.kv_heads
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.to_out(o.transpose(1, 2).reshape(b, n, c))


class LTXBlock(nn.Module):
    def __init__(self, dim, heads, kv_heads):
        super().__init__()
        self.attn1 = GQAAttention(dim, heads, kv_heads)
        self.attn2 = GQAAttention(dim, heads, kv_heads, rope=False)
        self.ff = FeedForward(dim, 2 * dim)
        self.scale_shift_table = nn.Parameter(torch.randn(6, dim) / dim ** 0.5)

    def forward(self, x, ctx, t6, cos, sin, bias):
        sh_msa, sc_msa, g_msa, sh_mlp, sc_mlp, g_mlp = (self.scale_shift_table[None] + t6.reshape(x.shape[0], 6, -1)).chunk(6, dim=1)
        x = x + g_msa * self.attn1(modulate(layer_norm(x), sh_msa, sc_msa), cos=cos, sin=sin)
        x = x + self.attn2(x, ctx, mask=bias)
        x = x + g_mlp * self.ff(modulate(layer_norm(x), sh_mlp, sc_mlp))
        return x


class LTXLike(nn.Module):
    def __init__(self, dim=48, heads=4, kv_heads=2, depth=2, in_ch=16, tokens=32, text_dim=64):
        super().__init__()
        self.proj_in = nn.Linear(in_ch, dim)
        self.time_embed = TimestepEmbedding(64, dim)
        self.t_block = nn.Linear(dim, 6 * dim)
        self.caption_projection = nn.Linear(text_dim, dim)
        self.transformer_blocks = nn.ModuleList([LTXBlock(dim, heads, kv_heads) for _ in range(depth)])
        self.scale_shift_table = nn.Parameter(torch.randn(2, dim) / dim ** 0.5)
        self.proj_out = nn.Linear(dim, in_ch)
        pos = torch.arange(tokens).float()[:, None]
        freqs = 1.0 / 10000 ** (torch.arange(dim // 2).float() / (dim // 2))
        ang = torch.cat([pos * freqs, pos * freqs], -1)
        self.register_buffer("rope_cos", ang.cos())
        self.register_buffer("rope_sin", ang.sin())

    def forward(self, hidden_states, timestep, encoder_hidden_states, encoder_attention_mask):
        x = self.proj_in(hidden_states)
        temb = self.time_embed(timestep)
        t6 = self.t_block(F.silu(temb))
        ctx = self.caption_projection(encoder_hidden_states)
        bias = ((1.0 - encoder_attention_mask) * -10000.0)[:, None, None, :]
        for blk in self.transformer_blocks:
            x = blk(x, ctx, t6, self.rope_cos, self.rope_sin, bias)
        shift, scale = (self.scale_shift_table[None] + temb[:, None]).chunk(2, dim=1)
        return self.proj_out(modulate(layer_norm(x), shift, scale))


def ltx_inputs(batch, gen):
    mask = torch.ones(batch, 8)
    mask[0, 7:] = 0
    if batch > 1:
        mask[1, 4:] = 0
    return {
        "hidden_states": torch.randn(batch, 32, 16, generator=gen),
        "timestep": torch.tensor([0.6, 0.6][:batch]),
        "encoder_hidden_states": torch.randn(batch, 8, 64, generator=gen),
        "encoder_attention_mask": mask,
    }


# ----------------------------------------------------------------------------- export driver

MODELS = {
    # name: (class, inputs fn, seed, batches)
    "pixart": (PixArtLike, pixart_inputs, 1001, [1, 2]),
    "hunyuan": (HunyuanLike, hunyuan_inputs, 1002, [1]),
    "mochi": (MochiLike, mochi_inputs, 1003, [1]),
    "ltx": (LTXLike, ltx_inputs, 1004, [1, 2]),
}


KEEP_METADATA = {"pixart_dynamo"}  # the other dynamo exports drop per-node source metadata (size)


def strip_metadata(m):
    for n in m.graph.node:
        n.doc_string = ""
        del n.metadata_props[:]
    return m


def export(model, inputs, path, dynamo):
    names = list(inputs.keys())
    args = tuple(inputs.values())
    if dynamo:
        prog = torch.onnx.export(model, args, dynamo=True, opset_version=18, input_names=names, output_names=["output"])
        prog.save(path + ".tmp")
        m = onnx.load(path + ".tmp")
    else:
        torch.onnx.export(model, args, path + ".tmp", dynamo=False, opset_version=17, input_names=names, output_names=["output"], do_constant_folding=True)
        m = onnx.load(path + ".tmp")
    for f in os.listdir(os.path.dirname(path)):
        if f.endswith(".tmp") or f.endswith(".tmp.data"):
            os.remove(os.path.join(os.path.dirname(path), f))
    onnx.save(m, path)
    return m


def write_case(root, name, model, inputs, dynamo, log):
    d = os.path.join(root, name)
    os.makedirs(os.path.join(d, "test_data_set_0"), exist_ok=True)
    with torch.no_grad():
        ref = model(**inputs).numpy()
    m = export(model, inputs, os.path.join(d, "model.onnx"), dynamo)
    if name not in KEEP_METADATA:
        onnx.save(strip_metadata(m), os.path.join(d, "model.onnx"))
    graph_inputs = [i.name for i in m.graph.input]
    for k, nm in enumerate(graph_inputs):
        arr = inputs[nm].numpy()
        t = numpy_helper.from_array(arr, nm)
        with open(os.path.join(d, "test_data_set_0", f"input_{k}.pb"), "wb") as f:
            f.write(t.SerializeToString())
    t = numpy_helper.from_array(ref, m.graph.output[0].name)
    with open(os.path.join(d, "test_data_set_0", "output_0.pb"), "wb") as f:
        f.write(t.SerializeToString())
    import onnxruntime as ort
    sess = ort.InferenceSession(os.path.join(d, "model.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {nm: inputs[nm].numpy() for nm in graph_inputs})[0]
    diff = float(np.abs(got - ref).max())
    ops = sorted({n.op_type for n in m.graph.node})
    size = os.path.getsize(os.path.join(d, "model.onnx"))
    info = {"name": name, "inputs": graph_inputs, "ort_max_abs_diff": diff, "bytes": size, "nodes": len(m.graph.node), "ops": ops}
    print(json.dumps(info), flush=True)
    log.append(info)


def main():
    out = sys.argv[1]
    root = os.path.join(out, "exported")
    os.makedirs(root, exist_ok=True)
    log, failures = [], []
    for fam, (cls, make_inputs, seed, batches) in MODELS.items():
        torch.manual_seed(seed)
        model = cls().eval()
        nparam = sum(p.numel() for p in model.parameters())
        print(f"{fam}: {nparam} params", flush=True)
        for batch in batches:
            gen = torch.Generator().manual_seed(seed + batch)
            inputs = make_inputs(batch, gen)
            variants = [("dynamo", True), ("ts", False)] if batch == 1 else [("dynamo", True)]
            for tag, dyn in variants:
                name = f"{fam}_{'cfg2_' if batch == 2 else ''}{tag}"
                try:
                    write_case(root, name, model, inputs, dyn, log)
                except Exception as e:  # keep going: report which exporter failed
                    traceback.print_exc()
                    failures.append({"name": name, "error": repr(e)[:2000]})
                    import shutil
                    shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    with open(os.path.join(root, "manifest.json"), "w") as f:
        json.dump({"torch": torch.__version__, "onnx": onnx.__version__, "cases": log, "failures": failures}, f, indent=1)
    with tarfile.open(os.path.join(out, "exported.tar.gz"), "w:gz") as tar:
        tar.add(root, arcname="exported")
    print("FAILURES", json.dumps(failures), flush=True)


if __name__ == "__main__":
    main()
