"""A Bradley–Terry reward model over fixed features whose epistemic uncertainty is known.

r(prompt, response) = w · z(prompt, response), so P(a ≻ b) = σ(w · (z_a − z_b)). The prior on
w is Gaussian, N(0, I/λ); λ is set by evidence maximisation (MacKay's fixed point) unless the
config fixes it, because a prior tuned on the labels at hand beats any constant across budgets
from 20 to 2,000 labels. Two posteriors:

* `laplace`: the Gaussian at the MAP with covariance (XᵀWX + λI)⁻¹ (the Fisher information of
  the last layer) — exact enough for a log-concave likelihood and cheap at d ≤ a few hundred;
* `ensemble`: bootstrapped heads (each refit on a resample), the classic deep-ensemble proxy.

Written with numpy rather than torch: Newton's method on a d ≤ 200 convex problem converges in
a handful of steps, milliseconds per refit, which lets a benchmark refit after every batch for
ten seeds and seven strategies on two cores.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from alignment.errors import ConfigError

POSTERIORS = ("laplace", "ensemble")


@dataclass
class RewardModelConfig:
    posterior: str = field(default="laplace", metadata={"help": "epistemic posterior: 'laplace' or 'ensemble'"})
    n_heads: int = field(default=8, metadata={"help": "bootstrapped heads when posterior is 'ensemble'"})
    prior_precision: float = field(
        default=0.0,
        metadata={"help": "Gaussian prior precision λ on the weights (0 = choose by evidence maximisation)"},
    )
    feature_dim: int = field(default=64, metadata={"help": "principal components kept per feature source"})
    whiten: bool = field(
        default=False,
        metadata={
            "help": "scale every principal component to unit variance (off: one scale per source, so the "
            "isotropic prior shrinks low-variance directions most, as a ridge on the standardised features does)"
        },
    )

    def __post_init__(self):
        if self.posterior not in POSTERIORS:
            raise ConfigError(f"posterior: must be one of {', '.join(POSTERIORS)}, got {self.posterior!r}")
        if self.n_heads < 2 or self.prior_precision < 0 or self.feature_dim < 1:
            raise ConfigError("n_heads >= 2, prior_precision >= 0 and feature_dim >= 1 are required")


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free


class PairFeatureSpace:
    """Per-response feature blocks → standardised, reduced pair differences z_a − z_b.

    Fitted on the unlabelled pool only (pool-based active learning may look at every input, not
    at labels). Each source is reduced on its own so that 11 text statistics are not drowned by
    768 embedding columns. Differences are not centred: z(b, a) = −z(a, b) must hold.

    Each source is scaled to unit mean variance per component. Without `whiten` the components keep
    their relative variances, so the head's isotropic prior shrinks the weak directions hardest and
    more components cannot hurt much; whitening gives every component the same prior weight, which
    on real text over-fits as soon as the kept components reach the noise (the accuracy then falls
    as `dim` grows, and a low `dim` caps what more labels can teach).
    """

    def __init__(self, dim: int = 64, whiten: bool = False):
        self.dim, self.whiten = dim, whiten
        self.blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def fit(self, blocks: list[np.ndarray], pairs_a: np.ndarray, pairs_b: np.ndarray) -> "PairFeatureSpace":
        self.blocks = []
        for block in blocks:
            mean = block.mean(0)
            std = block.std(0) + 1e-6
            diffs = (block[pairs_a] - block[pairs_b]) / std
            k = min(self.dim, diffs.shape[1], len(diffs))
            # The principal directions from the d×d Gram matrix: the SVD's right vectors, several times faster
            # than an SVD of the n×d differences (seconds per reward model at n ~5,000, d = 768).
            eigenvalues, vectors = np.linalg.eigh(diffs.T @ diffs)
            order = np.argsort(eigenvalues)[::-1][:k]
            basis = vectors[:, order]
            scale = np.sqrt(np.clip(eigenvalues[order], 0, None) / len(diffs)) + 1e-6
            if not self.whiten:
                scale = np.full(k, np.sqrt(np.mean(scale**2)))
            self.blocks.append((mean, std, basis, scale))
        return self

    def transform(self, blocks: list[np.ndarray]) -> np.ndarray:
        """Per-response reduced features (the reward is linear in these)."""
        out = [((b - mean) / std) @ basis / scale for b, (mean, std, basis, scale) in zip(blocks, self.blocks)]
        return np.concatenate(out, axis=1)


class BradleyTerryModel:
    def __init__(self, config: RewardModelConfig | None = None, seed: int = 0):
        self.config = config or RewardModelConfig()
        self.rng = np.random.default_rng(seed)
        self.weights: np.ndarray | None = None
        self.covariance: np.ndarray | None = None
        self.heads: np.ndarray | None = None
        self.prior_precision = self.config.prior_precision or 1.0

    # -- fitting ---------------------------------------------------------------------------------
    @staticmethod
    def _newton(x, y, s, lam, w0, steps=30):
        """MAP of the L2-penalised logistic likelihood (no bias: the model is antisymmetric in a/b)."""
        w = w0.copy()
        eye = np.eye(x.shape[1])

        def objective(v):
            margin = x @ v
            return float(np.sum(s * (np.logaddexp(0.0, margin) - y * margin)) + 0.5 * lam * v @ v)

        for _ in range(steps):
            p = sigmoid(x @ w)
            grad = x.T @ (s * (p - y)) + lam * w
            hess = (x * (s * p * (1 - p))[:, None]).T @ x + lam * eye
            step = np.linalg.solve(hess, grad)
            # Backtracking: on (nearly) separable labels with a weak prior the full Newton step can overshoot
            # and flip the weights; a step that does not lower the penalised loss is halved until it does.
            current = objective(w)
            for _ in range(30):
                if objective(w - step) <= current + 1e-12:
                    break
                step = step / 2
            w -= step
            if np.max(np.abs(step)) < 1e-6:
                break
        return w

    def fit(self, x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> "BradleyTerryModel":
        """x: pair differences (n, d); y: 1 where a was preferred, 0 where b; sample_weight: e.g. pseudo-label confidence."""
        x, y = np.asarray(x, float), np.asarray(y, float)
        s = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, float)
        d = x.shape[1]
        w = np.zeros(d) if self.weights is None or len(self.weights) != d else self.weights
        lam = self.prior_precision
        for _ in range(8 if not self.config.prior_precision else 1):
            w = self._newton(x, y, s, lam, w)
            if self.config.prior_precision:
                break
            # MacKay: γ = effective number of well-determined parameters; λ = γ / |w|².
            p = sigmoid(x @ w)
            data_hessian = (x * (s * p * (1 - p))[:, None]).T @ x
            eig = np.clip(np.linalg.eigvalsh(data_hessian), 0, None)
            gamma = float(np.sum(eig / (eig + lam)))
            new_lam = float(np.clip(gamma / max(float(w @ w), 1e-8), 1e-3, 1e4))
            if abs(np.log(new_lam / lam)) < 0.05:
                lam = new_lam
                break
            lam = new_lam
        w = self._newton(x, y, s, lam, w)
        self.prior_precision = lam
        self.weights = w
        p = sigmoid(x @ w)
        hess = (x * (s * p * (1 - p))[:, None]).T @ x + lam * np.eye(d)
        self.covariance = np.linalg.inv(hess)
        self.heads = None
        if self.config.posterior == "ensemble":
            heads = []
            for _ in range(self.config.n_heads):
                counts = self.rng.multinomial(len(y), np.full(len(y), 1.0 / len(y))) if len(y) else np.zeros(0)
                heads.append(self._newton(x, y, s * counts, lam, w, steps=15))
            self.heads = np.asarray(heads)
        return self

    @property
    def fitted(self) -> bool:
        return self.weights is not None

    # -- predicting ------------------------------------------------------------------------------
    def margin(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x) @ self.weights

    def prob(self, x: np.ndarray) -> np.ndarray:
        """P(a ≻ b): the posterior predictive (probit-moderated Laplace, or the ensemble mean)."""
        x = np.asarray(x, float)
        if self.heads is not None:
            return sigmoid(x @ self.heads.T).mean(1)
        variance = np.einsum("ij,jk,ik->i", x, self.covariance, x)
        return sigmoid(self.margin(x) / np.sqrt(1.0 + np.pi * variance / 8.0))

    def sample_weights(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n draws of w from the posterior (ensemble heads when that is the posterior)."""
        if self.heads is not None:
            return self.heads[rng.integers(0, len(self.heads), size=n)]
        return rng.multivariate_normal(self.weights, self.covariance, size=n, method="cholesky")

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean((self.prob(x) > 0.5) == (np.asarray(y) > 0.5)))
