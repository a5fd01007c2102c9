"""MinPlus (Mery & Morris, seed 003) and AVG (Mery et al., its predecessor, seed 003 [16]).

Our own implementation. Black-box: only a score f(X) of the explained class is needed,
so the model may be any callable on pixel-space images. Four grid maps (METHODS.md §5):

- H0⁻(i,j) = f(X) − f(X ⊙ (1 − G_ij)): remove one Gaussian window;
- H1⁻: greedy removal, the score drop of each step recorded at the removed centre;
- H0⁺(i,j) = f(Z ⊙ (1 − G_ij) + X ⊙ G_ij) − f(Z): reveal one window on black Z;
- H1⁺: greedy reveal, X_t = X_{t−1} ⊙ (1 − G) + X ⊙ G, the gain of each step recorded.

Every grid position of every image of a round is scored in batched forwards of at most
``images_per_forward`` images; there is no loop over positions. The first greedy step
starts from X (removal) or Z (reveal), so its scores are the H0 scores and are reused:
a greedy direction costs t_max − 1 extra rounds at most.
"""

from __future__ import annotations

import torch

from explainers.base import Explainer, ModelLike, class_scores, images_per_forward
from explainers.inference import inference_forward

SCORES = ("softmax", "logit")
MAPS = ("h0_minus", "h1_minus", "h0_plus", "h1_plus")


def gaussian_windows(
    h: int, w: int, step: float, sigma: float, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Peak-1 Gaussian windows G_ij on a regular grid: ((P, H, W), centres (P, 2)).

    ``step`` (d) and ``sigma`` are in pixels. The grid has max(1, round(H/d)) rows and
    max(1, round(W/d)) columns; centres sit on the pixel at the middle of each grid cell
    (row k at ⌊(k + ½)·H/n⌋), so the grid is symmetric about the image and every window
    peaks at exactly 1 on its centre pixel.
    """
    axes = []
    for size in (h, w):
        n = max(1, round(size / step))
        c = ((torch.arange(n, dtype=torch.float64) + 0.5) * size / n).floor()
        axes.append(c.to(device=device, dtype=torch.float32))
    cy, cx = axes
    rows = torch.arange(h, device=device, dtype=torch.float32)
    cols = torch.arange(w, device=device, dtype=torch.float32)
    gy = torch.exp(-((rows[None] - cy[:, None]) ** 2) / (2 * sigma**2))  # (n_h, H)
    gx = torch.exp(-((cols[None] - cx[:, None]) ** 2) / (2 * sigma**2))  # (n_w, W)
    win = (gy[:, None, :, None] * gx[None, :, None, :]).reshape(-1, h, w)
    centres = torch.stack(torch.meshgrid(cy, cx, indexing="ij"), -1).reshape(-1, 2).long()
    return win, centres


def minmax(a: torch.Tensor) -> torch.Tensor:
    """Scale each map of (..., H, W) to [0, 1]; a constant map becomes 0."""
    flat = a.flatten(-2)
    lo = flat.min(-1, keepdim=True).values
    rng = flat.max(-1, keepdim=True).values - lo
    out = torch.where(rng > 1e-12, (flat - lo) / rng.clamp_min(1e-12), torch.zeros_like(flat))
    return out.view_as(a)


class MinPlus(Explainer):
    """MinPlus: average the four grid maps, fill with the Gaussian, min-max to [0, 1].

    D = Σ_ij H̄(i,j) · G_ij with H̄ = (H0⁻ + H1⁻ + H0⁺ + H1⁺)/4 (the paper's eq. 11–13:
    convolving the sparse grid map with the Gaussian), then (D − min)/(max − min).

    Args:
        model: any module or callable mapping pixel-space images (N, 3, H, W) to logits.
        step: grid step d as a fraction of the image width W (d = max(1, step·W) px;
            default 1/16, i.e. a 16×16 grid).
        sigma: Gaussian width σ as a fraction of W (default 0.075).
        t_max: maximal number of greedy steps of H1⁻ and H1⁺ (0: no greedy maps).
        theta: θ; a greedy run continues while its last recorded change exceeds θ
            (the step whose change is ≤ θ is still recorded, as in Algorithms 2 and 4).
        score: ``"softmax"`` (probability of the class, default) or ``"logit"``.
        max_images_per_forward: cap of perturbed images per forward; by default sized
            from the model's activation bytes, at most 256 on CPU and 4096 on a GPU
            (``explainers.base.images_per_forward``).

    Statistics of the last :meth:`attribute` call (one batch of ``batch_size`` images):
    ``last_forwards`` (model calls), ``last_images`` (images forwarded),
    ``last_steps`` ((B, 2) greedy steps done, removal then reveal) and ``last_rounds``
    (list of (phase, images in the round, forwards)). ``forwards`` and ``images``
    accumulate over the explainer's life.
    """

    name = "minplus"
    needs_grad = False
    black_box = True

    def __init__(
        self,
        model: ModelLike,
        *,
        step: float = 1 / 16,
        sigma: float = 0.075,
        t_max: int = 20,
        theta: float = 0.01,
        score: str = "softmax",
        max_images_per_forward: int | None = None,
        **kw,
    ):
        super().__init__(model, **kw)
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}")
        if step <= 0 or sigma <= 0 or t_max < 0:
            raise ValueError("step and sigma must be > 0 and t_max >= 0")
        self.step, self.sigma, self.t_max, self.theta = float(step), float(sigma), int(t_max), theta
        self.score = score
        self.max_images_per_forward = max_images_per_forward
        self._windows: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self.forwards = self.images = 0
        self.last_forwards = self.last_images = 0
        self.last_steps = torch.zeros(0, 2, dtype=torch.long)
        self.last_rounds: list[tuple[str, int, int]] = []

    # -- geometry ------------------------------------------------------------------------
    def windows(self, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(P, H, W) windows and (P, 2) centres for h×w images, on the device, cached."""
        if (h, w) not in self._windows:
            d = max(1.0, self.step * w)
            self._windows[(h, w)] = gaussian_windows(h, w, d, self.sigma * w, self.device)
        return self._windows[(h, w)]

    def grid_shape(self, h: int, w: int) -> tuple[int, int]:
        d = max(1.0, self.step * w)
        return max(1, round(h / d)), max(1, round(w / d))

    # -- scoring -------------------------------------------------------------------------
    def cap(self, image_shape: tuple[int, ...] | torch.Size) -> int:
        """Perturbed images per forward for (C, H, W) images, sized from the model."""
        return images_per_forward(self.device, self.max_images_per_forward, self.model,
                                  image_shape)  # fmt: skip

    def _forward(self, imgs: torch.Tensor) -> torch.Tensor:
        """(N, K) scores of one forward: softmax probabilities or logits."""
        out = inference_forward(self.model)(imgs).float()
        self.last_forwards += 1
        self.last_images += len(imgs)
        return class_scores(self.model, out) if self.score == "softmax" else out

    def grid_scores(
        self,
        cur: torch.Tensor,
        src: torch.Tensor | None,
        y: torch.Tensor,
        win: torch.Tensor,
        phase: str = "grid",
    ) -> torch.Tensor:
        """f(cur_b ⊙ (1 − G_p) + src_b ⊙ G_p) for every image b and window p: (B, P).

        ``src=None`` is black (removal). The B·P perturbed images are built and scored
        chunk by chunk, ``cap`` images per forward; the round is logged under ``phase``.
        """
        b, p = len(cur), len(win)
        before = self.last_forwards
        out = cur.new_empty(b * p)
        cap = self.cap(cur.shape[1:])
        for s in range(0, b * p, cap):
            idx = torch.arange(s, min(s + cap, b * p), device=cur.device)
            bi, pi = idx // p, idx % p
            g = win[pi].unsqueeze(1)
            imgs = cur[bi] * (1 - g)
            if src is not None:
                imgs += src[bi] * g
            out[s : s + len(idx)] = self._forward(imgs).gather(1, y[bi, None])[:, 0]
        self.last_rounds.append((phase, b, self.last_forwards - before))
        return out.view(b, p)

    def _greedy(self, first, s0, start, src, y, win, sign: int, phase: str):
        """Greedy removal (sign −1, records drops) or reveal (sign +1, records gains).

        ``first`` (B, P) holds the scores of step 1 (the H0 pass, from ``start``); later
        steps score all positions of the images still active in one round of forwards.
        """
        b, p = first.shape
        h1 = first.new_zeros(b, p)
        steps = torch.zeros(b, dtype=torch.long, device=first.device)
        prev, cur = s0.clone(), start.clone()
        active = torch.arange(b, device=first.device)
        for t in range(self.t_max):
            if len(active) == 0:
                break
            if t == 0:
                scores = first
            else:
                sa = None if src is None else src[active]
                scores = self.grid_scores(cur[active], sa, y[active], win, phase)
            best = (sign * scores).argmax(1)
            new = scores.gather(1, best[:, None])[:, 0]
            delta = sign * (new - prev[active])
            h1[active, best] += delta  # a centre picked twice accumulates its changes
            steps[active] += 1
            g = win[best].unsqueeze(1)
            upd = cur[active] * (1 - g)
            if src is not None:
                upd += src[active] * g
            cur[active] = upd
            prev[active] = new
            active = active[delta > self.theta]
        return h1, steps

    # -- the four maps -------------------------------------------------------------------
    def grid_maps(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """H0⁻, H1⁻, H0⁺, H1⁺ at the grid points, each (B, n_h, n_w)."""
        b, c, h, w = x.shape
        win, _ = self.windows(h, w)
        self.last_forwards = self.last_images = 0
        self.last_rounds = []
        black = x.new_zeros(1, c, h, w)
        # f(X) for every image and f(Z) of one black image (its scores for every class).
        base = torch.cat([x, black])
        cap = self.cap((c, h, w))
        s = torch.cat([self._forward(base[i : i + cap]) for i in range(0, b + 1, cap)])
        self.last_rounds.append(("base", b + 1, self.last_forwards))
        s_x = s[:b].gather(1, y[:, None])[:, 0]
        s_z = s[b][y]
        zs = black.expand_as(x)
        rem = self.grid_scores(x, None, y, win, "h0-")
        rev = self.grid_scores(zs, x, y, win, "h0+")  # Z ⊙ (1 − G) + X ⊙ G
        h1m, st_m = self._greedy(rem, s_x, x, None, y, win, -1, "h1-")
        h1p, st_p = self._greedy(rev, s_z, zs, x, y, win, +1, "h1+")
        self.last_steps = torch.stack([st_m, st_p], 1).cpu()
        self.forwards += self.last_forwards
        self.images += self.last_images
        maps = (s_x[:, None] - rem, h1m, rev - s_z[:, None], h1p)
        nh, nw = self.grid_shape(h, w)
        return {k: m.view(b, nh, nw) for k, m in zip(MAPS, maps, strict=True)}

    def combine(self, maps: torch.Tensor, win: torch.Tensor) -> torch.Tensor:
        """(4, B, P) grid maps → (B, H, W): average, fill with the Gaussian, min-max."""
        return minmax(torch.einsum("bp,phw->bhw", maps.mean(0), win))

    def attribute(self, x_batch: torch.Tensor, y_batch: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x_batch.shape
        maps = self.grid_maps(x_batch, y_batch)
        win, _ = self.windows(h, w)
        return self.combine(torch.stack([maps[k].reshape(b, -1) for k in MAPS]), win)


class AVG(MinPlus):
    """AVG (the earlier method MinPlus improves on): each of the four grid maps is filled
    with the Gaussian and min-max scaled on its own, then the four are averaged.

    The average is not re-scaled (the paper lists no final step), so it lies in [0, 1]
    but need not reach both ends. A constant map (e.g. an empty H1) scales to 0.
    """

    name = "avg"

    def combine(self, maps: torch.Tensor, win: torch.Tensor) -> torch.Tensor:
        return minmax(torch.einsum("kbp,phw->kbhw", maps, win)).mean(0)


__all__ = ["AVG", "MinPlus", "gaussian_windows", "minmax"]
