"""Energy of a run through codecarbon's OfflineEmissionsTracker, honestly labelled.

``country`` is required (the online tracker silently guesses Canada without a network).
The method of each component is recorded — cpu ``rapl | cpu_load_tdp | constant``, gpu
``nvml | none``, ram ``estimate`` — because codecarbon's own output does not say. If the
tracker fails, or reports an error while it runs, energy is ``null`` with the error text:
never a made-up 0. Start-up and stop time are reported as overhead, outside wall time.
"""

from __future__ import annotations

import logging
import time
from typing import Any

_CPU_METHODS = {"intel_rapl": "rapl", "rapl": "rapl", "cpu_load": "cpu_load_tdp"}


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def known_country(country: str) -> bool:
    from codecarbon.input import DataSource

    return country in DataSource().get_global_energy_mix_data()


class EnergyMeter:
    """start() before the command, stop() after; ``result()`` is what goes in result.json."""

    def __init__(self, country: str, interval_s: float):
        self.country = country
        self.interval_s = interval_s
        self.tracker: Any = None
        self.error: str | None = None
        self.overhead_s = 0.0
        self.errors = _Errors()

    def start(self) -> None:
        began = time.perf_counter()
        try:
            from codecarbon import OfflineEmissionsTracker

            logging.getLogger("codecarbon").addHandler(self.errors)
            if not known_country(self.country):
                raise ValueError(f"codecarbon has no energy mix for country {self.country!r}")
            self.tracker = OfflineEmissionsTracker(
                country_iso_code=self.country, measure_power_secs=self.interval_s,
                save_to_file=False, log_level="error", tracking_mode="machine")
            self.tracker.start()
        except Exception as error:  # any failure: no energy, and why
            self.error = f"{type(error).__name__}: {error}"
            self.tracker = None
        self.overhead_s += time.perf_counter() - began

    def stop(self) -> None:
        if self.tracker is None:
            return
        began = time.perf_counter()
        try:
            self.tracker.stop()
        except Exception as error:
            self.error = f"{type(error).__name__}: {error}"
        self.overhead_s += time.perf_counter() - began
        if self.errors.messages and self.error is None:
            self.error = "codecarbon reported: " + "; ".join(self.errors.messages)

    def result(self) -> dict[str, Any]:
        base = {"country": self.country, "tracker": "codecarbon.OfflineEmissionsTracker",
                "tracking_mode": "machine", "power_interval_s": self.interval_s,
                "overhead_s": round(self.overhead_s, 6)}
        data = getattr(self.tracker, "final_emissions_data", None) if self.tracker else None
        if self.error or data is None:
            return {**base, "energy_kwh": None, "error": self.error or "the tracker reported nothing"}
        hardware = getattr(self.tracker, "_hardware", [])
        cpu = next((h for h in hardware if type(h).__name__ == "CPU"), None)
        has_gpu = any(type(h).__name__ == "GPU" for h in hardware)
        return {
            **base,
            "energy_kwh": data.energy_consumed,
            "cpu_kwh": data.cpu_energy, "ram_kwh": data.ram_energy,
            "gpu_kwh": data.gpu_energy if has_gpu else None,
            "emissions_kg": data.emissions,
            "method": {"cpu": _CPU_METHODS.get(getattr(cpu, "_mode", ""), "constant"),
                       "gpu": "nvml" if has_gpu else "none", "ram": "estimate"},
            "cpu_model": data.cpu_model, "cpu_tdp_w": getattr(cpu, "_tdp", None),
            "error": None,
        }
