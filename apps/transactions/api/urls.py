from django.urls import path

from apps.transactions.api import views

urlpatterns = [
    path("transfers", views.TransferListCreateView.as_view(), name="transfers"),
    path("transfers/batch", views.TransferBatchView.as_view(), name="transfers-batch"),
    path("transfers/<uuid:transfer_id>", views.TransferDetailView.as_view(), name="transfer-detail"),
    path("deposits", views.DepositCreateView.as_view(), name="deposits"),
]
