"""Every error syncd raises on purpose, named for what the caller must do.

    SyncdError                      root; ``str(err)`` is the one line shown to the operator
    ├── ConfigError                 bad config file: fix it (exit 2); ``problems`` lists each one
    ├── UsageError                  the command line asks for the impossible (exit 2)
    ├── SourceError                 the legacy database failed or does not fit the contract
    ├── StateError                  syncd's own state store failed
    ├── LeaseLost                   another worker holds the pipeline; stop sending
    ├── Stopped                     the process is stopping; journaled work resumes (exit 0)
    ├── KeyUnknown                  `syncd lookup`: syncd knows no record and no reject for the key
    ├── BudgetExceeded              the call would cross ``daily_credit_budget``; wait
    │   └── CreditReserveReached    ... or eat into the org credits kept for other integrations
    ├── WorkFileError               a bulk file could not be written (disk full); nothing sent
    ├── RowNotRepresentable         one row's value has no CRM form: that row becomes a reject
    ├── DemoFailed                  `syncd demo` could not go on (its daemon died)
    ├── CrmError                    anything the Zoho API said
    │   ├── CrmAuthError            fatal: credentials are wrong or revoked; re-consent needed
    │   ├── CrmFatalError           fatal: request is wrong (module, field, mapping); fix config
    │   └── CrmRetriableError       temporary (429, 5xx, timeout, throttle); ``retry_after`` hint
    ├── ValueNotRepresentable       (``syncd.crm.values``) a value has no form in a field type
    └── NotifyError                 (``syncd.notify.send``) a notify target did not take a message

The last two live beside the types they carry (``FieldType``, ``NotifyTarget``), which this leaf
module does not import.

Per-row refusals (Zoho SKIPPED a record) are not exceptions: they are ``Outcome`` values
(see ``syncd.model``) because one batch carries many of them.
"""

from __future__ import annotations

from collections.abc import Sequence


class SyncdError(Exception):
    """Root of every error syncd raises on purpose."""

    exit_code = 1


class ConfigError(SyncdError):
    """The config file is missing or invalid; each problem names the file and dotted key."""

    exit_code = 2

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class UsageError(SyncdError):
    """The command line asks for something that cannot be done (unknown pipeline, ...)."""

    exit_code = 2


class SourceError(SyncdError):
    """The legacy database failed, or its table does not fit the contract."""


class StateError(SyncdError):
    """syncd's own state store failed."""


class KeyUnknown(SyncdError):
    """syncd knows nothing of this legacy key: no CRM record in its map and no reject."""

    def __init__(self, pipeline: str, key: str) -> None:
        self.pipeline, self.key = pipeline, key
        super().__init__(
            f"key {key!r} is unknown in pipeline {pipeline}: no CRM record known for this key "
            "yet, and it is not a reject (not sent yet, or not a key of the legacy table?)"
        )


class LeaseLost(SyncdError):
    """Another worker holds this pipeline's lease; this one must not send."""


class Stopped(SyncdError):
    """The process is stopping; journaled work is resumed by the next start."""

    exit_code = 0


class DemoFailed(SyncdError):
    """The demo could not go on (the daemon died or never became active)."""


class WorkFileError(SyncdError):
    """A file syncd writes for itself (a bulk file in the temp directory) could not be written:
    the disk is full or not writable. Nothing was sent; the rows stay pending and go again."""


class BudgetExceeded(SyncdError):
    """Sending now would cross the configured rolling-24h credit budget."""

    def __init__(self, needed: int, spent: int, budget: int) -> None:
        self.needed, self.spent, self.budget = needed, spent, budget
        super().__init__(
            f"daily credit budget reached: {spent} of {budget} credits spent in the last 24 h, "
            f"the next call needs {needed}; syncd waits until credits roll off "
            "(raise crm.daily_credit_budget to allow more)"
        )


class CreditReserveReached(BudgetExceeded):
    """Sending now would eat into the org credits kept for the company's other integrations."""

    def __init__(self, needed: int, org_left: int, reserve: int) -> None:
        SyncdError.__init__(
            self,
            f"credit reserve reached: Zoho reports {org_left} credits left for the whole org, "
            f"the next send needs {needed} and {reserve} are kept for other integrations "
            "(crm.credit_reserve); syncd waits until credits roll off",
        )
        self.needed, self.spent, self.budget = needed, 0, reserve
        self.org_left = org_left


class CrmError(SyncdError):
    """Something the Zoho CRM API reported."""

    def __init__(self, message: str, *, code: str | None = None, http_status: int | None = None):
        self.code = code
        self.http_status = http_status
        super().__init__(message)


class CrmAuthError(CrmError):
    """Credentials are wrong or revoked; a retry cannot help, the operator must act."""


class CrmFatalError(CrmError):
    """The request itself is wrong (module, field, mapping, file); a retry cannot help."""


class CrmRetriableError(CrmError):
    """A temporary failure (429, 5xx, timeout, dropped connection, token throttle)."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code, http_status=http_status)
        self.retry_after = retry_after


class RowNotRepresentable(SyncdError):
    """A legacy value cannot be written to its CRM field; the row becomes a reject, others go on."""

    def __init__(self, column: str, api_name: str, reason: str) -> None:
        self.column, self.api_name, self.reason = column, api_name, reason
        super().__init__(f"column {column} -> {api_name}: {reason}")
