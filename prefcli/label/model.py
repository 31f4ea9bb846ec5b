"""The person's pairwise model over the pool: Bradley-Terry on embeddings, with a Laplace posterior.

P(a preferred to b) = sigmoid(w . (z_a - z_b)), where z are the pool's
embeddings reduced by PCA and whitened (so the prior w ~ N(0, s2 I) treats
every direction alike) and the posterior over w is the Laplace approximation
(Newton's method on the log posterior). A tie is a soft label of 1/2; a skip
says nothing about taste and is not fitted.

Why a posterior and not only a point estimate: the pair whose point estimate
is closest to 1/2 is often two near-identical images, whose answer teaches
little. The active strategy instead asks for the pair with the largest
expected information about w (BALD, Houlsby et al. 2011): large when the
model is unsure *because w is uncertain along that pair's difference*, small
for near-duplicates. With the Gram matrix G = Z S Z^T every same-prompt
pair's predictive variance is G_aa + G_bb - 2 G_ab, so scoring all pairs of a
500-image pool costs one n x n product.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: The reduced dimension: enough for a person's taste, small enough to refit in milliseconds.
MAX_DIM = 32


def reduce(embeddings: np.ndarray, dim: int = MAX_DIM) -> np.ndarray:
    """Centre, project onto the top principal components and whiten them."""
    x = np.asarray(embeddings, dtype=np.float64)
    x = x - x.mean(0)
    if x.shape[0] < 2:
        return np.zeros((x.shape[0], 1))
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    keep = s > s[0] * 1e-6 if s.size and s[0] > 0 else np.zeros_like(s, dtype=bool)
    k = int(min(dim, keep.sum())) or 1
    # u * sqrt(n-1): unit variance per component.
    return u[:, :k] * math.sqrt(x.shape[0] - 1)


@dataclass
class Posterior:
    mean: np.ndarray
    cov: np.ndarray


class PairModel:
    """Fit on (a, b, y) with y = P(a preferred) observed (1, 0 or 1/2 for a tie)."""

    def __init__(self, z: np.ndarray, prior_var: float | None = None):
        self.z = np.asarray(z, dtype=np.float64)
        d = self.z.shape[1]
        # A difference of two whitened images has squared norm ~ 2d; this prior makes
        # the typical utility gap of a pair about 2 (a clear but not certain preference).
        self.prior_var = prior_var if prior_var is not None else 2.0 / d
        self.post = Posterior(np.zeros(d), np.eye(d) * self.prior_var)

    def fit(self, a: np.ndarray, b: np.ndarray, y: np.ndarray, iters: int = 20) -> Posterior:
        d = self.z.shape[1]
        prec0 = np.eye(d) / self.prior_var
        a, b, y = np.asarray(a, int), np.asarray(b, int), np.asarray(y, float)
        if a.size == 0:
            self.post = Posterior(np.zeros(d), np.linalg.inv(prec0))
            return self.post
        x = self.z[a] - self.z[b]
        w = self.post.mean.copy() if self.post.mean.shape == (d,) else np.zeros(d)
        for _ in range(iters):
            p = 1.0 / (1.0 + np.exp(-(x @ w)))
            grad = x.T @ (p - y) + prec0 @ w
            hess = (x * (p * (1 - p))[:, None]).T @ x + prec0
            step = np.linalg.solve(hess, grad)
            w = w - step
            if float(np.abs(step).max()) < 1e-8:
                break
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        hess = (x * (p * (1 - p))[:, None]).T @ x + prec0
        self.post = Posterior(w, np.linalg.inv(hess))
        return self.post

    def prob(self, a: int, b: int) -> float:
        """P(a preferred to b), the posterior mean's utility gap moderated by its uncertainty."""
        mu, var = self.gap(np.array([a]), np.array([b]))
        return float(_sigmoid(mu / np.sqrt(1.0 + math.pi * var / 8.0))[0])

    def gap(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of the utility gap u(a) - u(b) under the posterior."""
        x = self.z[a] - self.z[b]
        return x @ self.post.mean, np.einsum("ij,jk,ik->i", x, self.post.cov, x)

    def gram(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For the images `idx`: posterior mean utilities and the covariance matrix of their utilities."""
        zi = self.z[idx]
        return zi @ self.post.mean, zi @ self.post.cov @ zi.T


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


_C2 = math.pi * math.log(2) / 2  # Houlsby et al.'s constant C^2 for the probit link


def information(mu: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Expected information (bits) about w from one answer, for gaps ~ N(mu, var) (BALD).

    The logistic link is approximated by a probit with the same slope at 0
    (sigmoid(f) ~ Phi(f sqrt(pi/8))), for which the expectation has a closed form.
    """
    lam2 = math.pi / 8.0
    m, v = np.asarray(mu) * math.sqrt(lam2), np.maximum(np.asarray(var) * lam2, 0.0)
    p = _phi(m / np.sqrt(1.0 + v))
    return _h(p) - math.sqrt(_C2) / np.sqrt(v + _C2) * np.exp(-(m**2) / (2.0 * (v + _C2)))


def _phi(x):
    from scipy.special import ndtr  # scipy comes with scikit-learn

    return ndtr(x)


def _h(p):
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
