"""A simulator of the payment network, the outside party that moves money between banks: for
demos, for the embedded default and for tests. It is not the bank.

- `network`: what the simulated network decides and says (answers to our payment requests,
  credits for our customers, the day's settlement file), with no transport;
- `kafka`: the network over real Kafka, as `manage.py simulate_payment_network` runs it: it reads
  `payment.requested` and `payment.credit_returned`, and writes `payment.processed` and
  `payment.received` like the real network would;
- `inline`: the network in this process, on the in-process bus, for the embedded default
  (`FINTECH_PAYMENT_NETWORK=simulator-inline`, refused in production).
"""
