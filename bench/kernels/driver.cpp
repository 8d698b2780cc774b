// Runs one check case (case.txt from gen-cases.ts) with the CUDA driver API: allocates the
// buffers, fills inputs (from files or seeded random data), launches the kernels in order,
// writes the outputs, then times the whole launch sequence with CUDA events (median of `iters`
// after warm-up) and prints "RESULT <median_us>".
// Build: nvcc -O2 -std=c++17 -o driver driver.cpp -lcuda     Run: ./driver <caseDir>
#include <cuda.h>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#define CK(x) do { CUresult r_ = (x); if (r_ != CUDA_SUCCESS) { const char* s_ = nullptr; cuGetErrorString(r_, &s_); \
  fprintf(stderr, "CUDA error %s at %s:%d: %s\n", s_ ? s_ : "?", __FILE__, __LINE__, #x); exit(2); } } while (0)

struct Launch { std::string entry; unsigned g[3], b[3], smem; std::vector<int> args; CUfunction fn; };

static uint16_t f2bf(float f) { uint32_t u; memcpy(&u, &f, 4); u += 0x7fff + ((u >> 16) & 1); return (uint16_t)(u >> 16); }
static uint16_t f2h(float f) {  // round-to-nearest-even float -> half (normal range; inputs are in [-1, 1])
  uint32_t u; memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000; int e = (int)((u >> 23) & 0xff) - 127 + 15; uint32_t m = u & 0x7fffff;
  if (e <= 0) return (uint16_t)sign;
  uint32_t h = sign | (e << 10) | (m >> 13); uint32_t rest = m & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
  return (uint16_t)h;
}

int main(int argc, char** argv) {
  if (argc < 2) { fprintf(stderr, "usage: driver <caseDir>\n"); return 2; }
  std::string dir = argv[1];
  std::ifstream in(dir + "/case.txt");
  if (!in) { fprintf(stderr, "cannot read %s/case.txt\n", dir.c_str()); return 2; }
  CK(cuInit(0)); CUdevice dev; CK(cuDeviceGet(&dev, 0)); CUcontext ctx; CK(cuDevicePrimaryCtxRetain(&ctx, dev)); CK(cuCtxSetCurrent(ctx));
  CUmodule mod = nullptr;
  std::map<int, CUdeviceptr> buf; std::map<int, size_t> size;
  std::vector<Launch> launches; std::vector<std::pair<int, std::string>> outputs, dumps;
  int iters = 10;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line); std::string kw; ss >> kw;
    if (kw == "cubin") { std::string f; ss >> f; CK(cuModuleLoad(&mod, (dir + "/" + f).c_str())); }
    else if (kw == "buffer") {
      int id; size_t bytes; std::string how; ss >> id >> bytes >> how; size[id] = bytes;
      if (how == "alias") { int of; size_t off; ss >> of >> off; buf[id] = buf.at(of) + off; continue; }
      CUdeviceptr p; CK(cuMemAlloc(&p, bytes ? bytes : 16)); buf[id] = p;
      std::vector<char> host(bytes, 0);
      if (how == "file") {
        std::string f; ss >> f; std::ifstream bf(dir + "/" + f, std::ios::binary);
        if (!bf.read(host.data(), bytes)) { fprintf(stderr, "short file %s\n", f.c_str()); return 2; }
      } else if (how == "random") {
        uint64_t seed; std::string dt; ss >> seed >> dt; uint64_t s = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        auto next = [&]() { s = s * 6364136223846793005ULL + 1442695040888963407ULL; return (float)((s >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; };
        if (dt == "bf16") for (size_t i = 0; i < bytes / 2; i++) ((uint16_t*)host.data())[i] = f2bf(next());
        else if (dt == "f16") for (size_t i = 0; i < bytes / 2; i++) ((uint16_t*)host.data())[i] = f2h(next());
        else if (dt == "f32") for (size_t i = 0; i < bytes / 4; i++) ((float*)host.data())[i] = next();
        else { fprintf(stderr, "random fill of %s is not supported\n", dt.c_str()); return 2; }
      }
      CK(cuMemcpyHtoD(p, host.data(), bytes));
    } else if (kw == "launch") {
      Launch l; int n; ss >> l.entry >> l.g[0] >> l.g[1] >> l.g[2] >> l.b[0] >> l.b[1] >> l.b[2] >> l.smem >> n;
      l.args.resize(n); for (int i = 0; i < n; i++) ss >> l.args[i];
      CK(cuModuleGetFunction(&l.fn, mod, l.entry.c_str())); launches.push_back(l);
    } else if (kw == "output") { int id; std::string f; ss >> id >> f; outputs.push_back({id, f}); }
    else if (kw == "dump") { int id; std::string f; ss >> id >> f; dumps.push_back({id, f}); }
    else if (kw == "iters") ss >> iters;
  }
  auto runAll = [&]() {
    for (auto& l : launches) {
      std::vector<CUdeviceptr> ptrs; for (int a : l.args) ptrs.push_back(buf.at(a));
      std::vector<void*> params; for (auto& p : ptrs) params.push_back(&p);
      CK(cuLaunchKernel(l.fn, l.g[0], l.g[1], l.g[2], l.b[0], l.b[1], l.b[2], l.smem, 0, params.data(), nullptr));
    }
  };
  runAll(); CK(cuCtxSynchronize());
  auto save = [&](int id, const std::string& f) {
    std::vector<char> host(size.at(id)); CK(cuMemcpyDtoH(host.data(), buf.at(id), host.size()));
    std::ofstream o(dir + "/" + f, std::ios::binary); o.write(host.data(), host.size());
  };
  for (auto& o : outputs) save(o.first, o.second);
  for (auto& d : dumps) save(d.first, d.second);
  CUevent a, b; CK(cuEventCreate(&a, 0)); CK(cuEventCreate(&b, 0));
  for (int i = 0; i < 3; i++) runAll();
  std::vector<float> ms;
  for (int i = 0; i < iters; i++) {
    CK(cuEventRecord(a, 0)); runAll(); CK(cuEventRecord(b, 0)); CK(cuEventSynchronize(b));
    float t; CK(cuEventElapsedTime(&t, a, b)); ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  printf("RESULT %.3f\n", ms[ms.size() / 2] * 1000.0f);
  return 0;
}
