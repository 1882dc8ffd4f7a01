from django.urls import path

from apps.payments.api import views

urlpatterns = [
    path("payments", views.PaymentListCreateView.as_view(), name="payments"),
    path("payments/<uuid:payment_id>", views.PaymentDetailView.as_view(), name="payment-detail"),
]
