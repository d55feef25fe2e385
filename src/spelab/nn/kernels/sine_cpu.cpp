// sineSPE's shared codes on the CPU, as compiled loops (float32; the PyTorch paths stay the reference).
//
// Loaded by spelab/nn/kernels/cpu.py (torch.utils.cpp_extension, compiled once per machine). What each
// function computes, with T = N·H (position, head) tiles, hd = h·D + d:
//   contract(x (T, B, D), c (T, D, R), out (T, B, R))      out[t] = x[t] c[t]
//   contract_t(g (T, B, R), c (T, D, R), out (T, B, D))    out[t] = g[t] c[t]ᵀ
//   contract_gated / contract_t_gated: the same through one layer's gated code keep_h·c[t] (tile
//                       t = n·H + h), never built; the backward also gives dkeep (H, D)
//   build(omega_t (HD, 2K, N), w (2, HD, 2K, R), H, out (2, T, D, R))   C_s[n·H + h, d] = Ω[hd, n] W_s[hd]
//   code_sums(omega_t, [x_i (T, B_i, D)], [g_i (T, B_i, R)], [keep_i (H, D)] or [], noise Z (HD, 2K, R), H, start)
//                       -> (HD, 2, 2, 2, K): Σ_n t_n^w Ω[hd, n, a·K+k] (dC[n, hd]·Z[hd, b·K+k]),
//                          dC[n, hd] = Σ_i,b keep_i[hd] x_i[n·H + h, b, d] g_i[n·H + h, b]  (t_n = start + n)
// x, g and out of the contractions, and the x_i, g_i of code_sums, are "row-strided": any strides for
// the first two dimensions, contiguous rows. So the layers pass (B, N, H, ·) activations as they are,
// as (N·H, B, ·) views, with no permuted copy in or out.
// Why by hand: PyTorch does each as a batched matmul of tiny matrices (inner dimension B, 2K or a chunk
// of positions) at a fraction of the machine's speed, and the backward wrote dC to memory and read it
// back. Here the accumulators are small fixed-size arrays that the compiler keeps in vector registers
// (V floats: one AVX-512 register, two AVX2 ones), dC lives only in a per-thread panel in cache, and
// the work is split over torch's threads (at::parallel_for).

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <vector>

namespace {

// 16 floats: one AVX-512 register (two AVX2 or four NEON ones; the compiler splits it). Written with
// GCC/Clang vector types because the auto-vectoriser did not keep such accumulators in registers.
typedef float vec __attribute__((vector_size(64)));
constexpr int V = 16;
constexpr int BLOCK = 4;    // rows of the batch (contract), positions (build) or rows of Z (code_sums) per pass
constexpr int POSITIONS = 16;  // positions per task of the build
constexpr int DG = 8;       // features (d) whose dC panels are formed together (g is read once for them)
constexpr int PANEL = 64;   // positions per dC panel
constexpr int AHEAD = 2;    // positions ahead whose rows code_sums prefetches

inline vec load(const float* p) {
  vec v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, vec v) { __builtin_memcpy(p, &v, sizeof v); }
// a store that bypasses the caches where the CPU has one for a whole vector (the codes are larger than
// the caches: a normal store would first read each line it writes)
inline void store_stream(float* p, vec v) {
#if defined(__AVX512F__)
  if ((reinterpret_cast<uintptr_t>(p) & 63) == 0) return _mm512_stream_ps(p, reinterpret_cast<__m512>(v));
#endif
  store(p, v);
}
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

void check_rows(const torch::Tensor& t, const char* name) {  // 3 dimensions, any strides but the last
  TORCH_CHECK(t.device().is_cpu(), "spelab sine_cpu: ", name, " must be a CPU tensor");
  TORCH_CHECK(t.scalar_type() == torch::kFloat32, "spelab sine_cpu: ", name, " must be float32, got ",
              t.scalar_type());
  TORCH_CHECK(t.dim() == 3, "spelab sine_cpu: ", name, " must have 3 dimensions, got ", t.dim());
  TORCH_CHECK(t.stride(2) == 1 || t.size(2) == 1, "spelab sine_cpu: ", name,
              " must have contiguous rows (last stride 1), got strides ", t.strides());
}

// a row-strided tensor: its data and the strides of its first two dimensions
struct Rows {
  const float* p;
  int64_t t, b;
  const float* at(int64_t tile, int64_t row) const { return p + tile * t + row * b; }
};
struct OutRows {
  float* p;
  int64_t t, b;
  float* at(int64_t tile, int64_t row) const { return p + tile * t + row * b; }
};

void check_width(int64_t r, const char* where) {
  TORCH_CHECK(r % V == 0, "spelab sine_cpu.", where, ": R must be a multiple of ", V, ", got ", r);
}

// out[b, :] = Σ_d x[b, d] c[d, :] for NBR rows b (x rows of stride xs, c (D, R), out rows of stride os):
// RB vectors of a row of c at a time (RB·V columns), so that c is read in order, row after row. GATED:
// x is scaled by keep (D) on the fly (the layer's gate on the code: keep[d]·c[d, :]).
template <int NBR, int RB, bool GATED>
void contract_cols(const float* x, int64_t xs, const float* c, const float* keep, float* out, int64_t os, int64_t D,
                   int64_t R, int64_t r0) {
  vec acc[NBR][RB] = {};
  for (int64_t d = 0; d < D; ++d) {
    vec cr[RB];
    for (int j = 0; j < RB; ++j) cr[j] = load(c + d * R + r0 + j * V);
    for (int b = 0; b < NBR; ++b) {
      const float xv = GATED ? keep[d] * x[b * xs + d] : x[b * xs + d];
      for (int j = 0; j < RB; ++j) acc[b][j] += xv * cr[j];
    }
  }
  for (int b = 0; b < NBR; ++b)
    for (int j = 0; j < RB; ++j) store(out + b * os + r0 + j * V, acc[b][j]);
}

template <int NBR, bool GATED>
void contract_rows(const float* x, int64_t xs, const float* c, const float* keep, float* out, int64_t os, int64_t D,
                   int64_t R) {
  int64_t r0 = 0;
  for (; r0 + 4 * V <= R; r0 += 4 * V) contract_cols<NBR, 4, GATED>(x, xs, c, keep, out, os, D, R, r0);
  for (; r0 < R; r0 += V) contract_cols<NBR, 1, GATED>(x, xs, c, keep, out, os, D, R, r0);
}

// Transposed reduction: the lane sums of 16 vectors v_0 … v_15 as one vector (its lane i = Σ v_i), in four
// levels of pairwise folds (each: two shuffles and an add), instead of 16 separate horizontal sums.
// fold<S>(a, b) keeps S-lane groups: lanes of a's group g and g + 1 (of width S) are added, then b's.
inline vec fold8(vec a, vec b) {
  return __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
         __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
}
inline vec fold4(vec a, vec b) {
  return __builtin_shufflevector(a, b, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
         __builtin_shufflevector(a, b, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
}
inline vec fold2(vec a, vec b) {
  return __builtin_shufflevector(a, b, 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29) +
         __builtin_shufflevector(a, b, 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
}
inline vec fold1(vec a, vec b) {
  return __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30) +
         __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
}

template <int RB>
inline vec dot_row(const vec* g, const float* c) {  // lane-wise partial products of g · c over RB vectors
  vec acc = g[0] * load(c);
  for (int j = 1; j < RB; ++j) acc += g[j] * load(c + j * V);
  return acc;
}

// The 16 sums Σ_r g_q[r] c[d + i, r], i < 16, as one vector u[q] per row q < NR of g: with R = RB·V the rows
// of g are in registers, each row of c is loaded once for all NR rows, and the 16 features share one
// transposed reduction (folds as soon as their two inputs exist, to keep the live registers few)
template <int NR, int RB>
inline void dots16(const vec (*gr)[RB], const float* c, int64_t R, vec* u) {
  vec f4[NR][4];
  for (int m = 0; m < 4; ++m) {
    vec f8[NR][2];
    for (int half = 0; half < 2; ++half) {
      const float* c0 = c + (4 * m + 2 * half) * R;
      const float* c1 = c0 + R;
      vec a[NR], b[NR];
      for (int j = 0; j < RB; ++j) {
        const vec x0 = load(c0 + j * V), x1 = load(c1 + j * V);
        for (int q = 0; q < NR; ++q) {
          a[q] = j ? a[q] + gr[q][j] * x0 : gr[q][j] * x0;
          b[q] = j ? b[q] + gr[q][j] * x1 : gr[q][j] * x1;
        }
      }
      for (int q = 0; q < NR; ++q) f8[q][half] = fold8(a[q], b[q]);
    }
    for (int q = 0; q < NR; ++q) f4[q][m] = fold4(f8[q][0], f8[q][1]);
  }
  for (int q = 0; q < NR; ++q) u[q] = fold1(fold2(f4[q][0], f4[q][1]), fold2(f4[q][2], f4[q][3]));
}

// What the gated backward needs per tile: keep (D), and x (rows of stride xs) for dkeep[d] += Σ_b x[b, d] u[b, d]
struct GateGrad {
  const float* keep;
  const float* x;
  int64_t xs;
  float* d_keep;  // this thread's accumulator for the tile's head, (D)
};

// out[b, d] = Σ_r g[b, r] c[d, r] for NBR rows b (g rows of stride gs, out rows of stride os). GATED:
// with u = g cᵀ, out = keep·u (the gradient through the gated code keep·c) and dkeep += Σ_b x·u.
template <int NBR, int RB, bool GATED>
void contract_t_fixed(const float* g, int64_t gs, const float* c, GateGrad gg, float* out, int64_t os, int64_t D,
                      int64_t R) {
  // rows in pairs (a pair shares the loads of c), then a last one
  auto rows = [&](auto nr, int b0) {
    constexpr int NR = decltype(nr)::value;
    vec gr[NR][RB];
    for (int q = 0; q < NR; ++q)
      for (int j = 0; j < RB; ++j) gr[q][j] = load(g + (b0 + q) * gs + j * V);
    int64_t d = 0;
    for (; d + V <= D; d += V) {
      vec u[NR];
      dots16<NR, RB>(gr, c + d * R, R, u);
      for (int q = 0; q < NR; ++q) {
        const int b = b0 + q;
        if constexpr (GATED) {
          store(out + b * os + d, load(gg.keep + d) * u[q]);
          store(gg.d_keep + d, load(gg.d_keep + d) + load(gg.x + b * gg.xs + d) * u[q]);
        } else {
          store(out + b * os + d, u[q]);
        }
      }
    }
    for (; d < D; ++d)
      for (int q = 0; q < NR; ++q) {
        const int b = b0 + q;
        const float u = sum_lanes(dot_row<RB>(gr[q], c + d * R));
        if constexpr (GATED) {
          out[b * os + d] = gg.keep[d] * u;
          gg.d_keep[d] += gg.x[b * gg.xs + d] * u;
        } else {
          out[b * os + d] = u;
        }
      }
  };
  int b = 0;
  for (; b + 2 <= NBR; b += 2) rows(std::integral_constant<int, 2>{}, b);
  if (b < NBR) rows(std::integral_constant<int, 1>{}, b);
}

template <int NBR, bool GATED>
void contract_t_rows(const float* g, int64_t gs, const float* c, GateGrad gg, float* out, int64_t os, int64_t D,
                     int64_t R) {
  if (R == 4 * V) return contract_t_fixed<NBR, 4, GATED>(g, gs, c, gg, out, os, D, R);
  if (R == 2 * V) return contract_t_fixed<NBR, 2, GATED>(g, gs, c, gg, out, os, D, R);
  if (R == V) return contract_t_fixed<NBR, 1, GATED>(g, gs, c, gg, out, os, D, R);
  for (int64_t d = 0; d < D; ++d) {
    vec acc[NBR] = {};
    for (int64_t r0 = 0; r0 < R; r0 += V) {
      const vec cr = load(c + d * R + r0);
      for (int b = 0; b < NBR; ++b) acc[b] += load(g + b * gs + r0) * cr;
    }
    for (int b = 0; b < NBR; ++b) {
      const float u = sum_lanes(acc[b]);
      if constexpr (GATED) {
        out[b * os + d] = gg.keep[d] * u;
        gg.d_keep[d] += gg.x[b * gg.xs + d] * u;
      } else {
        out[b * os + d] = u;
      }
    }
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

// f(NBR, chunk, tile, first row) for every block of rows of every (position, head) tile, on torch's threads.
// The tiles are cut into at most `chunks` runs, one task each: a task can own an accumulator (the
// gated backward's dkeep), summed in a fixed order afterwards.
template <typename F>
void over_row_blocks(int64_t T, int64_t B, int64_t chunks, F&& f) {
  at::parallel_for(0, chunks, 1, [&](int64_t s, int64_t e) {
    for (int64_t k = s; k < e; ++k)
      for (int64_t t = T * k / chunks; t < T * (k + 1) / chunks; ++t)
        by_row_blocks(B, [&](auto nbr, int64_t b) { f(nbr, k, t, b); });
  });
}

int64_t tile_chunks(int64_t T) { return std::max<int64_t>(1, std::min<int64_t>(T / 16, 4 * at::get_num_threads())); }

// The gate keep (H, D) of T tiles t = n·H + h, checked against their D features
const float* keep_of(const torch::Tensor& keep, int64_t T, int64_t D, const char* where) {
  check(keep, "keep", 2);
  const int64_t H = keep.size(0);
  TORCH_CHECK(H > 0 && T % H == 0 && keep.size(1) == D, "spelab sine_cpu.", where, ": keep ", keep.sizes(), " for ", T,
              " tiles (positions x heads) of ", D, " features");
  return keep.data_ptr<float>();
}

// out (T, B, R) = x[t] c[t] per tile, or (keep_h·x[t]) c[t] with a gate (tile t = n·H + h is head h)
template <bool GATED>
void contract_impl(const torch::Tensor& x, const torch::Tensor& c, const torch::Tensor* keep, torch::Tensor& out,
                   const char* where) {
  check_rows(x, "x");
  check(c, "c", 3);
  check_rows(out, "out");
  const int64_t T = x.size(0), B = x.size(1), D = x.size(2), R = c.size(2);
  TORCH_CHECK(c.size(0) == T && c.size(1) == D && out.size(0) == T && out.size(1) == B && out.size(2) == R,
              "spelab sine_cpu.", where, ": x ", x.sizes(), ", c ", c.sizes(), ", out ", out.sizes());
  check_width(R, where);
  const float* kp = GATED ? keep_of(*keep, T, D, where) : nullptr;
  const int64_t H = GATED ? keep->size(0) : 1;
  const Rows xr{x.data_ptr<float>(), x.stride(0), x.stride(1)};
  const OutRows orow{out.data_ptr<float>(), out.stride(0), out.stride(1)};
  const float* cp = c.data_ptr<float>();
  over_row_blocks(T, B, tile_chunks(T), [&](auto nbr, int64_t, int64_t t, int64_t b) {
    const float* head = GATED ? kp + (t % H) * D : nullptr;
    contract_rows<decltype(nbr)::value, GATED>(xr.at(t, b), xr.b, cp + t * D * R, head, orow.at(t, b), orow.b, D, R);
  });
}

// out (T, B, D) = g[t] c[t]ᵀ per tile; with a gate, keep_h·(g[t] c[t]ᵀ), and d_keep (H, D) =
// Σ_t,b x[t, b] · (g[t, b] c[t]ᵀ) over the tiles of each head
template <bool GATED>
void contract_t_impl(const torch::Tensor& g, const torch::Tensor& c, const torch::Tensor* x, const torch::Tensor* keep,
                     torch::Tensor& out, torch::Tensor* d_keep, const char* where) {
  check_rows(g, "g");
  check(c, "c", 3);
  check_rows(out, "out");
  const int64_t T = g.size(0), B = g.size(1), R = g.size(2), D = c.size(1);
  TORCH_CHECK(c.size(0) == T && c.size(2) == R && out.size(0) == T && out.size(1) == B && out.size(2) == D,
              "spelab sine_cpu.", where, ": g ", g.sizes(), ", c ", c.sizes(), ", out ", out.sizes());
  check_width(R, where);
  const int64_t chunks = tile_chunks(T);
  const float* kp = GATED ? keep_of(*keep, T, D, where) : nullptr;
  const int64_t H = GATED ? keep->size(0) : 1;
  Rows xr{nullptr, 0, 0};
  std::vector<float> acc;  // per chunk: (H, D) partial sums of dkeep
  if constexpr (GATED) {
    check_rows(*x, "x");
    TORCH_CHECK(x->size(0) == T && x->size(1) == B && x->size(2) == D, "spelab sine_cpu.", where, ": x ", x->sizes(),
                " for g ", g.sizes());
    check(*d_keep, "d_keep", 2);
    TORCH_CHECK(d_keep->size(0) == H && d_keep->size(1) == D, "spelab sine_cpu.", where, ": d_keep ", d_keep->sizes());
    xr = {x->data_ptr<float>(), x->stride(0), x->stride(1)};
    acc.assign(static_cast<size_t>(chunks * H * D), 0.f);
  }
  const Rows gr{g.data_ptr<float>(), g.stride(0), g.stride(1)};
  const OutRows orow{out.data_ptr<float>(), out.stride(0), out.stride(1)};
  const float* cp = c.data_ptr<float>();
  over_row_blocks(T, B, chunks, [&](auto nbr, int64_t k, int64_t t, int64_t b) {
    const int64_t h = t % H;
    GateGrad gg{nullptr, nullptr, 0, nullptr};
    if constexpr (GATED) gg = {kp + h * D, xr.at(t, b), xr.b, acc.data() + (k * H + h) * D};
    contract_t_rows<decltype(nbr)::value, GATED>(gr.at(t, b), gr.b, cp + t * D * R, gg, orow.at(t, b), orow.b, D, R);
  });
  if constexpr (GATED) {
    float* dk = d_keep->data_ptr<float>();
    std::fill(dk, dk + H * D, 0.f);
    for (int64_t k = 0; k < chunks; ++k)
      for (int64_t i = 0; i < H * D; ++i) dk[i] += acc[k * H * D + i];
  }
}

}  // namespace

// out (T, B, R) = x[t] c[t] per tile; x and out row-strided (out is written in place)
void contract(const torch::Tensor& x, const torch::Tensor& c, torch::Tensor& out) {
  contract_impl<false>(x, c, nullptr, out, "contract");
}

// out (T, B, R) = (keep_h·x[t]) c[t] per tile t = n·H + h: x through one layer's gated code keep·C, never
// built (the gate's position-free term x·mix is a matmul per head, left to the caller)
void contract_gated(const torch::Tensor& x, const torch::Tensor& c, const torch::Tensor& keep, torch::Tensor& out) {
  contract_impl<true>(x, c, &keep, out, "contract_gated");
}

// out (T, B, D) = g[t] c[t]ᵀ per tile; g and out row-strided (out is written in place)
void contract_t(const torch::Tensor& g, const torch::Tensor& c, torch::Tensor& out) {
  contract_t_impl<false>(g, c, nullptr, nullptr, out, nullptr, "contract_t");
}

// contract_gated's backward: out (T, B, D) = keep_h·(g[t] c[t]ᵀ), d_keep (H, D) = Σ x ⊙ (g[t] c[t]ᵀ) over
// each head's tiles
void contract_t_gated(const torch::Tensor& g, const torch::Tensor& c, const torch::Tensor& x, const torch::Tensor& keep,
                      torch::Tensor& out, torch::Tensor& d_keep) {
  contract_t_impl<true>(g, c, &x, &keep, out, &d_keep, "contract_t_gated");
}

namespace {

// c[p·row + r0 : … + RB·V] = Σ_j om[j·N + p] w[j·R + r0 : … + RB·V] for NP positions p (Ωᵀ: one row per
// feature j, N positions long): one code's rows of NP positions for one (head, feature), accumulators in
// registers
template <int NP, int RB>
void code_rows(const float* om, int64_t N, int64_t J, const float* w, int64_t R, int64_t r0, float* c, int64_t row) {
  vec acc[NP][RB] = {};
  for (int64_t j = 0; j < J; ++j) {
    vec wr[RB];
    for (int i = 0; i < RB; ++i) wr[i] = load(w + j * R + r0 + i * V);
    for (int p = 0; p < NP; ++p) {
      const float a = om[j * N + p];
      for (int i = 0; i < RB; ++i) acc[p][i] += a * wr[i];
    }
  }
  for (int p = 0; p < NP; ++p)
    for (int i = 0; i < RB; ++i) store_stream(c + p * row + r0 + i * V, acc[p][i]);
}

template <int NP>
void code_block(const float* om, int64_t N, int64_t J, const float* w, int64_t R, float* c, int64_t row) {
  int64_t r0 = 0;
  for (; r0 + 4 * V <= R; r0 += 4 * V) code_rows<NP, 4>(om, N, J, w, R, r0, c, row);
  for (; r0 < R; r0 += V) code_rows<NP, 1>(om, N, J, w, R, r0, c, row);
}

}  // namespace

// Both codes at once (they share Ω): out[s, n·H + h, d, :] = Σ_j omega_t[hd, j, n] w[s, hd, j, :].
// out may be preallocated (the CPU memory reused across forwards); it is (2, T, D, R) contiguous.
// Tasks are blocks of positions, so that each fills whole (position, head) tiles of the codes, in
// order: written feature by feature, a tile's rows are contiguous.
void build(const torch::Tensor& omega, const torch::Tensor& w, int64_t H, torch::Tensor& out) {
  check(omega, "omega_t", 3);
  check(w, "w", 4);
  check(out, "out", 4);
  const int64_t HD = omega.size(0), J = omega.size(1), N = omega.size(2), R = w.size(3), D = HD / H;
  TORCH_CHECK(HD == H * D && w.size(0) == 2 && w.size(1) == HD && w.size(2) == J,
              "spelab sine_cpu.build: omega ", omega.sizes(), ", w ", w.sizes(), ", heads ", H);
  TORCH_CHECK(out.size(0) == 2 && out.size(1) == N * H && out.size(2) == D && out.size(3) == R,
              "spelab sine_cpu.build: out ", out.sizes());
  check_width(R, "build");
  const float* op = omega.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  float* cp = out.data_ptr<float>();
  const int64_t side = N * H * D * R, row = H * D * R;  // strides of out: side, position
  at::parallel_for(0, (N + POSITIONS - 1) / POSITIONS, 1, [&](int64_t s, int64_t e) {
    for (int64_t task = s; task < e; ++task) {
      const int64_t n0 = task * POSITIONS, nn = std::min<int64_t>(POSITIONS, N - n0);
      for (int64_t hd = 0; hd < HD; ++hd)
        for (int64_t q = 0; q < 2; ++q) {
          const float* wq = wp + (q * HD + hd) * J * R;
          by_row_blocks(nn, [&](auto np, int64_t p) {
            code_block<decltype(np)::value>(op + hd * J * N + n0 + p, N, J, wq, R,
                                            cp + q * side + (n0 + p) * row + hd * R, row);
          });
        }
    }
#if defined(__AVX512F__)
    _mm_sfence();  // the streaming stores are weakly ordered: make them visible before the task ends
#endif
  });
}

namespace {

// A 16×16 block in registers, transposed: m[i] lane j <-> m[j] lane i. Four butterfly stages; the
// stage of width k swaps bit k of the row and of the lane index.
inline void transpose16(vec* m) {
  for (int r = 0; r < 8; ++r) {
    const vec a = m[r], b = m[r + 8];
    m[r] = __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
    m[r + 8] = __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  }
  for (int r = 0; r < 16; ++r) {
    if (r & 4) continue;
    const vec a = m[r], b = m[r + 4];
    m[r] = __builtin_shufflevector(a, b, 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
    m[r + 4] = __builtin_shufflevector(a, b, 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
  }
  for (int r = 0; r < 16; ++r) {
    if (r & 2) continue;
    const vec a = m[r], b = m[r + 2];
    m[r] = __builtin_shufflevector(a, b, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29);
    m[r + 2] = __builtin_shufflevector(a, b, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
  }
  for (int r = 0; r < 16; r += 2) {
    const vec a = m[r], b = m[r + 1];
    m[r] = __builtin_shufflevector(a, b, 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
    m[r + 1] = __builtin_shufflevector(a, b, 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
  }
}

constexpr int PV = PANEL / V;  // vectors per row of a transposed panel

// The layers handed to code_sums: each one's (x, g) rows and gate (null: none)
struct Layers {
  std::vector<Rows> x, g;
  std::vector<const float*> keep;
  std::vector<int64_t> batch;
};

// f(width) with the group width nd (1 ... DG) as a compile-time constant: the accumulators of a group are
// arrays indexed by it, which stay in registers only when the compiler knows their extent
template <typename F>
void by_width(int64_t nd, F&& f) {
  switch (nd) {
    case 8: return f(std::integral_constant<int, 8>{});
    case 7: return f(std::integral_constant<int, 7>{});
    case 6: return f(std::integral_constant<int, 6>{});
    case 5: return f(std::integral_constant<int, 5>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 3: return f(std::integral_constant<int, 3>{});
    case 2: return f(std::integral_constant<int, 2>{});
    default: return f(std::integral_constant<int, 1>{});
  }
}
static_assert(DG == 8, "by_width covers group widths up to 8");

// dC[t, d0 + dd, :] = Σ_layers keep[hd0 + dd] Σ_b x[t, b, d0 + dd] g[t, b, :] for NDG features, written to
// out + dd·stride (one row of each feature's panel), one vector of R at a time
template <int NDG>
void dc_rows(const Layers& layers, int64_t t, int64_t hd0, int64_t d0, int64_t R, float* out, int64_t stride) {
  for (int64_t r0 = 0; r0 < R; r0 += V) {
    vec acc[NDG] = {};
    for (size_t i = 0; i < layers.batch.size(); ++i) {
      vec part[NDG] = {};  // this layer's Σ_b x g, then scaled by its gate
      for (int64_t l = 0; l < layers.batch[i]; ++l) {
        const vec gv = load(layers.g[i].at(t, l) + r0);
        const float* xr = layers.x[i].at(t, l) + d0;
        for (int dd = 0; dd < NDG; ++dd) part[dd] += xr[dd] * gv;
      }
      if (const float* kv = layers.keep[i]) {
        for (int dd = 0; dd < NDG; ++dd) acc[dd] += kv[hd0 + dd] * part[dd];
      } else {
        for (int dd = 0; dd < NDG; ++dd) acc[dd] += part[dd];
      }
    }
    for (int dd = 0; dd < NDG; ++dd) store(out + dd * stride + r0, acc[dd]);
  }
}

// prod[j, :] = Σ_r z[j, r] pt[r, :] for NJ rows j: (NJ × R)(R × PANEL), accumulators in registers
template <int NJ>
void noise_product(const float* z, int64_t R, const float* pt, float* prod) {
  vec acc[NJ][PV] = {};
  for (int64_t r = 0; r < R; ++r) {
    vec col[PV];
    for (int v = 0; v < PV; ++v) col[v] = load(pt + r * PANEL + v * V);
    for (int j = 0; j < NJ; ++j) {
      const float a = z[j * R + r];
      for (int v = 0; v < PV; ++v) acc[j][v] += a * col[v];
    }
  }
  for (int j = 0; j < NJ; ++j)
    for (int v = 0; v < PV; ++v) store(prod + j * PANEL + v * V, acc[j][v]);
}

}  // namespace

// The gradient sums of sineSPE's shared codes, for one side (C = Ω W, W = a·Z row by row):
//   P[n, j] = dC[n] · Z[j]  (dC[n] = Σ_layers xᵀ g of the (position, head) tile, feature d)
//   out[w, a, b, k] = Σ_n t_n^w Ω[n, a·K + k] P[n, b·K + k]   (w = 0, 1; a, b = 0 (cos), 1 (sin))
// from which the frequencies', amplitudes' and phases' gradients follow (sine_shared.py): one product
// with Z (2K rows) per position instead of [Ω, tΩ]ᵀ dC (4K rows, and a (2K, R) weight gradient).
// dC is formed panel by panel in cache (PANEL positions × DG features), never in memory, then
// transposed in registers so that the product and the sums run along positions.
// keeps: empty, or one (H, D) gate per layer: that layer's x is scaled by it (dC = Σ (keep·x)ᵀ g).
torch::Tensor code_sums(const torch::Tensor& omega_t, const std::vector<torch::Tensor>& xs,
                        const std::vector<torch::Tensor>& gs, const std::vector<torch::Tensor>& keeps,
                        const torch::Tensor& noise, int64_t H, int64_t start) {
  check(omega_t, "omega_t", 3);
  check(noise, "noise", 3);
  TORCH_CHECK(!xs.empty() && xs.size() == gs.size(), "spelab sine_cpu.code_sums: ", xs.size(), " x and ", gs.size(),
              " g tensors");
  const int64_t HD = omega_t.size(0), J = omega_t.size(1), N = omega_t.size(2), K = J / 2, D = HD / H;
  const int64_t R = gs[0].size(2);
  TORCH_CHECK(HD == H * D && J % 2 == 0 && noise.size(0) == HD && noise.size(1) == J && noise.size(2) == R,
              "spelab sine_cpu.code_sums: omega_t ", omega_t.sizes(), ", noise ", noise.sizes(), ", heads ", H);
  TORCH_CHECK(keeps.empty() || keeps.size() == xs.size(), "spelab sine_cpu.code_sums: ", keeps.size(), " keeps for ",
              xs.size(), " layers");
  Layers layers;
  for (size_t i = 0; i < xs.size(); ++i) {
    check_rows(xs[i], "x");
    check_rows(gs[i], "g");
    TORCH_CHECK(xs[i].size(0) == N * H && xs[i].size(2) == D && gs[i].size(0) == N * H &&
                    gs[i].size(1) == xs[i].size(1) && gs[i].size(2) == R,
                "spelab sine_cpu.code_sums: x ", xs[i].sizes(), ", g ", gs[i].sizes(), " for ", N, " positions, heads ",
                H);
    layers.x.push_back({xs[i].data_ptr<float>(), xs[i].stride(0), xs[i].stride(1)});
    layers.g.push_back({gs[i].data_ptr<float>(), gs[i].stride(0), gs[i].stride(1)});
    layers.batch.push_back(xs[i].size(1));
    if (keeps.empty()) {
      layers.keep.push_back(nullptr);
    } else {
      check(keeps[i], "keep", 2);
      TORCH_CHECK(keeps[i].size(0) == H && keeps[i].size(1) == D, "spelab sine_cpu.code_sums: keep ", keeps[i].sizes(),
                  " for ", H, " heads, ", D, " features");
      layers.keep.push_back(keeps[i].data_ptr<float>());
    }
  }
  check_width(R, "code_sums");
  auto out = torch::empty({HD, 2, 2, 2, K}, omega_t.options());
  const float* op = omega_t.data_ptr<float>();
  const float* zp = noise.data_ptr<float>();
  float* outp = out.data_ptr<float>();
  const int64_t per_head = (D + DG - 1) / DG;
  at::parallel_for(0, H * per_head, 1, [&](int64_t s, int64_t e) {  // one task per (head, DG features)
    std::vector<float> panel(static_cast<size_t>(DG) * PANEL * R);
    std::vector<float> pt(static_cast<size_t>(R) * PANEL);      // one feature's panel, transposed
    std::vector<float> prod(static_cast<size_t>(J) * PANEL);    // Pᵀ of the panel: (2K, positions)
    std::vector<float> om(static_cast<size_t>(J) * PANEL);      // Ωᵀ of a last, short panel, zero-padded
    std::vector<float> times(PANEL);
    std::vector<vec> sums(static_cast<size_t>(DG) * 8 * K);     // lane-wise sums of out, per feature
    for (int64_t task = s; task < e; ++task) {
      const int64_t h = task / per_head, d0 = (task % per_head) * DG;
      const int64_t nd = std::min<int64_t>(DG, D - d0);
      std::fill(sums.begin(), sums.end(), vec{});
      for (int64_t n0 = 0; n0 < N; n0 += PANEL) {
        const int64_t np = std::min<int64_t>(PANEL, N - n0);
        // dC panels of features d0 ... d0+nd-1, DG accumulators per vector of a row of g
        for (int64_t p = 0; p < np; ++p) {
          const int64_t t = (n0 + p) * H + h;
          if (n0 + p + AHEAD < N)  // the layers' rows are many strided streams: fetch them ahead
            for (size_t i = 0; i < layers.batch.size(); ++i)
              for (int64_t l = 0; l < layers.batch[i]; ++l) {
                const float* gn = layers.g[i].at(t + AHEAD * H, l);
                for (int64_t r0 = 0; r0 < R; r0 += V) __builtin_prefetch(gn + r0);
                __builtin_prefetch(layers.x[i].at(t + AHEAD * H, l) + d0);
              }
          by_width(nd, [&](auto width) {
            dc_rows<decltype(width)::value>(layers, t, h * D + d0, d0, R, panel.data() + p * R, PANEL * R);
          });
        }
        for (int64_t p = 0; p < PANEL; ++p) times[p] = static_cast<float>(start + n0 + p);
        for (int64_t dd = 0; dd < nd; ++dd) {
          const int64_t hd = h * D + d0 + dd;
          // transpose this feature's panel (positions × R) into pt (R × PANEL), zero past the last position
          const float* pn = panel.data() + dd * PANEL * R;
          for (int64_t p0 = 0; p0 < PANEL; p0 += V)
            for (int64_t r0 = 0; r0 < R; r0 += V) {
              vec m[V];
              for (int i = 0; i < V; ++i) m[i] = p0 + i < np ? load(pn + (p0 + i) * R + r0) : vec{};
              transpose16(m);
              for (int i = 0; i < V; ++i) store(pt.data() + (r0 + i) * PANEL + p0, m[i]);
            }
          const float* z = zp + hd * J * R;
          by_row_blocks(J, [&](auto nj, int64_t j) {
            noise_product<decltype(nj)::value>(z + j * R, R, pt.data(), prod.data() + j * PANEL);
          });
          // Ωᵀ of the panel: in place, or a zero-padded copy for a short last panel
          const float* ot = op + hd * J * N + n0;
          int64_t ostride = N;
          if (np < PANEL) {
            std::fill(om.begin(), om.end(), 0.f);
            for (int64_t j = 0; j < J; ++j) std::copy(ot + j * N, ot + j * N + np, om.begin() + j * PANEL);
            ot = om.data();
            ostride = PANEL;
          }
          vec* sd = sums.data() + dd * 8 * K;
          for (int64_t k = 0; k < K; ++k)
            for (int v = 0; v < PV; ++v) {
              const vec tv = load(times.data() + v * V);
              const vec oc = load(ot + k * ostride + v * V), os = load(ot + (K + k) * ostride + v * V);
              const vec pc = load(prod.data() + k * PANEL + v * V), ps = load(prod.data() + (K + k) * PANEL + v * V);
              const vec cc = oc * pc, cs = oc * ps, sc = os * pc, ss = os * ps;
              sd[0 * K + k] += cc, sd[1 * K + k] += cs, sd[2 * K + k] += sc, sd[3 * K + k] += ss;
              sd[4 * K + k] += tv * cc, sd[5 * K + k] += tv * cs, sd[6 * K + k] += tv * sc, sd[7 * K + k] += tv * ss;
            }
        }
      }
      for (int64_t dd = 0; dd < nd; ++dd) {
        float* o = outp + (h * D + d0 + dd) * 8 * K;
        for (int64_t i = 0; i < 8 * K; ++i) o[i] = sum_lanes(sums[dd * 8 * K + i]);
      }
    }
  });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("contract", &contract, "x (T, B, D), c (T, D, R), out (T, B, R): out[t] = x[t] c[t] (x, out row-strided)");
  m.def("contract_gated", &contract_gated,
        "x (T, B, D), c (T, D, R), keep (H, D), out (T, B, R): out[t] = (keep_h x[t]) c[t], t = n*H + h");
  m.def("contract_t", &contract_t,
        "g (T, B, R), c (T, D, R), out (T, B, D): out[t] = g[t] c[t]^T (g, out row-strided)");
  m.def("contract_t_gated", &contract_t_gated,
        "g, c, x, keep, out (T, B, D), d_keep (H, D): contract_gated's dx = keep_h (g c^T) and dkeep");
  m.def("build", &build, "omega_t (HD, 2K, N), w (2, HD, 2K, R), heads, out (2, N*H, D, R): the two codes");
  m.def("code_sums", &code_sums,
        "omega_t (HD, 2K, N), [x (T, B, D)], [g (T, B, R)], [keep (H, D)] or [], noise (HD, 2K, R), heads, start "
        "-> (HD, 2, 2, 2, K)");
}
