"""A numpy port of the Pathfinder generator (Linsley et al. 2018; LRA's Pathfinder and Path-X).

An image shows dashed curves ("snakes" of short "paddles" separated by gaps) and two circular markers;
the label is 1 when both markers sit on the ends of the same snake. Per image (docs/data.md, "Pathfinder"):
two target snakes of `contour_length` paddles start `seed_distance` apart and grow alternately; each
new paddle turns by an angle drawn with weight cos(min(|turn| * continuity, pi/2))^2; then
`num_distractor_snakes` snakes of `distractor_length` paddles fill the image; finally the markers go
on one snake's two ends (label 1) or on the ends of different snakes (label 0). Drawing is
supersampled `antialias` times and area-downsampled, and the image is min-max scaled to 0..255 like
the original's `scipy.misc.imsave`.

Deliberate differences from the original, so that the label is a property of the picture:
- paddles of different snakes (markers included) keep more than `link_radius` pixels apart (Chebyshev),
  while consecutive paddles of one snake are within `link_radius` (their gap is `margin`); so "the
  markers are on one path" is exactly "a flood fill that bridges gaps of up to link_radius - 1 pixels
  joins them" — the tests check this on the pixels alone;
- no single-paddle distractors (whether LRA used them is unknown), and paddle positions are sampled on
  a circle of candidate directions rather than on the original's pixel circle.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class PathfinderParams:
    """Generator parameters in output pixels; defaults are LRA's Pathfinder32 'hard' (TFDS docstring)."""

    window: int = 32
    padding: int = 1
    antialias: int = 2
    paddle_length: float = 2.0
    paddle_thickness: float = 0.5
    paddle_margins: tuple[int, ...] = (1,)
    marker_radius: float = 1.5
    contour_length: int = 14
    distractor_length: int = 4
    num_distractor_snakes: int = 5
    seed_distance: float = 7.0
    continuity: float = 1.0
    snake_contrast: float = 2.0
    paddle_contrast: float = 0.75
    max_target_retrial: int = 500

    @property
    def link_radius(self) -> int:
        """Chebyshev distance within which consecutive paddles lie and beyond which other snakes stay."""
        return int(math.ceil(max(self.paddle_margins))) + 1


def lra_params(resolution: int = 32, contour_length: int = 14) -> PathfinderParams:
    """LRA's settings: Pathfinder32 or Path-X (128); contour_length 6 / 9 / 14 = easy / intermediate / hard."""
    dl = max(1, contour_length // 3)
    if resolution == 32:
        return PathfinderParams(contour_length=contour_length, distractor_length=dl, num_distractor_snakes=20 // dl)
    if resolution == 128:
        return PathfinderParams(
            window=128,
            padding=1,
            antialias=2,
            paddle_length=5.0,
            paddle_thickness=1.5,
            paddle_margins=(2, 3),
            marker_radius=3.0,
            contour_length=contour_length,
            distractor_length=dl,
            num_distractor_snakes=35 // dl,
            seed_distance=20.0,
            continuity=1.8,
            snake_contrast=0.9,
            paddle_contrast=1.0,
        )
    raise ValueError(f"resolution must be 32 (Pathfinder) or 128 (Path-X), got {resolution}")


N_DIRECTIONS = 72  # paddle directions are multiples of 5 degrees (templates are precomputed per direction)


def ss_disk_or_segment(a: np.ndarray, b: np.ndarray, half_width: float, aa: int) -> np.ndarray:
    """Supersampled pixel indices (n, 2) whose centre lies within half_width of segment a-b (a point if a == b).

    Coordinates are in output pixels; supersampled pixel i covers [i/aa, (i+1)/aa). Indices may be
    negative or past the edge: callers offset and clip them.
    """
    lo = np.floor((np.minimum(a, b) - half_width) * aa - 1).astype(int)
    hi = np.ceil((np.maximum(a, b) + half_width) * aa + 1).astype(int)
    ys, xs = np.mgrid[lo[0] : hi[0], lo[1] : hi[1]]
    py, px = (ys + 0.5) / aa, (xs + 0.5) / aa
    d = b - a
    denom = float(d @ d)
    t = np.zeros_like(py) if denom == 0 else np.clip(((py - a[0]) * d[0] + (px - a[1]) * d[1]) / denom, 0, 1)
    inside = (py - (a[0] + t * d[0])) ** 2 + (px - (a[1] + t * d[1])) ** 2 <= half_width**2
    return np.stack([ys[inside], xs[inside]], axis=1)


class _Templates:
    """Pixels of a paddle for each direction and sub-pixel phase of its tail, relative to its tail's pixel.

    A tail at output pixel O with phase (py, px) sits at O + ((py, px) + 0.5) / aa; the paddle covers
    supersampled pixels O*aa + ss[j][py][px] and output pixels O + out[j, py, px] (padded, with a mask).
    """

    def __init__(self, length: float, half_width: float, aa: int) -> None:
        self.aa = aa
        angles = 2 * np.pi * np.arange(N_DIRECTIONS) / N_DIRECTIONS
        self.unit = np.stack([np.sin(angles), np.cos(angles)], axis=1)
        self.ss: list[list[list[np.ndarray]]] = []
        outs = []
        for j in range(N_DIRECTIONS):
            row = []
            for py in range(aa):
                col = []
                for px in range(aa):
                    a = (np.array([py, px]) + 0.5) / aa
                    ss = ss_disk_or_segment(a, a + length * self.unit[j], half_width, aa)
                    col.append(ss)
                    outs.append(np.unique(np.floor_divide(ss, aa), axis=0))
                row.append(col)
            self.ss.append(row)
        m = max(len(o) for o in outs)
        self.out = np.zeros((N_DIRECTIONS, aa, aa, m, 2), dtype=np.int64)
        self.mask = np.zeros((N_DIRECTIONS, aa, aa, m), dtype=bool)
        for k, o in enumerate(outs):
            j, rest = divmod(k, aa * aa)
            py, px = divmod(rest, aa)
            self.out[j, py, px, : len(o)] = o
            self.mask[j, py, px, : len(o)] = True


@dataclass
class Snake:
    """A snake's paddles: (tail, head) points (y, x), output pixels, supersampled pixels; its direction."""

    paddles: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    pixels: list[np.ndarray] = field(default_factory=list)
    ss: list[np.ndarray] = field(default_factory=list)
    direction: int = 0


class _Canvas:
    """Occupancy of one image: per-snake pixels and their link_radius (Chebyshev) dilations."""

    def __init__(self, p: PathfinderParams) -> None:
        self.w, self.k, self.pad = p.window, p.link_radius, p.padding
        self.dil = np.zeros((self.w, self.w), dtype=np.int32)  # number of snakes whose dilation covers a pixel
        self.own_dil: list[np.ndarray] = []  # per snake: its dilation
        self.old: list[np.ndarray] = []  # per snake: pixels of all its paddles but the last
        self.last_dil: list[np.ndarray] = []  # per snake: dilation of its last paddle

    def new_snake(self) -> int:
        for store in (self.own_dil, self.old, self.last_dil):
            store.append(np.zeros((self.w, self.w), dtype=bool))
        return len(self.own_dil) - 1

    def dilate(self, pix: np.ndarray) -> np.ndarray:
        grown = np.zeros((self.w, self.w), dtype=bool)
        for y, x in pix:
            grown[max(0, y - self.k) : y + self.k + 1, max(0, x - self.k) : x + self.k + 1] = True
        return grown

    def valid(self, snake: int, pix: np.ndarray, mask: np.ndarray, linked: bool) -> np.ndarray:
        """For candidates (C, M, 2) with masks (C, M): inside the padding, clear of other snakes and of
        this snake's older paddles, and (when `linked`) within link_radius of its last paddle."""
        inside = ((pix >= self.pad) & (pix < self.w - self.pad)).all(-1) | ~mask
        pc = pix.clip(0, self.w - 1)
        ys, xs = pc[..., 0], pc[..., 1]
        near_other = (self.dil[ys, xs] - self.own_dil[snake][ys, xs]) > 0
        ok = inside.all(1) & ~(near_other & mask).any(1) & ~(self.old[snake][ys, xs] & mask).any(1)
        if linked:
            ok &= (self.last_dil[snake][ys, xs] & mask).any(1)
        return ok

    def add(self, snake: int, pix: np.ndarray, last: np.ndarray | None, is_paddle: bool = True) -> None:
        if last is not None and is_paddle:
            self.old[snake][last[:, 0], last[:, 1]] = True
        grown = self.dilate(pix)
        if is_paddle:
            self.last_dil[snake] = grown
        new = grown & ~self.own_dil[snake]
        self.own_dil[snake] |= new
        self.dil += new


class PathfinderGenerator:
    """`generate(rng)` -> (uint8 image (w, w), label, marker centres (2, 2) as (y, x))."""

    def __init__(self, params: PathfinderParams | None = None) -> None:
        self.p = params or PathfinderParams()
        self.hw = max(self.p.paddle_thickness / 2, 0.5 / self.p.antialias)  # never thinner than one ss pixel
        self.t = _Templates(self.p.paddle_length, self.hw, self.p.antialias)
        turns = np.angle(np.exp(2j * np.pi * np.arange(N_DIRECTIONS) / N_DIRECTIONS))  # wrapped to (-pi, pi]
        self.turn_weight = np.maximum(np.cos(np.minimum(np.abs(turns) * self.p.continuity, np.pi / 2)), 0) ** 2

    def _candidates(self, tails: np.ndarray, dirs: np.ndarray):
        aa = self.p.antialias
        base = np.floor(tails).astype(np.int64)
        phase = np.floor((tails - base) * aa).astype(np.int64).clip(0, aa - 1)
        pix = base[:, None, :] + self.t.out[dirs, phase[:, 0], phase[:, 1]]
        return base, phase, pix, self.t.mask[dirs, phase[:, 0], phase[:, 1]]

    def _place(
        self,
        cv: _Canvas,
        sn: Snake,
        idx: int,
        tails: np.ndarray,
        dirs: np.ndarray,
        weights: np.ndarray,
        rng: np.random.Generator,
    ) -> bool:
        """Add one paddle to `sn`, chosen among the valid candidates with probability ~ weights."""
        base, phase, pix, mask = self._candidates(tails, dirs)
        ok = cv.valid(idx, pix, mask, linked=bool(sn.paddles)) & (weights > 0)
        if not ok.any():
            return False
        w = np.where(ok, weights, 0.0)
        c = int(rng.choice(len(w), p=w / w.sum()))
        aa = self.p.antialias
        tail = base[c] + (phase[c] + 0.5) / aa
        head = tail + self.p.paddle_length * self.t.unit[dirs[c]]
        out = pix[c][mask[c]]
        cv.add(idx, out, sn.pixels[-1] if sn.pixels else None)
        sn.paddles.append((tail, head))
        sn.pixels.append(out)
        sn.ss.append(base[c] * aa + self.t.ss[dirs[c]][phase[c, 0]][phase[c, 1]])
        sn.direction = int(dirs[c])
        return True

    def _seed(self, cv: _Canvas, sn: Snake, idx: int, tail: np.ndarray, rng: np.random.Generator) -> bool:
        dirs = rng.permutation(N_DIRECTIONS)[:8]
        return self._place(cv, sn, idx, np.repeat(tail[None], len(dirs), 0), dirs, np.ones(len(dirs)), rng)

    def _extend(self, cv: _Canvas, sn: Snake, idx: int, margin: float, rng: np.random.Generator) -> bool:
        dirs = np.arange(N_DIRECTIONS)
        weights = self.turn_weight[(dirs - sn.direction) % N_DIRECTIONS]
        tails = sn.paddles[-1][1][None, :] + margin * self.t.unit
        return self._place(cv, sn, idx, tails, dirs, weights, rng)

    def _marker_pixels(self, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ss = ss_disk_or_segment(centre, centre, self.p.marker_radius, self.p.antialias)
        ss = ss[((ss >= 0) & (ss < self.p.window * self.p.antialias)).all(1)]
        return ss, np.unique(np.floor_divide(ss, self.p.antialias), axis=0)

    def _targets(self, rng: np.random.Generator, margin: float) -> tuple[_Canvas, list[Snake]] | None:
        p = self.p
        cv = _Canvas(p)
        snakes, ids = [Snake(), Snake()], [cv.new_snake(), cv.new_snake()]
        box = min(p.seed_distance, p.window / 4)
        tail1 = rng.uniform(p.padding + box, p.window - p.padding - box, size=2)
        phi = rng.uniform(-math.pi, math.pi)
        tail2 = tail1 + p.seed_distance * np.array([math.sin(phi), math.cos(phi)])
        for sn, idx, tail in zip(snakes, ids, (tail1, tail2)):
            if not self._seed(cv, sn, idx, tail, rng):
                return None
        for _ in range(p.contour_length - 1):
            for sn, idx in zip(snakes, ids):
                if not self._extend(cv, sn, idx, margin, rng):
                    return None
        # reserve both ends of both targets for markers, so that distractors keep off them
        for sn, idx in zip(snakes, ids):
            for end in (sn.paddles[0][0], sn.paddles[-1][1]):
                _, pix = self._marker_pixels(end)
                if ((cv.dil[pix[:, 0], pix[:, 1]] - cv.own_dil[idx][pix[:, 0], pix[:, 1]]) > 0).any():
                    return None
                cv.add(idx, pix, None, is_paddle=False)
        return cv, snakes

    def generate(self, rng: np.random.Generator) -> tuple[np.ndarray, int, np.ndarray]:
        p = self.p
        label = int(rng.integers(2))
        margin = float(rng.choice(p.paddle_margins))
        for _ in range(p.max_target_retrial):
            got = self._targets(rng, margin)
            if got is not None:
                break
        else:
            raise RuntimeError(f"could not place two target snakes in {p.max_target_retrial} tries; parameters {p}")
        cv, targets = got
        distractors = []
        for _ in range(p.num_distractor_snakes):
            idx = cv.new_snake()
            for _attempt in range(10):
                sn = Snake()
                tail = rng.uniform(p.padding, p.window - p.padding, size=2)
                if self._seed(cv, sn, idx, tail, rng):
                    for _ in range(p.distractor_length - 1):
                        if not self._extend(cv, sn, idx, margin, rng):
                            break
                    distractors.append(sn)
                    break
        o = int(rng.integers(2))
        first = targets[o].paddles[0][0]
        second = targets[o].paddles[-1][1] if label == 1 else targets[1 - o].paddles[-1][1]
        markers = np.stack([first, second])
        return self.render(targets + distractors, markers), label, markers

    def render(self, snakes: list[Snake], markers: np.ndarray) -> np.ndarray:
        p, aa = self.p, self.p.antialias
        s = p.window * aa
        canvas = np.zeros((s, s), dtype=np.float32)
        level = p.paddle_contrast * p.snake_contrast
        for sn in snakes:
            for ss in sn.ss:
                ss = ss[((ss >= 0) & (ss < s)).all(1)]
                canvas[ss[:, 0], ss[:, 1]] = np.maximum(canvas[ss[:, 0], ss[:, 1]], level)
        for c in markers:
            ss, _ = self._marker_pixels(c)
            canvas[ss[:, 0], ss[:, 1]] = np.maximum(canvas[ss[:, 0], ss[:, 1]], 1.0)
        img = canvas.reshape(p.window, aa, p.window, aa).mean(axis=(1, 3))  # area downsampling
        return np.round(img / img.max() * 255).astype(np.uint8)


# -------------------------------------------------------------------- writing the official layout
def write_pathfinder_dataset(
    root: str | os.PathLike,
    num_images: int,
    params: PathfinderParams | None = None,
    seed: int = 0,
    images_per_batch: int = 1000,
) -> Path:
    """Write `pathfinder<W>/curv_contour_length_<L>/{imgs/<b>/sample_<i>.png, metadata/<b>.npy}` under root.

    Image i uses the RNG seeded with (seed, i), so a set is reproducible and extends consistently.
    Metadata lines follow the original: `imgs/<b> sample_<i>.png <i> <label> <continuity> <contour_length>
    <distractor_length> <paddle_length> <paddle_thickness> <margin> <n_contrasts>`. Returns the difficulty dir.
    """
    p = params or PathfinderParams()
    gen = PathfinderGenerator(p)
    split_dir = Path(root) / f"pathfinder{p.window}" / f"curv_contour_length_{p.contour_length}"
    (split_dir / "metadata").mkdir(parents=True, exist_ok=True)
    lines: dict[int, list[str]] = {}
    for i in range(num_images):
        batch = i // images_per_batch
        img_dir = split_dir / "imgs" / str(batch)
        img_dir.mkdir(parents=True, exist_ok=True)
        img, label, _ = gen.generate(np.random.default_rng([seed, i]))
        Image.fromarray(img, mode="L").save(img_dir / f"sample_{i}.png")
        lines.setdefault(batch, []).append(
            f"imgs/{batch} sample_{i}.png {i} {label} {p.continuity} {p.contour_length} {p.distractor_length} "
            f"{p.paddle_length} {p.paddle_thickness} {max(p.paddle_margins)} 1"
        )
    for batch, rows in lines.items():
        (split_dir / "metadata" / f"{batch}.npy").write_text("\n".join(rows) + "\n")
    return split_dir


def params_dict(p: PathfinderParams) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(p).items()}
