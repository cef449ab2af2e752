"""The ledger: one record per request, settled exactly once with the counters it reserved, and the
spill queue that keeps a record through a DynamoDB outage (LedgerReplayFunction drains it)."""
