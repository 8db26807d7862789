"""Settings, read once from the environment (every variable starts with TCLEDGER_)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_VAR_DIR = Path("var")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TCLEDGER_", extra="ignore")

    env: Literal["development", "production"] = Field(
        "development", description="production refuses to start without explicit keys")
    database_url: str = Field(
        "", description="postgresql://user@host:port/db; empty: SQLite file under var_dir")
    var_dir: Path = Field(DEFAULT_VAR_DIR, description="where the SQLite file and dev keys live")
    kek: str = Field("", description="key-encryption key, 32 bytes in base64")
    kek_file: Path | None = Field(None, description="file holding the key-encryption key")
    policy_files: str = Field("", description="comma-separated program policy TOML files")
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    max_body_bytes: int = Field(65536, description="largest accepted request body")
    ingest_max_body_bytes: int = Field(
        4 * 1024 * 1024, description="largest body pushed to /ingest/ (an NDJSON bulk of "
                                     "up to 1000 lines)")
    aggregate_cache_size: int = Field(10000, description="participants kept decoded in memory")
    snapshot_interval: int = Field(
        100, ge=0, description="events between snapshots of a record (0: no snapshots)")
    pg_pool_size: int = Field(10, description="PostgreSQL connections kept open")
    projections: Literal["process", "thread", "off"] = Field(
        "process", description="who keeps the views current for the server")
    projection_batch_size: int = Field(
        500, ge=1, description="log entries a projection applies per transaction")
    audit_key_file: Path | None = Field(
        None, description="Ed25519 private key (PEM) that signs tree heads; development "
                          "generates var_dir/audit-signing-key.pem")
    audit_head_interval: float = Field(
        60.0, gt=0, description="seconds between signed tree heads while the log grows")
    projection_rebuild_batch_size: int = Field(
        250_000, ge=1, description="log entries per transaction while a view is rebuilt")
    create_tables: bool = Field(
        True, description="make missing tables at start; false for the restricted "
                          "application role, after `tcledger db migrate` as the owner")
    token_cache_seconds: float = Field(
        5.0, description="how long a checked token is trusted without asking the database")
    gc_young_threshold: int = Field(
        10_000, ge=100, description="new container objects between runs of Python's "
                                    "collector in the server (Python's default is 700)")
    feed_poll_interval: float = Field(
        0.25, gt=0, le=5, description="seconds between looks at the log while a feed "
                                      "request long-polls (`wait=`)")
    webhook_retry_schedule: str = Field(
        "0,5,300,1800,7200,18000,36000,50400,72000,86400",
        description="seconds before each delivery attempt of a webhook, comma-separated: "
                    "the first is the delay after the event, the last attempt's failure is "
                    "a dead letter (default: the Standard Webhooks schedule, about 75 h)")
    webhook_timeout: float = Field(
        15.0, gt=0, le=120, description="seconds a webhook receiver has to connect, read "
                                        "and answer")
    webhook_concurrency: int = Field(
        16, ge=1, le=256, description="webhook deliveries in flight at once per worker")
    webhook_poll_interval: float = Field(
        0.2, gt=0, le=60, description="seconds between looks at the outbox when idle")

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        retry_delays(value)
        return value

    @property
    def webhook_retry_delays(self) -> tuple[float, ...]:
        return retry_delays(self.webhook_retry_schedule)

    @property
    def sqlite_path(self) -> Path:
        return self.var_dir / "tcledger.sqlite3"

    @property
    def uses_postgres(self) -> bool:
        return self.database_url.startswith(("postgresql://", "postgres://"))

    @property
    def policy_paths(self) -> list[Path]:
        return [Path(p.strip()) for p in self.policy_files.split(",") if p.strip()]


def retry_delays(schedule: str) -> tuple[float, ...]:
    """`0,5,300` → (0.0, 5.0, 300.0): at least one delay, none negative."""
    try:
        delays = tuple(float(part) for part in schedule.split(",") if part.strip())
    except ValueError:
        raise ValueError("a comma-separated list of seconds, e.g. 0,5,300") from None
    if not delays or any(d < 0 or d != d or d == float("inf") for d in delays):
        raise ValueError("at least one delay, each 0 or more seconds")
    return delays
