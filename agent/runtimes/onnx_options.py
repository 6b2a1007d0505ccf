"""ONNX Runtime's own options (a RunSpec's ``runtime_options.onnxruntime``): light, no onnxruntime import,
so a spec can be checked on a machine that does not run it (the controller)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_validator

from edgebench.agent.errors import EdgebenchError

OPT_LEVELS = ("disabled", "basic", "extended", "all")


class OrtOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ort_opt_level: str = "all"
    """Graph optimisation level: disabled, basic, extended or all."""

    @model_validator(mode="after")
    def _known(self) -> OrtOptions:
        if self.ort_opt_level not in OPT_LEVELS:
            raise EdgebenchError(
                f"--ort-opt-level must be one of {', '.join(OPT_LEVELS)} (got '{self.ort_opt_level}')"
            )
        return self

    @property
    def chosen(self) -> list[str]:
        return ["--ort-opt-level"] if self.ort_opt_level != "all" else []

    def check(self, runtimes: list[str], scenarios: list[str]) -> None:
        """Nothing sweep-level: the level is ignored by runtimes other than onnxruntime (recorded only on
        onnxruntime results)."""
        return None

    def result_config(self) -> dict[str, object]:
        return self.model_dump()
