"""Exports the real diffusers transformer classes (diffusers 0.34 sources) to ONNX model-zoo folders.

usage: python3 bench/exports/make_seed_exports.py OUT --anchor PATH [--tar-to DIR] [--full-flux-graph]
       [--families a,b] [--exporters ts17,dynamo18,dynamo23] [--skip-small] [--deadline-s S]

PATH is anchor_py.tar.xz or a folder holding diffusers/ (or set ANCHOR_SRC). The script only imports
and calls diffusers' classes; nothing of diffusers is copied. For each family (tiny configs, seeded
random weights, static shapes) and each exporter it writes OUT/<family>[_<variant>]_<exporter>/:
model.onnx (weights inline), test_data_set_0/input_K.pb (graph input order), output_0.pb (PyTorch's
own fp32 eager output under no_grad); masked families also get test_data_set_1 with other valid
lengths, which catches exports that baked the sample mask into the graph. Every export is run by
onnxruntime (CPU) and compared with PyTorch. A failing exporter is recorded and the rest go on.

--full-flux-graph also writes OUT/flux-dev-full/model.onnx: FluxTransformer2DModel at the FLUX.1-dev
config, 1024x1024, bf16, dynamo opset 18, graph only. Its initializers reference model.onnx.data,
which is never written (the weights are never serialized), like shared/fixtures/flux-dev-2x4.

DIR (default OUT) receives manifest.json and exported.tar.gz (exported-K.tar.gz if over 15 MB).
"""
import argparse
import collections
import contextlib
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
import traceback

import numpy as np

EXPORTERS = {"ts17": (False, 17), "dynamo18": (True, 18), "dynamo23": (True, 23)}
TAR_LIMIT = 15 * 1024 * 1024  # the device returns files of at most 16 MB
EXTERNAL_MIN_BYTES = 256  # like ONNXProgram.save: tensors above this go to the data file
ALIGN_MIN_BYTES, ALIGN = 1 << 20, 65536  # onnx_ir's layout: tensors over 1 MiB start 64 KiB-aligned

# ----------------------------------------------------------------------------- diffusers import


def diffusers_root(src):
    """The folder holding diffusers/: `src` itself, its parent, or where the tarball was unpacked."""
    if src is None:
        sys.exit("make_seed_exports: no diffusers sources; pass --anchor .gpu-work/baselines/anchor_py.tar.xz or set ANCHOR_SRC")
    if os.path.isfile(src):
        root = tempfile.mkdtemp(prefix="anchor-")
        with tarfile.open(src) as tar:
            members = [m for m in tar.getmembers() if os.path.normpath(m.name).split(os.sep)[0] == "diffusers"]
            try:
                tar.extractall(root, members=members, filter="data")
            except TypeError:  # Python without extraction filters
                tar.extractall(root, members=members)
        src = root
    elif os.path.basename(os.path.normpath(src)) == "diffusers":
        src = os.path.dirname(os.path.normpath(src))
    if not os.path.isfile(os.path.join(src, "diffusers", "__init__.py")):
        sys.exit(f"make_seed_exports: {src} holds no diffusers/__init__.py; pass anchor_py.tar.xz or the folder it unpacks to")
    return src


def import_diffusers(src):
    """Imports diffusers 0.34 from `src` (see diffusers_root) under transformers 5."""
    src = diffusers_root(src)
    sys.path.insert(0, src)
    import transformers.utils as tu  # diffusers 0.34 imports names that transformers 5 dropped
    for name, value in (("FLAX_WEIGHTS_NAME", "flax_model.msgpack"), ("WEIGHTS_NAME", "pytorch_model.bin")):
        if not hasattr(tu, name):
            setattr(tu, name, value)
    import diffusers
    if not os.path.abspath(diffusers.__file__).startswith(os.path.abspath(src)):
        sys.exit(f"make_seed_exports: imported diffusers from {diffusers.__file__}, not from {src}")
    return diffusers


# ----------------------------------------------------------------------------- families
# Each family: diffusers class, constructor config, the forward keyword names in graph-input order,
# and an inputs function (batch, torch.Generator, alt) -> {name: tensor} shaped as its pipeline
# passes them. `alt` gives other valid text lengths for test_data_set_1 (masked families only).


def right_pad_mask(valid, length, dtype):
    import torch
    m = torch.zeros(len(valid), length, dtype=dtype)
    for i, n in enumerate(valid):
        m[i, :n] = 1
    return m


def hunyuan_inputs(batch, g, alt):
    import torch
    valid = {1: [3], 2: [8, 2]}[batch] if alt else {1: [5], 2: [5, 3]}[batch]
    return {  # pipeline: t in [0, 1000], guidance = 6.0 * 1000, float prompt mask (tokenizer, right padding)
        "hidden_states": torch.randn(batch, 4, 2, 6, 8, generator=g),
        "timestep": torch.full((batch,), 875.0),
        "encoder_hidden_states": torch.randn(batch, 8, 32, generator=g),
        "encoder_attention_mask": right_pad_mask(valid, 8, torch.float32),
        "pooled_projections": torch.randn(batch, 16, generator=g),
        "guidance": torch.full((batch,), 6000.0),
    }


def mochi_inputs(batch, g, alt):
    import torch
    valid = {1: [2], 2: [8, 2]}[batch] if alt else {1: [5], 2: [6, 3]}[batch]
    return {  # pipeline: float t in [0, 1000], bool prompt mask; attention keeps only the valid tokens
        "hidden_states": torch.randn(batch, 4, 2, 6, 8, generator=g),
        "encoder_hidden_states": torch.randn(batch, 8, 32, generator=g),
        "timestep": torch.full((batch,), 700.0),
        "encoder_attention_mask": right_pad_mask(valid, 8, torch.bool),
    }


def cogvideox_inputs(batch, g, alt):
    import torch
    from diffusers.models.embeddings import get_3d_rotary_pos_embed
    latent = torch.randn(1, 2, 4, 6, 8, generator=g)  # [B, F, C, H, W]; CFG repeats the latent
    # As the pipeline computes them; the 3x4 grid equals the base grid (sample 6x8 / patch 2), so
    # its crop region is the whole grid.
    cos, sin = get_3d_rotary_pos_embed(embed_dim=32, crops_coords=((0, 0), (3, 4)), grid_size=(3, 4), temporal_size=2)
    return {  # pipeline: integer DDIM timesteps in [0, 1000), rotary tables passed in
        "hidden_states": latent.repeat(batch, 1, 1, 1, 1),
        "encoder_hidden_states": torch.randn(batch, 8, 32, generator=g),
        "timestep": torch.full((batch,), 801, dtype=torch.int64),
        "image_rotary_emb_cos": cos.float(),
        "image_rotary_emb_sin": sin.float(),
    }


def wan_inputs(batch, g, alt):
    import torch
    text = torch.randn(batch, 8, 32, generator=g)
    for i, n in enumerate([6, 4][:batch]):
        text[i, n:] = 0  # the pipeline pads each prompt's embeddings with zero rows, no mask
    return {  # pipeline: integer UniPC timesteps in [0, 1000]
        "hidden_states": torch.randn(1, 4, 2, 6, 8, generator=g).repeat(batch, 1, 1, 1, 1),
        "timestep": torch.full((batch,), 937, dtype=torch.int64),
        "encoder_hidden_states": text,
    }


def flux_inputs(batch, g, alt):
    import torch
    img_ids = torch.zeros(4, 3, 3)
    img_ids[..., 1] = torch.arange(4)[:, None]
    img_ids[..., 2] = torch.arange(3)[None, :]
    return {  # pipeline: timestep = sigma = t / 1000, guidance 3.5, packed 2x2 latents
        "hidden_states": torch.randn(batch, 12, 16, generator=g),
        "encoder_hidden_states": torch.randn(batch, 8, 32, generator=g),
        "pooled_projections": torch.randn(batch, 16, generator=g),
        "timestep": torch.full((batch,), 0.75),
        "img_ids": img_ids.reshape(-1, 3),
        # The pipeline passes zeros; small nonzero positions exercise the text RoPE too.
        "txt_ids": torch.randint(0, 4, (8, 3), generator=g).float(),
        "guidance": torch.full((batch,), 3.5),
    }


FAMILIES = collections.OrderedDict([
    ("hunyuan", dict(cls="HunyuanVideoTransformer3DModel", seed=2001, inputs=hunyuan_inputs, masked=True, variants=[("", 1)],
                     config=dict(in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=16, num_layers=2,
                                 num_single_layers=2, num_refiner_layers=2, mlp_ratio=4.0, patch_size=2, patch_size_t=1,
                                 qk_norm="rms_norm", guidance_embeds=True, text_embed_dim=32, pooled_projection_dim=16,
                                 rope_theta=256.0, rope_axes_dim=(4, 6, 6)))),
    ("mochi", dict(cls="MochiTransformer3DModel", seed=2002, inputs=mochi_inputs, masked=True, variants=[("", 1), ("b2", 2)],
                   config=dict(patch_size=2, num_attention_heads=2, attention_head_dim=16, num_layers=2, pooled_projection_dim=16,
                               in_channels=4, qk_norm="rms_norm", text_embed_dim=32, time_embed_dim=32,
                               activation_fn="swiglu", max_sequence_length=8))),
    ("cogvideox", dict(cls="CogVideoXTransformer3DModel", seed=2003, inputs=cogvideox_inputs, masked=False,
                       variants=[("", 1), ("cfg2", 2)], rotary=("image_rotary_emb_cos", "image_rotary_emb_sin"),
                       config=dict(num_attention_heads=2, attention_head_dim=32, in_channels=4, out_channels=4, time_embed_dim=32,
                                   text_embed_dim=32, num_layers=2, sample_width=8, sample_height=6, sample_frames=5, patch_size=2,
                                   max_text_seq_length=8, use_rotary_positional_embeddings=True))),
    ("wan", dict(cls="WanTransformer3DModel", seed=2004, inputs=wan_inputs, masked=False, variants=[("", 1), ("cfg2", 2)],
                 config=dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=24, in_channels=4, out_channels=4,
                             text_dim=32, freq_dim=32, ffn_dim=96, num_layers=2, cross_attn_norm=True,
                             qk_norm="rms_norm_across_heads", rope_max_seq_len=32))),
    ("flux", dict(cls="FluxTransformer2DModel", seed=2005, inputs=flux_inputs, masked=False, variants=[("", 1)],
                  config=dict(patch_size=1, in_channels=16, num_layers=2, num_single_layers=2, attention_head_dim=16,
                              num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=16, guidance_embeds=True,
                              axes_dims_rope=(4, 6, 6)))),
])

FLUX_DEV = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128, num_attention_heads=24,
                joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True, axes_dims_rope=(16, 56, 56))


def make_wrapper(model, names, rotary=None):
    """A module whose forward takes the graph inputs positionally and returns diffusers' sample.

    The diffusers model sits at attribute `m` (initializers are named m.<param>, as in
    flux-dev-2x4). `rotary` names two inputs passed together as the image_rotary_emb tuple."""
    import torch

    class Call(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, *args):
            kw = dict(zip(names, args))
            if rotary:
                kw["image_rotary_emb"] = (kw.pop(rotary[0]), kw.pop(rotary[1]))
            return self.m(**kw, return_dict=False)[0]

    return Call().eval()


def perturb_constant_parameters(model, seed):
    """Default init leaves norm weights at 1, biases of norms at 0 and Mochi's RoPE frequencies at 0;
    seeded noise makes every parameter matter. Returns how many tensors were changed."""
    import torch
    g = torch.Generator().manual_seed(seed)
    changed = 0
    with torch.no_grad():
        for p in model.parameters():
            flat = p.detach().flatten()
            if bool((flat == flat[0]).all()):
                p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
                changed += 1
    return changed


# ----------------------------------------------------------------------------- ONNX helpers (no torch)


def strip_metadata(model_proto):
    """Drops per-node doc_string and metadata_props (dynamo's source locations) to keep files small."""
    graphs = [model_proto.graph] + [f for f in model_proto.functions]
    for g in graphs:
        for n in g.node:
            n.doc_string = ""
            del n.metadata_props[:]
    return model_proto


def describe_graph(model_proto, path):
    import onnx
    ops = collections.Counter((n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}") for n in model_proto.graph.node)

    def vi(v):
        t = v.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in t.shape.dim]
        return {"name": v.name, "shape": dims, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name
                if t.elem_type != onnx.TensorProto.BFLOAT16 else "bfloat16"}

    ext = [t for t in model_proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    ext_bytes = sum(int(dict((e.key, e.value) for e in t.external_data).get("length", 0)) for t in ext)
    return {
        "inputs": [vi(v) for v in model_proto.graph.input],
        "outputs": [vi(v) for v in model_proto.graph.output],
        "opsets": {(o.domain or "ai.onnx"): o.version for o in model_proto.opset_import},
        "nodes": len(model_proto.graph.node),
        "ops": dict(sorted(ops.items())),
        "initializers": len(model_proto.graph.initializer),
        "external_initializers": len(ext),
        "external_bytes": ext_bytes,
        "bytes": os.path.getsize(path),
    }


def make_graph_only(ir_model, location="model.onnx.data", min_bytes=None):
    """Replaces every initializer over EXTERNAL_MIN_BYTES by a reference into `location` (never
    written), laid out as ONNXProgram.save would (ascending size; big ones 64 KiB-aligned).
    Returns (count, bytes) of the references."""
    try:
        import onnx_ir as ir
    except ImportError:  # older onnxscript ships the IR inside
        from onnxscript import ir
    # On meta every initializer goes external: none has data to inline.
    floor = EXTERNAL_MIN_BYTES if min_bytes is None else min_bytes
    big = [v for v in ir_model.graph.initializers.values() if v.const_value is not None and v.const_value.nbytes > floor]
    big.sort(key=lambda v: v.const_value.nbytes)
    offset = total = 0
    for v in big:
        t = v.const_value
        n = t.nbytes
        if n > ALIGN_MIN_BYTES:
            offset = (offset + ALIGN - 1) // ALIGN * ALIGN
        v.const_value = ir.ExternalTensor(location, offset, n, t.dtype, shape=ir.Shape(list(t.shape)), name=v.name)
        offset += n
        total += n
    return len(big), total, ir.serde.serialize_model(ir_model)


def ort_max_diff(path, feeds, ref):
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = sess.run(None, feeds)[0]
    if got.shape != ref.shape:
        raise ValueError(f"onnxruntime output shape {list(got.shape)} != PyTorch {list(ref.shape)}")
    return float(np.abs(got.astype(np.float64) - ref.astype(np.float64)).max())


def write_test_set(folder, k, names, arrays, ref, out_name):
    from onnx import numpy_helper
    d = os.path.join(folder, f"test_data_set_{k}")
    os.makedirs(d, exist_ok=True)
    for i, name in enumerate(names):
        with open(os.path.join(d, f"input_{i}.pb"), "wb") as f:
            f.write(numpy_helper.from_array(arrays[name], name).SerializeToString())
    with open(os.path.join(d, "output_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(ref, out_name).SerializeToString())


def write_tarballs(root, dest, manifest_path):
    """DIR/exported.tar.gz of every folder (and logs/) plus the manifest. When that is over
    TAR_LIMIT, the folders are packed in order into as few exported-K.tar.gz as fit the limit
    (the device returns at most 8 files), each with the manifest."""
    members = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and d != "logs")
    members += ["logs"] if os.path.isdir(os.path.join(root, "logs")) else []

    def pack(target, names):
        tar = tarfile.open(target, "w:gz") if isinstance(target, str) else tarfile.open(fileobj=target, mode="w:gz")
        with tar:
            tar.add(manifest_path, arcname="seed-exports/manifest.json")
            for n in names:
                tar.add(os.path.join(root, n), arcname=f"seed-exports/{n}")

    def write(name, names):
        tmp = os.path.join(dest, name + ".tmp")
        pack(tmp, names)
        os.replace(tmp, os.path.join(dest, name))
        return name, os.path.getsize(os.path.join(dest, name))

    for old in os.listdir(dest):
        if old.startswith("exported") and old.endswith(".tar.gz"):
            os.remove(os.path.join(dest, old))
    whole = write("exported.tar.gz", members)
    if whole[1] <= TAR_LIMIT:
        return [whole]
    os.remove(os.path.join(dest, "exported.tar.gz"))
    sizes = {}
    for n in members:  # each folder's compressed size, measured in memory
        buf = io.BytesIO()
        pack(buf, [n])
        sizes[n] = buf.tell()
    bins = [[]]
    for n in members:
        if bins[-1] and sum(sizes[m] for m in bins[-1]) + sizes[n] > TAR_LIMIT * 0.95:
            bins.append([])
        bins[-1].append(n)
    return [write(f"exported-{k + 1}.tar.gz", names) for k, names in enumerate(bins)]


# ----------------------------------------------------------------------------- export driver


@contextlib.contextmanager
def captured(log_path):
    """Sends Python-level stdout/stderr (the exporter's progress lines, warnings) to a log file."""
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            yield buf
    finally:
        with open(log_path, "w") as f:
            f.write(buf.getvalue())


def export_one(wrapper, args, names, path, dynamo, opset):
    """Exports to `path` with weights inline and node metadata stripped; returns the ModelProto."""
    import onnx
    import torch
    tmp = path + ".tmp.onnx"
    with torch.no_grad():
        if dynamo:
            prog = torch.onnx.export(wrapper, args, dynamo=True, opset_version=opset, input_names=names,
                                     output_names=["output"])
            prog.save(tmp)
        else:
            torch.onnx.export(wrapper, args, tmp, dynamo=False, opset_version=opset, input_names=names,
                              output_names=["output"], do_constant_folding=True)
    m = strip_metadata(onnx.load(tmp))
    onnx.save(m, path)
    folder = os.path.dirname(path)
    for f in os.listdir(folder):
        if f.startswith(os.path.basename(tmp)):
            os.remove(os.path.join(folder, f))
    left = [f for f in os.listdir(folder) if f != "model.onnx" and not f.startswith("test_data_set")]
    if left:
        raise RuntimeError(f"export left extra files {left} (external data?); expected model.onnx only")
    return m


def run_small(args, root, diffusers, cases, deadline):
    import torch
    for fam, spec in FAMILIES.items():
        if args.families and fam not in args.families:
            continue
        torch.manual_seed(spec["seed"])
        model = None
        for variant, batch in spec["variants"]:
            base = {"family": fam, "class": spec["cls"], "variant": variant or "base", "batch": batch, "seed": spec["seed"],
                    "config": json.loads(json.dumps(spec["config"]))}
            try:  # build once per family; eager references for this variant
                if model is None:
                    model = getattr(diffusers, spec["cls"])(**spec["config"]).eval()
                    perturbed = perturb_constant_parameters(model, spec["seed"])
                    nparams = sum(p.numel() for p in model.parameters())
                inputs = spec["inputs"](batch, torch.Generator().manual_seed(spec["seed"] * 10 + batch), False)
                names = list(inputs)
                wrapper = make_wrapper(model, names, spec.get("rotary"))
                with torch.no_grad():
                    ref = wrapper(*inputs.values()).float().numpy()
                alt = alt_ref = None
                if spec["masked"]:
                    alt = spec["inputs"](batch, torch.Generator().manual_seed(spec["seed"] * 10 + batch), True)
                    with torch.no_grad():
                        alt_ref = wrapper(*alt.values()).float().numpy()
            except Exception as e:  # a class or input problem: every exporter of this variant fails the same way
                err = f"eager model: {type(e).__name__}: {e}"[:4000]
                print(f"{fam} {variant or 'base'}: {err[:300]}", flush=True)
                for exp in args.exporters:
                    cases.append(dict(base, folder=f"{fam}_{variant + '_' if variant else ''}{exp}", exporter=exp,
                                      status="model_failed", error=err, traceback=traceback.format_exc()[-4000:]))
                continue
            for exp in args.exporters:
                dynamo, opset = EXPORTERS[exp]
                folder = f"{fam}_{variant + '_' if variant else ''}{exp}"
                case = dict(base, folder=folder, exporter="dynamo" if dynamo else "torchscript", opset=opset, params=nparams,
                            perturbed_constant_params=perturbed, reference_output_shape=list(ref.shape),
                            torch_inputs=[{"name": n, "shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", "")}
                                          for n, t in inputs.items()])
                cases.append(case)
                if time.time() > deadline:
                    case.update(status="skipped", error="deadline reached before this export started")
                    continue
                d = os.path.join(root, folder)
                shutil.rmtree(d, ignore_errors=True)
                os.makedirs(d)
                t0 = time.time()
                try:
                    with captured(os.path.join(root, "logs", folder + ".log")) as buf:
                        m = export_one(wrapper, tuple(inputs.values()), names, os.path.join(d, "model.onnx"), dynamo, opset)
                    case["export_s"] = round(time.time() - t0, 2)
                    case["exporter_log"] = [l for l in buf.getvalue().splitlines() if l.startswith("[torch.onnx]")][:20]
                except Exception as e:  # record and go on with the next exporter
                    case.update(status="export_failed", export_s=round(time.time() - t0, 2), error=f"{type(e).__name__}: {e}"[:4000],
                                traceback=traceback.format_exc()[-4000:])
                    shutil.rmtree(d, ignore_errors=True)
                    print(f"{folder}: export failed: {case['error'][:300]}", flush=True)
                    continue
                case.update(describe_graph(m, os.path.join(d, "model.onnx")))
                gnames = [v.name for v in m.graph.input]
                case["status"] = "ok"
                sets = [(inputs, ref)] + ([(alt, alt_ref)] if alt is not None else [])
                for k, (inp, r) in enumerate(sets):
                    arrays = {n: t.numpy() for n, t in inp.items()}
                    missing = [n for n in gnames if n not in arrays]
                    if missing:
                        case.update(status="ort_failed", error=f"graph inputs {missing} are not model inputs {names}")
                        break
                    write_test_set(d, k, gnames, arrays, r, m.graph.output[0].name)
                    key = "ort_max_abs_diff" if k == 0 else "ort_alt_mask_max_abs_diff"
                    try:
                        case[key] = ort_max_diff(os.path.join(d, "model.onnx"), {n: arrays[n] for n in gnames}, r)
                    except Exception as e:
                        case.update(status="ort_failed", error=f"onnxruntime: {type(e).__name__}: {e}"[:4000])
                        break
                print(f"{folder}: {case['status']} nodes={case['nodes']} diff={case.get('ort_max_abs_diff')} "
                      f"alt={case.get('ort_alt_mask_max_abs_diff')} {case['export_s']}s", flush=True)
        del model


def run_full_flux(root, diffusers, dev="cuda"):
    """FLUX.1-dev graph, bf16, dynamo opset 18; the weights are never serialized. `dev` "meta" builds
    the model without memory (no GPU needed: the graph is the same, only shapes are traced)."""
    import onnx
    import torch
    info = {"folder": "flux-dev-full", "class": "FluxTransformer2DModel", "config": json.loads(json.dumps(FLUX_DEV)),
            "exporter": "dynamo", "opset": 18, "dtype": "bfloat16", "image_tokens": 4096, "text_tokens": 512}
    d = os.path.join(root, "flux-dev-full")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    t0 = time.time()
    try:
        bf = torch.bfloat16
        torch.manual_seed(0)
        torch.set_default_dtype(bf)
        try:
            with torch.device(dev):
                model = diffusers.FluxTransformer2DModel(**FLUX_DEV).eval()
        finally:
            torch.set_default_dtype(torch.float32)
        info["params"] = sum(p.numel() for p in model.parameters())
        info["build_s"] = round(time.time() - t0, 1)
        ids = torch.zeros(64, 64, 3, device=dev)
        ids[..., 1] = torch.arange(64, device=dev)[:, None]
        ids[..., 2] = torch.arange(64, device=dev)[None, :]
        g = None if dev == "meta" else torch.Generator(device=dev).manual_seed(1)
        inputs = {"hidden_states": torch.randn(1, 4096, 64, device=dev, dtype=bf, generator=g),
                  "encoder_hidden_states": torch.randn(1, 512, 4096, device=dev, dtype=bf, generator=g),
                  "pooled_projections": torch.randn(1, 768, device=dev, dtype=bf, generator=g),
                  "timestep": torch.tensor([0.5], device=dev, dtype=bf), "img_ids": ids.reshape(-1, 3),
                  "txt_ids": torch.zeros(512, 3, device=dev), "guidance": torch.tensor([3.5], device=dev, dtype=bf)}
        names = list(inputs)
        wrapper = make_wrapper(model, names)
        t1 = time.time()
        with captured(os.path.join(root, "logs", "flux-dev-full.log")) as buf, torch.no_grad():
            # On meta the optimizer cannot fold (no values): export unoptimized; ParaDiT's
            # canonicalize does the same folding at import.
            prog = torch.onnx.export(wrapper, tuple(inputs.values()), dynamo=True, opset_version=18, input_names=names,
                                     output_names=["output"], optimize=dev != "meta")
        info["optimized"] = dev != "meta"
        info["export_s"] = round(time.time() - t1, 1)
        info["exporter_log"] = [l for l in buf.getvalue().splitlines() if l.startswith("[torch.onnx]")][:20]
        t2 = time.time()
        _, _, proto = make_graph_only(prog.model, min_bytes=-1 if dev == "meta" else None)  # counts and bytes are re-read by describe_graph
        path = os.path.join(d, "model.onnx")
        with open(path, "wb") as f:
            f.write(strip_metadata(proto).SerializeToString())
        info["save_s"] = round(time.time() - t2, 1)
        del prog, model, wrapper
        if dev == "cuda":
            torch.cuda.empty_cache()
        info["device"] = dev
        m = onnx.load(path, load_external_data=False)
        info.update(describe_graph(m, path))
        if os.path.exists(os.path.join(d, "model.onnx.data")):
            raise RuntimeError("model.onnx.data was written; the graph-only export must not write weights")
        try:  # the checker insists on the absent data file; strict shape inference needs only dims
            onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
            info["strict_shape_inference"] = "ok"
        except Exception as e:
            info["strict_shape_inference"] = f"{type(e).__name__}: {e}"[:500]
        info["status"] = "ok"
    except Exception as e:
        info.update(status="export_failed", error=f"{type(e).__name__}: {e}"[:4000], traceback=traceback.format_exc()[-4000:])
        shutil.rmtree(d, ignore_errors=True)
    info["total_s"] = round(time.time() - t0, 1)
    print(f"flux-dev-full: {info['status']} build {info.get('build_s')}s export {info.get('export_s')}s "
          f"save {info.get('save_s')}s total {info['total_s']}s", flush=True)
    return info


def versions(diffusers):
    out = {"python": sys.version.split()[0], "numpy": np.__version__, "diffusers": getattr(diffusers, "__version__", None)}
    for mod in ("torch", "onnx", "onnxscript", "onnx_ir", "onnxruntime", "transformers"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:
            out[mod] = None
    return out


def print_table(cases):
    print(f"\n{'folder':32} {'status':14} {'nodes':>6} {'KiB':>7} {'ort diff':>10} {'alt diff':>10}")
    for c in cases:
        diff = c.get("ort_max_abs_diff")
        alt = c.get("ort_alt_mask_max_abs_diff")
        kib = f"{c['bytes'] / 1024:.0f}" if "bytes" in c else "-"
        print(f"{c['folder']:32} {c.get('status', '?'):14} {c.get('nodes', '-'):>6} {kib:>7} "
              f"{'-' if diff is None else f'{diff:.2e}':>10} {'-' if alt is None else f'{alt:.2e}':>10}")
    print(flush=True)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", help="folder for the model folders (created)")
    p.add_argument("--anchor", default=os.environ.get("ANCHOR_SRC"), help="anchor_py.tar.xz or a folder with diffusers/ (env ANCHOR_SRC)")
    p.add_argument("--tar-to", default=None, help="folder for manifest.json and the tarballs (default OUT)")
    p.add_argument("--full-flux-graph", action="store_true", help="also export the FLUX.1-dev graph without weights (GPU)")
    p.add_argument("--full-flux-device", default="cuda", choices=["cuda", "meta"],
                   help="where the full FLUX model is built: cuda (bf16 on the GPU) or meta (no memory, no GPU; same graph)")
    p.add_argument("--skip-small", action="store_true", help="only the full FLUX graph")
    p.add_argument("--families", type=lambda s: s.split(","), default=None, help=f"subset of {','.join(FAMILIES)}")
    p.add_argument("--exporters", type=lambda s: s.split(","), default=list(EXPORTERS), help=f"subset of {','.join(EXPORTERS)}")
    p.add_argument("--deadline-s", type=float, default=300, help="start no new export (small or full) after this many seconds")
    a = p.parse_args(argv)
    for f in a.families or []:
        if f not in FAMILIES:
            p.error(f"unknown family '{f}'; expected one of {', '.join(FAMILIES)}")
    for e in a.exporters:
        if e not in EXPORTERS:
            p.error(f"unknown exporter '{e}'; expected one of {', '.join(EXPORTERS)}")
    return a


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    start = time.time()
    root = os.path.abspath(args.out)
    dest = os.path.abspath(args.tar_to or args.out)
    os.makedirs(os.path.join(root, "logs"), exist_ok=True)
    os.makedirs(dest, exist_ok=True)
    diffusers = import_diffusers(args.anchor)
    import torch
    torch.set_num_threads(min(16, os.cpu_count() or 1))
    manifest = {"script": "bench/exports/make_seed_exports.py", "argv": sys.argv[1:] if argv is None else argv,
                "versions": versions(diffusers), "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                "threads": torch.get_num_threads(), "cases": [], "flux_dev_full": None}
    manifest_path = os.path.join(dest, "manifest.json")

    def save_outputs(final):
        manifest["elapsed_s"] = round(time.time() - start, 1)
        manifest["complete"] = final
        with open(manifest_path + ".tmp", "w") as f:
            json.dump(manifest, f, indent=1)
        os.replace(manifest_path + ".tmp", manifest_path)
        if dest != root:
            shutil.copy(manifest_path, os.path.join(root, "manifest.json"))
        return write_tarballs(root, dest, manifest_path)

    if not args.skip_small:
        run_small(args, root, diffusers, manifest["cases"], start + args.deadline_s)
        print_table(manifest["cases"])
        print("tarballs:", save_outputs(final=not args.full_flux_graph), flush=True)
    if args.full_flux_graph:
        if time.time() > start + args.deadline_s:
            manifest["flux_dev_full"] = {"status": "skipped", "error": "deadline reached before the full FLUX export"}
        elif args.full_flux_device == "cuda" and not torch.cuda.is_available():
            manifest["flux_dev_full"] = {"status": "skipped", "error": "no CUDA device; pass --full-flux-device meta to trace the graph without one"}
        else:
            manifest["flux_dev_full"] = run_full_flux(root, diffusers, args.full_flux_device)
            print_table([manifest["flux_dev_full"]])
        print("tarballs:", save_outputs(final=True), flush=True)
    bad = [c["folder"] for c in manifest["cases"] if c.get("status") != "ok"]
    print(f"done in {time.time() - start:.0f}s; not ok: {bad or 'none'}", flush=True)


if __name__ == "__main__":
    main()
