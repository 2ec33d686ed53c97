"""Wall time of each teaching notebook against its budget (docs/notebooks.md: 2 minutes each,
10 in all, on a 2-core CPU).

    python benchmarks/notebook_times.py            # every notebook, a table
    python benchmarks/notebook_times.py --json     # one JSON object

Each notebook runs top to bottom in a fresh Jupyter kernel (nbclient, kernel ``python3``), in a
temporary folder, as `tests/test_notebooks.py` runs it; the time includes the kernel's start.
The budget is a speed target, so it is measured here on a quiet machine, not asserted by the
test (which a loaded machine would fail for no fault of the notebook's). Needs the dev extra.
"""

import argparse
import json
import pathlib
import sys
import tempfile
import time

import nbclient
import nbformat

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUDGET_S, TOTAL_BUDGET_S = 120, 600
CELL_TIMEOUT_S = 20 * 60  # a guard against a hung cell, far above any budget


def execute(source, folder):
    """Seconds to execute ``source`` (a notebooks/NN_name.ipynb) with its runs in ``folder``;
    raises nbclient's CellExecutionError, naming the cell, if a cell fails (the test uses this
    too, so a notebook runs the same way in both)."""
    notebook = nbformat.read(source, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(folder)}})
    started = time.perf_counter()
    client.execute()
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    times = {}
    for source in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        with tempfile.TemporaryDirectory() as folder:
            times[source.stem] = execute(source, folder)
        if not args.json:
            print(f"{source.stem:28s} {times[source.stem]:6.1f} s  "
                  f"({times[source.stem] / BUDGET_S:.2f} of its {BUDGET_S} s budget)", flush=True)
    total = sum(times.values())
    within = all(t < BUDGET_S for t in times.values()) and total < TOTAL_BUDGET_S
    if args.json:
        print(json.dumps({"seconds": times, "total": total, "budget_each": BUDGET_S,
                          "budget_total": TOTAL_BUDGET_S, "within_budget": within}))
    else:
        print(f"{'all':28s} {total:6.1f} s  ({total / TOTAL_BUDGET_S:.2f} of {TOTAL_BUDGET_S} s)"
              f"  {'within budget' if within else 'OVER BUDGET'}")
    sys.exit(0 if within else 1)


if __name__ == "__main__":
    main()
