// sineSPE's shared codes on the CPU, as compiled loops (float32; the PyTorch paths stay the reference).
//
// Loaded by spelab/nn/kernels/cpu.py (torch.utils.cpp_extension, compiled once per machine). What each
// function computes, with T = N·H (position, head) tiles, hd = h·D + d:
//   contract(x (T, B, D), c (T, D, R))            -> (T, B, R)    x[t] c[t]
//   contract_t(g (T, B, R), c (T, D, R))          -> (T, B, D)    g[t] c[t]ᵀ
//   build(omega (HD, N, 2K), w (2, HD, 2K, R), H) -> (2, T, D, R)  C_s[n·H + h, d] = Ω[hd, n] W_s[hd]
//   code_grad(omega, x (T, L, D), g (T, L, R), H, start, with_t)
//                                                 -> (HD, 2K or 4K, R): Σ_n [Ω, tΩ][hd, n]ᵀ dC[n, hd],
//                                                    dC[n, hd] = Σ_l x[n·H + h, l, d] g[n·H + h, l]
// Why by hand: PyTorch does each as a batched matmul of tiny matrices (inner dimension B, 2K or a chunk
// of positions) at a fraction of the machine's speed, and the backward wrote dC to memory and read it
// back. Here the accumulators are small fixed-size arrays that the compiler keeps in vector registers
// (V floats: one AVX-512 register, two AVX2 ones), dC lives only in a per-thread panel in cache, and
// the work is split over torch's threads (at::parallel_for).

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

namespace {

// 16 floats: one AVX-512 register (two AVX2 or four NEON ones; the compiler splits it). Written with
// GCC/Clang vector types because the auto-vectoriser did not keep such accumulators in registers.
typedef float vec __attribute__((vector_size(64)));
constexpr int V = 16;
constexpr int BLOCK = 4;    // rows of the batch (contract) or of [Ω, tΩ]'s columns (code_grad) per pass
constexpr int NB = 6;       // positions per pass of the build (2 x 6 accumulators + 2 weights)
constexpr int DG = 8;       // features (d) whose dC panels are formed together (g is read once for them)
constexpr int PANEL = 64;   // positions per dC panel

inline vec load(const float* p) {
  vec v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, vec v) { __builtin_memcpy(p, &v, sizeof v); }
inline float sum_lanes(vec v) {
  float s[V];
  __builtin_memcpy(s, &v, sizeof v);
  for (int w = V / 2; w > 0; w /= 2)
    for (int i = 0; i < w; ++i) s[i] += s[i + w];
  return s[0];
}

void check(const torch::Tensor& t, const char* name, int64_t dim) {
  TORCH_CHECK(t.device().is_cpu(), "spelab sine_cpu: ", name, " must be a CPU tensor");
  TORCH_CHECK(t.scalar_type() == torch::kFloat32, "spelab sine_cpu: ", name, " must be float32, got ",
              t.scalar_type());
  TORCH_CHECK(t.dim() == dim, "spelab sine_cpu: ", name, " must have ", dim, " dimensions, got ", t.dim());
  TORCH_CHECK(t.is_contiguous(), "spelab sine_cpu: ", name, " must be contiguous");
}

void check_width(int64_t r, const char* where) {
  TORCH_CHECK(r % V == 0, "spelab sine_cpu.", where, ": R must be a multiple of ", V, ", got ", r);
}

// out[b, :] = Σ_d x[b, d] c[d, :] for NBR rows b (x rows of stride D, c (D, R), out rows of stride R)
template <int NBR>
void contract_rows(const float* x, const float* c, float* out, int64_t D, int64_t R) {
  for (int64_t r0 = 0; r0 < R; r0 += V) {
    vec acc[NBR] = {};
    for (int64_t d = 0; d < D; ++d) {
      const vec cr = load(c + d * R + r0);
      for (int b = 0; b < NBR; ++b) acc[b] += x[b * D + d] * cr;
    }
    for (int b = 0; b < NBR; ++b) store(out + b * R + r0, acc[b]);
  }
}

// out[b, d] = Σ_r g[b, r] c[d, r] for NBR rows b (g rows of stride R, out rows of stride D)
template <int NBR>
void contract_t_rows(const float* g, const float* c, float* out, int64_t D, int64_t R) {
  for (int64_t d = 0; d < D; ++d) {
    vec acc[NBR] = {};
    for (int64_t r0 = 0; r0 < R; r0 += V) {
      const vec cr = load(c + d * R + r0);
      for (int b = 0; b < NBR; ++b) acc[b] += load(g + b * R + r0) * cr;
    }
    for (int b = 0; b < NBR; ++b) out[b * D + d] = sum_lanes(acc[b]);
  }
}

template <typename F>
void by_row_blocks(int64_t rows, F&& f) {  // f(NBR, first row) over blocks of BLOCK rows, then the tail
  int64_t b = 0;
  for (; b + BLOCK <= rows; b += BLOCK) f(std::integral_constant<int, BLOCK>{}, b);
  switch (rows - b) {
    case 3: f(std::integral_constant<int, 3>{}, b); break;
    case 2: f(std::integral_constant<int, 2>{}, b); break;
    case 1: f(std::integral_constant<int, 1>{}, b); break;
    default: break;
  }
}

}  // namespace

torch::Tensor contract(const torch::Tensor& x, const torch::Tensor& c) {
  check(x, "x", 3);
  check(c, "c", 3);
  const int64_t T = x.size(0), B = x.size(1), D = x.size(2), R = c.size(2);
  TORCH_CHECK(c.size(0) == T && c.size(1) == D, "spelab sine_cpu.contract: x ", x.sizes(), " and c ", c.sizes());
  check_width(R, "contract");
  auto out = torch::empty({T, B, R}, x.options());
  const float* xp = x.data_ptr<float>();
  const float* cp = c.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, T, 16, [&](int64_t s, int64_t e) {
    for (int64_t t = s; t < e; ++t)
      by_row_blocks(B, [&](auto nbr, int64_t b) {
        contract_rows<decltype(nbr)::value>(xp + (t * B + b) * D, cp + t * D * R, op + (t * B + b) * R, D, R);
      });
  });
  return out;
}

torch::Tensor contract_t(const torch::Tensor& g, const torch::Tensor& c) {
  check(g, "g", 3);
  check(c, "c", 3);
  const int64_t T = g.size(0), B = g.size(1), R = g.size(2), D = c.size(1);
  TORCH_CHECK(c.size(0) == T && c.size(2) == R, "spelab sine_cpu.contract_t: g ", g.sizes(), " and c ", c.sizes());
  check_width(R, "contract_t");
  auto out = torch::empty({T, B, D}, g.options());
  const float* gp = g.data_ptr<float>();
  const float* cp = c.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, T, 16, [&](int64_t s, int64_t e) {
    for (int64_t t = s; t < e; ++t)
      by_row_blocks(B, [&](auto nbr, int64_t b) {
        contract_t_rows<decltype(nbr)::value>(gp + (t * B + b) * R, cp + t * D * R, op + (t * B + b) * D, D, R);
      });
  });
  return out;
}

// Both codes at once (they share Ω): out[s, n·H + h, d, :] = Σ_j omega[hd, n, j] w[s, hd, j, :].
// out may be preallocated (the CPU memory reused across forwards); it is (2, T, D, R) contiguous.
void build(const torch::Tensor& omega, const torch::Tensor& w, int64_t H, torch::Tensor& out) {
  check(omega, "omega", 3);
  check(w, "w", 4);
  check(out, "out", 4);
  const int64_t HD = omega.size(0), N = omega.size(1), J = omega.size(2), R = w.size(3), D = HD / H;
  TORCH_CHECK(HD == H * D && w.size(0) == 2 && w.size(1) == HD && w.size(2) == J,
              "spelab sine_cpu.build: omega ", omega.sizes(), ", w ", w.sizes(), ", heads ", H);
  TORCH_CHECK(out.size(0) == 2 && out.size(1) == N * H && out.size(2) == D && out.size(3) == R,
              "spelab sine_cpu.build: out ", out.sizes());
  check_width(R, "build");
  const float* op = omega.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  float* cp = out.data_ptr<float>();
  const int64_t side = N * H * D * R, row = H * D * R;  // strides of out: side, position
  at::parallel_for(0, HD, 1, [&](int64_t s, int64_t e) {
    std::vector<float> om(static_cast<size_t>(NB) * J);  // Ω of NB positions, zero past the last one
    for (int64_t hd = s; hd < e; ++hd) {
      const int64_t h = hd / D, d = hd % D;
      const float* wq = wp + hd * J * R;
      const float* wk = wq + HD * J * R;
      for (int64_t n0 = 0; n0 < N; n0 += NB) {
        const int64_t nn = std::min<int64_t>(NB, N - n0);
        std::fill(om.begin(), om.end(), 0.f);
        std::copy(op + (hd * N + n0) * J, op + (hd * N + n0 + nn) * J, om.begin());
        float* cq = cp + n0 * row + (h * D + d) * R;
        for (int64_t r0 = 0; r0 < R; r0 += V) {
          vec aq[NB] = {}, ak[NB] = {};
          for (int64_t j = 0; j < J; ++j) {
            const vec q = load(wq + j * R + r0), k = load(wk + j * R + r0);
            for (int p = 0; p < NB; ++p) {
              const float a = om[p * J + j];
              aq[p] += a * q;
              ak[p] += a * k;
            }
          }
          for (int64_t p = 0; p < nn; ++p) {
            store(cq + p * row + r0, aq[p]);
            store(cq + side + p * row + r0, ak[p]);
          }
        }
      }
    }
  });
}

// Σ_n [Ω, tΩ][hd, n]ᵀ dC[n, hd] with dC formed panel by panel in cache, never in memory.
torch::Tensor code_grad(const torch::Tensor& omega, const torch::Tensor& x, const torch::Tensor& g, int64_t H,
                        int64_t start, bool with_t) {
  check(omega, "omega", 3);
  check(x, "x", 3);
  check(g, "g", 3);
  const int64_t HD = omega.size(0), N = omega.size(1), J = omega.size(2), D = HD / H;
  const int64_t L = x.size(1), R = g.size(2);
  TORCH_CHECK(HD == H * D && x.size(0) == N * H && x.size(2) == D && g.size(0) == N * H && g.size(1) == L,
              "spelab sine_cpu.code_grad: omega ", omega.sizes(), ", x ", x.sizes(), ", g ", g.sizes(), ", heads ", H);
  check_width(R, "code_grad");
  const int64_t width = with_t ? 2 * J : J;
  const int64_t padded = (width + BLOCK - 1) / BLOCK * BLOCK;
  auto out = torch::zeros({HD, width, R}, omega.options());
  const float* op = omega.data_ptr<float>();
  const float* xp = x.data_ptr<float>();
  const float* gp = g.data_ptr<float>();
  float* outp = out.data_ptr<float>();
  const int64_t per_head = (D + DG - 1) / DG;
  at::parallel_for(0, H * per_head, 1, [&](int64_t s, int64_t e) {  // one task per (head, DG features)
    std::vector<float> panel(static_cast<size_t>(DG) * PANEL * R);
    std::vector<float> weight(static_cast<size_t>(PANEL) * padded, 0.f);  // [Ω, tΩ] of a panel, zero-padded
    for (int64_t task = s; task < e; ++task) {
      const int64_t h = task / per_head, d0 = (task % per_head) * DG;
      const int64_t nd = std::min<int64_t>(DG, D - d0);
      for (int64_t n0 = 0; n0 < N; n0 += PANEL) {
        const int64_t np = std::min<int64_t>(PANEL, N - n0);
        // dC panels of features d0 ... d0+nd-1: each row of g is read once for all of them
        for (int64_t dd = 0; dd < nd; ++dd)
          for (int64_t p = 0; p < np; ++p) {
            const int64_t t = (n0 + p) * H + h;
            float* pr = panel.data() + (dd * PANEL + p) * R;
            for (int64_t r0 = 0; r0 < R; r0 += V) {
              vec acc = {};
              for (int64_t l = 0; l < L; ++l) acc += xp[(t * L + l) * D + d0 + dd] * load(gp + (t * L + l) * R + r0);
              store(pr + r0, acc);
            }
          }
        for (int64_t dd = 0; dd < nd; ++dd) {
          const int64_t hd = h * D + d0 + dd;
          const float* om = op + (hd * N + n0) * J;
          for (int64_t p = 0; p < np; ++p)
            for (int64_t j = 0; j < J; ++j) {
              weight[p * padded + j] = om[p * J + j];
              if (with_t) weight[p * padded + J + j] = om[p * J + j] * static_cast<float>(start + n0 + p);
            }
          const float* pn = panel.data() + dd * PANEL * R;
          float* o = outp + hd * width * R;
          for (int64_t j0 = 0; j0 < width; j0 += BLOCK) {
            const int64_t nj = std::min<int64_t>(BLOCK, width - j0);
            for (int64_t r0 = 0; r0 < R; r0 += 2 * V) {
              const bool two = r0 + V < R;  // a second column block of V
              vec acc[BLOCK][2] = {};
              for (int64_t p = 0; p < np; ++p) {
                const vec c0 = load(pn + p * R + r0), c1 = two ? load(pn + p * R + r0 + V) : vec{};
                const float* a = weight.data() + p * padded + j0;
                for (int b = 0; b < BLOCK; ++b) {
                  acc[b][0] += a[b] * c0;
                  acc[b][1] += a[b] * c1;
                }
              }
              for (int64_t b = 0; b < nj; ++b) {
                float* ob = o + (j0 + b) * R + r0;
                store(ob, load(ob) + acc[b][0]);
                if (two) store(ob + V, load(ob + V) + acc[b][1]);
              }
            }
          }
        }
      }
    }
  });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("contract", &contract, "x (T, B, D), c (T, D, R) -> (T, B, R): x[t] c[t]");
  m.def("contract_t", &contract_t, "g (T, B, R), c (T, D, R) -> (T, B, D): g[t] c[t]^T");
  m.def("build", &build, "omega (HD, N, 2K), w (2, HD, 2K, R), heads, out (2, N*H, D, R): the two codes");
  m.def("code_grad", &code_grad, "omega, x (T, L, D), g (T, L, R), heads, start, with_t -> (HD, 2K|4K, R)");
}
