"""`modelctl import gto` on GTO repositories built with the real `gto` CLI.

GTO stamps its tags with the wall clock and ignores GIT_COMMITTER_DATE, so the `gto` commands
run through its own CLI entry point (`gto.cli.app`) in one helper process whose clock is fixed
per step: the equivalent of GIT_COMMITTER_DATE, without sleeping between commands (events in
one second would otherwise tie). `gto show --json` then runs as the plain `gto` executable.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import cli, git, refs_snapshot

T0 = 1704067200  # 2024-01-01T00:00:00Z

DRIVER = r"""
import json, os, subprocess, sys, time
from gto.cli import app

for step in json.load(sys.stdin):
    when = step["time"]
    os.environ["GIT_COMMITTER_DATE"] = os.environ["GIT_AUTHOR_DATE"] = f"{when} +0000"
    time.time = lambda when=when: float(when)
    if step["tool"] == "git":
        subprocess.run(["git", *step["args"]], check=True, capture_output=True)
        continue
    try:
        app.main(step["args"], prog_name="gto", standalone_mode=False)
    except SystemExit as exc:
        if exc.code:
            raise
"""


def _gto_executable() -> Path | None:
    found = shutil.which("gto")
    candidate = Path(found) if found else Path(sys.executable).parent / "gto"
    return candidate if candidate.is_file() else None


def _gto_python(exe: Path) -> str:
    first = exe.read_bytes().split(b"\n", 1)[0].decode("utf-8", "replace")
    interpreter = first[2:].strip().split(" ")[0] if first.startswith("#!") else ""
    return interpreter if interpreter and Path(interpreter).is_file() else sys.executable


GTO = _gto_executable()
pytestmark = pytest.mark.skipif(
    GTO is None, reason="the gto CLI is not installed (pip install -e '.[test]')"
)


class Timeline:
    """Steps run by the real gto CLI (and git), each at its own fixed time."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.time = T0
        self.steps: list[dict[str, Any]] = []

    def _add(self, tool: str, *args: str) -> None:
        self.time += 100
        self.steps.append({"tool": tool, "time": self.time, "args": list(args)})

    def gto(self, *args: str) -> None:
        self._add("gto", *args)

    def commit(self, name: str, files: dict[str, str] | None = None) -> None:
        for path, text in (files or {name: name}).items():
            (self.repo / path).parent.mkdir(parents=True, exist_ok=True)
            self.steps.append({"tool": "write", "path": path, "text": text})
        self._add("git", "add", "-A")
        self._add("git", "commit", "-q", "-m", name)

    def run(self) -> None:
        assert GTO is not None
        batch: list[dict[str, Any]] = []
        for step in [*self.steps, None]:
            if step is not None and step["tool"] != "write":
                batch.append(step)
                continue
            if batch:
                subprocess.run(
                    [_gto_python(GTO), "-c", DRIVER],
                    input=json.dumps(batch), text=True, cwd=self.repo, check=True,
                    capture_output=True,
                )  # fmt: skip
                batch = []
            if step is not None:
                target = self.repo / step["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(step["text"])
        self.steps = []


def new_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    return path


def gto_show(repo: Path) -> dict[str, Any]:
    assert GTO is not None
    proc = subprocess.run(
        [str(GTO), "show", "--json"], cwd=repo, capture_output=True, text=True, check=True
    )
    shown: dict[str, Any] = json.loads(proc.stdout)
    return shown


def modelctl_stages(repo: Path) -> dict[str, dict[str, str | None]]:
    """route -> stage -> the version it serves, from `modelctl status --json`."""
    result = cli("status", "--json", cwd=repo)
    assert result.exit_code == 0, result.stderr
    payload: Any = result.json
    out: dict[str, dict[str, str | None]] = {}
    for route in payload["routes"]:
        stages: dict[str, str | None] = {}
        for stage in route["stages"]:
            binding = stage["binding"]
            if binding is None:
                stages[stage["stage"]] = None
            else:
                (target,) = binding["targets"]
                name, _, version = target["model"].partition("@")
                assert name == route["route"]
                stages[stage["stage"]] = version
        out[route["route"]] = stages
    return out


def assert_agrees(shown: dict[str, Any], imported: Any, repo: Path) -> None:
    """Every artifact and stage `gto show` reports is what `modelctl status` serves, and back."""
    from modelctl.integrations.importers.gto import modelctl_name

    served = modelctl_stages(repo)
    routes = {a["artifact"]: a["route"] for a in imported["artifacts"]}
    compared = set()
    for artifact, state in shown.items():
        if not state["registered"] and all(v is None for v in state["stage"].values()):
            continue  # listed in artifacts.yaml only: nothing to import
        route = routes[artifact]
        for stage, version in state["stage"].items():
            assert served[route][modelctl_name(stage) or stage] == version, (artifact, stage)
        for stage, version in served[route].items():
            if stage not in {modelctl_name(s) for s in state["stage"]}:
                assert version is None, (artifact, stage)
        compared.add(route)
    for route, stages in served.items():
        if route not in compared:  # hidden by GTO (deprecated): serves nothing
            assert all(v is None for v in stages.values()), (route, stages)


def import_json(repo: Path, *args: str, code: int = 0) -> Any:
    result = cli("import", "gto", "--json", *args, cwd=repo)
    assert result.exit_code == code, result.stderr + result.stdout
    return result.json


@pytest.fixture(scope="module")
def gto_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Several artifacts and stages, re-assignments, an unassignment, a deregistration, a
    deprecation, a name GTO allows and modelctl spells differently, a lightweight tag, a
    malformed tag and a tag that is not GTO's."""
    repo = new_repo(tmp_path_factory.mktemp("gto") / "repo")
    t = Timeline(repo)
    index = (
        "churn:\n  type: model\n  path: models/churn.pkl\n  virtual: false\n"
        "segment:\n  type: model\n  path: models/segment.pkl\n  virtual: false\n"
    )
    t.commit("c1", {".gto": "stages: [dev, staging, prod]\n", "artifacts.yaml": index})
    for artifact, version in [("churn", "v1.0.0"), ("segment", "v0.1.0"), ("legacy", "v1.0.0")]:
        t.gto("register", artifact, "--version", version)
    t.gto("register", "fraud/Detector", "--version", "v1.0.0")
    t.commit("c2")
    t.gto("register", "churn", "--version", "v1.1.0")
    t.gto("register", "segment", "--version", "v0.2.0")
    t.gto("assign", "churn", "--version", "v1.0.0", "--stage", "dev")
    t.gto("assign", "churn", "--version", "v1.0.0", "--stage", "prod")
    t.gto("assign", "churn", "--version", "v1.1.0", "--stage", "dev")
    t.gto("assign", "churn", "--version", "v1.1.0", "--stage", "staging")
    t.gto("assign", "churn", "--version", "v1.1.0", "--stage", "prod")
    t.gto("deprecate", "churn", "v1.1.0", "prod")  # unassign: prod shows v1.0.0 again
    t.gto("assign", "segment", "--version", "v0.1.0", "--stage", "dev")
    t.gto("assign", "segment", "--version", "v0.2.0", "--stage", "dev")
    t.gto("deprecate", "segment", "v0.2.0")  # deregister: dev shows v0.1.0 again
    t.gto("assign", "legacy", "--version", "v1.0.0", "--stage", "prod")
    t.gto("deprecate", "legacy")  # hidden from gto show
    t.gto("assign", "fraud/Detector", "--version", "v1.0.0", "--stage", "staging")
    t.commit("c3")
    t.run()
    git(repo, "tag", "churn#staging#50")  # lightweight: GTO ignores it
    git(repo, "tag", "-a", "-m", "not semver", "churn@1.0")  # malformed
    git(repo, "tag", "-a", "-m", "a release", "release-2024")  # not GTO's
    return repo


@pytest.fixture
def repo(gto_repo: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    shutil.copytree(gto_repo, copy, symlinks=True)
    return copy


def test_status_agrees_with_gto_show_and_verify_passes(repo: Path) -> None:
    shown = gto_show(repo)
    assert shown["churn"]["stage"] == {"dev": "v1.1.0", "staging": "v1.1.0", "prod": "v1.0.0"}
    assert shown["segment"]["stage"]["dev"] == "v0.1.0"
    assert "legacy" not in shown
    imported = import_json(repo)
    assert imported["stages"] == ["dev", "staging", "prod"]
    assert_agrees(shown, imported, repo)
    by_route = {a["route"]: a for a in imported["artifacts"]}
    assert by_route["legacy"]["deprecated"] is True
    assert by_route["fraud-detector"]["artifact"] == "fraud/Detector"
    assert by_route["churn"]["events"] == 6  # dev x2, prod x3 (assign, assign, unassign), staging
    verify = cli("verify", "--json", cwd=repo)
    assert verify.exit_code == 0, verify.stdout
    assert cli("validate", cwd=repo).exit_code == 0
    assert git(repo, "status", "--porcelain") == ""
    # git's commit-graph, with changed-path filters, covers the imported history
    git(repo, "commit-graph", "verify")
    graph = repo / git(repo, "rev-parse", "--git-path", "objects/info/commit-graph").strip()
    assert graph.is_file() and b"BIDX" in graph.read_bytes()  # the Bloom filter index chunk


def test_malformed_and_lightweight_tags_are_listed_not_fatal(repo: Path) -> None:
    imported = import_json(repo)
    skipped = {s["tag"]: s["reason"] for s in imported["skipped"]}
    assert "lightweight" in skipped["churn#staging#50"]
    assert "not a valid GTO tag" in skipped["churn@1.0"]
    assert "release-2024" not in skipped and imported["other_tags"] == 1


def test_human_output_lists_skipped_tags(repo: Path) -> None:
    result = cli("import", "gto", cwd=repo)
    assert result.exit_code == 0, result.stderr
    assert "churn#staging#50" in result.stdout and "churn@1.0" in result.stdout
    assert "imported 4 artifact(s)" in result.stderr
    assert "\x1b[" not in result.stderr  # no progress bar when stderr is not a terminal


def test_events_keep_the_original_author_and_date(repo: Path) -> None:
    import_json(repo)
    log = git(
        repo, "log", "-1", "--format=%an|%aI|%(trailers:only,unfold)",
        "modelctl/churn/prod/3",
    )  # fmt: skip
    author, date, trailers = log.split("|", 2)
    (unassign,) = git(repo, "tag", "--list", "churn#prod!*").split()
    assert author == "Test User"
    assert date.startswith("2024-01-01T")
    for line in [
        "Modelctl-Action: import",
        "Modelctl-Route: churn",
        "Modelctl-Stage: prod",
        "Modelctl-Seq: 3",
        f"Modelctl-Imported-From: {unassign}",
        "Modelctl-Gto-Event: unassignment",
        "Modelctl-Original-Author: Test User <test@example.com>",
        f"Modelctl-Original-Date: {date.replace('Z', '+00:00')}",
    ]:
        assert line in trailers, (line, trailers)
    assert git(repo, "cat-file", "-t", "modelctl/churn/prod/3") == "tag"
    history = cli("history", "churn", "--stage", "prod", "--json", cwd=repo).json
    assert isinstance(history, dict)
    assert [e["summary"] for e in history["events"]] == [
        "churn@v1.0.0", "churn@v1.1.0", "churn@v1.0.0",
    ]  # fmt: skip
    assert {e["action"] for e in history["events"]} == {"import"}


def test_manifests_carry_gto_facts(repo: Path) -> None:
    import_json(repo)
    show = cli("show", "churn@v1.0.0", "--json", cwd=repo).json
    assert isinstance(show, dict)
    data = show["data"]
    assert data["provider_model"] == "models/churn.pkl"  # from artifacts.yaml at its commit
    assert data["labels"]["gto.tag"] == "churn@v1.0.0"
    assert data["labels"]["gto.type"] == "model"
    segment = cli("show", "segment@v0.2.0", "--json", cwd=repo).json
    assert isinstance(segment, dict)
    assert segment["data"]["labels"]["gto.deprecated"] == "true"
    assert segment["data"]["labels"]["gto.deregistered"] == "true"
    legacy = cli("show", "legacy@v1.0.0", "--json", cwd=repo).json
    assert isinstance(legacy, dict)
    assert legacy["data"]["labels"]["gto.deprecated"] == "true"
    assert legacy["data"]["provider_model"] == "legacy"  # not in artifacts.yaml


def test_dry_run_writes_nothing(repo: Path) -> None:
    before = refs_snapshot(repo)
    planned = import_json(repo, "--dry-run")
    assert planned["dry_run"] is True and planned["commit"] is None
    assert planned["events"] > 0 and planned["commits"] == planned["events"] + 1
    assert refs_snapshot(repo) == before
    assert not (repo / "modelctl.yaml").exists()
    assert not (repo / ".git/objects/info/commit-graph").exists()


def test_a_second_import_is_refused_and_changes_nothing(repo: Path) -> None:
    import_json(repo)
    before = refs_snapshot(repo)
    result = cli("import", "gto", cwd=repo)
    assert result.exit_code == 3, result.stderr
    assert "nothing was written" in result.stderr
    assert refs_snapshot(repo) == before


def test_uncommitted_file_in_the_way_refuses_everything(repo: Path) -> None:
    before = refs_snapshot(repo)
    (repo / "routes").mkdir()
    (repo / "routes" / "churn.yaml").write_text("mine\n")
    result = cli("import", "gto", cwd=repo)
    assert result.exit_code == 3, result.stderr
    assert refs_snapshot(repo) == before
    assert (repo / "routes" / "churn.yaml").read_text() == "mine\n"


def test_into_a_folder_of_its_own(repo: Path) -> None:
    imported = import_json(repo, "--into", "registry")
    assert imported["registry"] == "registry"
    assert (repo / "registry" / "modelctl.yaml").is_file()
    assert_agrees(gto_show(repo), imported, repo / "registry")
    assert cli("verify", cwd=repo / "registry").exit_code == 0


def test_gto_quirks_are_reproduced(tmp_path: Path) -> None:
    """A later commit listing a deprecated artifact brings it back; a stage assigned to an
    unregistered commit shows the commit id, and unassigning that commit changes nothing."""
    repo = new_repo(tmp_path / "quirks")
    t = Timeline(repo)
    t.commit("c1")
    t.gto("register", "m", "--version", "v1.0.0")
    t.gto("assign", "m", "--version", "v1.0.0", "--stage", "dev")
    t.gto("deprecate", "m")
    t.commit("c2", {"artifacts.yaml": "m:\n  type: model\n  path: m.bin\n"})
    t.commit("c3")
    t.run()
    head = git(repo, "rev-parse", "HEAD")
    env = {"GIT_COMMITTER_DATE": f"{T0 + 5000} +0000"}
    message = "Assigning stage staging to artifact m version " + head
    git(repo, "tag", "-a", "-m", message, "m#staging#9", head, env=env)
    env = {"GIT_COMMITTER_DATE": f"{T0 + 5100} +0000"}
    git(repo, "tag", "-a", "-m", "Unassigning", "m#staging!#10", head, env=env)
    shown = gto_show(repo)
    assert shown["m"]["active"] is True and shown["m"]["stage"]["staging"] == head
    imported = import_json(repo)
    assert_agrees(shown, imported, repo)
    assert cli("verify", cwd=repo).exit_code == 0


def test_parser_agrees_with_gto() -> None:
    from gto.tag import parse_name

    from modelctl.integrations.importers.gto_tags import parse_tag_name

    names = [
        "m@v1.2.3", "m@v1.2.3!", "m#prod", "m#prod#4", "m#prod!#5", "m@deprecated",
        "m@deprecated#2", "dir/sub=m@v1.0.0", "a/b@v0.0.1-rc.1+build.5", "m@1.2.3",
        "m@v1.2", "m#", "-m#prod", "m#prod-", "release-1", "m@v01.2.3", "A_b#Stage_1#3",
        "m@created", "m@v1.0.0#x",
    ]  # fmt: skip
    for name in names:
        theirs = parse_name(name, raise_on_fail=False)
        ours = parse_tag_name(name)
        if not theirs:
            assert ours is None, name
            continue
        assert ours is not None, name
        assert ours.artifact == theirs["name"], name
        assert ours.version == theirs.get("version") and ours.stage == theirs.get("stage"), name
        action = theirs.get("action")
        assert ours.action == (action.value if action else "create"), name


def test_names_gto_allows_and_modelctl_does_not() -> None:
    from modelctl.integrations.importers.gto import modelctl_name, modelctl_version

    assert modelctl_name("fraud/Detector") == "fraud-detector"
    assert modelctl_name("dir/sub:model") == "dir-sub-model"
    assert modelctl_name("Prod") == "prod"
    assert modelctl_version("v1.0.0-RC.1+build.5") == "v1.0.0-rc.1_build.5"
    assert modelctl_version("v1.2.3") == "v1.2.3"


def test_stage_path_without_a_gto_config() -> None:
    from modelctl.integrations.importers.gto import map_names
    from modelctl.integrations.importers.gto_tags import Event

    def assign(stage: str) -> Event:
        return Event("assign", "m", f"m#{stage}#1", "0" * 40, T0, f"{T0} +0000", "", "a <a>", "",
                     stage=stage)  # fmt: skip

    events = [assign(s) for s in ["prod", "shadow", "Dev", "staging"]]
    names, kept = map_names(events, [], [])
    assert names.order == ["dev", "staging", "prod", "shadow"] and len(kept) == 4
    names, _ = map_names(events, ["prod", "staging"], [])
    assert names.order == ["prod", "staging", "dev", "shadow"]


def test_not_a_gto_repository(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "plain")
    (repo / "a.txt").write_text("a")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "one")
    git(repo, "tag", "v1")
    result = cli("import", "gto", "--repo", str(repo))
    assert result.exit_code == 2
    assert "no GTO tags" in result.stderr


def test_help() -> None:
    result = cli("import", "gto", "--help")
    assert result.exit_code == 0 and "--dry-run" in result.stdout


def on_a_terminal(repo: Path, *args: str) -> tuple[int, bytes]:
    """Run modelctl with stdout and stderr on a pseudo-terminal: (exit code, what it showed)."""
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelctl", *args],
        cwd=repo, stdout=follower, stderr=follower, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's other end closed
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    return proc.wait(timeout=120), shown


@pytest.mark.skipif(os.name != "posix", reason="uses a POSIX pseudo-terminal")
def test_progress_shows_on_a_terminal(repo: Path) -> None:
    code, shown = on_a_terminal(repo, "import", "gto")
    assert code == 0, shown.decode(errors="replace")
    assert b"imported" in shown
    assert b"replaying GTO history" in shown or b"writing" in shown
    code, shown = on_a_terminal(repo, "verify")
    assert code == 0, shown.decode(errors="replace")
    assert b"checking tag signatures" in shown or b"checking commit signatures" in shown


def test_route_files_are_rendered_as_render_manifest_does() -> None:
    from modelctl.integrations.importers.gto import _Routes
    from modelctl.registry import manifests, yamlio
    from modelctl.registry.authoring import render_manifest

    order = ["dev", "1", "null", "prod.eu", "yes"]
    routes = _Routes(order)
    for stages in [{}, {"dev": "v1.0.0"}, dict.fromkeys(order, "v1.2.0-rc.1")]:
        text = routes.text("churn", "dir/sub:Churn", dict(stages))
        data = yamlio.load_mapping(text, "routes/churn.yaml").data
        model = manifests.Route.model_validate(data)
        assert text == render_manifest(model, "routes/churn.yaml")


def test_imported_events_take_effect_at_their_original_dates(repo: Path) -> None:
    """resolve --at answers about the GTO past, not about the day of the import."""
    import_json(repo)
    history = cli("history", "churn", "--stage", "prod", "--json", cwd=repo).json
    assert isinstance(history, dict)
    times = [e["time"] for e in history["events"]]
    assert all(t.startswith("2024-01-01T") for t in times), times
    for event in history["events"]:
        resolved = cli(
            "resolve", "churn", "--stage", "prod", "--at", event["time"], "--json", cwd=repo
        ).json
        assert isinstance(resolved, dict)
        assert resolved["summary"] == event["summary"]
    before = cli(
        "resolve", "churn", "--stage", "prod", "--at", "2023-12-31", "--json", cwd=repo
    ).json
    assert isinstance(before, dict) and before["binding"] is None


@pytest.mark.parametrize("where", [".gto", "artifacts.yaml"])
def test_deeply_nested_gto_files_are_refused_not_a_crash(tmp_path: Path, where: str) -> None:
    """A `.gto` config or `artifacts.yaml` nested thousands deep is read with the manifest
    loader's limits: the import goes on without it (and says so), never an internal error."""
    repo = new_repo(tmp_path / "deep")
    deep = "stages: " + "[" * 5000 + "]" * 5000 + "\n"
    files = {".gto": "stages: [dev, prod]\n", "artifacts.yaml": "m:\n  path: m.bin\n"}
    files[where] = deep if where == ".gto" else "m:\n  path: " + "[" * 5000 + "]" * 5000 + "\n"
    for name, text in files.items():
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "c1")
    git(repo, "tag", "-a", "-m", "Registering artifact m version v1.0.0", "m@v1.0.0")
    git(repo, "tag", "-a", "-m", "Assigning stage prod to artifact m version v1.0.0", "m#prod#1")

    result = cli("import", "gto", "--json", cwd=repo)

    assert result.exit_code == 0, result.stderr + result.stdout
    payload: Any = result.json
    notes = " ".join(payload.get("notes", []))
    if where == ".gto":
        assert ".gto could not be read" in notes and "nesting" in notes
    assert modelctl_stages(repo)["m"]["prod"] == "v1.0.0"
