"""nothing_restored: a restore that found no checkpoint, followed by saves over another run's.

The TF guide's resume is `ckpt.restore(manager.latest_checkpoint)`: when the directory's
`checkpoint` state file is gone (or names another directory), `latest_checkpoint` is None,
`restore(None)` restores nothing and says nothing, the run trains from scratch, and its
CheckpointManager writes ckpt-1, ckpt-2, ... over the previous run's (RouteNet-Erlang#8). A
first run restores None too, into an empty directory: only a save over a checkpoint another
traced run wrote at the same path makes it a finding.
"""

from __future__ import annotations

import os
from typing import Any

from epochwatch.analysis.findings import WARNING, Finding
from epochwatch.analysis.restore.lineage import MATCH_PATH
from epochwatch.analysis.restore.scan import Found

KIND = "nothing_restored"


def judge(api: str, save: dict[str, Any], found: Found | None) -> Finding | None:
    """The finding for the first save after `api` restored nothing, where `found` (the newest
    save of another run at that path, with other bytes) says what it overwrote."""
    if found is None or found.match != MATCH_PATH:
        return None
    path = str(save.get("path", ""))
    directory = os.path.dirname(path)
    epoch = found.save.get("epoch")
    said = f" (its epoch {epoch + 1})" if isinstance(epoch, int) and not isinstance(epoch, bool) else ""
    evidence = {
        "api": api,
        "path": path,
        "overwritten_run": found.run_id,
        "overwritten_sha256": found.save.get("sha256"),
        "saved_sha256": save.get("sha256"),
    }
    title = (
        f"{api}(None) restored nothing (no checkpoint was found), and this run then saved over run "
        f"{found.run_id}'s checkpoint {path}{said}: it trains from scratch"
    )
    hint = (
        f"the checkpoint to resume from was None: the `checkpoint` state file in {directory} is missing or "
        f"names another place, though run {found.run_id}'s checkpoints were there. To resume, restore one by "
        f"its path (ckpt.restore(os.path.join(directory, 'ckpt-N'))) and check it with "
        f".assert_existing_objects_matched(); to start over, give this run a directory of its own so it does "
        f"not overwrite them"
    )
    return Finding(KIND, WARNING, title, evidence, hint, path, None)
