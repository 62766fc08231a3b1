"""Going behind Coffre's back, as an attacker with database access would: the append-only
triggers are lifted for one statement, then put back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text


def tamper(engine: Engine, table: str, sql: str, **params: Any) -> None:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
            conn.execute(text(sql), params)
            conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
            conn.commit()
            return
        rows = conn.execute(
            text("SELECT name, sql FROM sqlite_master WHERE type='trigger' AND tbl_name=:t"),
            {"t": table},
        ).all()
        conn.commit()
        for name, _ in rows:
            conn.execute(text(f"DROP TRIGGER {name}"))
        conn.execute(text(sql), params)
        for _, ddl in rows:
            conn.execute(text(ddl))
        conn.commit()
