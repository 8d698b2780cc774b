// Markdown for docs/conformance.md from a pack manifest (and GPU results when given): per ONNX op,
// how many node-test cases the interpreter passes and how many of those compile to a CUDA plan
// here (and pass on the GPU). A case counts toward every op its model.onnx uses.
// Usage: node bench/conformance/report.mjs [.gpu-work/conformance/manifest.json] [conformance-gpu-*.json ...]
import fs from 'node:fs';

const [mf = '.gpu-work/conformance/manifest.json', ...gpuFiles] = process.argv.slice(2);
const m = JSON.parse(fs.readFileSync(mf, 'utf8'));
const gpu = new Map();
for (const f of gpuFiles) for (const r of JSON.parse(fs.readFileSync(f, 'utf8')).results) gpu.set(r.name, r.ok);
const ops = new Map();
for (const c of m.cases) for (const op of c.ops) {
  const e = ops.get(op) ?? { interp: 0, compile: 0, gpu: 0, frozen: 0 };
  e.interp++;
  if (!c.compileError) e.compile++;
  if (c.frozen.length) e.frozen++;
  if (gpu.get(c.name)) e.gpu++;
  ops.set(op, e);
}
const ok = m.cases.filter((c) => !c.compileError).length;
console.log(`${m.total} cases; the interpreter passes ${m.interpreterPasses}; ${ok} of those compile to CUDA plans on the CPU (${((100 * ok) / m.interpreterPasses).toFixed(1)}%)${gpu.size ? `; ${[...gpu.values()].filter(Boolean).length} of ${gpu.size} run pass on the GPU` : ''}.\n`);
console.log(`| op | interpreter passes | compile to CUDA | of those frozen |${gpu.size ? ' pass on GPU |' : ''}`);
console.log(`| --- | ---: | ---: | ---: |${gpu.size ? ' ---: |' : ''}`);
for (const [op, e] of [...ops].sort((a, b) => a[0].localeCompare(b[0]))) {
  console.log(`| ${op} | ${e.interp} | ${e.compile} | ${e.frozen || ''} |${gpu.size ? ` ${e.gpu} |` : ''}`);
}
console.log('\nCases that do not compile:\n');
for (const c of m.cases.filter((c) => c.compileError)) console.log(`- \`${c.name}\`: ${c.compileError.replace(/ compile with --stub-kernels.*$/, '').replace(/^1 node has no CUDA kernel: /, '')}`);
