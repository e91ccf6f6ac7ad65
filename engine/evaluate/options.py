"""What an evaluation job is asked to do, saved as its config.json (validated: unknown keys are refused)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

STEPS = 100  # progress is reported in percent, as the "step" of a job of 100 steps


class EvalOptions(BaseModel):
    """What to evaluate and how; saved as the job's config.json."""
    model_config = ConfigDict(extra="forbid")
    run_id: int = Field(description="The fine-tuned run to comparison.")
    baseline: str = Field("base", description='"base" (the run\'s base model) or the id of another run on the same '
                                              "split.")
    limit: int | None = Field(None, ge=1, description="Evaluate only the first N test examples.")
    max_new_tokens: int = Field(128, ge=1, le=4096)
    batch_size: int = Field(16, ge=1, le=512)
    general: str | None = Field(None, description="A chat JSONL of general questions for the forgetting check.")
    json_schema: str | None = Field(None, description="A JSON Schema file the answers should match.")
    allow_weak_sandbox: bool = Field(False, description="Run code tests even where no real sandbox exists (Python-level "
                                                        "limits only: the code can read what the studio can read).")
    task: str = "chat"
    device: str = "auto"
    name: str = ""
    max_steps: int = STEPS

    def save(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
