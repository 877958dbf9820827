"""One report for a fleet run: per bag and overall, as JSON, a table and a chart.

Exit code, as ``regress``: 0 every bag compared and passed; 1 a regression in some bag;
2 some bag could not be compared (failed: corrupt, truncated, missing topics, model
failure), whatever else happened.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

EXIT_OK, EXIT_REGRESSION, EXIT_NOT_COMPARABLE = 0, 1, 2


@dataclass
class BagResult:
    """What became of one bag (the JSON of ``<name>.result.json``)."""

    bag: str
    name: str
    status: str = "failed"  # ok | regression | failed
    error: str = ""
    clouds_read: int = 0
    clouds_processed: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    #: label id (as text: JSON keys) -> points.
    class_counts: dict[str, int] = field(default_factory=dict)
    #: field -> share of points equal to the golden run's.
    agreement: dict[str, float] = field(default_factory=dict)
    regressions: list[str] = field(default_factory=list)
    config_changes: list[str] = field(default_factory=list)
    clouds_compared: int = 0
    seconds: float = 0.0
    engine_load_s: float = 0.0
    worker: int = 0
    skipped: bool = False


@dataclass
class FleetReport:
    results: list[dict[str, Any]]
    wall_s: float
    workers: int
    golden: str = ""

    @property
    def exit_code(self) -> int:
        statuses = {r["status"] for r in self.results}
        if "failed" in statuses:
            return EXIT_NOT_COMPARABLE
        return EXIT_REGRESSION if "regression" in statuses else EXIT_OK

    def overall(self) -> dict[str, Any]:
        processed = sum(r["clouds_processed"] for r in self.results)
        counts: Counter = Counter()
        for r in self.results:
            counts.update({int(k): v for k, v in r["class_counts"].items()})
        agreement = {}
        for name in ("label", "lidar_class"):
            weights = [(r["agreement"][name], r["clouds_compared"]) for r in self.results
                       if name in r.get("agreement", {}) and r["clouds_compared"]]  # fmt: skip
            if weights:
                agreement[name] = sum(a * w for a, w in weights) / sum(w for _, w in weights)
        return {
            "bags": len(self.results),
            "status": Counter(r["status"] for r in self.results),
            "skipped (done earlier)": sum(bool(r.get("skipped")) for r in self.results),
            "clouds read": sum(r["clouds_read"] for r in self.results),
            "clouds processed": processed,
            "clouds dropped": sum(sum(r["dropped"].values()) for r in self.results),
            "agreement with golden (cloud-weighted)": agreement,
            "class counts": dict(sorted(counts.items())),
            "wall s": round(self.wall_s, 3),
            "clouds/s": round(processed / self.wall_s, 3) if self.wall_s else None,
            "workers": self.workers,
            "exit code": self.exit_code,
        }

    def write(self, out_dir: Path) -> list[Path]:
        """``fleet_report.json`` and ``fleet_report.png`` in ``out_dir``."""
        data = {"overall": self.overall(), "golden": self.golden, "bags": self.results}
        json_path = out_dir / "fleet_report.json"
        json_path.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
        png_path = out_dir / "fleet_report.png"
        if not cv2.imwrite(str(png_path), self.chart()):
            raise OSError(f"cannot write {png_path}")
        return [json_path, png_path]

    def format(self) -> str:
        head = f"{'bag':24s} {'status':10s} {'clouds':>7s} {'dropped':>7s} {'label':>8s} " \
               f"{'lidar':>8s}  note"  # fmt: skip
        lines = [head, "-" * len(head)]
        for r in self.results:
            agreement = r.get("agreement", {})
            note = r["error"] or (r["regressions"][0] if r["regressions"] else "")
            if r.get("skipped"):
                note = f"(done earlier) {note}".strip()
            lines.append(
                f"{r['name'][:24]:24s} {r['status']:10s} {r['clouds_processed']:7d} "
                f"{sum(r['dropped'].values()):7d} {_percent(agreement.get('label')):>8s} "
                f"{_percent(agreement.get('lidar_class')):>8s}  {note[:100]}"
            )
        overall = self.overall()
        status = ", ".join(f"{k} {v}" for k, v in sorted(overall["status"].items()))
        agreement = overall["agreement with golden (cloud-weighted)"]
        changes = sorted({c for r in self.results for c in r["config_changes"]})
        lines += [
            "",
            f"{overall['bags']} bags: {status}; {overall['clouds processed']} clouds processed, "
            f"{overall['clouds dropped']} dropped in {self.wall_s:.1f} s on {self.workers} "
            f"worker(s)",
        ]
        if agreement:
            lines.append("agreement with the golden run: " + ", ".join(
                f"{k} {_percent(v)}" for k, v in agreement.items()))  # fmt: skip
        lines += changes
        verdicts = {
            EXIT_OK: "PASS: no regression",
            EXIT_REGRESSION: "REGRESSION",
            EXIT_NOT_COMPARABLE: "NOT COMPARABLE: some bag failed",
        }
        lines.append(f"{verdicts[self.exit_code]} (exit {self.exit_code})")
        return "\n".join(lines)

    def chart(self) -> np.ndarray:
        """Per-bag label agreement with the golden run (failed bags red, empty when no golden
        run), as a picture."""
        rows, row_h, left, bar_w = self.results, 22, 220, 500
        canvas = np.full((60 + row_h * len(rows) + 30, left + bar_w + 160, 3), 255, np.uint8)
        _text(canvas, f"Fleet: label agreement with the golden run ({len(rows)} bags)", 10, 24, 0.6)
        for i, r in enumerate(rows):
            y = 50 + i * row_h
            _text(canvas, r["name"][:28], 10, y + 15, 0.45)
            value = r.get("agreement", {}).get("label")
            if r["status"] == "failed":
                _text(canvas, "failed", left, y + 15, 0.45, (0, 0, 200))
                continue
            if value is None:
                _text(canvas, "not compared", left, y + 15, 0.45, (120, 120, 120))
                continue
            color = (60, 160, 60) if r["status"] == "ok" else (0, 140, 255)
            cv2.rectangle(canvas, (left, y + 3), (left + round(value * bar_w), y + row_h - 3),
                          color, -1)  # fmt: skip
            _text(canvas, _percent(value), left + round(value * bar_w) + 6, y + 15, 0.45)
        return canvas


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.3f}%"


def _text(canvas: np.ndarray, text: str, x: int, y: int, scale: float,
          color: tuple[int, int, int] = (30, 30, 30)) -> None:  # fmt: skip
    cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)
