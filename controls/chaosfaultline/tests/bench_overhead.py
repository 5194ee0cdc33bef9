"""Overhead of the control on a real `chaos run`: a fixture run bare, with the control
unconfigured, and with the control reporting to a socket runner (runnerside.FakeRunner).
Prints medians over N runs of each (interleaved), wall time and the CPU time of the `chaos`
process, and the ratios (CPU time is the steadier figure on a loaded machine). Not a test: run it as
`python controls/chaosfaultline/tests/bench_overhead.py [N]`."""

from __future__ import annotations

import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runnerside import Chaos, FakeRunner, fixture_experiments  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    experiment = next(p for p in fixture_experiments() if p.name.endswith("check-file-exists.json"))
    with tempfile.TemporaryDirectory(prefix="flb") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        chaos = Chaos(work)
        runner = FakeRunner(str(Path(tmp) / "run.sock"))
        kinds = {
            "bare": {"control": False},
            "unconfigured": {},
            "runner": {"arguments": {"socket_path": runner.path, "execution_id": "bench"}},
        }
        wall: dict[str, list[float]] = {k: [] for k in kinds}
        cpu: dict[str, list[float]] = {k: [] for k in kinds}
        for _ in range(n):
            for kind, options in kinds.items():
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                started = time.perf_counter()
                done = chaos.run(experiment, **options)  # type: ignore[arg-type]
                wall[kind].append(time.perf_counter() - started)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu[kind].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
                assert done.journal is not None and done.journal["status"] == "completed"
        runner.die()
    for kind in kinds:
        w, c = statistics.median(wall[kind]), statistics.median(cpu[kind])
        w0, c0 = statistics.median(wall["bare"]), statistics.median(cpu["bare"])
        print(
            f"{kind:13} wall {w * 1000:7.1f} ms (x{w / w0:5.3f})   "
            f"cpu {c * 1000:7.1f} ms (x{c / c0:5.3f})   n={n}"
        )


if __name__ == "__main__":
    main()
