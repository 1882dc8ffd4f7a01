from django.urls import path

from apps.notifications.api import views

urlpatterns = [
    path("notifications", views.NotificationListView.as_view(), name="notifications"),
]
