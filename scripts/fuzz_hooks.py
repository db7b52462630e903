"""Schemathesis hooks for scripts/fuzz-api.sh (loaded through SCHEMATHESIS_HOOKS).

Only generated *data* is shaped here, never a check: every answer still goes through
not_a_server_error, status_code_conformance, content_type_conformance and
response_schema_conformance.

- The seat map's long poll (`GET /v1/events/{id}/tickets?since=&wait=`) waits, by design,
  up to `wait` seconds (default 30, at most 60) for the version to pass `since`. A fuzzer
  picks `since` far ahead of the event's version almost always, so nearly every such
  request would wait its whole `wait`, and with a 60 s budget and two workers the run would
  spend itself waiting (or time out). A valid `wait` (absent or 0..=60) is lowered to at
  most 1 s; a `wait` over 60 (the 400 path) and every other value are sent as generated.
  The long poll's waiting itself is covered by node/tests/live_seats.rs.
"""

import schemathesis

LONG_POLL_PATH = "/v1/events/{id}/tickets"
WAIT_FUZZ_SECONDS_MAX = 1


@schemathesis.hook
def map_case(context, case):
    operation = getattr(context, "operation", None) or getattr(case, "operation", None)
    if operation is None or getattr(operation, "path", None) != LONG_POLL_PATH:
        return case
    query = case.query
    if not isinstance(query, dict) or "since" not in query:
        return case
    wait = query.get("wait")
    if wait is None:
        query["wait"] = WAIT_FUZZ_SECONDS_MAX
    elif isinstance(wait, int) and not isinstance(wait, bool) and 0 <= wait <= 60:
        query["wait"] = min(wait, WAIT_FUZZ_SECONDS_MAX)
    return case
