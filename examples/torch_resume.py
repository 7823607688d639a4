"""The textbook "loss is high after loading" in PyTorch, and the fix, traced by epochwatch.

    python examples/torch_resume.py train  --ckpt /tmp/ckpt.pt            # parent run
    python examples/torch_resume.py resume --ckpt /tmp/ckpt.pt            # the mistake
    python examples/torch_resume.py train  --ckpt /tmp/full.pt --full
    python examples/torch_resume.py resume --ckpt /tmp/full.pt --full     # the fix
    epochwatch report ./epochwatch-traces

The mistake: the parent saves `model.state_dict()` only. The resumed run builds a fresh Adam
(no moment estimates, step 0) and a fresh learning-rate schedule (back at its initial, large
rate), so the first epochs after the restore undo what the parent learned. epochwatch says
`optimizer_state_not_restored` and `loss_jump_after_restore` on the resumed run. With
`--full`, the checkpoint holds the model's, optimizer's, scheduler's and GradScaler's state
and the resumed run continues where the parent stopped: no finding.

Needs only PyTorch (no TensorFlow); runs on the CPU in a few seconds.
"""

from __future__ import annotations

import argparse

import epochwatch.hook  # noqa: F401  (before or after `import torch`: either works)
from epochwatch import hook

import torch  # isort: skip


def data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(512, 8, generator=g)
    w = torch.randn(8, 1, generator=g)
    return x, x @ w + 0.01 * torch.randn(512, 1, generator=g)


def build() -> tuple[
    torch.nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler, torch.amp.GradScaler
]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.5)
    scaler = torch.amp.GradScaler("cpu")  # "cuda" on a GPU, with torch.autocast around the forward
    return model, optimizer, scheduler, scaler


def train(
    epochs: int,
    start: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
) -> None:
    x, y = data()
    for epoch in range(start, start + epochs):
        with hook.epoch(epoch):
            for i in range(0, len(x), 32):
                optimizer.zero_grad()
                loss = torch.nn.functional.mse_loss(model(x[i : i + 32]), y[i : i + 32])
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                hook.log(loss=loss.detach())
            scheduler.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("train", "resume"))
    parser.add_argument("--ckpt", default="ckpt.pt")
    parser.add_argument("--full", action="store_true", help="save and restore the whole training state")
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    model, optimizer, scheduler, scaler = build()
    if args.mode == "train":
        train(args.epochs, 0, model, optimizer, scheduler, scaler)
        if args.full:
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "epoch": args.epochs,
                },
                args.ckpt,
            )
        else:
            torch.save(model.state_dict(), args.ckpt)  # the mistake: the optimizer is left behind
        return
    checkpoint = torch.load(args.ckpt)
    if args.full:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        start = int(checkpoint["epoch"])
    else:
        model.load_state_dict(checkpoint)
        start = args.epochs
    train(3, start, model, optimizer, scheduler, scaler)


if __name__ == "__main__":
    main()
