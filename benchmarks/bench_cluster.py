"""Grading on Dask against the local pool: one generated class through each, submissions per minute.

    python benchmarks/bench_cluster.py [--students 1000] [--jobs 2] [--workers 1,2] [--no-localize]

The class is ``bench_grading.py``'s (one folder per student, one file per exercise of the bank, a
planted mistake with probability 0.3 per exercise). It is graded by the local pool (``--jobs``
threads) and then by a Dask ``LocalCluster`` of each size in ``--workers`` (``--scheduler local:N``:
one single-threaded worker process per N). Starting the cluster is timed apart from grading. Every
engine must give the same scores (``seconds`` aside) and every grade must be as planted.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import pandas as pd  # noqa: E402
from bench_grading import make_class  # noqa: E402

import reference_impls  # noqa: E402
from checker.grading.cluster import LocalPool, engine_for  # noqa: E402
from checker.grading.grade import grade  # noqa: E402
from checker.grading.outputs import scores_csv  # noqa: E402


def _scores(report) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(scores_csv(report)), keep_default_na=False).drop(columns="seconds")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--workers", default="2", help="comma-separated LocalCluster sizes (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-localize", action="store_true", help="no trace runs for the hints: the engines' overhead alone"
    )
    args = parser.parse_args()
    sizes = [int(n) for n in args.workers.split(",") if n.strip()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.chmod(folder, 0o755)
        truth = make_class(folder, args.students, args.seed)
        submissions = sorted(p for p in folder.iterdir() if p.is_dir())
        engines = [(f"local pool --jobs {args.jobs}", lambda: LocalPool(args.jobs))]
        engines += [(f"--scheduler local:{n}", lambda n=n: engine_for(f"local:{n}")) for n in sizes]
        reference = None
        for label, make in engines:
            started = time.perf_counter()
            engine = make()
            startup = time.perf_counter() - started
            try:
                started = time.perf_counter()
                report = grade(
                    submissions,
                    reference_impls.EXERCISES,
                    seed=args.seed,
                    engine=engine,
                    localize=not args.no_localize,
                )
                seconds = time.perf_counter() - started
            finally:
                engine.close()
            wrong = [
                (g.submission, g.exercise, g.score, g.message[:120])
                for g in report.grades
                if (g.score == g.max_score) != truth[(g.submission, g.exercise)]
            ]
            for example in wrong[:5]:
                print("   not as planted:", example)
            scores = _scores(report)
            same = reference is None or scores.equals(reference)
            reference = scores if reference is None else reference
            per_minute = 60 * len(submissions) / seconds
            rows.append((label, startup, seconds, per_minute, len(wrong), same, len(report.not_graded)))
            print(
                f"{label:26} start {startup:5.1f} s, grade {seconds:6.1f} s: {per_minute:5.0f} submissions/minute; "
                f"grades not as planted: {len(wrong)}; same scores as the local pool: {same}; "
                f"not graded: {len(report.not_graded)}",
                flush=True,
            )
    base = rows[0][3]
    print(
        f"\n{len(submissions)} submissions x {len(reference_impls.EXERCISES)} exercises on {os.cpu_count()} cores"
    )
    for label, _, _, per_minute, *_ in rows[1:]:
        print(
            f"{label}: {per_minute / base:.2f}x the local pool's throughput ({100 * (1 - per_minute / base):+.1f}% overhead)"
        )
    return 0 if all(w == 0 and same and not n for *_, w, same, n in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
