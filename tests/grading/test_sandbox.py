"""The isolated worker against hostile and broken submissions: the exact outcome of each run.

Most submissions run in one batch (``run_many``, four at a time) next to a correct one, so every
test also shows that one student's hang, crash, flood or fork bomb costs the others nothing.
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
from pathlib import Path

import numpy as np
import pytest

from checker.grading import sandbox
from checker.grading.imports import ForbiddenImport
from checker.grading.sandbox import Call, Limits, SubmissionRun, run_many, run_submission

SUBMISSIONS = Path(__file__).parent / "submissions"
LIMITS = Limits(timeout_s=3, memory_mb=768, max_processes=8)
AS_ROOT = os.geteuid() == 0
root_only = pytest.mark.skipif(not AS_ROOT, reason="uid isolation needs a grader running as root")

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
    "hang",
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


@pytest.fixture(scope="module")
def batch(out_dir, listener, tmp_path_factory) -> dict[str, SubmissionRun]:
    planted = tmp_path_factory.mktemp("planted")
    fill = {"@OUT_DIR@": str(out_dir), "@PORT@": str(listener.getsockname()[1])}
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
    runs = run_many(paths, CALLS, ARRAYS, LIMITS, jobs=4)
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
    if AS_ROOT:
        assert run.user.startswith("uid 655") and run.user.endswith("(dropped from root)")
        assert run.isolation["uid"] != 0 and run.isolation["no_new_privs"] is True
    assert run.isolation["limits"]["RLIMIT_AS"] == LIMITS.memory_mb * 2**20


# --------------------------------------------------------------------------------- time, memory, crashes


def test_hang_is_killed_at_the_timeout_and_earlier_results_are_kept(batch):
    run = batch["hang"]
    assert run.timed_out and not run.completed and not run.crashed
    assert run.signal == "SIGKILL" and run.exit_code is None
    assert run.seconds < LIMITS.timeout_s + 1.5
    assert_correct_affine(run, ("forward",))
    backward = run.calls["backward"]
    assert backward.status == "error" and backward.error.phase == "worker"
    assert backward.error.message == "the submission ran out of time (timeout_s=3) during this call"
    assert run.calls["after"].status == "not_run"
    assert run.calls["after"].error.message == "not run: the submission ran out of time (timeout_s=3)"


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


def _live_processes_of_sandbox_uids() -> list[int]:
    """Processes of the sandbox uids that are not zombies (a killed orphan stays a zombie until pid 1
    reaps it, which a container's init may never do; a zombie runs nothing and holds no memory)."""
    pids = []
    uids = range(sandbox.SANDBOX_UID - 63, sandbox.SANDBOX_UID + 1)
    for entry in os.listdir("/proc"):
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields["Uid"].split()[0]) in uids and not fields.get("State", "").strip().startswith(
            ("Z", "X")
        ):
            pids.append(int(entry))
    return pids


def _processes_of_sandbox_uids(wait_s: float = 2.0) -> list[int]:
    """Live sandbox processes, after giving SIGKILLed ones up to ``wait_s`` to finish dying (a loaded machine)."""
    deadline = time.monotonic() + wait_s
    while (pids := _live_processes_of_sandbox_uids()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return pids


def test_fork_bomb_is_bounded_by_max_processes_and_no_child_survives(batch):
    run = batch["forks"]
    assert run.completed and not run.timed_out and run.seconds < 3
    assert_correct_affine(run)
    counts = [int(line.split()[1]) for line in run.stdout.splitlines() if line.startswith("forked")]
    assert (
        len(counts) == 3 and counts[0] >= 1 and sum(counts) <= LIMITS.max_processes
    )  # the sleepers stay counted
    if AS_ROOT:  # children that left the process group with setsid are killed by uid
        assert _processes_of_sandbox_uids() == []


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


@root_only
def test_writing_into_the_graders_output_folder_is_denied(batch, out_dir):
    run = batch["writes_output"]
    assert_correct_affine(run)
    assert sorted(p.name for p in out_dir.iterdir()) == ["results.json"]
    assert (out_dir / "results.json").read_text() == "{}"
    assert stat.S_IMODE(out_dir.stat().st_mode) == 0o755
    assert f"denied {out_dir}/results.json: PermissionError" in run.stdout
    assert "wrote" not in run.stdout and f"chmod {out_dir}\n" not in run.stdout


@root_only
def test_files_left_in_shared_temporary_folders_are_removed_after_the_run(batch):
    assert batch["writes_output"].calls["backward"].ok  # it did write them
    assert not Path("/tmp/bc-shared-answers.txt").exists()
    assert not Path("/dev/shm/bc-shared-answers.txt").exists()


@root_only
def test_network_is_cut_so_inputs_cannot_be_sent_out(batch, listener):
    run = batch["phones_home"]
    if not run.isolation["network_cut"]:
        pytest.skip("this container does not allow unshare(CLONE_NEWNET)")
    assert_correct_affine(run, ("forward",))
    assert run.stdout == "no network: OSError\n"
    with pytest.raises(BlockingIOError):
        listener.accept()


@root_only
def test_kill_minus_one_cannot_reach_another_students_worker():
    slow, killer = run_many(
        [SUBMISSIONS / "slow_correct.py", SUBMISSIONS / "kills_others.py"], CALLS[:1], ARRAYS, LIMITS, jobs=2
    )
    assert slow.completed and not slow.crashed
    assert_correct_affine(slow, ("forward",))
    assert killer.completed and slow.user != killer.user


def test_cpu_limit_ends_a_busy_loop_before_the_wall_clock():
    run = run_submission(
        SUBMISSIONS / "hang.py", CALLS[:2], ARRAYS, Limits(timeout_s=5, cpu_s=1, memory_mb=768)
    )
    assert run.timed_out and run.signal == "SIGXCPU" and not run.crashed and run.seconds < 3
    assert (
        run.calls["backward"].error.message
        == "the submission used up its CPU time (cpu_s=1) during this call"
    )


def test_an_array_over_max_output_bytes_is_not_sent():
    limits = Limits(timeout_s=4, memory_mb=768, max_output_bytes=4 * 2**20)
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
    assert sandbox._value(info, [blob]).error == error


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
    assert sandbox._value(info, []).error == error


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"PASSED\n" * 10, "a result frame does not start with the protocol magic"),
        (sandbox.protocol.MAGIC + sandbox.protocol.FRAME_HEAD.pack(2**31, 0), "a result frame announces"),
        (
            sandbox.protocol.MAGIC + sandbox.protocol.FRAME_HEAD.pack(3, 0) + b"{{{",
            "a result frame header is not JSON",
        ),
        (
            sandbox.protocol.MAGIC + sandbox.protocol.FRAME_HEAD.pack(2, 0) + b"{}",
            "a result frame header has no valid blob list",
        ),
        (b"x" * 5000, "the worker sent more than 4096 bytes"),
    ],
)
def test_frame_reader_refuses_what_is_not_a_frame(data, error):
    reader = sandbox._FrameReader(max_bytes=4096)
    with pytest.raises(sandbox._ProtocolError, match=error):
        reader.feed(data)


def test_forged_records_from_student_code_never_raise_and_cannot_blame_the_grader():
    frames = [
        ({"kind": "hello", "uid": 65534}, []),
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
                "seconds": "no",
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
    outcome = sandbox._Outcome(frames, sandbox._Excerpt(10), sandbox._Excerpt(10), 0, False, False, None)
    run = sandbox._assemble("forged", CALLS, LIMITS, None, outcome, [], 0.0)
    assert run.worker_error is None and not run.completed
    assert run.calls["forward"].ok and run.calls["forward"].outputs == ()
    assert run.calls["backward"].gradients.values[0].array is None
    assert [v.error for v in run.calls["after"].outputs] == ["was not sent"] * 2
    assert run.calls["loss"].status == "not_run"
