"""Project defaults: render settings kept in ``convviz.toml`` or ``[tool.convviz]``.

A project writes the settings it always wants once, beside its lectures::

    # convviz.toml (the whole file is the table) or, in pyproject.toml, [tool.convviz]
    quality = "m"
    theme = "light"
    palette = "colorblind"
    formats = ["mp4", "gif"]
    output_dir = "videos"     # relative to the file that says it
    step_time = 0.8
    fps = 24

:func:`find_defaults` walks up from a directory to the first such file. Options given on
the command line override these values. Nothing here imports manim.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BUILTIN",
    "FORMATS",
    "PALETTES",
    "QUALITIES",
    "SETTING_KEYS",
    "THEMES",
    "ConfigError",
    "ProjectDefaults",
    "SettingError",
    "check_setting",
    "find_defaults",
    "load_defaults",
    "palette_names",
    "read_toml",
    "theme_names",
]

#: Keys of a defaults table, in the order they are documented.
SETTING_KEYS: tuple[str, ...] = (
    "quality",
    "theme",
    "palette",
    "formats",
    "output_dir",
    "step_time",
    "fps",
)

#: manim's quality letters: l 480p15, m 720p30, h 1080p60, k 2160p60 (the renderer's
#: :data:`convviz.rendering.output.QUALITIES` gives their sizes).
QUALITIES: tuple[str, ...] = ("l", "m", "h", "k")

#: Output formats; ``png`` is the last frame only.
FORMATS: tuple[str, ...] = ("mp4", "gif", "webm", "mov", "png")

#: Colour themes and highlight palettes (:mod:`convviz.rendering.theme` defines them).
THEMES: tuple[str, ...] = ("dark", "light")
PALETTES: tuple[str, ...] = ("article", "colorblind")

#: Settings used when neither a project file nor an option gives one.
BUILTIN: Mapping[str, Any] = {
    "quality": "l",
    "theme": "dark",
    "palette": "article",
    "formats": ("mp4",),
    "output_dir": None,
    "step_time": 1.0,
    "fps": None,
}


class SettingError(ValueError):
    """One setting breaks its rule; ``key`` names it, ``rule`` says what is wrong."""

    def __init__(self, key: str, rule: str) -> None:
        super().__init__(f"{key}: {rule}")
        self.key = key
        self.rule = rule


class ConfigError(ValueError):
    """A defaults file is unreadable or breaks a rule; the message names file and key."""


def theme_names() -> tuple[str, ...]:
    """Names of the colour themes (``dark``, ``light``, ...)."""
    return THEMES


def palette_names() -> tuple[str, ...]:
    """Names of the highlight palettes (``article``, ``colorblind``, ...)."""
    return PALETTES


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


def check_setting(key: str, value: Any) -> Any:
    """Validate one render setting and return it normalised.

    ``formats`` becomes a tuple, ``step_time`` a float; ``output_dir`` stays a string
    (the caller resolves it against the right directory).

    Raises
    ------
    SettingError
        On an unknown key, a wrong type or a value out of range.
    """
    if key == "quality":
        if not isinstance(value, str) or value not in QUALITIES:
            raise SettingError(key, f"must be one of {', '.join(QUALITIES)}, got {value!r}")
        return value
    if key == "theme":
        names = theme_names()
        if not isinstance(value, str) or value not in names:
            raise SettingError(key, f"must be one of {', '.join(names)}, got {value!r}")
        return value
    if key == "palette":
        names = palette_names()
        if not isinstance(value, str) or value not in names:
            raise SettingError(key, f"must be one of {', '.join(names)}, got {value!r}")
        return value
    if key == "formats":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple) or not value:
            raise SettingError(key, f"must be a non-empty list like [\"mp4\"], got {value!r}")
        for fmt in value:
            if not isinstance(fmt, str) or fmt not in FORMATS:
                raise SettingError(key, f"each must be one of {', '.join(FORMATS)}, got {fmt!r}")
        if len(set(value)) != len(value):
            raise SettingError(key, f"lists a format twice: {list(value)!r}")
        return tuple(value)
    if key == "output_dir":
        if not isinstance(value, str) or not value.strip():
            raise SettingError(key, f"must be a directory path as a string, got {value!r}")
        return value
    if key == "step_time":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SettingError(key, f"must be a number of seconds, got {_describe(value)}")
        if not 0.2 <= value <= 60:
            raise SettingError(key, f"must be between 0.2 and 60 seconds, got {value!r}")
        return float(value)
    if key == "fps":
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingError(key, f"must be an integer, got {_describe(value)}")
        if not 1 <= value <= 120:
            raise SettingError(key, f"must be between 1 and 120, got {value!r}")
        return value
    if key == "max_steps":
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingError(key, f"must be an integer, got {_describe(value)}")
        if value < 1:
            raise SettingError(key, f"must be at least 1, got {value!r}")
        return value
    raise SettingError(key, "unknown key")


@dataclass(frozen=True)
class ProjectDefaults:
    """Render settings from a project file; ``None`` where the file says nothing.

    Attributes
    ----------
    quality, theme, palette, formats, step_time, fps
        As the options of ``convviz render``.
    output_dir
        Where outputs go, already resolved against the file's directory.
    source
        The file the settings came from, or ``None`` when there was none.
    """

    quality: str | None = None
    theme: str | None = None
    palette: str | None = None
    formats: tuple[str, ...] | None = None
    output_dir: Path | None = None
    step_time: float | None = None
    fps: int | None = None
    source: Path | None = None

    def settings(self) -> dict[str, Any]:
        """The settings the file gives, as ``{key: value}`` (unset keys left out)."""
        values = {key: getattr(self, key) for key in SETTING_KEYS}
        return {key: value for key, value in values.items() if value is not None}


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; an unreadable or invalid one is a one-line :class:`ConfigError`."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror or err}") from None


def _from_table(path: Path, table: Any, prefix: str) -> ProjectDefaults:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: {prefix.rstrip('.')}: must be a table")
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in SETTING_KEYS:
            raise ConfigError(
                f"{path}: {prefix}{key}: unknown key (known: {', '.join(SETTING_KEYS)})"
            )
        try:
            values[key] = check_setting(key, value)
        except SettingError as err:
            raise ConfigError(f"{path}: {prefix}{key}: {err.rule}") from None
    if "output_dir" in values:
        values["output_dir"] = (path.parent / values["output_dir"]).resolve()
    return ProjectDefaults(**values, source=path)


def load_defaults(path: Path) -> ProjectDefaults:
    """Read the defaults of one ``convviz.toml``, or the ``[tool.convviz]`` of a pyproject.

    Raises
    ------
    ConfigError
        On unreadable TOML, an unknown key or a bad value, naming the file and the key.
    """
    path = Path(path)
    document = read_toml(path)
    if path.name == "pyproject.toml":
        table = document.get("tool", {}).get("convviz", {})
        return _from_table(path, table, "tool.convviz.")
    return _from_table(path, document, "")


def find_defaults(start: Path) -> ProjectDefaults:
    """Walk up from the directory ``start`` to the first project file and read it.

    In each directory a ``convviz.toml`` wins over a ``pyproject.toml``; a pyproject
    without a ``[tool.convviz]`` table is passed over. Returns empty defaults when no
    file is found.

    Raises
    ------
    ConfigError
        When the file found is bad (see :func:`load_defaults`).
    """
    for folder in [start.resolve(), *start.resolve().parents]:
        own = folder / "convviz.toml"
        if own.is_file():
            return load_defaults(own)
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and _mentions_convviz(pyproject):
            document = read_toml(pyproject)
            if "convviz" in document.get("tool", {}):
                return load_defaults(pyproject)
    return ProjectDefaults()


def _mentions_convviz(path: Path) -> bool:
    """Cheap pre-check, so an unrelated (even broken) pyproject is never parsed."""
    try:
        return "convviz" in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
