"""Exceptions with messages meant for users: each names the file, key or value at fault."""


class LangadaptError(Exception):
    """Base class of every error this library raises on bad input."""


class ConfigError(LangadaptError):
    """A config key, value, language code or method name is wrong."""


class DataError(LangadaptError):
    """An input file is missing, malformed or empty (message names the file and, if known, the line)."""
