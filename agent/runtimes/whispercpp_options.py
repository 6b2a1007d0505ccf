"""whisper.cpp's own options (a RunSpec's ``runtime_options.whispercpp``): light, no pywhispercpp import,
so a spec can be checked on a machine that does not run it (the controller)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_validator

from edgebench.agent.errors import EdgebenchError

QUANTS = ("q8_0", "q5_1")


class WhisperCppOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ggml_quant: str = "q8_0"
    """The ggml type that ``--precision int8`` runs: q8_0 (8-bit blocks) or q5_1 (5-bit blocks with a
    minimum), as whisper.cpp's ``quantize`` makes them."""

    @model_validator(mode="after")
    def _known(self) -> WhisperCppOptions:
        if self.ggml_quant not in QUANTS:
            raise EdgebenchError(f"--ggml-quant must be one of {', '.join(QUANTS)} (got '{self.ggml_quant}')")
        return self

    def check(self, runtimes: list[str], scenarios: list[str]) -> None:
        """Nothing sweep-level: other runtimes ignore it (the whispercpp results record the ggml type)."""
        return None

    def result_config(self) -> dict[str, object]:
        """Nothing from the options alone: the ggml type depends on the precision too, so the session
        records it (:meth:`WhisperCppSession.result_config`)."""
        return {}

    def ggml_type(self, precision: str) -> str:
        """The ggml file type a precision runs: fp16 -> f16, int8 -> ``ggml_quant``; fp32 has none."""
        if precision == "int8":
            return self.ggml_quant
        if precision == "fp16":
            return "f16"
        from edgebench.agent.export.ggml import NO_F32

        raise EdgebenchError(NO_F32)
