"""The sandboxed worker against hostile and broken submissions: the exact outcome of each run.

Most submissions run in one batch (``run_many``, four at a time) next to a correct one, so every
test also shows that one student's hang, crash, flood, fork bomb or attack costs the others nothing.
These tests run with the grader's own user: root in CI (bwrap then runs as a uid leased for each
sandbox), an ordinary user on a developer's machine; ``test_as_ordinary_user.py`` runs a class as a
throwaway user too.

Nothing here depends on the machine's load or on other tests running at the same time: the time limit
is far above what a submission that ends needs, assertions are on causes (which signal, which limit)
rather than on durations, and the processes a test looks for carry a marker of its own.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import stat
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from checker.grading import frames, runs, sandbox, sandbox_uids
from checker.grading import worker_values as protocol
from checker.grading.imports import ForbiddenImport
from checker.grading.records import Call, Limits, SubmissionRun
from checker.grading.runs import run_many, run_submission

SUBMISSIONS = Path(__file__).parent / "submissions"
LIMITS = Limits(timeout_s=15, memory_mb=768, max_processes=8)  # a run that ends needs under a second
AS_ROOT = os.geteuid() == 0
SECRET = "s3cr3t-of-the-grader"
DAEMON_MARKER = f"bc-daemon-{uuid.uuid4().hex}"  # this test run's daemons, not another test's

_rng = np.random.default_rng(0)
ARRAYS = {
    "x": _rng.normal(size=(2, 3)),
    "w": _rng.normal(size=(3, 4)),
    "b": _rng.normal(size=4),
    "dout": _rng.normal(size=(2, 4)),
}
OUT = ARRAYS["x"] @ ARRAYS["w"] + ARRAYS["b"]
DX = ARRAYS["dout"] @ ARRAYS["w"].T
DW = ARRAYS["x"].T @ ARRAYS["dout"]
DB = ARRAYS["dout"].sum(axis=0)
AFFINE = {"inputs": ("x", "w", "b"), "forward": "affine_forward"}
CALLS = [
    Call("forward", "layer", **AFFINE),
    Call("backward", "layer", **AFFINE, backward="affine_backward", douts=("dout",), repeat_backward=True),
    Call("after", "layer", **AFFINE, backward="affine_backward", douts=("dout",)),
    Call("loss", "loss", ("x",), value_and_grad="square_loss"),
]
BATCH = [
    "correct_affine",
    "waits_forever",
    "eats_memory",
    "segfault",
    "sysexit_import",
    "sysexit_call",
    "os_exit",
    "forks",
    "prints_megabytes",
    "returns_nan",
    "wrong_types",
    "monkeypatches_numpy",
    "writes_output",
    "phones_home",
    "imports_torch",
    "imports_checker",
    "mutates_dout",
    "syntax_error",
    "accumulates",
    "garbage_pipe",
    "folder_submission",
    "unbans_torch",
    "reads_answer_key",
    "reads_classmates",
    "nan_clock",
    "control_characters",
    "deep_nesting",
    "detached_daemon",
    "kills_grader",
    "patches_pandas",
    "forges_pipes",
    "reads_secrets",
    "probes_imports",
]


@pytest.fixture(scope="module")
def out_dir():
    """A grader output folder as CI has it: root-owned 0755 with a results file already in it."""
    folder = Path(tempfile.mkdtemp(prefix="bc-out-"))
    folder.chmod(0o755)
    (folder / "results.json").write_text("{}")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def listener():
    """A server on this machine that a submission would like to send the inputs to."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setblocking(False)
        yield server


def _site_packages() -> Path:
    return Path(np.__file__).resolve().parent.parent


def _fingerprint(folder: Path) -> tuple[bytes, list[str]]:
    return (folder / "pandas" / "__init__.py").read_bytes(), sorted(p.name for p in folder.glob("*.pth"))


@pytest.fixture(scope="module")
def site_before() -> tuple[bytes, list[str]]:
    return _fingerprint(_site_packages())


@pytest.fixture(scope="module")
def batch(out_dir, listener, tmp_path_factory, site_before) -> dict[str, SubmissionRun]:
    planted = tmp_path_factory.mktemp("planted")
    fill = {
        "@MARKER@": DAEMON_MARKER,
        "@OUT_DIR@": str(out_dir),
        "@PORT@": str(listener.getsockname()[1]),
        "@SITE_PACKAGES@": str(_site_packages()),
    }
    paths = []
    for name in BATCH:
        path = SUBMISSIONS / name if (SUBMISSIONS / name).is_dir() else SUBMISSIONS / f"{name}.py"
        source = path.read_text() if path.is_file() else ""
        if any(key in source for key in fill):
            for key, value in fill.items():
                source = source.replace(key, value)
            path = planted / path.name
            path.write_text(source)
        paths.append(path)
    os.environ["BC_TEST_SECRET"] = SECRET  # a CI secret in the grader's environment
    try:
        runs = run_many(paths, CALLS, ARRAYS, LIMITS, jobs=4)
    finally:
        del os.environ["BC_TEST_SECRET"]
    return dict(zip(BATCH, runs, strict=True))


def assert_correct_affine(
    run: SubmissionRun, ids: tuple[str, ...] = ("forward", "backward", "after")
) -> None:
    for call_id in ids:
        result = run.calls[call_id]
        assert result.ok, result.error
        np.testing.assert_allclose(result.outputs[0].array, OUT)
        if call_id != "forward":
            grads = result.gradients
            assert grads.structure == "tuple" and grads.keys == ("0", "1", "2")
            for value, truth in zip(grads.values, (DX, DW, DB), strict=True):
                assert value.error is None and value.type == "numpy.ndarray"
                assert type(value.array) is np.ndarray and value.array.dtype == np.float64
                np.testing.assert_allclose(value.array, truth)
        for name in ("x", "w", "b"):
            np.testing.assert_array_equal(result.inputs_after[name].array, ARRAYS[name])


# --------------------------------------------------------------------------------- the control


def test_correct_submission_returns_every_value_as_a_plain_float64_array(batch):
    run = batch["correct_affine"]
    assert run.completed and run.exit_code == 0 and run.signal is None
    assert not (run.timed_out or run.crashed or run.memory_exceeded)
    assert run.import_error is None and run.forbidden_imports == () and run.protocol_error is None
    assert_correct_affine(run)
    again = run.calls["backward"].gradients_again
    for value, truth in zip(again.values, (DX, DW, DB), strict=True):
        np.testing.assert_allclose(value.array, truth)
    np.testing.assert_array_equal(run.calls["backward"].douts_after["dout"].array, ARRAYS["dout"])
    loss = run.calls["loss"]
    assert loss.ok and loss.loss.type == "float"
    assert float(loss.loss.array) == pytest.approx(0.5 * np.sum(ARRAYS["x"] ** 2))
    assert loss.gradients.structure == "dict" and loss.gradients.keys == ("x",)
    assert run.stdout == "" and run.stdout_bytes == 0
    assert (
        run.sandbox.startswith("bubblewrap ")
        and "new user, pid, ipc, net, mount, uts namespaces" in run.sandbox
    )
    uids = sandbox_uids.SANDBOX_UIDS
    own = f"as a uid of its own (one of {uids.start}-{uids.stop - 1}, leased per sandbox)"
    assert run.sandbox.endswith(own if AS_ROOT else f"as uid {os.getuid()} (the grader's user)")
    assert run.isolation["uid"] in uids if AS_ROOT else run.isolation["uid"] == os.getuid()
    assert run.isolation["no_new_privs"] is True
    assert run.isolation["pid"] == 2  # pid 1 is bwrap's reaper: a PID namespace of its own
    assert run.isolation["limits"]["RLIMIT_AS"] == LIMITS.memory_mb * 2**20


# --------------------------------------------------------------------------------- time, memory, crashes


def test_hang_is_killed_at_the_timeout_and_earlier_results_are_kept(batch):
    run = batch["waits_forever"]
    assert run.timed_out and not run.completed and not run.crashed
    assert run.signal == "SIGKILL" and run.exit_code is None  # the grader's kill, not the CPU limit's
    assert LIMITS.timeout_s <= run.seconds < LIMITS.timeout_s + 10  # ended by the deadline, and promptly
    assert_correct_affine(run, ("forward",))
    backward = run.calls["backward"]
    assert backward.status == "error" and backward.error.phase == "worker"
    assert backward.error.message == "the submission ran out of time (timeout_s=15) during this call"
    assert run.calls["after"].status == "not_run"
    assert run.calls["after"].error.message == "not run: the submission ran out of time (timeout_s=15)"


def test_allocating_10_gb_is_a_memory_error_in_that_call_only(batch):
    run = batch["eats_memory"]
    assert run.memory_exceeded and run.completed and not run.crashed and not run.timed_out
    assert_correct_affine(run, ("forward",))
    for call_id in ("backward", "after"):
        error = run.calls[call_id].error
        assert (error.type, error.phase, error.file, error.line) == (
            "MemoryError",
            "backward",
            "eats_memory.py",
            11,
        )
        assert "10.0 GiB" in error.message


def test_segfault_is_a_crash_that_keeps_earlier_results(batch):
    run = batch["segfault"]
    assert run.crashed and run.signal == "SIGSEGV" and not run.completed and not run.timed_out
    assert_correct_affine(run, ("forward",))
    backward = run.calls["backward"]
    assert backward.status == "error"
    assert backward.error.message == "the worker was killed by SIGSEGV (Segmentation fault) during this call"
    assert run.calls["after"].status == "not_run"
    assert "Segmentation fault" in run.stderr  # faulthandler's report, for the student


def test_sys_exit_0_at_import_is_an_import_error_not_a_success(batch):
    run = batch["sysexit_import"]
    assert run.completed and run.exit_code == 0
    assert run.import_error == "sysexit_import.py line 5: SystemExit: 0"
    for result in run.calls.values():
        assert result.status == "error" and result.error.phase == "lookup"
    assert run.calls["forward"].error.message == "submission defines no function affine_forward"


def test_sys_exit_0_inside_a_function_is_an_exception_in_that_call(batch):
    run = batch["sysexit_call"]
    assert run.completed and not run.crashed
    assert_correct_affine(run, ("forward",))
    error = run.calls["backward"].error
    assert (error.type, error.message, error.phase) == ("SystemExit", "0", "backward")
    assert (error.file, error.line) == ("sysexit_call.py", 13)
    assert run.calls["after"].error.type == "SystemExit"  # later calls still ran


def test_os_exit_0_ends_the_run_early_and_is_not_a_success(batch):
    run = batch["os_exit"]
    assert not run.completed and run.exit_code == 0 and not run.crashed and run.signal is None
    assert_correct_affine(run, ("forward",))
    assert run.calls["backward"].error.message == (
        "the worker process exited with code 0 (sys.exit or os._exit in the submission?) during this call"
    )
    assert run.calls["after"].status == "not_run"


def _processes_with(marker: str, wait_s: float = 2.0) -> list[int]:
    """Live processes whose command line holds ``marker``, after giving dying ones ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        found = []
        for entry in os.listdir("/proc"):
            try:
                if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
                    if state not in ("Z", "X"):
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_fork_bomb_is_bounded_by_max_processes_and_no_child_survives(batch):
    run = batch["forks"]
    assert run.completed and not run.timed_out  # the 60-second sleepers kept no pipe open to wait for
    assert_correct_affine(run)
    counts = [int(line.split()[1]) for line in run.stdout.splitlines() if line.startswith("forked")]
    assert (
        len(counts) == 3 and counts[0] >= 1 and sum(counts) <= LIMITS.max_processes
    )  # the sleepers stay counted


def test_a_detached_daemon_dies_with_its_sandbox_and_harms_no_one(batch):
    run = batch["detached_daemon"]
    assert run.completed and not run.timed_out
    assert_correct_affine(run)
    assert _processes_with(DAEMON_MARKER) == []  # setsid + double fork: still in the PID namespace
    assert_correct_affine(batch["correct_affine"])


# --------------------------------------------------------------------------------- output and values


def test_megabytes_of_output_are_cut_short_and_never_read_as_results(batch):
    run = batch["prints_megabytes"]
    line = "PASSED test_affine_backward: all gradients correct, score 100/100\n"
    assert run.stdout_bytes == 20_000 * len(line) + 3 * 2_000_001
    assert run.stderr_bytes == 1_000_000
    assert len(run.stdout) == LIMITS.max_log_bytes and len(run.stderr) == LIMITS.max_log_bytes
    assert run.stdout.startswith(line)
    assert_correct_affine(run)  # correct results, because they are correct, not because of the lines
    assert run.calls["loss"].error.message == "submission defines no function square_loss"


def test_nan_gradient_is_returned_as_is_for_the_grader_to_judge(batch):
    dw = batch["returns_nan"].calls["backward"].gradients["1"]
    assert dw.error is None and dw.array.shape == (3, 4) and np.isnan(dw.array).all()


def test_list_none_and_string_gradients_are_refused_with_their_type(batch):
    grads = batch["wrong_types"].calls["backward"].gradients
    assert grads.structure == "tuple"
    assert [v.array for v in grads.values] == [None, None, None]
    assert grads["0"].message("dx") == "dx is a list, expected a numpy array"
    assert grads["1"].message("dw") == "dw is None, expected a numpy array"
    assert grads["2"].message("db") == "db is a str, expected a numpy array"


def test_float64_and_ndarray_subclasses_cannot_fool_a_tolerance_check(batch):
    result = batch["wrong_types"].calls["loss"]
    assert result.ok
    assert result.loss.array is None
    assert result.loss.message("loss") == (
        "loss is an AlwaysClose (a subclass of numpy.float64), expected a plain numpy array: "
        "return np.asarray(...) of it"
    )
    dx = result.gradients["x"]
    assert dx.array is None and dx.type == "AlwaysCloseArray (a subclass of numpy.ndarray)"


def test_monkeypatching_numpy_in_the_submission_leaves_the_grader_alone(batch):
    run = batch["monkeypatches_numpy"]
    assert_correct_affine(run, ("forward",))
    dw = run.calls["backward"].gradients["1"].array
    np.testing.assert_allclose(dw, 2 * DW)  # the wrong gradient arrives as it is
    assert not np.allclose(dw, DW) and np.abs(-1.0) == 1.0


def test_in_place_mutation_of_dout_is_visible_to_the_grader(batch):
    result = batch["mutates_dout"].calls["backward"]
    dout_after = result.douts_after["dout"].array
    assert dout_after[0, 0] == 100.0 and not np.allclose(dout_after, ARRAYS["dout"])
    for name in ("x", "w", "b"):
        np.testing.assert_array_equal(result.inputs_after[name].array, ARRAYS[name])
    assert result.gradients["0"].error == "is None, expected a numpy array"


def test_gradient_that_accumulates_in_the_cache_differs_on_the_second_backward(batch):
    result = batch["accumulates"].calls["backward"]
    np.testing.assert_allclose(result.gradients["1"].array, DW)
    np.testing.assert_allclose(result.gradients_again["1"].array, 2 * DW)


def test_garbage_on_the_result_pipe_is_a_protocol_error_after_the_good_calls(batch):
    run = batch["garbage_pipe"]
    assert run.protocol_error == (
        "a result frame does not start with the protocol magic (something else wrote to the result pipe)"
    )
    assert not run.completed and not run.crashed
    assert_correct_affine(run, ("forward", "backward"))
    assert run.calls["after"].error.message.startswith("the worker's results could not be read")
    assert run.calls["loss"].status == "not_run"


# --------------------------------------------------------------------------------- imports


def test_syntax_error_is_the_students_error_with_its_line(batch):
    run = batch["syntax_error"]
    assert run.completed and run.import_error == "syntax_error.py line 4: SyntaxError: expected ':'"
    assert run.calls["forward"].error.message == "submission defines no function affine_forward"


def test_importing_torch_is_refused_and_reported_once_with_its_line(batch):
    run = batch["imports_torch"]
    assert run.forbidden_imports == (ForbiddenImport("torch", "torch", "imports_torch.py", 4, "import"),)
    assert run.import_error.startswith("imports_torch.py line 4: ImportError: importing torch is not allowed")
    assert run.calls["backward"].error.message == "submission defines no function affine_forward"


def test_importing_the_harness_or_answer_key_is_refused_even_in_disguise(batch):
    run = batch["imports_checker"]
    assert run.forbidden_imports == (
        ForbiddenImport("checker.compare", "checker", "imports_checker.py", 8, "from"),
        ForbiddenImport("reference_impls", "reference_impls", "imports_checker.py", 18, "runtime"),
    )
    assert run.import_error is None  # the student caught the first ImportError
    error = run.calls["backward"].error
    assert (error.type, error.file, error.line) == ("ImportError", "imports_checker.py", 18)
    assert error.message.startswith("importing reference_impls is not allowed")


def test_folder_submission_imports_modules_in_sorted_order_and_first_definition_wins(batch):
    run = batch["folder_submission"]
    assert run.import_error is None  # test_mine.py, which raises at import, is not imported
    assert_correct_affine(run)  # a_layers.affine_forward, not b_backward's zeros


# --------------------------------------------------------------------------------- isolation


def test_the_graders_output_folder_is_not_even_visible(batch, out_dir):
    run = batch["writes_output"]
    assert_correct_affine(run)
    assert run.stdout == ""  # neither @OUT_DIR@ nor the grader's command line exists in the sandbox
    assert sorted(p.name for p in out_dir.iterdir()) == ["results.json"]
    assert (out_dir / "results.json").read_text() == "{}"
    assert stat.S_IMODE(out_dir.stat().st_mode) == 0o755


def test_files_in_temporary_folders_stay_in_the_sandbox(batch):
    assert batch["writes_output"].calls["backward"].ok  # it did write them, in its own /tmp, /dev/shm
    assert not Path("/tmp/bc-shared-answers.txt").exists()
    assert not Path("/dev/shm/bc-shared-answers.txt").exists()


def test_network_is_cut_so_inputs_cannot_be_sent_out(batch, listener):
    run = batch["phones_home"]
    assert_correct_affine(run, ("forward",))
    assert run.stdout == "no network: ConnectionRefusedError\n"  # its own loopback, where no one listens
    with pytest.raises(BlockingIOError):
        listener.accept()


def test_kill_minus_one_cannot_reach_another_students_worker():
    slow, killer = run_many(
        [SUBMISSIONS / "slow_correct.py", SUBMISSIONS / "kills_others.py"], CALLS[:1], ARRAYS, LIMITS, jobs=2
    )
    assert slow.completed and not slow.crashed
    assert_correct_affine(slow, ("forward",))
    assert killer.completed


def test_the_grader_and_other_workers_cannot_be_killed_or_even_seen(batch):
    run = batch["kills_grader"]
    assert_correct_affine(run)
    assert run.stdout == "visible processes killed: 0\n" * 3


def test_a_disarmed_import_ban_still_finds_no_torch(batch):
    run = batch["unbans_torch"]
    assert run.stdout == "disarmed _RefuseImports\n" * 2  # it did empty the ban
    for call_id in ("backward", "after"):
        error = run.calls[call_id].error
        assert (error.type, error.message) == ("ModuleNotFoundError", "No module named 'torch'")
    assert run.forbidden_imports == ()  # "to" + "rch" is invisible to the static check: no matter


def test_nothing_but_numpy_can_be_imported_in_the_sandbox(batch):
    run = batch["probes_imports"]
    assert run.stdout.splitlines() == [
        "torch: ModuleNotFoundError",
        "checker: ModuleNotFoundError",
        "reference_impls: ModuleNotFoundError",
        "pandas: ModuleNotFoundError",
        "hypothesis: ModuleNotFoundError",
        "numpy: ok",
        "json: ok",
    ]


def test_the_answer_key_is_not_in_the_sandbox(batch):
    run = batch["reads_answer_key"]
    assert run.stdout == "answer key: not found\n" * 2
    assert run.calls["backward"].error.message == "no answer key in the sandbox"
    assert run.calls["backward"].gradients is None


def test_classmates_code_is_not_in_the_sandbox(batch):
    run = batch["reads_classmates"]
    assert run.stdout == "classmate: not found\n" * 2
    assert run.calls["backward"].error.message == "no classmate's code in the sandbox"


def test_the_graders_environment_and_memory_are_out_of_reach(batch):
    run = batch["reads_secrets"]
    assert_correct_affine(run)
    assert run.stdout == "secrets found: []\n" * 3


def test_site_packages_cannot_be_patched(batch, site_before):
    run = batch["patches_pandas"]
    assert_correct_affine(run)
    assert "wrote" not in run.stdout and "denied __init__.py: FileNotFoundError" in run.stdout
    assert _fingerprint(_site_packages()) == site_before


def test_forged_frames_reach_no_other_worker(batch):
    assert batch["forges_pipes"].stdout == "pipes of other processes written: 0\n" * 3
    assert_correct_affine(batch["forges_pipes"])
    assert_correct_affine(batch["correct_affine"])


def test_a_nan_clock_in_the_worker_changes_no_time_the_grader_reports(batch):
    run = batch["nan_clock"]
    assert_correct_affine(run)
    assert all(np.isfinite(r.seconds) and r.seconds >= 0 for r in run.calls.values())
    assert np.isfinite(run.seconds) and run.seconds > 0


def test_control_characters_are_cleaned_on_arrival(batch):
    error = batch["control_characters"].calls["backward"].error
    assert error.message.startswith("broken??????[31m?? \n]]><x/>&amp;")
    assert not any(ord(c) < 32 and c not in "\t\n" for c in error.message + error.traceback)


def test_a_source_too_deep_to_compile_is_that_submissions_import_error(batch):
    run = batch["deep_nesting"]
    assert run.completed and run.import_error == "deep_nesting.py: MemoryError: "
    assert run.calls["forward"].error.message == "submission defines no function affine_forward"


def test_state_left_by_one_submission_is_gone_for_the_next():
    leaver, reader = run_many(
        [SUBMISSIONS / "leaves_state.py", SUBMISSIONS / "reads_state.py"], CALLS[:1], ARRAYS, LIMITS, jobs=1
    )
    assert leaver.stdout.splitlines() == [  # /run/lock and /var/tmp: the sandbox's root is read-only
        "left: sysv shm",
        "left: /tmp/bc-answers",
        "left: /dev/shm/bc-answers",
    ]
    assert reader.stdout == "found: []\n"
    assert not any(
        Path(p).exists() for p in ("/run/lock/bc-answers", "/tmp/bc-answers", "/dev/shm/bc-answers")
    )


def test_filling_tmp_and_dev_shm_stops_at_the_cap_and_hurts_only_that_run():
    filler, after = run_many(
        [SUBMISSIONS / "fills_tmp.py", SUBMISSIONS / "correct_affine.py"], CALLS[:3], ARRAYS, LIMITS, jobs=1
    )
    cap = LIMITS.tmpfs_mb
    assert filler.stdout.splitlines()[:2] == [
        f"/tmp: stopped at {cap} MiB (No space left on device)",
        f"/dev/shm: stopped at {cap} MiB (No space left on device)",
    ]
    assert_correct_affine(filler)
    assert_correct_affine(after)


def test_cpu_limit_ends_a_busy_loop_before_the_wall_clock():
    run = run_submission(
        SUBMISSIONS / "hang.py", CALLS[:2], ARRAYS, Limits(timeout_s=60, cpu_s=1, memory_mb=768)
    )
    # SIGXCPU, not the grader's SIGKILL: the CPU limit ended it, however busy the machine was
    assert run.timed_out and run.signal == "SIGXCPU" and not run.crashed
    assert (
        run.calls["backward"].error.message
        == "the submission used up its CPU time (cpu_s=1) during this call"
    )


def test_an_array_over_max_output_bytes_is_not_sent():
    limits = Limits(timeout_s=LIMITS.timeout_s, memory_mb=768, max_output_bytes=4 * 2**20)
    run = run_submission(SUBMISSIONS / "returns_huge.py", CALLS[1:2], ARRAYS, limits)
    assert run.completed and run.protocol_error is None
    dw = run.calls["backward"].gradients["1"]
    assert dw.array is None
    assert dw.error == "was not sent: 16000000 bytes is over the 4194304-byte limit (Limits.max_output_bytes)"
    np.testing.assert_allclose(run.calls["backward"].gradients["0"].array, DX)


def test_loss_and_model_styles_and_bn_param_arrays_come_back():
    rng = np.random.default_rng(1)
    arrays = {
        "scores": rng.normal(size=(4, 3)),
        "y": np.array([0, 2, 1, 2]),
        "X": rng.normal(size=(4, 5)),
        "W1": rng.normal(size=(5, 6)),
        "b1": rng.normal(size=6),
        "W2": rng.normal(size=(6, 3)),
        "b2": rng.normal(size=3),
        "gamma": rng.normal(size=5),
        "beta": rng.normal(size=5),
        "running_mean": rng.normal(size=5),
    }
    bn_param = {"mode": "train", "momentum": 0.9, "running_mean": {"$array": "running_mean"}}
    calls = [
        Call("softmax", "loss", ("scores", "y"), value_and_grad="softmax_loss"),
        Call(
            "net",
            "model",
            ("X", "y"),
            model="TwoLayerNet",
            init={"input_dim": 5, "hidden_dim": 6, "num_classes": 3},
            params=("W1", "b1", "W2", "b2"),
            repeat_backward=True,
        ),
        Call(
            "bn", "layer", ("X", "gamma", "beta"), forward="batchnorm_forward", hyper={"bn_param": bn_param}
        ),
        Call("missing", "model", ("X", "y"), model="ThreeLayerNet"),
    ]
    run = run_submission(SUBMISSIONS / "styles.py", calls, arrays, LIMITS)
    assert run.completed
    softmax = run.calls["softmax"]
    assert softmax.ok and softmax.loss.type == "numpy.float64" and softmax.gradients.structure == "array"
    assert softmax.gradients[""].array.shape == (4, 3)
    net = run.calls["net"]
    assert net.ok and net.gradients.keys == ("W1", "b1", "W2", "b2")
    assert float(net.loss.array) == float(net.loss_again.array)
    np.testing.assert_array_equal(net.inputs_after["W1"].array, arrays["W1"])
    expected_mean = 0.9 * arrays["running_mean"] + 0.1 * arrays["X"].mean(axis=0)
    np.testing.assert_allclose(run.calls["bn"].hyper_after["bn_param.running_mean"].array, expected_mean)
    assert run.calls["missing"].error.message == "submission defines no class ThreeLayerNet"


# --------------------------------------------------------------------------------- the grader's own side


def test_missing_submission_is_reported_not_raised(tmp_path):
    run = run_submission(tmp_path / "nothing.py", CALLS[:1], ARRAYS, LIMITS)
    assert not run.completed and run.import_error == f"no submission found at {tmp_path / 'nothing.py'}"
    assert run.calls["forward"].status == "not_run"


@pytest.mark.parametrize(
    ("calls", "arrays", "message"),
    [
        ([Call("a", "layer", ("nope",), forward="f")], ARRAYS, "Call(id='a') uses array 'nope'"),
        ([CALLS[0], CALLS[0]], ARRAYS, "call ids must be unique; repeated: ['forward']"),
        (
            CALLS[:1],
            {**ARRAYS, "x": ARRAYS["x"].astype(object)},
            "arrays['x'] must be a numeric numpy.ndarray",
        ),
    ],
)
def test_misuse_raises_naming_the_problem(calls, arrays, message):
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        run_submission(SUBMISSIONS / "correct_affine.py", calls, arrays, LIMITS)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Call("a", "layer", ("x",), forward="f", douts=("d",)), "needs backward="),
        (lambda: Call("a", "layers", ("x",)), "style='layers'; use 'layer', 'loss' or 'model'"),
        (lambda: Call("a", "layer", forward="f", hyper={"p": np.ones(2)}), "hyper and init must be JSON"),
        (lambda: Limits(timeout_s=0), r"Limits\(timeout_s=0\): must be a positive number"),
    ],
)
def test_bad_calls_and_limits_raise_at_construction(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def _forged_npy(shape: tuple[int, ...], descr: str = "<f8", payload: bytes = bytes(24)) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue() + payload


@pytest.mark.parametrize(
    ("blob", "error"),
    [
        (_forged_npy((10**10,)), "could not be read: the array's bytes do not match its header"),
        (_forged_npy((3,), descr="|O"), "could not be read: dtype object is not numeric"),
        (_forged_npy((4,)), "could not be read: the array's bytes do not match its header"),
        (
            b"not an npy file",
            "could not be read: the magic string is not correct; expected b'\\x93NUMPY', got b'not an'",
        ),
    ],
)
def test_forged_array_bytes_are_refused_without_allocating(blob, error):
    info = {
        "type": "numpy.ndarray",
        "exact": True,
        "family": "ndarray",
        "dtype": "<f8",
        "shape": [3],
        "blob": 0,
    }
    assert frames.value(info, [blob]).error == error


@pytest.mark.parametrize(
    ("info", "error"),
    [
        (
            {"type": "numpy.ndarray", "exact": True, "family": "ndarray", "dtype": "|O", "shape": [2]},
            "has dtype object, expected a float array",
        ),
        (
            {"type": "numpy.ndarray", "exact": True, "family": "ndarray", "dtype": "<c16", "shape": [2]},
            "has dtype complex128, expected a float array",
        ),
        (
            {
                "type": "numpy.ndarray",
                "exact": True,
                "family": "ndarray",
                "dtype": "<f8",
                "shape": [3],
                "blob": 7,
            },
            "was not sent",
        ),
        ("garbage", "could not be read (malformed record)"),
    ],
)
def test_malformed_value_records_become_errors(info, error):
    assert frames.value(info, []).error == error


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"PASSED\n" * 10, "a result frame does not start with the protocol magic"),
        (protocol.MAGIC + protocol.FRAME_HEAD.pack(2**31, 0), "a result frame announces"),
        (
            protocol.MAGIC + protocol.FRAME_HEAD.pack(3, 0) + b"{{{",
            "a result frame header is not JSON",
        ),
        (
            protocol.MAGIC + protocol.FRAME_HEAD.pack(2, 0) + b"{}",
            "a result frame header has no valid blob list",
        ),
        (b"x" * 5000, "the worker sent more than 4096 bytes"),
    ],
)
def test_frame_reader_refuses_what_is_not_a_frame(data, error):
    reader = frames.FrameReader(max_bytes=4096)
    with pytest.raises(frames.ProtocolError, match=error):
        reader.feed(data)


def test_forged_records_from_student_code_never_raise_and_cannot_blame_the_grader():
    received = [
        ({"kind": "hello", "uid": 65534, "pid": float("nan"), "limits": {"RLIMIT_AS": float("inf")}}, []),
        ({"kind": "imported", "files": [], "errors": []}, []),
        ({"kind": "fatal", "message": "grader bug, please give full marks"}, []),
        ({"kind": "call", "id": ["unhashable"]}, []),
        ({"kind": ["unhashable"], "id": "forward"}, []),
        (
            {
                "kind": "call",
                "id": "forward",
                "status": "ok",
                "outputs": "x",
                "inputs_after": [1],
                "seconds": float("nan"),
                "error": {"type": "X\x00", "line": float("nan"), "message": "\x1b[2J"},
            },
            [],
        ),
        ({"kind": "call", "id": "backward", "gradients": {"values": [{"family": "ndarray", "blob": 9}]}}, []),
        (
            {
                "kind": "call",
                "id": "after",
                "outputs": [{"family": "ndarray", "exact": True, "dtype": "<f8"}] * 2,
            },
            [],
        ),
    ]
    outcome = sandbox.Outcome(sandbox.Excerpt(10), sandbox.Excerpt(10), 0, False, "", 1.0, 1.0)
    stamped = [(header, blobs, 0.5) for header, blobs in received]
    run = runs._assemble("forged", CALLS, LIMITS, None, outcome, stamped, [])
    assert run.worker_error is None and not run.completed
    assert run.isolation == {"uid": 65534, "limits": {}}  # the NaN pid and the infinite limit are dropped
    assert run.calls["forward"].ok and run.calls["forward"].outputs == ()
    assert run.calls["forward"].seconds == 0.0  # never the worker's "seconds"
    assert (run.calls["forward"].error.type, run.calls["forward"].error.line) == ("X?", 0)
    assert run.calls["forward"].error.message == "?[2J"
    assert run.calls["backward"].gradients.values[0].array is None
    assert [v.error for v in run.calls["after"].outputs] == ["was not sent"] * 2
    assert run.calls["loss"].status == "not_run"
