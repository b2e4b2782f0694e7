"""Reward-model families behind one interface, each ending in a Bradley–Terry head with a posterior.

    inputs = prepare_reward_inputs(family_config, prompts, responses, ...)   # every response, encoded once
    model = new_reward_model(inputs, config, pool_a, pool_b, seed)
    model.fit(a, b, y)                  # labelled pairs: response indices a, b; y = 1 where a was preferred
    x = model.pair_features(a, b)       # the features the head is linear in, for any pairs
    model.head                          # a fitted BradleyTerryModel over x: prob, sample_weights, covariance

The acquisition strategies only ever see `model.head` and `x`, so they work unchanged with every
family. Families:

* `linear`: today's model — Bradley–Terry over fixed, reduced features of each response.
* `finetune`: a sentence encoder (any local directory; MiniLM by default) read as a cross-encoder
  over prompt and response, whose top `trainable_layers` layers, an attention pooling and a small
  MLP are trained with the Bradley–Terry loss. Uncertainty is a last-layer Laplace posterior: the
  head is refitted (evidence-maximised prior, Laplace covariance) on the trained network's
  penultimate features after every round.
* `policy`: the same with the policy (a causal LM) as the encoder, pooling its response tokens.

Rounds are cheap by construction: the frozen lower layers run once per text (cached, optionally
on disk), each round warm-starts from the previous round's weights and trains a fixed number of
steps on all labels so far, and only the trainable top re-reads the pool.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alignment.atomic import atomic_path
from alignment.bradley_terry import BradleyTerryModel, PairFeatureSpace, RewardModelConfig
from alignment.errors import ConfigError, UnknownEncoderError

log = logging.getLogger("alignment")

REWARD_MODEL_FAMILIES = ("linear", "finetune", "policy")


@dataclass
class RewardFamilyConfig:
    reward_model: str = field(
        default="linear",
        metadata={
            "help": "reward-model family: 'linear' (BT on fixed features), 'finetune' "
            "(a trained encoder top) or 'policy' (the policy's own top layers)"
        },
    )
    encoder: str = field(default="minilm", metadata={"help": "finetune: 'minilm' or a local encoder directory"})
    trainable_layers: int = field(
        default=0,
        metadata={
            "help": "finetune/policy: top transformer layers trained "
            "(0 = only the pooling and the MLP on frozen states)"
        },
    )
    head_hidden: int = field(default=128, metadata={"help": "finetune/policy: width of the MLP's hidden layer"})
    rm_max_length: int = field(default=128, metadata={"help": "finetune/policy: tokens of prompt + response read"})
    rm_learning_rate: float = field(default=3e-4, metadata={"help": "finetune/policy: AdamW learning rate"})
    rm_steps_per_round: int = field(default=30, metadata={"help": "finetune/policy: optimiser steps per round"})
    rm_batch_size: int = field(default=32, metadata={"help": "finetune/policy: labelled pairs per step"})
    rm_weight_decay: float = field(default=0.01, metadata={"help": "finetune/policy: AdamW weight decay"})
    warm_start: bool = field(
        default=True,
        metadata={
            "help": "finetune/policy: each round starts from the last (off: from the pretrained encoder every round)"
        },
    )
    prior_pairs: str = field(
        default=None,
        metadata={"help": "finetune/policy: other preference data (JSONL) to pre-train on before the first round"},
    )
    prior_steps: int = field(default=300, metadata={"help": "finetune/policy: steps of pre-training on prior_pairs"})
    stats: bool = field(default=False, metadata={"help": "finetune/policy: add text statistics to the head"})
    length_penalty: float = field(
        default=1.0,
        metadata={
            "help": "prior precision multiplier on the head's length "
            "statistics (> 1 keeps it from learning length alone)"
        },
    )
    rm_cache_dir: str = field(default=None, metadata={"help": "directory to cache the frozen layers' outputs"})

    def __post_init__(self):
        if self.reward_model not in REWARD_MODEL_FAMILIES:
            raise ConfigError(
                f"reward_model: unknown family {self.reward_model!r} (choose from {', '.join(REWARD_MODEL_FAMILIES)})"
            )
        if self.trainable_layers < 0 or self.head_hidden < 1 or self.rm_max_length < 8:
            raise ConfigError("trainable_layers >= 0, head_hidden >= 1 and rm_max_length >= 8 are required")
        if self.rm_steps_per_round < 1 or self.rm_batch_size < 1 or self.rm_learning_rate <= 0:
            raise ConfigError("rm_steps_per_round >= 1, rm_batch_size >= 1 and rm_learning_rate > 0 are required")
        if self.length_penalty <= 0:
            raise ConfigError(f"length_penalty: must be > 0, got {self.length_penalty}")
        if self.reward_model == "finetune":
            encoder_directory(self.encoder)  # an unusable encoder fails before any model loads
        if self.prior_pairs and not Path(self.prior_pairs).is_file():
            raise ConfigError(f"prior_pairs: no such file {self.prior_pairs}")


def encoder_directory(encoder: str) -> Path:
    """The local directory of an encoder name; one line of error when it cannot serve as one."""
    if encoder == "minilm":
        from alignment.features import minilm_path

        return minilm_path()
    directory = Path(encoder)
    if not (directory / "config.json").is_file():
        raise UnknownEncoderError(f"encoder: {encoder!r} is neither 'minilm' nor a model directory with a config.json")
    from alignment.top_layers import has_tokenizer

    if not has_tokenizer(directory):
        raise UnknownEncoderError(f"encoder: {directory} has no tokenizer (tokenizer.json or vocab.txt)")
    return directory


class LinearRewardModel:
    """Bradley–Terry over fixed per-response features, reduced per source on the pool's pairs."""

    family = "linear"

    def __init__(
        self,
        blocks: list[np.ndarray],
        pool_a: np.ndarray,
        pool_b: np.ndarray,
        config: RewardModelConfig,
        seed: int = 0,
    ):
        self.z = PairFeatureSpace(config.feature_dim, config.whiten).fit(blocks, pool_a, pool_b).transform(blocks)
        self.head = BradleyTerryModel(config, seed=seed)
        self.fit_seconds: list[float] = []

    def fit(self, a, b, y, weight=None) -> "LinearRewardModel":
        started = time.perf_counter()
        self.head.fit(self.pair_features(a, b), y, weight)
        self.fit_seconds.append(time.perf_counter() - started)
        return self

    def pair_features(self, a, b) -> np.ndarray:
        return self.z[np.asarray(a)] - self.z[np.asarray(b)]


class FixedPairFeatures:
    """Bradley–Terry over a given matrix of pair differences (pair i is row i; `b` is unused)."""

    family = "linear"

    def __init__(self, x: np.ndarray, config: RewardModelConfig, seed: int = 0):
        self.x, self.head, self.fit_seconds = x, BradleyTerryModel(config, seed=seed), []

    def fit(self, a, b, y, weight=None) -> "FixedPairFeatures":
        started = time.perf_counter()
        self.head.fit(self.x[np.asarray(a)], y, weight)
        self.fit_seconds.append(time.perf_counter() - started)
        return self

    def pair_features(self, a, b=None) -> np.ndarray:
        return self.x[np.asarray(a)]


class TrainedTopRewardModel:
    """An encoder's top layers + attention pooling + MLP, trained with the Bradley–Terry loss, over cached states.

    The loss is TRL's reward loss (−log σ(r_chosen − r_rejected)); TRL's RewardTrainer is not used because it
    tokenizes and runs the whole model every step and cannot start from cached lower-layer states, which is
    what makes a round cost seconds rather than minutes here.
    """

    def __init__(
        self, encoding: "FrozenEncoding", config: RewardModelConfig, family_config: RewardFamilyConfig, seed: int = 0
    ):
        import torch

        self.family, self.config, self.family_config, self.seed = encoding.family, config, family_config, seed
        torch.manual_seed(seed)
        self.generator = np.random.default_rng(seed)
        self.encoding = encoding
        self.top = encoding.new_top()
        self.states, self.attention, self.scored = encoding.states, encoding.attention, encoding.scored
        self.lengths = self.attention.sum(1)
        hidden = self.top.hidden_size
        # Attention pooling over the response's tokens, starting as a plain mean (the sentence-transformers
        # pooling), so the untrained model is the linear probe of the encoder and training can only add to it.
        self.pool_query = torch.nn.Linear(hidden, 1)
        torch.nn.init.zeros_(self.pool_query.weight)
        torch.nn.init.zeros_(self.pool_query.bias)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(hidden, family_config.head_hidden), torch.nn.GELU())
        self.out = torch.nn.Linear(hidden + family_config.head_hidden, 1, bias=False)
        self.stats = encoding.stats
        if encoding.pretrained_head is not None:  # pre-trained on other preference data: adapt from there
            for module, saved in zip(self._modules(), encoding.pretrained_head):
                module.load_state_dict(saved)
        self._pretrained = copy.deepcopy(self._state())
        self.optimizer = self._new_optimizer()
        self.head = BradleyTerryModel(config, seed=seed)
        self.z: np.ndarray | None = None
        self.fit_seconds: list[float] = []
        self.rounds = 0

    # -- parameters ------------------------------------------------------------------------------
    def _modules(self):
        return [self.pool_query, self.mlp, self.out]

    def _parameters(self):
        return [p for m in self._modules() for p in m.parameters()] + self.top.parameters()

    def _state(self):
        return {
            "top": [layer.state_dict() for layer in self.top.layers],
            "norm": self.top.norm.state_dict() if self.top.norm is not None else None,
            "head": [m.state_dict() for m in self._modules()],
        }

    def _load_state(self, state) -> None:
        for layer, saved in zip(self.top.layers, state["top"]):
            layer.load_state_dict(saved)
        if state["norm"] is not None:
            self.top.norm.load_state_dict(state["norm"])
        for module, saved in zip(self._modules(), state["head"]):
            module.load_state_dict(saved)

    def _new_optimizer(self):
        import torch

        return torch.optim.AdamW(
            self._parameters(), lr=self.family_config.rm_learning_rate, weight_decay=self.family_config.rm_weight_decay
        )

    # -- the network -----------------------------------------------------------------------------
    def _embed(self, index: np.ndarray, train: bool):
        """Penultimate features of responses `index`: the pooled states and the MLP's output on them."""
        import torch

        width = int(self.lengths[index].max())
        states = torch.from_numpy(self.states[index, :width].astype(np.float32))
        attention = torch.from_numpy(self.attention[index, :width])
        scored = torch.from_numpy(self.scored[index, :width])
        for module in (*self._modules(), *self.top.layers):
            module.train(train)
        hidden = self.top.forward(states, attention)
        logits = self.pool_query(hidden).squeeze(-1).masked_fill(~scored, float("-inf"))
        weights = torch.softmax(logits, dim=-1).nan_to_num(0.0)
        pooled = (weights.unsqueeze(-1) * hidden).sum(1)
        return torch.cat([pooled, self.mlp(pooled)], dim=-1)

    def reward(self, index: np.ndarray, train: bool = False):
        return self.out(self._embed(index, train)).squeeze(-1)

    def train_steps(self, a: np.ndarray, b: np.ndarray, y: np.ndarray, weight: np.ndarray | None, steps: int) -> float:
        """`steps` AdamW steps of the Bradley–Terry loss on batches drawn from the labelled pairs; the last loss."""
        import torch

        sign = torch.from_numpy(np.where(np.asarray(y) > 0.5, 1.0, -1.0).astype(np.float32))
        weight_t = torch.from_numpy(np.ones(len(a), np.float32) if weight is None else np.asarray(weight, np.float32))
        loss_value = float("nan")
        for _ in range(steps):
            pick = self.generator.choice(len(a), size=min(self.family_config.rm_batch_size, len(a)), replace=False)
            rewards = self.reward(np.concatenate([a[pick], b[pick]]), train=True)
            margin = (rewards[: len(pick)] - rewards[len(pick) :]) * sign[pick]
            loss = -(torch.nn.functional.logsigmoid(margin) * weight_t[pick]).sum() / weight_t[pick].sum()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self._parameters(), 1.0)
            self.optimizer.step()
            loss_value = float(loss.detach())
        return loss_value

    def response_features(self, batch_size: int = 256) -> np.ndarray:
        """Penultimate features of every response, standardised (and the statistics, when configured)."""
        import torch

        out = np.zeros((len(self.states), self.top.hidden_size + self.family_config.head_hidden), dtype=np.float32)
        order = np.argsort(self.lengths)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                index = order[start : start + batch_size]
                out[index] = self._embed(index, train=False).numpy()
        out = (out - out.mean(0)) / (out.std(0) + 1e-6)
        return out if self.stats is None else np.concatenate([out, self.stats], axis=1)

    # -- the interface ---------------------------------------------------------------------------
    def fit(self, a, b, y, weight=None) -> "TrainedTopRewardModel":
        started = time.perf_counter()
        a, b, y = np.asarray(a), np.asarray(b), np.asarray(y, float)
        self.rounds += 1
        steps = self.family_config.rm_steps_per_round
        if not self.family_config.warm_start:
            # A cold fit starts from the pretrained weights and gets as many steps as the warm model has had.
            self._load_state(copy.deepcopy(self._pretrained))
            self.optimizer = self._new_optimizer()
            steps *= self.rounds
        self.train_steps(a, b, y, weight, steps)
        self.z = self.response_features()
        self.head.fit(self.pair_features(a, b), y, weight)
        self.fit_seconds.append(time.perf_counter() - started)
        return self

    def pair_features(self, a, b) -> np.ndarray:
        if self.z is None:
            self.z = self.response_features()
        return self.z[np.asarray(a)] - self.z[np.asarray(b)]


def _length_scaled_statistics(prompts, responses, length_penalty: float) -> np.ndarray:
    """Standardised text statistics; the two length columns shrunk so the head's prior on them is `length_penalty`× as strong.

    With an isotropic Gaussian prior of precision λ on the head, scaling a feature by 1/√c is the same model as
    giving its weight the precision cλ: a penalty on learning length that the evidence maximisation respects.
    """
    from alignment.features import text_statistics

    stats = np.asarray([text_statistics(p, r) for p, r in zip(prompts, responses)], dtype=np.float32)
    stats = (stats - stats.mean(0)) / (stats.std(0) + 1e-6)
    stats[:, :2] /= np.sqrt(length_penalty)  # log characters, log words
    return stats


class FrozenEncoding:
    """Every response the run will score, read once through the encoder's frozen lower layers."""

    def __init__(
        self,
        model_dir: Path,
        prompts: list[str],
        responses: list[str],
        family_config: RewardFamilyConfig,
        family: str = "finetune",
    ):
        from alignment.top_layers import TopLayers, load_backbone, tokenize_pairs

        self.family, self.family_config, self.model_dir = family, family_config, Path(model_dir)
        self.tokenizer, self.backbone, self.is_causal = load_backbone(model_dir)
        self.frozen_top = TopLayers(self.backbone, family_config.trainable_layers, self.is_causal)
        texts = tokenize_pairs(self.tokenizer, prompts, responses, family_config.rm_max_length, self.is_causal)
        self.states = self.lower_states(texts)
        self.attention, self.scored = texts.attention, texts.scored
        self.stats = (
            _length_scaled_statistics(prompts, responses, family_config.length_penalty)
            if family_config.stats
            else None
        )
        self.pretrained_head = None

    def new_top(self):
        """A trainable copy of the top layers, as pretrained (or as pre-trained on the prior data)."""
        top = copy.copy(self.frozen_top)
        top.layers = copy.deepcopy(self.frozen_top.layers)
        top.norm = copy.deepcopy(self.frozen_top.norm)
        return top

    def lower_states(self, texts) -> np.ndarray:
        """The frozen layers' outputs, computed once (and kept on disk when a cache directory is given)."""
        if not self.family_config.rm_cache_dir:
            return self.frozen_top.lower_states(texts)
        from alignment.features import model_digest

        hasher = hashlib.sha256(f"{model_digest(self.model_dir)}|{self.frozen_top.k}|".encode())
        hasher.update(texts.input_ids.tobytes())
        path = Path(self.family_config.rm_cache_dir).expanduser() / f"states-{hasher.hexdigest()[:24]}.npy"
        if path.is_file():
            return np.load(path)
        states = self.frozen_top.lower_states(texts)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, suffix=".tmp.npy") as tmp:
            np.save(tmp, states)
        return states


@dataclass
class RewardInputs:
    """What a family needs of the responses, computed once per data set: feature blocks or frozen states."""

    family_config: RewardFamilyConfig
    blocks: list[np.ndarray] | None = None
    encoding: FrozenEncoding | None = None
    prior: tuple | None = None  # (states, attention, scored) of the prior preference data, chosen first


def prepare_reward_inputs(
    family_config: RewardFamilyConfig,
    prompts: list[str],
    responses: list[str],
    feature_config=None,
    policy_model: str | None = None,
) -> RewardInputs:
    """Encode every response once: the linear family's feature blocks, or the frozen lower layers' states."""
    family = family_config.reward_model
    if family == "linear":
        from alignment.features import feature_blocks

        if feature_config is None:
            raise ConfigError("reward model 'linear' needs a feature configuration")
        return RewardInputs(family_config, blocks=feature_blocks(prompts, responses, feature_config))
    if family == "policy":
        if not policy_model:
            raise ConfigError("reward_model 'policy' needs the policy model directory")
        model_dir = Path(policy_model)
    else:
        model_dir = encoder_directory(family_config.encoder)
    encoding = FrozenEncoding(model_dir, prompts, responses, family_config, family)
    inputs = RewardInputs(family_config, encoding=encoding)
    if family_config.prior_pairs:
        _pretrain_on_prior(inputs)
    return inputs


def new_reward_model(
    inputs: RewardInputs, config: RewardModelConfig, pool_a: np.ndarray, pool_b: np.ndarray, seed: int = 0
):
    """A fresh, untrained reward model of the inputs' family; `pool_a`/`pool_b` are the unlabelled pool's pairs
    (the linear family fits its feature reduction on them, never on labels)."""
    if inputs.blocks is not None:
        return LinearRewardModel(inputs.blocks, pool_a, pool_b, config, seed=seed)
    return TrainedTopRewardModel(inputs.encoding, config, inputs.family_config, seed=seed)


def _pretrain_on_prior(inputs: RewardInputs) -> None:
    """Pre-train the trainable top on other preference data; every later model starts from the result."""
    from alignment.data import read_preference_file
    from alignment.top_layers import tokenize_pairs

    encoding, family_config = inputs.encoding, inputs.family_config
    rows = read_preference_file(family_config.prior_pairs).rows
    prompts = [r.prompt for r in rows for _ in (0, 1)]
    responses = [t for r in rows for t in (r.chosen, r.rejected)]
    texts = tokenize_pairs(encoding.tokenizer, prompts, responses, family_config.rm_max_length, encoding.is_causal)
    model = TrainedTopRewardModel(encoding, RewardModelConfig(), family_config, seed=0)
    model.states, model.attention, model.scored = encoding.lower_states(texts), texts.attention, texts.scored
    model.lengths = texts.attention.sum(1)
    chosen, rejected = 2 * np.arange(len(rows)), 2 * np.arange(len(rows)) + 1
    model.train_steps(chosen, rejected, np.ones(len(rows)), None, family_config.prior_steps)
    encoding.frozen_top.layers, encoding.frozen_top.norm = model.top.layers, model.top.norm
    encoding.pretrained_head = copy.deepcopy([m.state_dict() for m in model._modules()])
