"""`make chaos`: the bank under faults, proved.

While a few thousand transfers, batches and deposits arrive over HTTP, each process the bank's
supervisor runs is killed with SIGKILL, Kafka and PostgreSQL are restarted, in separate runs and
then all together. After each run the bank must have finished its work and be whole: every
transfer final, each request one effect, the books reconciled, every event written on Kafka,
each notification recorded once. The table goes to docs/reliability.md.

Not a test (it takes a quarter of an hour): a command, like `bench/`. See `python -m chaos --help`.
"""
