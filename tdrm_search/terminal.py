"""What `tdrm` shows on the terminal: the project's own progress and results, not the libraries' start-up logs.

`quiet_libraries` runs once, in `cli.main`, before any engine is imported; the library API never calls it (a library
user keeps vLLM's, transformers' and torch's defaults). Each library is quieted by its own switch: vLLM's log level
(an environment variable read when vllm is imported, and inherited by its engine processes; `vllm_engine` turns
vLLM's weight-loading bar off with it), torch's C++ log level, the Hugging Face hub client's and datasets'
verbosity, transformers' logging and progress bars, and Python warnings through `logging`. Errors still reach the
terminal; with a log file, everything below them goes there (torch's C++, the hub client's and datasets'
warnings excepted: they are dropped).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import tempfile
from pathlib import Path

OWN_PACKAGES = ("tdrm_search", "prm_train", "rl_bridge")  # their warnings are the project's: shown
LIBRARY_ENV = {
    "VLLM_LOGGING_LEVEL": "ERROR",  # vLLM's "(EngineCore pid=...) WARNING 12-06 ..." lines
    "TORCH_CPP_LOG_LEVEL": "ERROR",  # torch's C++ "[W1206 ... utils.cpp:68] Warning: ..." lines
    "HF_HUB_VERBOSITY": "error",  # the hub client's "... Retrying in 8s [Retry 4/5]." (own handler: not logged)
    "DATASETS_VERBOSITY": "error",
}
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def shown(record: logging.LogRecord) -> bool:
    """Whether a log record reaches the terminal: the project's warnings and anyone's errors."""
    return record.levelno >= logging.ERROR or record.name.split(".")[0] in OWN_PACKAGES


def quiet_libraries(log_file: Path | None = None) -> None:
    """Keep the libraries' info and warnings off the terminal (in `log_file` when given); errors still show.
    Environment variables the user set beforehand win."""
    for name, value in LIBRARY_ENV.items():
        os.environ.setdefault(name, value)
    terminal = logging.StreamHandler()
    terminal.addFilter(shown)
    terminal.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handlers: list[logging.Handler] = [terminal]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file))
        os.environ["VLLM_LOGGING_CONFIG_PATH"] = str(vllm_logging_config(log_file))
    logging.basicConfig(level=logging.INFO if log_file else logging.WARNING, format=FORMAT, handlers=handlers)
    logging.captureWarnings(True)  # Python warnings (FutureWarning, ...) become records of "py.warnings"

    import transformers.utils.logging as transformers_logging

    transformers_logging.disable_default_handler()  # its records go to the handlers above
    transformers_logging.enable_propagation()
    transformers_logging.disable_progress_bar()  # "Loading weights: 100%|..."


def vllm_logging_config(log_file: Path) -> Path:
    """A logging config for vLLM (`VLLM_LOGGING_CONFIG_PATH`, read by every engine process): info to `log_file`,
    errors to the terminal. Removed when the process ends."""
    handler = {"formatter": "plain", "class": "logging.StreamHandler", "stream": "ext://sys.stderr", "level": "ERROR"}
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": FORMAT}},
        "handlers": {
            "terminal": handler,
            "file": {"formatter": "plain", "class": "logging.FileHandler", "filename": str(log_file.resolve())},
        },
        "loggers": {"vllm": {"handlers": ["terminal", "file"], "level": "INFO", "propagate": False}},
    }
    fd, path = tempfile.mkstemp(prefix="tdrm-vllm-logging-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(config, f)
    atexit.register(os.unlink, path)
    return Path(path)


def print_files(files: dict[Path, str]) -> None:
    """The closing list of what a command wrote: one path a line, with what it holds."""
    width = max(len(str(p)) for p in files)
    print("\nfiles:")
    for path, what in files.items():
        print(f"  {str(path).ljust(width)}  {what}".rstrip())
