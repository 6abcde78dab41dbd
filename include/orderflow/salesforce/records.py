"""Result types of the Salesforce client."""

from __future__ import annotations

from dataclasses import dataclass, field

from orderflow.errors import OrderflowError, classify_salesforce_record_error


@dataclass(frozen=True)
class SaveResult:
    """One record's outcome of a collection call (input order preserved)."""

    id: str | None
    success: bool
    errors: list[dict] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict) -> SaveResult:
        return cls(data.get("id"), bool(data.get("success")), list(data.get("errors") or []))

    @property
    def error_code(self) -> str | None:
        return str(self.errors[0].get("statusCode")) if self.errors else None

    def error(self) -> OrderflowError | None:
        """The classified error of a failed record (None on success)."""
        if self.success or not self.errors:
            return None
        return classify_salesforce_record_error(self.errors[0])
