"""Datasets of verifiable problems and the prompt templates that render them (services.data.datasets)."""
from services.data.datasets import (ANSWER_KEYS, PROMPT_KEYS, TEMPLATES, DataError, Example, epoch_order, load_dataset,
                                    render_prompt)

__all__ = ["ANSWER_KEYS", "PROMPT_KEYS", "TEMPLATES", "DataError", "Example", "epoch_order", "load_dataset",
           "render_prompt"]
