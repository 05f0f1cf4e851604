"""Error types shared by the engine and its edges.

The edges map these to user-facing behaviour: the CLI exits 2 on ``InputError`` and 1 on anything
else, the HTTP API answers 422 on ``InputError``. Keeping the distinction in the type (not in the
message) is what lets every edge agree on what counts as "the user's fault".
"""

from __future__ import annotations

from dataclasses import dataclass


class PusaError(Exception):
    """Base class of every error the project raises on purpose."""


class InputError(PusaError, ValueError):
    """The request itself is wrong: fixing the input fixes the error."""


@dataclass(frozen=True)
class FieldProblem:
    """One wrong field: its name, the offending value and what would have been accepted."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class SettingsError(InputError):
    """One or more settings fields are invalid; ``problems`` lists each with its field name."""

    def __init__(self, problems: list[FieldProblem]):
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))

    @classmethod
    def single(cls, field: str, message: str) -> "SettingsError":
        return cls([FieldProblem(field, message)])

    @property
    def fields(self) -> list[str]:
        return [p.field for p in self.problems]


class MediaError(InputError):
    """An input image or video cannot be read or does not fit the request."""


class ModelLoadError(PusaError):
    """A model folder or LoRA file is missing, incomplete or does not match the model."""


class ModelInputError(ModelLoadError, InputError):
    """A model folder or LoRA file the user named is missing or unreadable: bad input (CLI exit 2),
    still a load failure for code that catches :class:`ModelLoadError`."""


class LoraMismatchError(ModelLoadError):
    """A LoRA's keys or shapes do not fit the model it is applied to."""


class ModelUnavailable(PusaError):
    """No job can run because the model failed to load (HTTP 503; the studio shows it on the page)."""


class GenerationCancelled(PusaError):
    """Raised from a progress callback to stop a running generation between two steps."""
