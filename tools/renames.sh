#!/usr/bin/env bash
# Names that meant two things (issue 21, part 4), renamed so each means one thing:
#
#   epochwatch/environment.py          -> epochwatch/envvars.py           (the EPOCHWATCH_* variables)
#   fingerprint.environment()          -> fingerprint.collect()           (the environment fingerprint)
#   analysis/restore/environment.py    -> analysis/restore/machine.py     (restore checks: versions, machine)
#   report/progress.py                 -> report/progress_bar.py          (report's progress bar)
#   analysis/restore/progress.py       -> analysis/restore/continuation.py (restore checks: the epochs after it)
#   top/view.py                        -> top/layout.py                   (top's screen as lines)
#   top/daemon.py                      -> top/status_source.py            (top reading the daemon's status)
#
# (`JobView` and top's `Finding` went in the ledger branch's own commits: analysis/job.Job,
# analysis/ledger.Ledger.) `cli/daemon.py` keeps its name: one module per subcommand, named
# after it, is the registry's convention (cli/__init__.py COMMANDS).
#
# Idempotent: a move already made is skipped, and the text replacements only match the old
# names, so the lead can run it again after merging the other branches:
#     tools/renames.sh && .venv/bin/ruff check --fix epochwatch tests bench && .venv/bin/ruff format .
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"

move() {  # old new
    if [ -e "$1" ] && [ ! -e "$2" ]; then
        git mv "$1" "$2"
    fi
}

move epochwatch/analysis/restore/environment.py epochwatch/analysis/restore/machine.py
move epochwatch/analysis/restore/progress.py epochwatch/analysis/restore/continuation.py
move epochwatch/report/progress.py epochwatch/report/progress_bar.py
move epochwatch/top/view.py epochwatch/top/layout.py
move epochwatch/top/daemon.py epochwatch/top/status_source.py
move epochwatch/environment.py epochwatch/envvars.py

mapfile -t FILES < <(git ls-files -- epochwatch tests bench docs examples hooks README.md \
    | grep -E '\.(py|md|pyi|sh|txt|toml|cfg|ini)$' | grep -v '^tools/renames\.sh$' \
    | while read -r f; do [ -f "$f" ] && echo "$f"; done)

# Two package docstrings name their modules bare (before the general rules below).
[ -f epochwatch/analysis/restore/__init__.py ] && perl -pi -e '
    s/\bprogress\.py, environment\.py\b/continuation.py, machine.py/g;
' epochwatch/analysis/restore/__init__.py
[ -f epochwatch/top/__init__.py ] && perl -pi -e '
    s/(?<![\/\w])daemon\.py\b/status_source.py/g; s/(?<![\/\w])view\.py\b/layout.py/g;
' epochwatch/top/__init__.py

# Every file: module paths, file names, and the fingerprint function.
perl -pi -e '
    s/\banalysis\.restore\.environment\b/analysis.restore.machine/g;
    s/\brestore\/environment\.py\b/restore\/machine.py/g;
    s/\banalysis\.restore\.progress\b/analysis.restore.continuation/g;
    s/\brestore\/progress\.py\b/restore\/continuation.py/g;
    s/\bepochwatch\.report\.progress\b(?!_)/epochwatch.report.progress_bar/g;
    s/\breport\/progress\.py\b/report\/progress_bar.py/g;
    s/\bepochwatch\.top\.view\b/epochwatch.top.layout/g;
    s/\btop\/view\.py\b/top\/layout.py/g;
    s/\bepochwatch\.top\.daemon\b/epochwatch.top.status_source/g;
    s/\btop\/daemon\.py\b/top\/status_source.py/g;
    s/\bepochwatch\.environment\b/epochwatch.envvars/g;
    s/(?<![\/\w])environment\.py\b/envvars.py/g;
    s/\bfrom epochwatch\.fingerprint import environment as fingerprint_environment\b/from epochwatch.fingerprint import collect as collect_fingerprint/g;
    s/\bfingerprint_environment\(/collect_fingerprint(/g;
    s/\bfingerprint\.environment\(\)/fingerprint.collect()/g;
' "${FILES[@]}"

# The function itself, and the one test that calls it by its bare name.
perl -pi -e 's/^def environment\(/def collect(/' epochwatch/fingerprint.py
if grep -q '^from epochwatch.fingerprint import environment$' tests/unit/test_restore_watcher.py 2>/dev/null; then
    perl -pi -e '
        s/^from epochwatch\.fingerprint import environment$/from epochwatch.fingerprint import collect as collect_fingerprint/;
        s/(?<![\w.])environment\(\)/collect_fingerprint()/g;
    ' tests/unit/test_restore_watcher.py
fi

# Modules imported by name from their package (`from pkg import a, old`): the name in the
# import line, its attribute uses (`old.x`) and the module passed as an argument
# (`setattr(old, ...)`), in those files only.
rename_imported() {  # package old new
    local pkg="$1" old="$2" new="$3" f
    for f in $(grep -lE "^\s*from ${pkg//./\\.} import .*\b${old}\b" "${FILES[@]}" 2>/dev/null | grep '\.py$' || true); do
        OLD="$old" NEW="$new" PKG="$pkg" perl -pi -e '
            my ($o, $n, $p) = ($ENV{OLD}, $ENV{NEW}, quotemeta($ENV{PKG}));
            if (/^\s*from $p import /) { s/\b$o\b(?!\s+as\b)/$n/g; }
            else { s/(?<![\w.])$o\.(?=[A-Za-z_])/$n./g; s/([(,]\s*)$o(?=\s*[,)])/$1$n/g; }
        ' "$f"
    done
}
rename_imported epochwatch environment envvars
rename_imported epochwatch.report progress progress_bar
rename_imported epochwatch.top view layout
rename_imported epochwatch.top daemon status_source

# The layer test names top-level modules.
perl -pi -e 's/^(\s*)"environment",$/$1"envvars",/' tests/unit/test_layers.py

echo "renamed; now: ruff check --fix (import order) and ruff format"
