"""The README as a user and the package index read it: every config block loads with the loader
that will read it, every python block compiles, every shell block is run (the integration test)
or says why not, and every link works off GitHub too (absolute, pointing at a file that exists).

docs/daemon.md and docs/metrics.md carry the rest of the daemon's config: their blocks too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from epochwatch.cli.service import shipped
from epochwatch.daemon.config import ConfigError, parse_config
from tests.readme_blocks import SHELL, Block, blocks
from tests.support import REPO

README = REPO / "README.md"
DOCUMENTS = [README, REPO / "docs" / "daemon.md", REPO / "docs" / "metrics.md"]
REPO_URL = "https://github.com/epochwatch/epochwatch"
_ALL = [(doc, b) for doc in DOCUMENTS for b in blocks(doc)]


def _of(*languages: str) -> list[tuple[Path, Block]]:
    return [(doc, b) for doc, b in _ALL if b.language in languages]


def _id(item: tuple[Path, Block]) -> str:
    return f"{item[0].name}:{item[1].id}"


def test_the_readme_starts_with_its_two_commands() -> None:
    first = blocks(README)[0]
    assert first.language == "sh" and [line.split("#")[0].strip() for line in first.text.splitlines()] == [
        "make demo",
        "make test",
    ]


def test_every_block_has_a_language_the_tests_know() -> None:
    known = SHELL | {"toml", "yaml", "json", "python", ""}
    assert [(_id(x), x[1].language) for x in _ALL if x[1].language not in known] == []


@pytest.mark.parametrize("item", _of("toml"), ids=_id)
def test_toml_blocks_load_with_the_daemons_loader(item: tuple[Path, Block]) -> None:
    parse_config(item[1].text, _id(item))


@pytest.mark.parametrize("item", _of("yaml"), ids=_id)
def test_yaml_blocks_parse(item: tuple[Path, Block]) -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML comes with the dev extra")
    assert yaml.safe_load(item[1].text) is not None


@pytest.mark.parametrize("item", _of("json"), ids=_id)
def test_json_blocks_parse(item: tuple[Path, Block]) -> None:
    json.loads(item[1].text)


@pytest.mark.parametrize("item", _of("python"), ids=_id)
def test_python_blocks_compile(item: tuple[Path, Block]) -> None:
    compile(item[1].text, _id(item), "exec")


def test_readme_shell_blocks_run_or_say_why_not() -> None:
    shell = [b for b in blocks(README) if b.language in SHELL]
    assert shell, "the README has shell blocks"
    assert all(b.skip is None or len(b.skip) > 20 for b in shell), [b.skip for b in shell]
    assert any(b.skip is None for b in shell), "at least some README commands run here"


def _appended_line(text: str, target: str) -> str:
    (line,) = re.findall(rf"^echo '([^']+)' >> {re.escape(target)}", text, re.M)
    return line + "\n"


def test_the_prometheus_line_appended_to_the_config_lands_at_the_top_level() -> None:
    """The README appends `metrics_port` to daemon.toml: to its own example, and to the file
    `epochwatch service install` writes, the line must be a top-level setting that loads."""
    line = _appended_line(README.read_text(), "/etc/epochwatch/daemon.toml")
    (config,) = [b.text for b in blocks(README) if b.language == "toml"]
    for base in (config, shipped("config").read_text()):
        assert parse_config(base + line).metrics_port == 9464
    # a config whose last table is [limits] would not take it: the check above can fail
    with pytest.raises(ConfigError, match=r"limits\.metrics_port"):
        parse_config("[limits]\nmax_runs_per_uid = 8\n" + line)


def test_the_readme_never_calls_the_metrics_endpoint_unauthenticated_without_saying_so() -> None:
    text = README.read_text()
    assert "metrics_token_file" in text
    assert "no authentication" not in text.lower() and "unauthenticated" not in text.lower()


def _links(text: str) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'(?:src|href)="([^"]+)"', text)


def test_readme_links_are_absolute_and_point_at_files_that_exist() -> None:
    """Relative links break on the package index's page: every link is absolute, and those into
    this repository name a file that is here."""
    links = _links(README.read_text())
    assert links
    assert [u for u in links if not u.startswith("https://")] == []
    for url in links:
        for prefix in (
            f"{REPO_URL}/blob/main/",
            f"{REPO_URL}/tree/main/",
            f"{REPO_URL.replace('github.com', 'raw.githubusercontent.com')}/main/",
        ):
            if url.startswith(prefix):
                path = url.removeprefix(prefix).split("#")[0]
                assert (REPO / path).exists(), url


def test_docs_link_to_files_that_exist() -> None:
    for name in ("docs/daemon.md", "docs/protocol.md", "docs/usage.md", "docs/clusters.md", "CHANGELOG.md"):
        doc = REPO / name
        for url in _links(doc.read_text()):
            if not url.startswith(("https://", "http://", "#")):
                assert (doc.parent / url.split("#")[0]).exists(), (doc.name, url)


def test_versions_named_in_the_docs_are_this_version() -> None:
    """The version is written once (epochwatch/__init__.py); wheel names and image tags in the
    instructions follow it, so a release that forgets them fails here."""
    from epochwatch import __version__

    for name in ("README.md", "docs/daemon.md", "docs/clusters.md", "deploy/Containerfile"):
        text = (REPO / name).read_text()
        named = set(re.findall(r"epochwatch(?:-daemon|-worker)?[-:](\d+\.\d+\.\d+)", text))
        assert named <= {__version__}, (name, named)
