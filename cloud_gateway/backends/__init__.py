"""Cloud model backends behind one interface (`base.CloudBackend`)."""

from __future__ import annotations

from cloud_gateway.backends.base import CloudBackend


def build_backend(settings) -> CloudBackend:
    """The backend named by `settings.backend`, built from its settings."""
    if settings.backend == "reference":
        from cloud_gateway.backends.reference import ReferenceBackend

        return ReferenceBackend(settings.reference_accuracy, settings.reference_latency_s, settings.reference_seed)
    from cloud_gateway.backends.openai_backend import OpenAIBackend

    return OpenAIBackend(
        settings.openai_base_url, settings.openai_model, settings.openai_api_key.get_secret_value(),
        timeout_s=settings.openai_timeout_s, retries=settings.openai_retries,
        max_tokens=settings.openai_max_tokens, temperature=settings.openai_temperature)
