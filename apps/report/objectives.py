"""Do the conclusions survive other cost weights? The figures of the sensitivity study
(``python benchmarks/sensitivity.py``; optional): per setting (a latency weight or a quality
profile), whether each headline conclusion holds."""

from __future__ import annotations

from typing import Any

from apps.report.formatting import fpct
from apps.report.macros import Macros, add_pending
from apps.report.sources import SENSITIVITY

__all__ = ["SENSITIVITY_KEYS", "sensitivity_numbers"]

SENSITIVITY_KEYS = {
    "resObjSettings": "number of settings (len(conclusions))",
    "resObjCOneHolds": "settings where C1 (proposed near the optimum on Poisson) holds",
    "resObjCOneWorst": "max over settings of conclusions.*.C1.max_gap (%)",
    "resObjCTwoHolds": "settings where C2 (proposed never significantly dearer than the timeout) holds",
    "resObjCTwoReverses": "settings where C2 reverses",
    "resObjNeverDearer": "settings where proposed is nowhere significantly dearer (C2.higher = 0)",
    "resObjSeeds": "number of seeds per setting (settings.seeds)",
    "resObjHorizonS": "episode length, s (settings.horizon_s)",
    "resObjCThreeHolds": "settings where C3 (util_switch never significantly cheaper) holds",
    "resObjCFourHolds": "settings where C4 (learned agents near the optimum) holds",
}


def sensitivity_numbers(macros: Macros, data: dict[str, Any] | None) -> None:
    """The macros of :data:`SENSITIVITY_KEYS` (``[pending]`` when the study is absent)."""
    if data is None:
        add_pending(macros, SENSITIVITY_KEYS, SENSITIVITY)
        return
    verdicts = data["conclusions"]
    values = {
        "resObjSettings": str(len(verdicts)),
        "resObjCOneHolds": str(sum(bool(v["C1"]["holds"]) for v in verdicts.values())),
        "resObjCOneWorst": fpct(max(v["C1"]["max_gap"] for v in verdicts.values()), 2, sign=True),
        "resObjCTwoHolds": str(sum(v["C2"]["verdict"] == "holds" for v in verdicts.values())),
        "resObjCTwoReverses": str(sum(v["C2"]["verdict"] == "reverses" for v in verdicts.values())),
        "resObjNeverDearer": str(sum(v["C2"]["higher"] == 0 for v in verdicts.values())),
        "resObjSeeds": str(len(data["settings"]["seeds"])),
        "resObjHorizonS": f"{data['settings']['horizon_s']:g}",
        "resObjCThreeHolds": str(sum(bool(v["C3"]["holds"]) for v in verdicts.values())),
        "resObjCFourHolds": str(sum(bool(v["C4"]["holds"]) for v in verdicts.values())),
    }
    for name, key in SENSITIVITY_KEYS.items():
        macros.add(name, values[name], SENSITIVITY, key)
