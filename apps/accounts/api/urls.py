from django.urls import path

from apps.accounts.api import views

urlpatterns = [
    path("accounts", views.AccountListOpenView.as_view(), name="accounts"),
    path("accounts/<uuid:account_id>", views.AccountDetailView.as_view(), name="account-detail"),
    path("accounts/<uuid:account_id>/block", views.AccountBlockView.as_view(), name="account-block"),
    path("accounts/<uuid:account_id>/unblock", views.AccountUnblockView.as_view(), name="account-unblock"),
    path("accounts/<uuid:account_id>/close", views.AccountCloseView.as_view(), name="account-close"),
    path("accounts/<uuid:account_id>/statement", views.AccountStatementView.as_view(), name="account-statement"),
]
