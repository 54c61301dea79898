"""Attribute-preserving identity replacement by latent-code optimisation (after FALCO, Barattin et al.,
CVPR 2023), adapted to weights that ship offline:

1. a seeded pool of generated faces with their latent codes, each with its landmarks (CenterFace on
   the generated face), attributes (models/face_attributes) and identity (dlib's ResNet);
2. each real face is paired with the nearest pool face in attribute space, leaving out pool faces
   within the identity margin of any real identity (and those other people already got);
3. the paired latent is optimised: gradient steps through the generator match the real face's skin
   colour while holding the paired face's layout (pose, expression); then a black-box evolution
   strategy on the latent (dlib is not differentiable: antithetic Gaussian steps, step size adapted,
   restarting from the next partner in the pairing order when a round of steps does not bring the
   identity below the margin) scores each candidate *as put back* with the full objective: identity
   cosine to the original above the margin, pose error (yaw/pitch/roll from the landmarks CenterFace
   finds on the result), skin colour difference (CIEDE2000), and whether CenterFace still finds a
   face there;
4. the face is put back (models/put_back.py): aligned and bent onto the original's 5 landmarks, its colour
   and sharpness matched, blended inside a landmark ellipse; every pixel outside it is left as it was.

Pure compute: models are handed in (generator, detector, embedder); no file or network I/O. Steps 1-2
are in models/surrogate_pool.py, step 4 in models/put_back.py, the settings (`ReplaceSettings`) in
models/replace_settings.py. `_surrogate` is over 60 lines: step 3 is one search whose state (pairing
order, step size, best so far) reads best in one loop. Over 300 lines: `Replacer` is most of it, steps
3 and 4 sharing its models and the surrogates each person already got."""

from __future__ import annotations

import time
from contextlib import contextmanager

import cv2
import numpy as np

from faceveil.models.detections import Detections, iou_matrix
from faceveil.models.face_attributes import (
    FaceAttributes,
    delta_e2000,
    eye_distance,
    face_attributes,
    head_pose,
    skin_lab,
    skin_mask,
)
from faceveil.models.put_back import put_back
from faceveil.models.replace_settings import ReplaceSettings  # noqa: F401  (re-exported)
from faceveil.models.surrogate_pool import (
    PoolFace,
    Surrogate,
    build_pool,
    generated_landmarks,
    ranking,
    to_uint8,
    track_seed,  # noqa: F401  (re-exported, like Surrogate)
)


SEARCH_FACE = 256  # px: larger faces are searched in a context scaled to this face size (judged at full size later)
START_EVALS = 3  # evaluations a person's surrogate gets on another face of them before that face gets its own
# (at least: half the settings' es_evals where that is more, e.g. the fallback chain's stronger search)


# ---------------------------------------------------------------- the method


@contextmanager
def one_torch_thread():
    """torch on one intra-op thread for the duration (restored after): the 64 px generator's batch-1
    ops are too small to split, and split over a busy 2-core machine's threads each waits on the other
    (a DCGAN generate measured 177 ms CPU on two threads, 19 ms on one). The count is process-wide:
    torch work in another thread meanwhile runs on one thread too (the anonymizer searches under its lock)."""
    import torch

    n = torch.get_num_threads()
    if n > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if n > 1:
            torch.set_num_threads(n)


def _lab_torch(rgb):
    """CIE Lab (D65) of (N, 3, H, W) sRGB in [0, 1], differentiable."""
    import torch

    lin = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb.clamp_min(0) + 0.055) / 1.055) ** 2.4)
    mat = torch.tensor(
        [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]],
        dtype=rgb.dtype,
        device=rgb.device,
    )
    xyz = torch.einsum("ij,njhw->nihw", mat, lin)
    xyz = xyz / torch.tensor([0.950456, 1.0, 1.088754], dtype=rgb.dtype, device=rgb.device).reshape(1, 3, 1, 1)
    e = (6 / 29) ** 3
    f = torch.where(xyz > e, xyz.clamp_min(e) ** (1 / 3), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], 1)


class Replacer:
    """Makes surrogates and puts them back. `generator` (models/generators), `detector` (CenterFace:
    landmarks of generated faces, and whether a result is still a face), `embedder` (dlib ResNet)."""

    def __init__(self, generator, detector, embedder, settings: ReplaceSettings = ReplaceSettings()):
        self.generator, self.detector, self.embedder, self.settings = generator, detector, embedder, settings
        self._pool: list[PoolFace] | None = None
        self.pool_seconds = 0.0

    # ---- the pool of generated faces, and pairing (models/surrogate_pool)

    def face_landmarks(self, image: np.ndarray) -> tuple[np.ndarray, float, np.ndarray] | None:
        """(landmarks, score, box) of the face CenterFace finds in a generated image, or None."""
        return generated_landmarks(self.detector, image)

    @property
    def pool(self) -> list[PoolFace]:
        """The seeded pool of generated faces CenterFace finds a face in (built on first use)."""
        if self._pool is None:
            t0 = time.perf_counter()
            with one_torch_thread():
                self._pool = build_pool(
                    self.generator, self.detector, self.embedder, self.settings.pool_size, self.settings.pool_seed
                )
            self.pool_seconds = time.perf_counter() - t0
        return self._pool

    def ranking(self, attributes: FaceAttributes, identities: np.ndarray, avoid=()) -> list[int]:
        """Pool indices, best partner first (surrogate_pool.ranking, at the settings' identity margin)."""
        return ranking(self.pool, attributes, identities, self.settings.id_margin, avoid)

    def pair(self, attributes: FaceAttributes, identities: np.ndarray, avoid=()) -> int:
        """The pool face to start from (`ranking`'s first)."""
        return self.ranking(attributes, identities, avoid)[0]

    # ---- optimisation

    def _refine(self, face: PoolFace, target_skin: np.ndarray):
        """Gradient steps through the generator: the skin colour (Lab mean over the paired face's
        cheeks and forehead) towards the real face's, while the face's layout (a 16x16 grey low-pass,
        which carries pose and expression) stays the paired face's."""
        import torch
        import torch.nn.functional as F

        g, s = self.generator, self.settings
        z = face.latent.clone().to(g.device).reshape(1, -1)
        if s.grad_steps <= 0 or np.isnan(target_skin).any():
            return z
        skin = torch.from_numpy(skin_mask(face.image.shape, face.landmarks)).to(g.device)
        if not skin.any():
            return z
        target = torch.as_tensor(target_skin, dtype=torch.float32, device=g.device)
        lowpass = lambda img: F.adaptive_avg_pool2d(img.mean(1, keepdim=True), 16)  # noqa: E731
        with torch.no_grad():
            layout = lowpass(g.generate(z))
        z = z.clone().requires_grad_(True)
        m, v = (
            torch.zeros_like(z),
            torch.zeros_like(z),
        )  # Adam by hand: torch.optim's first use imports torch._dynamo (seconds)
        with torch.enable_grad():
            for t in range(1, s.grad_steps + 1):
                img = g.generate(z)
                lab = _lab_torch(img)[0][:, skin].mean(1)
                loss = (((lab - target) / 5.0) ** 2).sum() + 400.0 * (lowpass(img) - layout).abs().mean()
                (grad,) = torch.autograd.grad(loss, z)
                with torch.no_grad():
                    m.mul_(0.9).add_(grad, alpha=0.1)
                    v.mul_(0.999).addcmul_(grad, grad, value=0.001)
                    z -= s.lr * (m / (1 - 0.9**t)) / ((v / (1 - 0.999**t)).sqrt() + 1e-8)
                    z.copy_(g.project(z))
        return z.detach()

    def _context(self, rgb: np.ndarray, lm: np.ndarray, box: np.ndarray, limit) -> tuple:
        """(crop, landmarks, box, limit in it): 0.7 face sizes around the box, scaled to a SEARCH_FACE px
        face where larger (the 64 px generator carries no more detail)."""
        h, w = rgb.shape[:2]
        x1, y1, x2, y2 = np.asarray(box, np.float64)
        size = max(x2 - x1, y2 - y1, 2.5 * eye_distance(lm))
        cx0, cy0 = int(max(0, x1 - 0.7 * size)), int(max(0, y1 - 0.7 * size))
        cx1, cy1 = int(min(w, x2 + 0.7 * size + 1)), int(min(h, y2 + 0.7 * size + 1))
        off, f, crop = (
            np.float32([cx0, cy0, cx0, cy0]),
            min(1.0, SEARCH_FACE / max(x2 - x1, y2 - y1)),
            rgb[cy0:cy1, cx0:cx1],
        )
        if f < 1:
            crop = cv2.resize(
                crop, (max(1, round(crop.shape[1] * f)), max(1, round(crop.shape[0] * f))), interpolation=cv2.INTER_AREA
            )
        return (
            crop,
            (lm - off[:2]) * f,
            (box - off) * f,
            None if limit is None else (np.asarray(limit, np.float32) - off) * f,
        )

    def score(
        self,
        context: np.ndarray,
        lm: np.ndarray,
        box: np.ndarray,
        image: np.ndarray,
        original_id: np.ndarray,
        original_pose: np.ndarray,
        original_skin: np.ndarray,
        limit=None,
        landmarks: np.ndarray | None = None,
    ) -> dict | None:
        """The full objective of one generated face put back into `context` (a crop around the real
        face, whose landmarks and box are `lm`, `box` in it): identity cosine to the original, pose
        error, skin colour difference, detector score; None when the generated face has no landmarks.
        `landmarks`: the generated face's, where already known (CenterFace is not run on it again)."""
        found = (landmarks,) if landmarks is not None else self.face_landmarks(image)
        if found is None:
            return None
        comp = context.copy()
        put_back(
            comp,
            lm,
            image,
            found[0],
            limit=limit,
            feather=self.settings.feather,
            warp_landmarks=self.settings.warp_landmarks,
        )
        dets = self.detector.detect(comp)
        j = int(np.argmax(iou_matrix(box[None], dets.boxes)[0])) if len(dets) else -1
        hit = j >= 0 and iou_matrix(box[None], dets.boxes[j : j + 1])[0, 0] >= 0.3
        det_score = float(dets.scores[j]) if hit else 0.0
        if hit and not np.isnan(dets.landmarks[j]).any():
            pose_err = float(np.abs(head_pose(dets.landmarks[j]) - original_pose).mean())
        else:
            pose_err = 90.0
        cos = float(self.embedder.embed(comp, Detections(box[None], [1.0]))[0] @ original_id)
        de = float(delta_e2000(skin_lab(comp, lm), original_skin))
        s = self.settings
        cost = (
            4.0 * max(0.0, cos - (s.id_margin - 0.05))
            + pose_err / 10.0
            + 2.0 * max(0.0, 0.5 - det_score)
            + (0.0 if np.isnan(de) else de / 20.0)
        )
        ok = (
            cos < s.id_margin - s.id_guard
            and det_score >= self.detector.threshold
            and pose_err <= s.max_pose_error
            and (np.isnan(de) or de <= s.max_delta_e)
        )
        return {
            "cost": cost,
            "ok": ok,
            "cosine": cos,
            "pose_error": pose_err,
            "delta_e": de,
            "det_score": det_score,
            "landmarks": found[0].astype(np.float32),
        }

    def surrogate(
        self,
        rgb: np.ndarray,
        landmarks: np.ndarray,
        box,
        seed: int,
        others: np.ndarray | None = None,
        avoid=(),
        original_id: np.ndarray | None = None,
        limit=None,
        start: Surrogate | None = None,
    ) -> Surrogate:
        """The surrogate for the face with `landmarks` and `box` in `rgb`: paired (leaving out pool faces
        within the margin of this identity and of `others`, and the pool faces in `avoid`), refined by
        gradient steps, then searched (seeded by `seed`) against the full objective as put back. With
        `start` (the surrogate this person already has, made from another photo of them) no pairing:
        `start` itself when it passes here as put back, else the search goes on from its latent, and
        where that does not pass either, this face gets a surrogate of its own. torch on one thread
        (`one_torch_thread`)."""
        with one_torch_thread():
            return self._surrogate(rgb, landmarks, box, seed, others, avoid, original_id, limit, start)

    def _surrogate(self, rgb, landmarks, box, seed, others, avoid, original_id, limit, start) -> Surrogate:
        import torch

        t0, c0 = time.perf_counter(), time.process_time()
        s, g = self.settings, self.generator
        lm = np.asarray(landmarks, np.float32).reshape(5, 2)
        box = np.asarray(box, np.float32).reshape(4)
        attrs = face_attributes(rgb, lm)
        if original_id is None:
            original_id = self.embedder.embed(rgb, Detections(box[None], [1.0]))[0]
        if start is not None:
            order = [start.pool_index]
            out = Surrogate(
                start.latent.clone(),
                start.image,
                start.landmarks,
                start.pool_index,
                start.seed,
                cosine_start=float("nan"),
            )  # the person's surrogate: its seed names it
        else:
            out, order = self._paired(attrs, original_id, others, avoid, seed)
        if attrs.size < s.min_search_size or s.es_evals <= 0:
            out.seconds, out.cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
            return out
        context, clm, cbox, climit = self._context(rgb, lm, box, limit)
        args = (context, clm, cbox)
        kw = dict(original_id=original_id, original_pose=attrs.pose, original_skin=skin_lab(context, clm), limit=climit)
        best = self.score(*args, out.image, landmarks=out.landmarks, **kw) or {
            "cost": np.inf,
            "ok": False,
            "cosine": 1.0,
        }
        out.evals = 1
        out.history.append(best)
        best_z = out.latent.to(g.device).reshape(1, -1)
        rng = np.random.default_rng(seed)
        sigma, restarts, failed = s.es_sigma, iter(order[1:]), 0
        evals = s.es_evals if start is None else min(s.es_evals, max(START_EVALS, s.es_evals // 2))
        while out.evals < evals and (s.time_budget_s is None or time.perf_counter() - t0 < s.time_budget_s):
            if best["ok"] and out.evals >= s.es_min_evals:
                break
            nxt = next(restarts, None) if best["cosine"] >= s.id_margin and failed >= 1 else None
            if nxt is not None:  # the identity will not come down here: start again from the next partner
                cands = [(nxt, self.pool[nxt].latent.to(g.device).reshape(1, -1))]
            else:  # an antithetic pair of steps around the best latent
                eps = torch.from_numpy(rng.standard_normal(best_z.shape[1]).astype(np.float32)).to(g.device)
                step = sigma * eps * (g.latent_dim**-0.5) * best_z.norm()
                cands = [(None, g.project(best_z + step)), (None, g.project(best_z - step))]
            improved = False
            for pool_idx, cand in cands:
                if out.evals >= evals:
                    break
                with torch.no_grad():
                    img = to_uint8(g.generate(cand))[0]
                r = self.score(*args, img, **kw)
                out.evals += 1
                if r is None:
                    continue
                out.history.append(r)
                if r["cost"] < best["cost"] or (r["ok"] and not best["ok"]):
                    best, best_z, improved = r, cand, True
                    out.image, out.latent, out.landmarks = img, cand.detach().cpu().reshape(-1), r["landmarks"]
                    if pool_idx is not None:
                        out.pool_index = pool_idx
                    break
            failed = 0 if improved else failed + 1
            sigma = sigma * (1.5 if improved else 0.7)
        if start is not None and not best["ok"]:  # this person's surrogate will not do for this face: its own
            return self.surrogate(rgb, lm, box, seed, others, avoid, original_id, limit)
        if np.isfinite(best["cost"]):
            out.cosine, out.pose_error, out.delta_e, out.det_score = (
                best["cosine"],
                best["pose_error"],
                best["delta_e"],
                best["det_score"],
            )
        out.seconds, out.cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
        return out

    def _paired(
        self, attrs: FaceAttributes, original_id: np.ndarray, others, avoid, seed: int
    ) -> tuple[Surrogate, list]:
        """The paired pool face, refined by the colour steps; and the pairing order (for restarts)."""
        import torch

        reals = original_id[None] if others is None or not len(others) else np.vstack([original_id[None], others])
        order = self.ranking(attrs, reals, avoid)
        idx = order[0]
        face = self.pool[idx]
        z = self._refine(face, attrs.skin)
        with torch.no_grad():
            image = to_uint8(self.generator.generate(z))[0]
        out = Surrogate(
            z.cpu().reshape(-1), image, face.landmarks, idx, seed, cosine_start=float(face.identity @ original_id)
        )
        found = self.face_landmarks(image)
        if found is None:  # the colour steps lost the face: the paired face as generated
            out.latent, out.image = face.latent.clone(), face.image
        else:
            out.landmarks = found[0].astype(np.float32)
        return out, order

    def render(self, rgb: np.ndarray, landmarks: np.ndarray, surrogate: Surrogate, limit=None) -> np.ndarray:
        """Puts the surrogate over the face with `landmarks` in `rgb` (in place; a "generated" one, of the
        fallback chain, without the landmark warp: its own face's geometry); the changed-pixel mask."""
        return put_back(
            rgb,
            landmarks,
            surrogate.image,
            surrogate.landmarks,
            limit=limit,
            feather=self.settings.feather,
            warp_landmarks=self.settings.warp_landmarks and surrogate.method != "generated",
        )
