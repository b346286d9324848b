"""Prints an experiment's trials as a table and names the best one.

usage: show-results.py URL EXPERIMENT METRIC [max|min]   (password from GRIDEXP_PASSWORD)
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request


def fetch(url: str, password: str) -> list[dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {password}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def main() -> int:
    base, experiment, metric = sys.argv[1:4]
    direction = sys.argv[4] if len(sys.argv) > 4 else "max"
    trials = fetch(f"{base}/api/v1/experiments/{experiment}/trials", os.environ["GRIDEXP_PASSWORD"])
    varying = sorted(
        key
        for key in trials[0]["hyperparameters"]
        if len({json.dumps(t["hyperparameters"][key]) for t in trials}) > 1
    )
    header = ["trial", "state", *varying, metric, "seconds"]
    rows = []
    for trial in trials:
        results = trial["results"] or {}
        rows.append(
            [trial["id"], trial["state"]]
            + [json.dumps(trial["hyperparameters"][key]) for key in varying]
            + [
                f"{results[metric]:.4f}" if metric in results else "-",
                f"{results['seconds']:.1f}" if "seconds" in results else "-",
            ]
        )
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)))
    scored = [t for t in trials if isinstance((t["results"] or {}).get(metric), (int, float))]
    if not scored:
        print(f"\nno trial reported {metric} yet")
        return 1
    pick = max if direction == "max" else min
    best = pick(scored, key=lambda t: t["results"][metric])
    score = best["results"][metric]
    print(f"\nbest trial by {metric} ({direction}): {best['id']}  {metric}={score:.4f}")
    print("  hyperparameters:", json.dumps(best["hyperparameters"]))
    print(f"  model: {base}/api/v1/trials/{best['id']}/model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
