"""The counts every section runs with: defaults that keep `make bench` within about 20 minutes
on the project's 2-core machine, each overridable on the command line."""

from __future__ import annotations

from dataclasses import dataclass, fields

SECTIONS = ("transfers", "statements", "ledger", "batch", "hot", "http", "reads", "relay")


@dataclass
class Options:
    # Figure 1: full transfers through the services, and the peers.
    transfers: int = 300  # 1 client
    transfers_per_client: int = 150  # 4 clients
    clients: int = 4
    hordak_transfers: int = 1_000
    floor_transfers: int = 2_000  # 1 client; 4 clients do this many each / 2
    warm_up: int = 20
    # Figure 2.
    counted_transfers: int = 3
    # Figure 3.
    ledger_single: int = 1_000
    ledger_batches: int = 5
    ledger_batch_size: int = 1_000
    ledger_accounts: int = 100
    # Figure 4.
    batch_requests: int = 5
    batch_items: int = 1_000
    # Figure 5.
    hot_clients: int = 8
    hot_transfers_per_client: int = 40
    # Figure 6.
    http_seconds: int = 15
    http_rate: int = 100
    http_connections: int = 50
    http_accounts: int = 100
    http_databases: str = "postgres,sqlite"
    # Figure 7.
    reads_entries: int = 1_000_000
    reads_requests: int = 1_000
    reads_sql_runs: int = 200
    reads_seconds: int = 20  # each measurement stops at this bound even if fewer requests ran
    # Figure 8.
    relay_events: int = 20_000
    relay_rounds: int = 3

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]
