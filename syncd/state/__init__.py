"""syncd's own state: runs, bulk-job journal, realtime buffer, rejects, tokens, credits, leases."""

from __future__ import annotations
