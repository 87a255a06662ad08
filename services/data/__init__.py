"""Datasets of verifiable problems and the prompt templates that render them (services.data.datasets)."""
from services.data.datasets import (ANSWER_KEYS, PROMPT_KEYS, TEMPLATES, BadRow, DataError, DataReport, Dataset,
                                    Example, epoch_order, load_dataset, prompt_for, read_dataset, render_prompt)

__all__ = ["ANSWER_KEYS", "PROMPT_KEYS", "TEMPLATES", "BadRow", "DataError", "DataReport", "Dataset", "Example",
           "epoch_order", "load_dataset", "prompt_for", "read_dataset", "render_prompt"]
