"""Whole training steps: SPE's overhead in a real model, and Lightning's overhead over a plain loop.

G10 (README "Benchmarks"): a 6-layer model (d_model 512, 8 heads, Performer, codes shared), one
training step with sineSPE over the same model without positional encoding: target <= 1.15x. The same
ratio for convSPE (P=128) is reported beside it, without a target.
G13: Lightning's training step over a plain PyTorch loop on the same model, data and optimizer:
target <= 1.05x. Both are ratios of medians measured in this one process, alternating A/B.
"""

from __future__ import annotations

import functools
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from bench.common import Result, main_cli, resolve_device, run_parts, synchronize
from spelab.nn import ClassificationHead, ConvSPE, PerformerAttention, SineSPE, Transformer

SIZES = {  # device -> (batch, length, steps per measurement)
    "cpu": dict(batch=2, length=256, steps=10, lightning_steps=60, lightning_d=128, lightning_layers=2),
    "cuda": dict(batch=8, length=2048, steps=20, lightning_steps=200, lightning_d=512, lightning_layers=6),
}


class Classifier(torch.nn.Module):
    def __init__(self, d_model: int, layers: int, pos_enc, max_len: int) -> None:
        super().__init__()
        self.encoder = Transformer(
            vocab_size=256,
            d_model=d_model,
            num_layers=layers,
            num_heads=8,
            ff_dim=4 * d_model,
            dropout=0.1,
            max_len=max_len,
            attention=functools.partial(PerformerAttention, num_features=256),
            pos_enc=pos_enc,
        )
        self.head = ClassificationHead(d_model, 10)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(ids))


def _data(batch: int, length: int, n_batches: int, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [
        (
            torch.randint(1, 256, (batch, length), generator=g).to(device),
            torch.randint(0, 10, (batch,), generator=g).to(device),
        )
        for _ in range(n_batches)
    ]


def _step_time(model: torch.nn.Module, opt: torch.optim.Optimizer, ids, y, device: torch.device) -> float:
    """Wall time of one plain training step: forward, loss, backward, AdamW step, zero_grad."""
    synchronize(device)
    t0 = time.perf_counter()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        loss = torch.nn.functional.cross_entropy(model(ids), y)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    synchronize(device)
    return time.perf_counter() - t0


def _plain_step_times(model: torch.nn.Module, batches, device: torch.device) -> list[float]:
    """Per-step wall times of a plain loop over `batches` with a fresh AdamW."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    return [_step_time(model, opt, ids, y, device) for ids, y in batches]


def spe_overhead(device: torch.device, compare_shared: bool | None = None) -> list[Result]:
    """compare_shared (default: on CUDA): also time sineSPE forced onto its shared codes. At the GPU
    size (N·H·D·R = 2^26) "auto" takes the chunked path; the pair decides that threshold by measurement."""
    s = SIZES[device.type]
    compare_shared = device.type == "cuda" if compare_shared is None else compare_shared
    schemes = {
        "none": None,
        "sinespe": functools.partial(SineSPE, num_realizations=64, num_sines=10, gated=True),
        "convspe": functools.partial(ConvSPE, num_realizations=64, kernel_size=128, gated=True),
    }
    models = {name: Classifier(512, 6, pos, s["length"]).to(device) for name, pos in schemes.items()}
    if compare_shared:
        models["sinespe_shared"] = Classifier(512, 6, schemes["sinespe"], s["length"]).to(device)
        for module in models["sinespe_shared"].modules():
            if isinstance(module, SineSPE):
                module.strategy = "shared"
    batches = _data(s["batch"], s["length"], s["steps"], device)
    opts = {name: torch.optim.AdamW(model.parameters(), lr=1e-4) for name, model in models.items()}
    for name, model in models.items():  # warm-up: the optimizer's state, caches, the kernels' first call
        for ids, y in batches[:2]:
            _step_time(model, opts[name], ids, y, device)
    times = {name: [] for name in models}
    for i in range(2 * (s["steps"] - 2)):  # one step of each model in turn: drifting load hits all alike
        ids, y = batches[i % len(batches)]
        for name, model in models.items():
            times[name].append(_step_time(model, opts[name], ids, y, device))
    ratio = {
        name: torch.tensor(t).median().item() / torch.tensor(times["none"]).median().item() for name, t in times.items()
    }
    note = f"B={s['batch']} N={s['length']} R=64, codes shared, gated"
    results = [
        Result(
            "train step, 6x512 Performer: sineSPE / no PE",
            ratio["sinespe"],
            "x",
            target=1.15,
            op="<=",
            note=note + ", K=10",
        ),
        Result("train step, 6x512 Performer: convSPE / no PE", ratio["convspe"], "x", note=note + ", P=128"),
    ]
    if compare_shared:
        results.append(
            Result(
                "train step, 6x512 Performer: sineSPE with strategy='shared' / no PE",
                ratio["sinespe_shared"],
                "x",
                note=note + ", K=10",
            )
        )
    return results


def lightning_overhead(device: torch.device) -> list[Result]:
    import lightning.pytorch as pl

    s = SIZES[device.type]
    n = s["lightning_steps"]
    batches = _data(s["batch"], s["length"] // 2, n, torch.device("cpu"))
    ids = torch.cat([b[0] for b in batches])
    ys = torch.cat([b[1] for b in batches])
    loader = DataLoader(TensorDataset(ids, ys), batch_size=s["batch"], shuffle=False)

    class Lit(pl.LightningModule):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def training_step(self, batch, _):
            x, y = batch
            return torch.nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=1e-4)

    class StepTimer(pl.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self._t0 = 0.0

        def on_train_batch_start(self, *args) -> None:
            synchronize(device)
            self._t0 = time.perf_counter()

        def on_train_batch_end(self, *args) -> None:
            synchronize(device)
            self.times.append(time.perf_counter() - self._t0)

    def make_net() -> torch.nn.Module:
        torch.manual_seed(0)
        return Classifier(s["lightning_d"], s["lightning_layers"], None, s["length"]).to(device)

    lit_times, plain_times = [], []
    for _ in range(2):
        timer = StepTimer()
        trainer = pl.Trainer(
            max_steps=n,
            accelerator=device.type,
            devices=1,
            logger=False,
            enable_progress_bar=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            precision="bf16-mixed" if device.type == "cuda" else "32-true",
            callbacks=[timer],
        )
        trainer.fit(Lit(make_net()), train_dataloaders=loader)
        lit_times.extend(timer.times[n // 10 :])
        plain = _plain_step_times(make_net(), [(x.to(device), y.to(device)) for x, y in loader], device)
        plain_times.extend(plain[n // 10 :])
    ratio = torch.tensor(lit_times).median().item() / torch.tensor(plain_times).median().item()
    return [
        Result(
            "train step: Lightning / plain loop",
            ratio,
            "x",
            target=1.05,
            op="<=",
            note=f"d={s['lightning_d']} layers={s['lightning_layers']}, median of {len(lit_times)} steps each",
        )
    ]


def main(device: str = "cpu") -> list[Result]:
    dev = resolve_device(device)
    torch.manual_seed(0)
    return run_parts(
        "train_step", dev, (functools.partial(spe_overhead, dev), functools.partial(lightning_overhead, dev))
    )


if __name__ == "__main__":
    main_cli(main, __doc__)
