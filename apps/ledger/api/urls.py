from django.urls import path

from apps.ledger.api import views

urlpatterns = [
    path(
        "ledger/transactions/<uuid:transaction_id>",
        views.JournalTransactionDetailView.as_view(),
        name="ledger-transaction-detail",
    ),
]
