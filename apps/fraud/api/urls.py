from django.urls import path

from apps.fraud.api import views

urlpatterns = [
    path("fraud/alerts", views.AlertListView.as_view(), name="fraud-alerts"),
    path("fraud/reviews/<uuid:transfer_id>/approve", views.ReviewApproveView.as_view(), name="fraud-review-approve"),
    path("fraud/reviews/<uuid:transfer_id>/reject", views.ReviewRejectView.as_view(), name="fraud-review-reject"),
]
