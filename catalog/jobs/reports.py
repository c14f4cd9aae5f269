"""`generate-report`: a thin entry point over catalog/reports/service.py.

(No `from __future__ import annotations`: the parameter schema is built from the model's
annotations, Literal types included, and wants them as objects.)
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from catalog.reports import service, types
from tasks import Job, PermanentError, job_type

ReportTypeName = Literal["comet-catalog", "job-activity"]
assert set(ReportTypeName.__args__) == set(types.REPORT_TYPES)  # one list of types


class GenerateReportParams(BaseModel):
    """`generate-report`: the report type, its format, its parameters, who asked."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)
    report_type: ReportTypeName
    format: Literal["csv", "pdf"]
    #: The report type's own parameters (docs/reports.md), checked here so that the trigger
    #: refuses bad ones (422 naming `params.<field>`) before a job is made.
    params: dict[str, Any] = Field(default_factory=dict)
    user_id: int | None = Field(None, ge=1, description="the requester, notified when ready")

    @field_validator("params")
    @classmethod
    def _check_params(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        report_type = info.data.get("report_type")
        if report_type is None:
            return value  # the report type is wrong, and said so
        try:
            parsed = types.parse_params(report_type, value)
        except types.BadParams as exc:
            raise PydanticCustomError("invalid_params", "{detail}", {"detail": str(exc)}) from None
        return parsed.model_dump(mode="json", by_alias=True, exclude_none=True)


@job_type("generate-report", queue="reports", attempts=3, timeout=3_600_000,
          schema=GenerateReportParams,
          backoff={"type": "exponential", "delay": 5000, "factor": 5, "jitter": 0.2})  # fmt: skip
def generate_report(job: Job, report_type: str, format: str, params: dict[str, Any],  # noqa: A002
                    user_id: int | None = None) -> dict[str, Any]:  # fmt: skip
    """Write a CSV or PDF report to storage and tell the requester it is ready."""
    try:
        return service.generate(job.id, report_type, format, params, user_id,
                                progress=job.update_progress)  # fmt: skip
    except service.ReportError as exc:
        raise PermanentError(str(exc)) from exc
