"""The Zoho CRM client: see ``syncd.crm.client`` for the parts."""

from __future__ import annotations

from syncd.crm.api import RetryPolicy
from syncd.crm.bulk_csv import BulkLimits
from syncd.crm.client import CrmClient
from syncd.crm.preflight import PreflightReport
from syncd.crm.values import ValueNotRepresentable, bulk_format, to_csv_cell, to_json

__all__ = [
    "BulkLimits",
    "CrmClient",
    "PreflightReport",
    "RetryPolicy",
    "ValueNotRepresentable",
    "bulk_format",
    "to_csv_cell",
    "to_json",
]
