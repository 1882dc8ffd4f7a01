from prometheus_client import Counter

EVENTS_PUBLISHED = Counter("fintech_events_published_total", "Events written to the outbox", ["event_type"])
EVENTS_HANDLED = Counter("fintech_events_handled_total", "Events applied by a handler", ["handler"])
HANDLER_FAILURES = Counter("fintech_handler_failures_total", "Handler attempts that raised", ["handler"])
DEAD_LETTERS = Counter("fintech_dead_letters_total", "Deliveries given up and dead-lettered", ["handler"])
EVENTS_RELAYED = Counter("fintech_events_relayed_total", "Events acknowledged by a relay sink", ["sink"])
