from django.urls import path

from connect_sessions import views

app_name = "connect_sessions"
urlpatterns = [
    path("connect/<str:token>", views.open_link, name="open"),
    path("connect-session/", views.session_page, name="page"),
    path("connect-session/finish", views.finish, name="finish"),
    path("connect-session/finish/live", views.finish_live, name="finish_live"),
]
