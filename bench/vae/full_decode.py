"""Full-size FLUX.1-dev VAE decoder (diffusers AutoencoderKL) for the GPU check (bench/vae/check-cuda.sh).

usage: python3 bench/vae/full_decode.py export OUT_DIR      # OUT_DIR/flux_vae_full/{model.onnx, test_data_set_0/}
       python3 bench/vae/full_decode.py bench  [ITERS]       # diffusers decode eager and torch.compile, bf16
       python3 bench/vae/full_decode.py psnr IMAGE.png OUTPUT.pb
(diffusers sources on sys.path: ANCHOR_SRC, default /tmp/anchor, unpacked from
../shared/baselines/anchor_py.tar.xz.)

The model is diffusers' own AutoencoderKL with FLUX.1-dev's VAE config (block_out_channels 128,
256, 512, 512; 2 layers per block; 32 groups; 16 latent channels; no quant convs) and seeded
random weights (the default init after torch.manual_seed(1501)): the same weights in the export
and in the timed baseline. `export` writes the decode graph (TorchScript exporter, opset 17,
latent 1x16x128x128 -> image 1x3x1024x1024, weights inline: 84 M parameters), the latent as
test_data_set_0/input_0.pb (already in the decoder's scale) and PyTorch's fp32 decode of it on the
GPU as output_0.pb. `bench` prints one `RESULT {json}` line: median ms over ITERS CUDA-event timed
decodes after warm-up, and the peak activation memory (max allocated minus the weights) of each.
`psnr` maps output_0.pb like the pipeline's postprocess and prints the PSNR of the PNG against it.
"""
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

SEED = 1501
LATENT = (1, 16, 128, 128)
CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    act_fn="silu",
    latent_channels=16,
    norm_num_groups=32,
    sample_size=1024,
    scaling_factor=0.3611,
    shift_factor=0.1159,
    use_quant_conv=False,
    use_post_quant_conv=False,
    mid_block_add_attention=True,
)


def autoencoder():
    sys.path.insert(0, os.environ.get("ANCHOR_SRC", "/tmp/anchor"))
    import transformers.utils as tu  # diffusers 0.34 expects names that transformers 5 dropped

    for n, v in (("FLAX_WEIGHTS_NAME", "flax_model.msgpack"), ("WEIGHTS_NAME", "pytorch_model.bin")):
        if not hasattr(tu, n):
            setattr(tu, n, v)
    from diffusers import AutoencoderKL

    torch.manual_seed(SEED)
    return AutoencoderKL(**CONFIG).eval()


class Decode(torch.nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, z):
        return self.vae.decode(z).sample


def latent():
    return torch.randn(*LATENT, generator=torch.Generator().manual_seed(SEED + 1))


def export(out):
    import onnx
    from onnx import numpy_helper

    d = os.path.join(out, "flux_vae_full")
    os.makedirs(os.path.join(d, "test_data_set_0"), exist_ok=True)
    model = Decode(autoencoder())
    z = latent()
    t = time.time()
    torch.onnx.export(model, (z,), os.path.join(d, "model.onnx"), dynamo=False, opset_version=17, input_names=["z"], output_names=["sample"], do_constant_folding=True)
    print(f"exported in {time.time() - t:.1f} s", flush=True)
    with torch.no_grad():
        ref = model.cuda()(z.cuda()).float().cpu().numpy()
    name = onnx.load(os.path.join(d, "model.onnx"), load_external_data=False).graph.output[0].name
    with open(os.path.join(d, "test_data_set_0", "input_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(z.numpy(), "z").SerializeToString())
    with open(os.path.join(d, "test_data_set_0", "output_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(ref, name).SerializeToString())
    print(json.dumps({"dir": d, "output_shape": list(ref.shape), "params": sum(p.numel() for p in model.vae.decoder.parameters())}), flush=True)


def timed(fn, z, iters):
    with torch.no_grad():
        for _ in range(3):
            fn(z)
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(iters):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn(z)
            b.record()
            torch.cuda.synchronize()
            times.append(a.elapsed_time(b))
        peak = torch.cuda.max_memory_allocated() - base
    return {"medianMs": statistics.median(times), "minMs": min(times), "peakActivationBytes": peak}


def bench(iters):
    model = Decode(autoencoder()).cuda().to(torch.bfloat16)
    z = latent().cuda().to(torch.bfloat16)
    res = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "iters": iters}
    res["eager"] = timed(model, z, iters)
    print(f"eager {res['eager']}", flush=True)
    t = time.time()
    compiled = torch.compile(model)
    with torch.no_grad():
        compiled(z)
    res["compileSeconds"] = time.time() - t
    res["compile"] = timed(compiled, z, iters)
    print("RESULT " + json.dumps(res), flush=True)


def read_png(path):
    """8-bit gray/RGB/RGBA PNG (what `paradit decode` writes) as an HxWx3 array; PIL when present."""
    try:
        from PIL import Image

        return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    except ImportError:
        pass
    import struct
    import zlib

    data = open(path, "rb").read()
    pos, idat = 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    assert depth == 8, f"{path}: bit depth {depth}"
    bpp = {0: 1, 2: 3, 6: 4}[ctype]
    raw = zlib.decompress(idat)
    stride = w * bpp
    img = np.zeros((h, stride), dtype=np.int64)
    prev = np.zeros(stride, dtype=np.int64)
    for y in range(h):
        f = raw[y * (stride + 1)]
        row = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=y * (stride + 1) + 1).astype(np.int64)
        if f == 0:
            cur = row
        elif f == 2:
            cur = (row + prev) & 255
        else:
            cur = row.copy()
            for i in range(stride):
                a = cur[i - bpp] if i >= bpp else 0
                c = prev[i - bpp] if i >= bpp else 0
                b = prev[i]
                if f == 1:
                    p = a
                elif f == 3:
                    p = (a + b) >> 1
                else:
                    pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                    p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[i] = (cur[i] + p) & 255
        img[y] = cur
        prev = cur
    img = img.reshape(h, w, bpp).astype(np.float64)
    return np.repeat(img, 3, axis=2) if bpp == 1 else img[:, :, :3]


def psnr(png, pb):
    from onnx import numpy_helper, TensorProto

    t = TensorProto()
    with open(pb, "rb") as f:
        t.ParseFromString(f.read())
    ref = numpy_helper.to_array(t)[0]
    ref = np.round(np.clip(ref / 2 + 0.5, 0, 1) * 255).transpose(1, 2, 0)
    got = read_png(png)
    mse = float(np.mean((got - ref) ** 2))
    print(json.dumps({"png": png, "psnr": float("inf") if mse == 0 else 10 * np.log10(255 * 255 / mse)}), flush=True)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "export":
        export(sys.argv[2])
    elif cmd == "bench":
        bench(int(sys.argv[2]) if len(sys.argv) > 2 else 10)
    elif cmd == "psnr":
        psnr(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {cmd}: export, bench or psnr")
