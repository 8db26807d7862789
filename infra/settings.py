"""Settings, read once from the environment (every variable starts with TCLEDGER_)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
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
    feed_poll_interval: float = Field(
        0.25, gt=0, le=5, description="seconds between looks at the log while a feed "
                                      "request long-polls (`wait=`)")

    @property
    def sqlite_path(self) -> Path:
        return self.var_dir / "tcledger.sqlite3"

    @property
    def uses_postgres(self) -> bool:
        return self.database_url.startswith(("postgresql://", "postgres://"))

    @property
    def policy_paths(self) -> list[Path]:
        return [Path(p.strip()) for p in self.policy_files.split(",") if p.strip()]
