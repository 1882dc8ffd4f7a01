from prometheus_client import Counter

NOTIFICATION_DELIVERIES = Counter(
    "fintech_notification_deliveries_total",
    "Notification sending attempts by channel and outcome (sent, retry, failed)",
    ["channel", "outcome"],
)
