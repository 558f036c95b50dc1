"""One frozen settings object, read from ``FINSENT_*`` variables by the CLI and passed explicitly.

Every limit is a named setting with a default and help text; ``tests/test_docs.py`` fails when
one is missing from the README's configuration reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from finsent.exceptions import FinsentError
from finsent.paths import DEFAULT_MODEL_DIR, SHARED_DATA_DIR


class Settings(BaseSettings):
    """All of finsent's configuration. Environment: ``FINSENT_<NAME>``; CLI flags override."""

    model_config = SettingsConfigDict(env_prefix="FINSENT_", frozen=True, extra="ignore")

    # --- Kafka -------------------------------------------------------------------------
    kafka_bootstrap: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, comma separated (host:port)."
    )
    topic_news: str = Field("finsent.news", description="Topic carrying news articles.")
    topic_comments: str = Field("finsent.comments", description="Topic carrying comments/posts.")
    topic_deadletter: str = Field(
        "finsent.deadletter", description="Topic receiving records that failed decode/validation."
    )
    topic_partitions: int = Field(
        6, ge=1, description="Partitions created for finsent topics (scale-out = workers <= this)."
    )
    consumer_group: str = Field("finsent-workers", description="Consumer group of the workers.")
    session_timeout_ms: int = Field(
        10_000, ge=1000, description="Kafka consumer session timeout (failover detection time)."
    )
    heartbeat_interval_ms: int = Field(
        1_000, ge=100, description="Kafka consumer heartbeat interval; below session timeout / 3."
    )
    max_poll_interval_ms: int = Field(
        300_000, ge=1000, description="Max time between polls before the group evicts a worker."
    )
    poll_max_records: int = Field(500, ge=1, description="Max records fetched per poll.")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol (production brokers with TLS/SASL)."
    )
    kafka_sasl_mechanism: str | None = Field(
        None, description="SASL mechanism, e.g. PLAIN, SCRAM-SHA-256, SCRAM-SHA-512."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL username.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (secret).")
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle for TLS to the brokers.")

    # --- Storage -----------------------------------------------------------------------
    database_url: str = Field(
        "sqlite:///finsent.db", description="SQLAlchemy URL of the store (SQLite or PostgreSQL)."
    )
    database_readonly_url: str | None = Field(
        None,
        description="URL used by the SQL console; PostgreSQL: the read-only role. "
        "Default: derived from database_url (SQLite opened with mode=ro).",
    )
    sql_timeout_s: float = Field(
        5.0, gt=0, description="Time limit of one ad-hoc SQL statement (console, `finsent sql`)."
    )
    sql_max_rows: int = Field(1000, ge=1, description="Row cap of one ad-hoc SQL result.")
    db_retry_max_s: float = Field(
        300.0, gt=0, description="How long the worker retries a failing database before exiting."
    )

    # --- Scorer ------------------------------------------------------------------------
    model: Path = Field(DEFAULT_MODEL_DIR, description="Model folder (fine-tuned, local only).")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where the model runs.")
    backend: Literal["auto", "onnx-int8", "onnx", "torch", "torch-bf16"] = Field(
        "auto",
        description="Inference backend; auto = torch fp16 on CUDA, torch-bf16 on a CPU with "
        "AMX, else the model's declared CPU default (metrics.json: ONNX INT8 when within 0.5 "
        "points of torch, else torch, run in bf16 on a CPU with AVX512-BF16).",
    )
    max_length: int = Field(128, ge=8, le=512, description="Max tokens per text for scoring.")
    max_text_chars: int = Field(
        10_000,
        ge=100,
        description="Texts are truncated to this many characters for scoring "
        "(the full text is stored).",
    )
    batch_max_size: int = Field(64, ge=1, description="Max texts in one model batch.")
    batch_max_tokens: int = Field(
        4096, ge=64, description="Token budget of one batch (padded cost = longest x count)."
    )
    batch_call_cost_tokens: int = Field(
        48, ge=0, description="What one model call costs beyond its padded tokens, in tokens: "
        "batches are split where that is cheaper (0 = greedy fill)."
    )
    batch_max_wait_ms: int = Field(
        50, ge=0, description="Max time a record waits for its batch to fill (latency bound)."
    )
    threads: int = Field(0, ge=0, description="CPU threads for inference; 0 = all cores.")

    # --- Worker / ops --------------------------------------------------------------------
    max_message_bytes: int = Field(
        1_000_000, ge=1024, description="Records larger than this are dead-lettered unparsed."
    )
    metrics_port: int = Field(
        0, ge=0, le=65535, description="Prometheus metrics port of a worker; 0 = disabled."
    )
    webhook_url: str | None = Field(None, description="Alerts are POSTed as JSON here when set.")
    dashboard_port: int = Field(8501, ge=1, le=65535, description="Port of the dashboard.")
    dashboard_password: SecretStr | None = Field(
        None, description="When set, every dashboard page requires this password."
    )
    data_dir: Path = Field(SHARED_DATA_DIR, description="Folder of the shared data sets.")
    log_level: str = Field("INFO", description="Python logging level.")

    @model_validator(mode="after")
    def _check_limits(self) -> Settings:
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise ValueError(
                "heartbeat_interval_ms must be at most a third of session_timeout_ms "
                f"(got {self.heartbeat_interval_ms} and {self.session_timeout_ms}); "
                "set FINSENT_HEARTBEAT_INTERVAL_MS lower"
            )
        return self

    @property
    def topics(self) -> list[str]:
        return [self.topic_news, self.topic_comments]

    def kafka_client_options(self) -> dict[str, object]:
        """Security options shared by producers, consumers and the admin client."""
        opts: dict[str, object] = {
            "bootstrap_servers": self.kafka_bootstrap.split(","),
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            opts["sasl_mechanism"] = self.kafka_sasl_mechanism
            opts["sasl_plain_username"] = self.kafka_sasl_username
            if self.kafka_sasl_password is not None:
                opts["sasl_plain_password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_ssl_cafile:
            opts["ssl_cafile"] = str(self.kafka_ssl_cafile)
        return opts


def load_settings(**overrides: object) -> Settings:
    """Environment + explicit overrides (CLI flags); None values mean 'not given'.

    A bad value (flag or FINSENT_* variable) becomes one FinsentError line naming the setting,
    which the CLI prints with exit code 2.
    """
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        env = f" (FINSENT_{where.upper()})" if where in Settings.model_fields else ""
        raise FinsentError(f"invalid {where}{env}: {first.get('msg')}") from e
