"""modelctl: a git-native registry for models, prompts, judges and datasets."""

__version__ = "0.1.0"
