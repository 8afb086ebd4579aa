from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from convviz.cli import main
from convviz.config import (
    ConfigError,
    ProjectDefaults,
    SettingError,
    check_setting,
    find_defaults,
    load_defaults,
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- finding
def test_convviz_toml_is_the_whole_table(tmp_path):
    write(tmp_path / "convviz.toml", 'quality = "m"\ntheme = "light"\nformats = ["mp4", "gif"]\n')
    d = find_defaults(tmp_path)
    assert (d.quality, d.theme, d.formats) == ("m", "light", ("mp4", "gif"))
    assert d.source == tmp_path / "convviz.toml"


def test_pyproject_tool_convviz_table(tmp_path):
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n[tool.convviz]\nfps = 24\n'
          'step_time = 2\npalette = "colorblind"\n')
    d = find_defaults(tmp_path)
    assert (d.fps, d.step_time, d.palette) == (24, 2.0, "colorblind")
    assert isinstance(d.step_time, float)


def test_walks_up_and_resolves_output_dir_against_the_file(tmp_path):
    write(tmp_path / "convviz.toml", 'output_dir = "videos"\n')
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_defaults(deep).output_dir == (tmp_path / "videos").resolve()


def test_convviz_toml_wins_over_pyproject_in_the_same_directory(tmp_path):
    write(tmp_path / "convviz.toml", 'quality = "h"\n')
    write(tmp_path / "pyproject.toml", '[tool.convviz]\nquality = "m"\n')
    assert find_defaults(tmp_path).quality == "h"


def test_pyproject_without_the_table_is_passed_over(tmp_path):
    write(tmp_path / "convviz.toml", 'quality = "k"\n')
    write(tmp_path / "sub" / "pyproject.toml", '[project]\nname = "convviz-lectures"\n')
    write(tmp_path / "other" / "pyproject.toml", "this is [not toml\n")  # never parsed
    assert find_defaults(tmp_path / "sub").quality == "k"
    assert find_defaults(tmp_path / "other").quality == "k"


def test_no_file_gives_empty_defaults(tmp_path):
    assert find_defaults(tmp_path) == ProjectDefaults()
    assert ProjectDefaults().settings() == {}


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('qualty = "m"', "qualty: unknown key"),
        ('quality = "x"', "quality: must be one of l, m, h, k, got 'x'"),
        ("quality = 3", "quality: must be one of"),
        ('theme = "neon"', "theme: must be one of dark, light, got 'neon'"),
        ('palette = "rainbow"', "palette: must be one of article, colorblind"),
        ('formats = "avi"', "formats: each must be one of mp4, gif, webm, mov, png, got 'avi'"),
        ("formats = []", "formats: must be a non-empty list"),
        ('formats = ["mp4", "mp4"]', "formats: lists a format twice"),
        ("output_dir = 3", "output_dir: must be a directory path as a string"),
        ('step_time = "slow"', "step_time: must be a number of seconds, got str 'slow'"),
        ("step_time = 0.1", "step_time: must be between 0.2 and 60 seconds, got 0.1"),
        ("fps = 2.5", "fps: must be an integer, got float 2.5"),
        ("fps = true", "fps: must be an integer, got bool True"),
        ("fps = 500", "fps: must be between 1 and 120, got 500"),
        ("quality = ", "not valid TOML"),
    ],
    ids=lambda v: v if len(v) < 25 else None,
)
def test_bad_convviz_toml(tmp_path, text, expected):
    path = write(tmp_path / "convviz.toml", text + "\n")
    with pytest.raises(ConfigError) as info:
        load_defaults(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message


def test_bad_pyproject_names_the_dotted_key(tmp_path):
    write(tmp_path / "pyproject.toml", "[tool.convviz]\nfps = 0\n")
    with pytest.raises(ConfigError, match=r"pyproject.toml: tool.convviz.fps: must be between"):
        find_defaults(tmp_path)
    write(tmp_path / "pyproject.toml", '[tool]\nconvviz = "m"\n')
    with pytest.raises(ConfigError, match=r"tool.convviz: must be a table"):
        find_defaults(tmp_path)


def test_check_setting_max_steps_and_unknown():
    assert check_setting("max_steps", 3) == 3
    with pytest.raises(SettingError, match="at least 1"):
        check_setting("max_steps", 0)
    with pytest.raises(SettingError, match="unknown key"):
        check_setting("colour", "red")


# --------------------------------------------------------------- applied to `render`
@pytest.fixture
def captured(monkeypatch):
    """Replace the render API with a recorder, so `convviz render` renders nothing."""
    import convviz.rendering.api as api

    calls: list[dict] = []

    def fake_render(spec, op, **kwargs):
        calls.append({"op": op, **kwargs})
        return kwargs["output"]

    monkeypatch.setattr(api, "render", fake_render)
    return calls


def render(cwd: Path, *args: str):
    """`convviz render ARGS` run from the directory ``cwd``."""
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, ["render", *args])
    finally:
        os.chdir(old)


def test_render_uses_project_defaults(tmp_path, captured):
    write(tmp_path / "pyproject.toml", '[tool.convviz]\nquality = "m"\ntheme = "light"\n'
          'palette = "colorblind"\nformats = ["mp4", "gif"]\noutput_dir = "out"\n'
          "step_time = 0.5\nfps = 12\n")
    (tmp_path / "lectures").mkdir()
    result = render(tmp_path / "lectures", "db")
    assert result.exit_code == 0, result.output
    assert [c["fmt"] for c in captured] == ["mp4", "gif"]
    out = (tmp_path / "out").resolve()
    assert [c["output"] for c in captured] == [out / "db_6x6_k3x3.mp4", out / "db_6x6_k3x3.gif"]
    first = captured[0]
    assert (first["quality"], first["step_time"], first["fps"]) == ("m", 0.5, 12)
    from convviz.rendering.theme import theme_for

    assert first["theme"] == theme_for("light", "colorblind")


def test_render_options_override_project_defaults(tmp_path, captured):
    write(tmp_path / "convviz.toml", 'quality = "m"\ntheme = "light"\nformats = ["gif"]\n'
          "step_time = 0.5\nfps = 12\n")
    result = render(tmp_path, "db", "-q", "l", "--theme", "dark", "--palette", "article",
                    "--format", "mp4", "--step-time", "2", "--fps", "30", "-o", "x.mp4")
    assert result.exit_code == 0, result.output
    (call,) = captured
    assert (call["quality"], call["fmt"], call["step_time"], call["fps"]) == ("l", "mp4", 2.0, 30)
    assert call["output"] == Path("x.mp4")
    from convviz.rendering.theme import DARK

    assert call["theme"] == DARK


def test_render_without_project_file_keeps_builtin_defaults(tmp_path, captured):
    result = render(tmp_path, "forward")
    assert result.exit_code == 0, result.output
    (call,) = captured
    assert (call["quality"], call["fmt"], call["step_time"], call["fps"]) == ("l", "mp4", 1.0, None)
    assert call["output"] == Path("media") / "forward_6x6_k3x3.mp4"


def test_render_bad_defaults_file_is_one_line_exit_2(tmp_path, captured):
    write(tmp_path / "convviz.toml", 'theme = "neon"\n')
    result = render(tmp_path, "db")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"Error: {tmp_path / 'convviz.toml'}: theme: must be one of dark, light, got 'neon'"
    )
    assert captured == []


def test_render_transparent_checks_every_project_format(tmp_path, captured):
    write(tmp_path / "convviz.toml", 'formats = ["webm", "gif"]\n')
    result = render(tmp_path, "db", "--transparent")
    assert result.exit_code == 2
    assert "--transparent: needs webm, mov or png, not gif" in result.stderr
