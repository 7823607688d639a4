"""weights_not_restored: a tf.train.Checkpoint restore that left most of the program's
variables at their initial values.

TF matches a checkpoint to the program's objects by the names they are tracked under: a key
renamed between the save and the restore (`Checkpoint(net=model)` saved,
`Checkpoint(model=model)` restored: tensorflow#42272) restores the step counter and the
optimizer's `iterations`, and none of the model's weights. The hook reads that from the
load status at restore time (`unmatched` in the restore record,
integrations/tf_unmatched.py); TF itself warns only at exit, and `expect_partial()` silences
even that. A restore that leaves less than half the parameters (a new head for transfer
learning, a metric added since) is left alone, as is one that left only an optimizer's
(optimizer_state_not_restored's).
"""

from __future__ import annotations

import os

from epochwatch.analysis.findings import WARNING, Finding
from epochwatch.analysis.restore.resume import Resume

KIND = "weights_not_restored"
SHARE = 0.5  # of the program's parameters left without a value


def check_unmatched(r: Resume) -> list[Finding]:
    u = r.restore.get("unmatched")
    if not isinstance(u, dict):
        return []
    held = u.get("with_values")
    if isinstance(held, dict) and _count(held.get("variables")):
        return [_not_reached(r, held)]
    params, total = _count(u.get("parameters")), _count(u.get("parameters_total"))
    keys, unused = _names(u.get("keys")), _names(u.get("file_keys_unused"))
    if not total or params < SHARE * total or not keys or all("optim" in k.lower() for k in keys):
        return []
    api = str(r.restore.get("api", "tf.train.Checkpoint.restore"))
    held = " and ".join(f"`{k}`" for k in keys)
    title = (
        f"{api} of {os.path.basename(r.target)} left {_count(u.get('variables'))} of "
        f"{_count(u.get('variables_total'))} variables ({params:,} of {total:,} parameters, in {held}) "
        "at their initial values"
    )
    if unused:
        title += f"; the checkpoint's {', '.join(f'`{k}`' for k in unused)} matched nothing here"
    title += ": what uses them starts from scratch"
    evidence = {
        "api": api,
        "path": r.target,
        "variables": u.get("variables"),
        "parameters": params,
        "variables_total": u.get("variables_total"),
        "parameters_total": total,
        "keys": keys,
        "file_keys_unused": unused,
    }
    if unused:
        hint = (
            f"TF matches a checkpoint by the names its objects are tracked under: this checkpoint holds "
            f"{', '.join(unused)} where this program tracks {', '.join(keys)} (a key renamed since the save?). "
            f"Restore with the names it was saved under (tf.train.Checkpoint({unused[0]}=..., ...)), or load it "
            "once that way and save it under the new names; "
        )
    else:
        hint = f"the checkpoint holds no values for {', '.join(keys)}: save them in it (tf.train.Checkpoint(...) naming every object to resume); "
    hint += (
        "check each restore with status.assert_existing_objects_matched(), which raises on exactly this, "
        "rather than expect_partial(), which hides it"
    )
    return [Finding(KIND, WARNING, title, evidence, hint, r.target, r.first_epoch)]


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _names(value: object) -> list[str]:
    return [str(v)[:80] for v in value[:8] if isinstance(v, str)] if isinstance(value, list) else []


def _not_reached(r: Resume, held: dict[str, object]) -> Finding:
    """Variables the checkpoint holds values for, at their own paths, that did not get them:
    made after the restore where the waiting value never reached them (Keras 3 layers built
    after a deferred restore make a new kernel: tensorflow#39593)."""
    paths = _names(held.get("paths"))
    api = str(r.restore.get("api", "tf.train.Checkpoint.restore"))
    n, params = _count(held.get("variables")), _count(held.get("parameters"))
    title = (
        f"{api} of {os.path.basename(r.target)} left {n} variable{'s' if n != 1 else ''} ({params:,} parameters: "
        f"{', '.join(paths)}) at their initial values though the checkpoint holds values for them: what uses "
        "them starts from scratch"
    )
    evidence = {"api": api, "path": r.target, "variables": n, "parameters": params, "paths": paths}
    hint = (
        "they were made after the restore, and the value waiting for them never reached them (Keras 3 layers "
        "built after a deferred tf.train.Checkpoint restore make a new variable: tensorflow#39593). Build the "
        "model (call it once on a batch) and the optimizer (optimizer.build(model.trainable_variables)) before "
        "restore(), and check it with status.assert_consumed()"
    )
    return Finding(KIND, WARNING, title, evidence, hint, r.target, r.first_epoch)
