from django.urls import path

from apps.customers.api import views

urlpatterns = [
    path("customers", views.CustomerListCreateView.as_view(), name="customers"),
    path("customers/<uuid:customer_id>", views.CustomerDetailView.as_view(), name="customer-detail"),
    path("customers/<uuid:customer_id>/verify", views.CustomerVerifyView.as_view(), name="customer-verify"),
    path("customers/<uuid:customer_id>/reject", views.CustomerRejectView.as_view(), name="customer-reject"),
    path("customers/<uuid:customer_id>/erase", views.CustomerEraseView.as_view(), name="customer-erase"),
]
