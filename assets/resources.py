"""The one Dagster resource: pipeline settings, with the API key supplied through EnvVar.

The key is a resource field fed by `EnvVar("VAST_API_KEY")`, so the UI shows it masked and
it never lands in run config. Everything else comes from `pipeline.startup.load_settings`,
the same code the CLI uses, so Dagster and the CLI cannot disagree about settings.
"""


import os

import dagster as dg

from pipeline.core.config import Settings
from pipeline.startup import load_settings
from pipeline.storage.store import Store


class VastPipelineResource(dg.ConfigurableResource):
    """Settings of the pipeline (home, accounts, cadence) as a Dagster resource."""

    api_key: str | None = None
    home: str | None = None

    def settings(self) -> Settings:
        env = dict(os.environ)
        if self.api_key:
            env["VAST_API_KEY"] = self.api_key
        if self.home:
            env["VAST_PIPELINE_HOME"] = self.home
        return load_settings(env)

    def store(self) -> Store:
        return Store(self.settings().home)


def default_resource() -> VastPipelineResource:
    """Feeds the key through EnvVar only when it is set: unset means the embedded simulator."""
    key = dg.EnvVar("VAST_API_KEY") if os.environ.get("VAST_API_KEY") else None
    return VastPipelineResource(api_key=key)
