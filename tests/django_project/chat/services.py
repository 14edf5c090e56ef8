"""What a view of the chat backend does when a conversation ends: update the row and publish
the event when (and only if) the transaction commits."""
from __future__ import annotations

from django.db import transaction

from webhooks.contrib.django import event_id_for, publish_on_commit

from .models import Conversation


def end_conversation(account: str, conversation_id: int) -> str:
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(pk=conversation_id)
        conversation.ended = True
        conversation.save()
        return publish_on_commit(account, "conversation.ended",
                                 {"conversation_id": str(conversation.pk), "visitor": {"email": conversation.visitor_email}},
                                 event_id=event_id_for("conversation", conversation.pk, "ended"))
