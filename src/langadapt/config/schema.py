"""The config schema (``workflow/schemas/config.schema.yaml``): validation that fills in defaults, and YAML
reading. Errors name the file and the key."""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from langadapt.core.errors import ConfigError
from langadapt.core.provenance import REPO_ROOT

SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"


def _with_defaults(validator_class: type) -> type:
    """A jsonschema validator that also fills in `default` values (nested objects included)."""
    validate_props = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):  # noqa: ANN001
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub and prop not in instance:
                    instance[prop] = copy.deepcopy(sub["default"])
        yield from validate_props(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


@lru_cache(maxsize=4)
def _load_schema(path: str) -> dict:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _path_of(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _message(error: jsonschema.ValidationError, config: dict) -> str:
    """The error message; a key of another kind (schema ``$defs/other_kind``) names the kind."""
    if not (error.validator == "not" and error.validator_value == {}):
        return error.message
    parent: Any = config
    for key in list(error.absolute_path)[:-1]:
        parent = parent[key]
    kind = f" with kind {parent['kind']!r}" if isinstance(parent, dict) and "kind" in parent else ""
    return f"key not allowed here{kind} (value {error.instance!r})"


def validate_schema(config: dict, schema_path: Path = SCHEMA_PATH, source: str = "config") -> dict:
    """Validate `config` in place against the JSON schema, filling defaults; raise one clear error."""
    schema = _load_schema(str(schema_path))
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(list(e.absolute_path)), str(e.message)))
    if errors:
        err = errors[0]
        # oneOf/anyOf errors are easier to read through their most specific sub-error
        best = jsonschema.exceptions.best_match([err]) if err.context else err
        raise ConfigError(f"{source}: {_path_of(best)}: {_message(best, config)}")
    return config


def read_yaml(path: Path | str) -> dict:
    """Read a YAML config file into a dict (errors name the file)."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            config = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return config
