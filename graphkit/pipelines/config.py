r"""Dataclass configs: the only place configs exist.

A :class:`RunConfig` is a tree of small dataclasses. Named presets (Python
functions, :mod:`graphkit.pipelines.presets`) return full configs, and
``--set section.key=value`` overrides are coerced to the field's type.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

__all__ = ['DataConfig', 'ModelConfig', 'OptimConfig', 'TrainConfig',
           'ParallelConfig', 'RunConfig', 'apply_overrides', 'ConfigError',
           'config_keys']


class ConfigError(ValueError):
    r"""A bad ``--set`` key or value."""


@dataclass(kw_only=True)
class DataConfig:
    name: str = 'cora'
    split: str | None = None
    task: str | None = None
    root: str | None = None
    mirror: str | None = None
    ratios: tuple[float, ...] | None = None
    normalize_features: bool = False
    undirected: bool = False
    metric: str | None = None
    # Generator options of synthetic datasets (csbm, sbm, pattern, cluster).
    options: dict | None = None


@dataclass(kw_only=True)
class ModelConfig:
    name: str = 'gcn'
    encoder: str | None = None
    hidden_channels: int = 64
    num_layers: int = 2
    dropout: float = 0.5
    input_dropout: float = 0.0
    heads: int = 8
    norm: str | None = None
    jk: str | None = None
    decoder: str = 'mlp'
    decoder_layers: int = 3
    decoder_dropout: float = 0.0
    embedding_dim: int | None = None
    pool: str = 'mean'
    # HiGCN: simplex order P, filter degree K, PPR init, propagation dropout.
    # alpha is also GCNII's initial-residual weight; unset, each model uses
    # its own default (HiGCN 0.5, GCNII 0.1).
    max_order: int = 2
    K: int = 10
    alpha: float | None = None
    dprate: float = 0.5
    # Sheaf diffusion (NSD): stalk dimension, fixed low/high-pass stalks,
    # lighter learner, one sheaf for all layers, bundle parameterisation.
    stalk_dim: int | None = None
    add_lp: bool = False
    add_hp: bool = False
    second_linear: bool = False
    sparse_learner: bool = False
    linear_sheaf: bool = False
    orth: str = 'householder'
    readout: str | None = None
    edge_weights: bool = True
    sheaf_act: str = 'tanh'
    map_init: float | None = None
    # Sheaf4Rec: ``identity`` starts each layer's W at I (and b at 0),
    # ``fixed`` keeps W = I untrained; std of the normal initial embeddings;
    # Laplacian normalised by D + I (True, the reference's) or by D;
    # gradient from the restriction maps into the embeddings (True) or not.
    lin_init: str | None = None
    init_std: float | None = None
    augmented: bool | None = None
    map_grad: bool | None = None
    # Encoder extras: dropout on the last propagation output, edge dropout,
    # residual connections (pure encoders).
    tail_dropout: float = 0.0
    edge_dropout: float = 0.0
    residual: bool = False
    # NCN / NCNC predictor: LayerNorm in its MLPs, edge dropout before the
    # common neighbours, the h + MLP(h) pooled states, activation-ended
    # branches, a two-block output MLP, the initial branch weight beta; NCNC
    # completion order and calibration alpha * sigmoid(scale * (s - offset)
    # + ln prior) with alpha = prob_cap.
    decoder_norm: bool = False
    predictor_edge_dropout: float = 0.0
    use_xlin: bool = False
    tail_act: bool = False
    two_layer_out: bool = False
    beta: float = 1.0
    completion_order: int = 1
    prob_scale: float = 5.0
    prob_offset: float = 3.0
    prob_prior: float = 0.5
    prob_cap: float = 1.0
    # Mowst: the confidence gate (width, layers, dropout, node features as
    # extra input, gradient through the dispersion) and the evaluation rule
    # ('expectation' or 'sample').
    gate_hidden: int = 16
    gate_layers: int = 2
    gate_dropout: float = 0.0
    gate_features: bool = False
    dispersion_grad: bool = False
    inference: str = 'expectation'
    # Graph transformers: neighbour ('sparse') or all-pairs ('full')
    # attention, positional encoding ('lap', 'rw', 'none'; None: the
    # model's default) and its width, edge features on/off; GPS: local
    # model, global attention type and attention dropout.
    attention: str = 'sparse'
    pe: str | None = None
    pe_dim: int | None = None
    edge_features: bool = True
    local: str = 'gine'
    attn_type: str = 'multihead'
    attn_dropout: float = 0.5

    def hparams(self) -> dict[str, Any]:
        r"""Keyword arguments for :func:`graphkit.models.build` (everything
        but the name; unset optional fields are dropped)."""
        out = asdict(self)
        out.pop('name')
        return {k: v for k, v in out.items()
                if v is not None or k in ('norm', 'jk')}


@dataclass(kw_only=True)
class OptimConfig:
    optimizer: str = 'adam'
    lr: float = 0.01
    weight_decay: float = 0.0
    decoder_lr: float | None = None
    # Weight decay of parameters in modules with ``decay_group = 'sheaf'``
    # (the sheaf learners); ``None``: the same as ``weight_decay``.
    sheaf_decay: float | None = None
    grad_clip: float | None = None
    # Clip each direct child module (embedding, encoder, decoder) to
    # ``grad_clip`` separately instead of all parameters together.
    clip_per_module: bool = False


@dataclass(kw_only=True)
class TrainConfig:
    r"""Training settings.

    ``early_stop`` is ``patience`` (stop after ``patience`` evaluations
    without improvement) or ``gpr`` (GPR-GNN / HiGCN: once the epoch exceeds
    ``patience``, stop when the validation loss exceeds the mean of the
    previous ``patience`` validation losses). ``select_by`` is ``metric``
    (best validation score) or ``loss`` (lowest validation loss).
    """
    epochs: int = 200
    runs: int | None = None
    seed: int = 0
    patience: int | None = None
    early_stop: str = 'patience'
    eval_every: int = 1
    select_by: str = 'metric'
    batch_size: int | None = None
    eval_batch_size: int = 65536
    num_neighbors: tuple[int, ...] = (10, 10)
    # None: the model's own (``model.default_strategy``), else backprop.
    strategy: str | None = None
    # Mowst: experts pretrained alone first ('strong', 'weak', 'both' or
    # 'none'), pretrain_epochs each, then turns of this many epochs
    # (at most that many when turn_patience > 0: a turn then ends after
    # turn_patience evaluations without a better validation score, keeps its
    # best weights, and is rolled back if it did not beat the turns before;
    # the run ends after big_patience rounds without an accepted turn).
    mowst_pretrain: str = 'strong'
    mowst_pretrain_epochs: int = 0
    mowst_turn_epochs: int = 1
    mowst_turn_patience: int = 0
    # Patience of the pretraining phases (None: mowst_turn_patience).
    mowst_pretrain_patience: int | None = None
    mowst_big_patience: int = 0
    # Every dropout of the model from the first turn on (None: unchanged;
    # the reference's --dropout_gate).
    mowst_dropout: float | None = None
    # Forward learning (forward-* strategies; ``epochs`` counts per layer):
    # most epochs per layer (None: ``epochs``), evaluations without
    # improvement that end a layer, reuse of a frozen input's aggregation
    # (GCN, SAGE), the SF prototype temperature, the FF goodness threshold
    # and FF negative copies (None: all C - 1 wrong classes).
    forward_layer_epochs: int | None = None
    forward_patience: int = 100
    forward_cache: bool = True
    forward_tau: float = 1.0
    forward_theta: float = 2.0
    forward_num_negatives: int | None = None
    # Recommendation: weight of the L2 penalty on the batch's layer-0
    # embeddings (None: the task's default, 1e-4).
    embedding_reg: float | None = None
    # Link prediction and recommendation: remove each batch's target links
    # (positive pairs) from the graph the model sees during that step
    # (NCN's target-link removal).
    target_link_removal: bool = False
    # Halve-on-plateau learning rate (torch's ReduceLROnPlateau rule on the
    # validation loss, counted in evaluations): multiply every learning
    # rate by lr_plateau_factor after more than lr_plateau_patience
    # evaluations without a lower validation loss, and end the run once
    # the largest rate falls below min_lr. None: a constant rate.
    lr_plateau_factor: float | None = None
    lr_plateau_patience: int = 10
    min_lr: float = 1e-6
    checkpoint_every: int = 10
    # Progress bar (None: when stderr is a terminal). Without a bar, a log
    # line reports the epoch, loss and best validation score at most every
    # log_interval seconds (0: none), so a run under nohup or a batch
    # scheduler still shows how far it is.
    progress: bool | None = None
    log_interval: float = 60.0


@dataclass(kw_only=True)
class ParallelConfig:
    r"""Distributed training (:mod:`graphkit.pipelines.distributed`), used
    when the process runs under ``torchrun`` or another launcher that sets
    ``RANK`` and ``WORLD_SIZE``.

    ``mode`` is ``none``, ``ddp`` (data-parallel neighbour-sampled
    mini-batches), ``graph`` (graph-parallel full graph), ``pipeline``
    (GNNPipe layer pipeline) or ``hybrid`` (``ways`` graph-parallel ways
    times pipeline stages). ``chunks`` is the number of graph chunks per way
    in ``pipeline`` / ``hybrid`` (None: 4 x the number of stages).
    ``shuffle_chunks``, ``snapshot_period`` and ``cross_chunk_grad`` (with
    ``cross_chunk_scale``) switch GNNPipe's three convergence techniques;
    ``snapshot_period = 1`` means the history holds the last value written.
    ``partition`` is ``auto`` (METIS when available, else ``rcm``),
    ``metis``, ``rcm``, ``bfs``, ``contiguous`` or ``random``.
    ``activation_checkpoint`` keeps only each unit's input per chunk and
    recomputes the unit (same dropout masks) during backward, in
    ``graph`` / ``pipeline`` / ``hybrid``; in ``ddp`` it recomputes each
    layer of the replica's layer-chain encoder on the sampled subgraph:
    less memory, one more forward.
    ``timeout_s`` bounds every collective and point-to-point call.
    """
    mode: str = 'none'
    backend: str | None = None
    timeout_s: float = 300.0
    ways: int = 2
    chunks: int | None = None
    shuffle_chunks: bool = True
    snapshot_period: int = 23
    cross_chunk_grad: bool = True
    cross_chunk_scale: float = 2.0
    partition: str = 'auto'
    activation_checkpoint: bool = False


@dataclass(kw_only=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    out: str | None = None
    device: str = 'cpu'
    deterministic: bool = False
    preset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> 'RunConfig':
        sections = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, value in d.items():
            if key not in sections:
                raise ConfigError(f"Unknown config section '{key}'")
            sub = _section_types().get(key)
            if sub is not None:
                kwargs[key] = sub(**{
                    k: _from_json(v) for k, v in value.items()})
            else:
                kwargs[key] = value
        return cls(**kwargs)


def _section_types() -> dict[str, type]:
    return {'data': DataConfig, 'model': ModelConfig, 'optim': OptimConfig,
            'train': TrainConfig, 'parallel': ParallelConfig}


def _from_json(value: Any) -> Any:
    r"""JSON turns tuples into lists; turn them back."""
    if isinstance(value, list):
        return tuple(value)
    return value


def config_keys() -> list[str]:
    r"""Every ``section.key`` that ``--set`` accepts."""
    keys = []
    for sec, cls in _section_types().items():
        keys += [f'{sec}.{f.name}' for f in dataclasses.fields(cls)]
    keys += [f.name for f in dataclasses.fields(RunConfig)
             if f.name not in _section_types()]
    return keys


def _type_name(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace('typing.', '')


def _coerce(key: str, raw: str, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if raw.strip().lower() in ('none', 'null', '') and \
                type(None) in args:
            return None
        if len(inner) == 1:  # keep the inner type's own message
            return _coerce(key, raw, inner[0])
        for a in inner:
            try:
                return _coerce(key, raw, a)
            except ConfigError:
                continue
        raise ConfigError(f"Bad value '{raw}' for '{key}': expected "
                          f"{_type_name(hint)}")
    if origin is tuple:
        elem = args[0] if args else str
        parts = [p for p in raw.replace('[', '').replace(']', '')
                 .replace('(', '').replace(')', '').split(',') if p.strip()]
        return tuple(_coerce(key, p.strip(), elem) for p in parts)
    if hint is bool:
        low = raw.strip().lower()
        if low in ('1', 'true', 'yes', 'on'):
            return True
        if low in ('0', 'false', 'no', 'off'):
            return False
        raise ConfigError(f"Bad value '{raw}' for '{key}': expected a bool "
                          f"(true/false)")
    if hint in (int, float):
        try:
            return hint(raw)
        except ValueError:
            article = 'an' if hint is int else 'a'
            raise ConfigError(f"Bad value '{raw}' for '{key}': expected "
                              f"{article} {hint.__name__}") from None
    if hint is str:
        return raw
    if hint is dict:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as err:
            raise ConfigError(f"Bad value '{raw}' for '{key}': expected a "
                              f"JSON object, e.g. '{{\"num_train\": 100}}' "
                              f"({err.msg})") from None
        if not isinstance(value, dict):
            raise ConfigError(f"Bad value '{raw}' for '{key}': expected a "
                              f"JSON object")
        return value
    raise ConfigError(f"Cannot set '{key}' of type {_type_name(hint)}")


def _find_key(cfg: RunConfig, key: str) -> tuple[Any, str]:
    parts = key.split('.')
    sections = _section_types()
    if len(parts) == 2 and parts[0] in sections:
        return getattr(cfg, parts[0]), parts[1]
    if len(parts) == 1:
        top = [f.name for f in dataclasses.fields(RunConfig)
               if f.name not in sections]
        if key in top:
            return cfg, key
        owners = [sec for sec, cls in sections.items()
                  if key in {f.name for f in dataclasses.fields(cls)}]
        if len(owners) == 1:
            return getattr(cfg, owners[0]), key
        if len(owners) > 1:
            raise ConfigError(f"Ambiguous key '{key}': use one of "
                              f"{', '.join(f'{o}.{key}' for o in owners)}")
    raise ConfigError(f"Unknown config key '{key}'. Valid keys: "
                      f"{', '.join(config_keys())}")


def apply_overrides(cfg: RunConfig, overrides: Sequence[str]) -> RunConfig:
    r"""Applies ``key=value`` strings to ``cfg`` (in place) and returns it.

    Keys are ``section.field`` (``model.hidden_channels``) or a field name
    that only one section has (``lr``). Values are coerced to the field's
    type; a bad key or value raises :class:`ConfigError` naming the key and
    the expected type.
    """
    for item in overrides:
        if '=' not in item:
            raise ConfigError(f"Override '{item}' must look like key=value")
        key, raw = item.split('=', 1)
        key = key.strip()
        owner, name = _find_key(cfg, key)
        names = {f.name for f in dataclasses.fields(owner)}
        if name not in names:
            raise ConfigError(f"Unknown config key '{key}'. Valid keys: "
                              f"{', '.join(config_keys())}")
        hint = typing.get_type_hints(type(owner))[name]
        setattr(owner, name, _coerce(key, raw, hint))
    return cfg
