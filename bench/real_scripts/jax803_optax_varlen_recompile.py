# Source: https://github.com/jax-ml/jax/issues/803 ("Jit with unknown shape": "jit will recompile
# the function for each new set of input shapes ... bucket ... and pad minibatches") and
# patrick-kidger/diffrax#111 (a recompile at the 39th step: the last, smaller batch). A pure
# JAX + optax loop: an MLP over mean-pooled token embeddings, `@jax.jit` update with
# `optax.adam`, batches of 32 sequences padded to the longest in the batch (lengths 5-120; each
# pool of 320 sorted by length first, a bucket iterator), so nearly every batch has a new shape
# and the step compiles again until most widths were seen. 8 epochs of 30 batches.
# RS_SORT=0: no sorting: a batch of 32 random lengths is nearly always 110-120 wide: 13
# compiles over 240 steps, fewer than one per 10 steps.
# RS_BUCKET=1: pad to one of 4 bucket lengths (32, 64, 96, 128): 4 compiles, then none.
# RS_LASTBATCH=1: fixed length 128, 950 rows: 29 full batches and one of 22 each epoch: 2
# compiles, both in epoch 1 (diffrax#111's shape: healthy after the first epoch).
# RS_JIT_IN_LOOP=1 (with RS_BUCKET=1): `jax.jit(lambda ...)` made anew at each epoch's start
# (equinox#1141: "it will recompile if you put the jit inside the for-loop"): every bucket
# width compiles again every epoch. RS_EPOCHS sets the epochs (8).
# Truth: compiles of the update (its Python body runs once per compile), epoch times, RSS.
import os
import sys
import time

import _hook  # bench/real_scripts/_hook.py: the hook unless PLAIN=1
import jax
import jax.numpy as jnp
import numpy as np
import optax

BUCKET = os.environ.get("RS_BUCKET") == "1"
LAST = os.environ.get("RS_LASTBATCH") == "1"
SORT = os.environ.get("RS_SORT", "1") == "1"
JIT_IN_LOOP = os.environ.get("RS_JIT_IN_LOOP") == "1"
EPOCHS = int(os.environ.get("RS_EPOCHS", "8"))
rng = np.random.default_rng(803)
N = 950 if LAST else 960
lengths = np.full(N, 128) if LAST else rng.integers(5, 121, N)
tokens = [rng.integers(1, 5000, n) for n in lengths]
labels = rng.integers(0, 2, N)
k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
params = {
    "emb": jax.random.normal(k1, (5000, 64)) * 0.05,
    "w1": jax.random.normal(k2, (64, 256)) * 0.05,
    "w2": jax.random.normal(k3, (256, 2)) * 0.05,
}
_hook.mark()
tx = optax.adam(1e-3)
opt_state = tx.init(params)
compiles = [0]


def loss_fn(p, ids, y):
    mask = (ids > 0).astype(jnp.float32)[..., None]
    h = (p["emb"][ids] * mask).sum(1) / jnp.maximum(mask.sum(1), 1.0)
    logits = jax.nn.relu(h @ p["w1"]) @ p["w2"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def update_fn(p, s, ids, y):
    compiles[0] += 1  # runs only while tracing
    loss, grads = jax.value_and_grad(loss_fn)(p, ids, y)
    updates, s = tx.update(grads, s, p)
    return optax.apply_updates(p, updates), s, loss


update = jax.jit(update_fn)


def batches(order):
    # a "bucket iterator": sort each pool of 320 by length, then batch it (less padding)
    if SORT:
        order = np.concatenate(
            [sorted(order[i : i + 320], key=lambda j: len(tokens[j])) for i in range(0, N, 320)]
        )
    starts = list(range(0, N, 32))
    rng.shuffle(starts)
    for i in starts:
        idx = order[i : i + 32]
        longest = max(len(tokens[j]) for j in idx)
        width = int(np.ceil(longest / 32) * 32) if BUCKET else longest
        ids = np.zeros((len(idx), width), np.int32)
        for r, j in enumerate(idx):
            ids[r, : len(tokens[j])] = tokens[j]
        yield ids, labels[idx]


times, rss, per_epoch = [], [], []
for _epoch in range(EPOCHS):
    t0, c0 = time.perf_counter(), compiles[0]
    if JIT_IN_LOOP:
        update = jax.jit(lambda p, s, ids, y: update_fn(p, s, ids, y))
    for ids, y in batches(rng.permutation(N)):
        params, opt_state, loss = update(params, opt_state, ids, y)
    loss.block_until_ready()
    times.append(round(time.perf_counter() - t0, 2))
    per_epoch.append(compiles[0] - c0)
    rss.append(round(_hook._rss_mib()))
print(
    f"TRUTH bucket={BUCKET} last={LAST} jit_in_loop={JIT_IN_LOOP}: compiles per epoch {per_epoch} (total {compiles[0]}); "
    f"epoch s {times}; RSS {rss} MiB",
    file=sys.stderr,
)
