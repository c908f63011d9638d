"""Where one home's warehouse lives: the DuckDB file, its state and lock, the model Parquet.

Its own module because both sides need it: the build writes there and the read-only query
(`pipeline.warehouse.query`) opens it, and the read side must not import the build side.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.storage.datasets import dataset
from pipeline.storage.local import warehouse_file
from pipeline.storage.objectstore import is_remote
from pipeline.storage.store import Store

MODELS_SUBDIR = Path(dataset("models").folder)


@dataclass(frozen=True)
class Paths:
    """Where everything of one home lives (absolute, so views work from any cwd).

    The history and the model Parquet live in the home (a folder or `s3://`, through
    `store`); the DuckDB file, its state and its lock are always local (`db`, see
    `pipeline.storage.local.warehouse_file`): DuckDB writes a file in place.
    """

    home: str
    db: Path
    store: Store

    @property
    def state(self) -> Path:
        return self.db.with_name(f"{self.db.stem}_state.json")

    @property
    def lock(self) -> Path:
        return self.db.with_name(f".{self.db.stem}.lock")

    @property
    def parquet(self) -> str:
        return self.store.uri(self.store.path("parquet"))

    @property
    def models(self) -> str:
        return self.store.path(MODELS_SUBDIR.as_posix())

    def model_uri(self, rel: str) -> str:
        return self.store.uri(f"{self.models}/{rel}")


def home_paths(home: Path | str) -> Paths:
    text = str(home) if is_remote(str(home)) else str(Path(home).expanduser().resolve())
    return Paths(text, warehouse_file(text), Store(text))
