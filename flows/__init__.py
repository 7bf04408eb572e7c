"""newsflow Prefect flows, deployments and CLI.

Importing this package sets Prefect defaults *before* Prefect is imported anywhere: analytics and
telemetry off (this machine has no internet, and a failed telemetry call prints errors), a generous
ephemeral-API start-up timeout, and warnings-only console logs. Users can override each by setting
the variable themselves.
"""

from __future__ import annotations

import os

_PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    # INFO reaches the run's log in the Prefect UI (stage counts, waits); the terminal shows warnings only.
    "PREFECT_LOGGING_LEVEL": "INFO",
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    "PREFECT_LOGGING_SERVER_LEVEL": "WARNING",
    # The UI bundle is not needed by the embedded API and serving it costs start-up time.
    "PREFECT_UI_ENABLED": "false",
}

for _key, _value in _PREFECT_DEFAULTS.items():
    os.environ.setdefault(_key, _value)

# One BLAS thread (read when NumPy loads, which is after this): newsflow's parallelism is worker
# processes, and spaCy runs on NumPy's BLAS (ingest.settings.EntitySettings.numpy_blas).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
