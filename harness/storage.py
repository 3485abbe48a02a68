"""Where a study lives: sqlite:///FILE, postgresql://... (psycopg2 or psycopg) or journal:///FILE, opened as an
Optuna storage with trial heartbeats (RDB) and RetryFailedTrialCallback; URLs are shown with their password
masked, in messages too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import HarnessError


def mask_url(url: str) -> str:
    """The storage URL with its password replaced by ***."""
    if "://" not in url or "@" not in url:
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        return f"{scheme}://{cred.split(':', 1)[0]}:***@{host}"


def default_storage(reports: Path, study: str) -> str:
    return f"sqlite:///{(reports / study / 'study.db').resolve()}"


def open_storage(url: str, heartbeat: float = 10.0):
    """An Optuna storage for a URL: sqlite:///, postgresql://, journal:///path/to/file.log."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    quiet_optuna()

    shown = mask_url(url)
    try:
        if url.startswith("journal://"):
            path = Path(url[len("journal://") :])
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        if not url.startswith(("sqlite://", "postgres", "mysql")):
            raise HarnessError(f"--storage {shown}: expected sqlite:///FILE, postgresql://..., or journal:///FILE")
        engine_kwargs: dict[str, Any] = {}
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
            engine_kwargs = {"connect_args": {"timeout": 120}}  # many workers: wait for the write lock
        else:
            engine_kwargs = {"pool_pre_ping": True}
            url = _postgres_driver(url)
        # heartbeats: a trial whose worker died (SIGKILL, node lost) is failed after the grace period and
        # re-queued with the same parameters by RetryFailedTrialCallback
        return RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=max(1, round(heartbeat)),
            grace_period=max(2, round(3 * heartbeat)),
            **_retry_callback(),
        )
    except HarnessError:
        raise
    except (Exception, optuna.exceptions.OptunaError) as e:
        msg = " ".join(str(e).split()).split(" (Background on this error at:")[0]  # SQLAlchemy's link tail
        if len(msg) > 200:
            msg = msg[:200].rsplit(" ", 1)[0] + " ..."
        for secret in _passwords(url):
            msg = msg.replace(secret, "***")
        raise HarnessError(f"storage {shown}: cannot be opened ({msg})") from None


def _postgres_driver(url: str) -> str:
    """SQLAlchemy 2.1 maps postgresql:// to psycopg (3); use psycopg2 (psycopg2-binary) when that is what
    is installed."""
    import importlib.util

    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme) and importlib.util.find_spec("psycopg") is None:
            if importlib.util.find_spec("psycopg2") is not None:
                return "postgresql+psycopg2://" + url[len(scheme) :]
    return url


def _retry_callback() -> dict:
    """RetryFailedTrialCallback, named RetryHeartbeatStaleTrialCallback from Optuna 4.9 on."""
    import optuna.storages as st

    if hasattr(st, "RetryHeartbeatStaleTrialCallback"):
        return {"heartbeat_stale_trial_callback": st.RetryHeartbeatStaleTrialCallback(max_retry=3)}
    return {"failed_trial_callback": st.RetryFailedTrialCallback(max_retry=3)}


def quiet_optuna() -> None:
    import logging
    import warnings

    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _passwords(url: str) -> list[str]:
    try:
        from sqlalchemy.engine import make_url

        pw = make_url(url).password
        return [pw] if pw else []
    except Exception:
        return []


def is_rdb(storage) -> bool:
    """Whether a storage is a database (SQLite, PostgreSQL): those keep trial heartbeats, journal files do not."""
    from optuna.storages import RDBStorage

    return isinstance(storage, RDBStorage) or isinstance(getattr(storage, "_backend", None), RDBStorage)
