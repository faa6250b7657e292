"""Backends that speak the OpenAI HTTP protocol: chat completions (candidates, judges)."""

from flywheel.backends.openai_compat._chat import OpenAICompatBackend, chat_completions_url

__all__ = ["OpenAICompatBackend", "chat_completions_url"]
