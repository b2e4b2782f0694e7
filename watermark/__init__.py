"""Keyed watermarks on generated text: keys, generation, detection without the model, robustness."""
