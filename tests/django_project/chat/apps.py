from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "tests.django_project.chat"
    label = "chat"
