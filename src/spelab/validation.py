"""Validate a composed config before any data or model is built.

`validate_config(cfg)` walks the config and checks every key it knows by its *name* wherever it
appears (so a new task or model option named `batch_size`, `num_heads`, `*_dropout`, ... is checked
without editing this file), then checks the combinations that cannot work. Keys it does not know are
left alone. Every problem becomes a `ConfigError` naming the dotted key, the value and what is
allowed; when there are several, the first is raised and the others are listed with it.

Hydra already refuses unknown group options (`attention=foo`) at compose time, listing the
available ones; this module covers values and combinations.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

from spelab.errors import ConfigError
from spelab.plain_config import to_plain

# ---------------------------------------------------------------- value rules (by key name)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class Rule:
    allowed: str
    ok: Callable[[Any], bool]


POSITIVE_INT = Rule("a positive integer (>= 1)", lambda v: _is_int(v) and v >= 1)
NONNEG_INT = Rule("an integer >= 0", lambda v: _is_int(v) and v >= 0)
PROBABILITY = Rule("a number in [0, 1)", lambda v: _is_num(v) and 0 <= v < 1)
PROB_CLOSED = Rule("a number in [0, 1]", lambda v: _is_num(v) and 0 <= v <= 1)
POSITIVE_NUM = Rule("a finite number > 0", lambda v: _is_num(v) and v > 0)
NONNEG_NUM = Rule("a finite number >= 0", lambda v: _is_num(v) and v >= 0)
STEPS = Rule("-1 (no limit) or a positive integer", lambda v: _is_int(v) and (v == -1 or v >= 1))
SEED = Rule("an integer in [0, 2**32 - 1]", lambda v: _is_int(v) and 0 <= v < 2**32)
BOOL = Rule("true or false", lambda v: isinstance(v, bool))
MODE = Rule("'min' or 'max'", lambda v: v in ("min", "max"))
FEATURE_MAP = Rule("'elu' or 'relu'", lambda v: v in ("elu", "relu"))
REDRAW = Rule(
    "'step', 'never' or a positive integer (steps between redraws)",
    lambda v: v in ("step", "never") or (_is_int(v) and v >= 1),
)
LIMIT_BATCHES = Rule(
    "an integer >= 0 (batches) or a fraction in [0, 1]",
    lambda v: (_is_int(v) and v >= 0) or (isinstance(v, float) and 0 <= v <= 1),
)
VAL_INTERVAL = Rule(
    "a positive integer (batches) or a fraction in (0, 1]",
    lambda v: (_is_int(v) and v >= 1) or (isinstance(v, float) and 0 < v <= 1),
)
BETAS = Rule(
    "two numbers in [0, 1)",
    lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_num(b) and 0 <= b < 1 for b in v),
)

# exact key names; None values are always allowed (they mean "default" / "off")
EXACT: dict[str, Rule] = {
    "seed": SEED,
    # model sizes
    "d_model": POSITIVE_INT,
    "num_layers": POSITIVE_INT,
    "num_heads": POSITIVE_INT,
    "ff_dim": POSITIVE_INT,
    "head_dim": POSITIVE_INT,
    "max_len": POSITIVE_INT,
    "vocab_size": POSITIVE_INT,
    # attention backends / positional schemes
    "num_features": POSITIVE_INT,
    "num_realizations": POSITIVE_INT,
    "num_sines": POSITIVE_INT,
    "kernel_size": POSITIVE_INT,
    "feature_map": FEATURE_MAP,
    "redraw": REDRAW,
    "gated": BOOL,
    "causal": BOOL,
    "share_code": BOOL,
    # data
    "batch_size": POSITIVE_INT,
    "eval_batch_size": POSITIVE_INT,
    "num_workers": NONNEG_INT,
    "max_length": POSITIVE_INT,
    "min_length": POSITIVE_INT,
    "num_classes": NONNEG_INT,
    "max_depth": POSITIVE_INT,
    "max_args": POSITIVE_INT,
    # optimisation
    "lr": POSITIVE_NUM,
    "learning_rate": POSITIVE_NUM,
    "weight_decay": NONNEG_NUM,
    "eps": POSITIVE_NUM,
    "betas": BETAS,
    "warmup_steps": NONNEG_INT,
    "gradient_clip_val": NONNEG_NUM,
    "accumulate_grad_batches": POSITIVE_INT,
    # trainer / checkpoints
    "max_steps": STEPS,
    "max_epochs": STEPS,
    "min_steps": NONNEG_INT,
    "min_epochs": NONNEG_INT,
    "log_every_n_steps": POSITIVE_INT,
    "check_val_every_n_epoch": POSITIVE_INT,
    "val_check_interval": VAL_INTERVAL,
    "every_n_train_steps": NONNEG_INT,
    "every_n_epochs": NONNEG_INT,
    "limit_train_batches": LIMIT_BATCHES,
    "limit_val_batches": LIMIT_BATCHES,
    "limit_test_batches": LIMIT_BATCHES,
    "num_nodes": POSITIVE_INT,
    "ckpt_every_n_steps": POSITIVE_INT,
    "test_ckpt": Rule("'best' or 'last'", lambda v: v in ("best", "last")),
    "fail_at_step": NONNEG_INT,
    "force": BOOL,
    "resume": BOOL,
    "wandb_online": BOOL,
    "lock_wait": BOOL,
}
# name patterns, tried in order when no exact rule matches
PATTERNS: list[tuple[re.Pattern[str], Rule]] = [
    (re.compile(r"^(\w+_)?dropout$"), PROBABILITY),  # dropout, attn_dropout, ...
    (re.compile(r"^(\w+_)?prob$"), PROB_CLOSED),  # feat_redraw_prob, ...
    (re.compile(r"^num_(train|examples|samples)\w*$"), POSITIVE_INT),
    (re.compile(r"^num_(val|test)\w*$"), NONNEG_INT),  # 0 = no such split
    (re.compile(r"^\w+_(size|dim|length|len)$"), POSITIVE_INT),  # image_size, emb_dim, seq_length
]
# subtrees whose keys belong to other tools (their own names, their own meanings)
SKIP_SUBTREES = ("hydra", "logger")


def _rule_for(name: str) -> Rule | None:
    if name in EXACT:
        return EXACT[name]
    for pattern, rule in PATTERNS:
        if pattern.match(name):
            return rule
    return None


# ---------------------------------------------------------------- reading the config


def _walk(node: Any, prefix: str = "") -> Iterator[tuple[str, str, Any]]:
    """Yield (dotted key, leaf name, value) for every mapping entry, depth first."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if not prefix and key in SKIP_SUBTREES:
                continue
            yield path, str(key), value
            yield from _walk(value, path)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _walk(value, f"{prefix}[{i}]")


def _get(cfg: Mapping, path: str) -> Any:
    node: Any = cfg
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _find(cfg: Mapping, subtree: str, name: str) -> list[tuple[str, Any]]:
    root = _get(cfg, subtree)
    return [(f"{subtree}.{p}", v) for p, n, v in _walk(root) if n == name and v is not None] if root else []


def _pos_enc_option(cfg: Mapping):
    """The conf/pos_enc option that `model.pos_enc._target_` builds (spelab.registry), or None."""
    from spelab import registry

    return registry.by_target("pos_enc", _get(cfg, "model.pos_enc._target_"))


# ---------------------------------------------------------------- combination rules


def _combinations(cfg: Mapping) -> Iterator[ConfigError]:
    model = _get(cfg, "model") or {}
    d_model, num_heads = model.get("d_model"), model.get("num_heads")
    head_dim = None
    if _is_int(d_model) and _is_int(num_heads) and d_model > 0 and num_heads > 0:
        if d_model % num_heads:
            divisors = [h for h in range(1, min(d_model, 64) + 1) if d_model % h == 0]
            yield ConfigError("model.num_heads", num_heads, f"a divisor of model.d_model={d_model}, e.g. {divisors}")
        else:
            head_dim = d_model // num_heads
    from spelab.compat import pair_problems  # attention x pos_enc x task pairs that cannot work

    yield from pair_problems(cfg)
    # per-scheme facts: the `# @...` header lines of conf/pos_enc/<name>.yaml
    option = _pos_enc_option(cfg)
    meta, name = (option.meta, option.name) if option is not None else ({}, None)
    multiple = meta.get("head_dim_multiple")
    if _is_int(multiple) and multiple > 1 and head_dim is not None and head_dim % multiple:
        what = "an even head_dim" if multiple == 2 else f"head_dim divisible by {multiple}"
        yield ConfigError(
            "model.num_heads",
            num_heads,
            f"a value giving {what} = d_model/num_heads with pos_enc={name} (it rotates pairs of "
            f"channels: '# @head_dim_multiple {multiple}' in conf/pos_enc/{name}.yaml); "
            f"now head_dim = {d_model}/{num_heads} = {head_dim}",
        )
    max_len = model.get("max_len")
    if meta.get("absolute_table") is True and _is_int(max_len) and max_len > 0:
        # absolute tables have max_len rows: longer task sequences would index past them
        # the length fed to the model (a generator's own max_length may be longer: inputs are truncated)
        for key in ("task.max_length", "task.datamodule.max_length"):
            length = _get(cfg, key)
            if _is_int(length) and length > max_len:
                yield ConfigError(
                    "model.max_len",
                    max_len,
                    f">= {key}={length} with pos_enc={name} (an absolute table of max_len positions)",
                )
    # any node with both bounds: the lower one cannot exceed the upper one
    for path, _, node in [("", "", cfg), *_walk(cfg)]:
        if isinstance(node, Mapping) and not path.startswith(SKIP_SUBTREES):
            lo, hi = node.get("min_length"), node.get("max_length")
            if _is_int(lo) and _is_int(hi) and 0 < hi < lo:
                prefix = f"{path}." if path else ""
                yield ConfigError(f"{prefix}min_length", lo, f"<= {prefix}max_length={hi}")
    kinds = [v for k, v in _find(cfg, "task", "kind")]
    for key, n in _find(cfg, "task", "num_classes"):
        if "classification" in kinds and _is_int(n) and n < 2:
            yield ConfigError(key, n, "an integer >= 2 for a classification task")
    # `mode` is a common word; only the monitored-metric modes are checked
    modes = [("task.mode", _get(cfg, "task.mode"))] + _find(cfg, "callbacks", "mode")
    for key, mode in modes:
        if mode is not None and not MODE.ok(mode):
            yield ConfigError(key, mode, MODE.allowed)


# ---------------------------------------------------------------- entry point


def find_problems(cfg: Any) -> list[ConfigError]:
    """All problems found in `cfg` (a DictConfig or a plain mapping), in config order."""
    plain = to_plain(cfg)
    if not isinstance(plain, Mapping):
        return [ConfigError("<root>", type(plain).__name__, "a mapping of config groups")]
    problems: list[ConfigError] = []
    for path, name, value in _walk(plain):
        rule = _rule_for(name)
        if rule is None or value is None or isinstance(value, (Mapping, list)) and rule is not BETAS:
            continue
        if not rule.ok(value):
            problems.append(ConfigError(path, value, rule.allowed))
    problems.extend(_combinations(plain))
    return problems


def validate_config(cfg: Any) -> None:
    """Raise ConfigError (the first problem, listing the others) if any value or combination is invalid."""
    problems = find_problems(cfg)
    if not problems:
        return
    first = problems[0]
    if len(problems) > 1:
        others = "; ".join(f"{p.key}={p.value!r} (allowed: {p.allowed})" for p in problems[1:])
        raise ConfigError(first.key, first.value, first.allowed, reason=f"also invalid: {others}")
    raise first
