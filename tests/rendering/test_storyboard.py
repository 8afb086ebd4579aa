"""Storyboard sheets: what is on them, not just their headers.

The writer is checked with synthetic frames (random pixels, so each frame can be found
again on the sheet); the command line with real frames, for ``--columns``, ``--theme``,
``--palette`` and the default path.
"""

from __future__ import annotations

import base64
import io
import math
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from convviz.cli import main
from convviz.rendering.storyboard import Frame, write_storyboard

FW, FH = 96, 54
#: Sheet geometry in pixels (as the README's handouts are laid out).
PAD, CAPTION, TITLE = 24, 44, 70


def frames(count: int, width: int = FW, height: int = FH) -> list[Frame]:
    rng = np.random.default_rng(count)
    return [
        Frame(k + 1, f"z[1,{k + 1}]", rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        for k in range(count)
    ]


def origin(n: int, cols: int, fw: int = FW, fh: int = FH) -> tuple[int, int]:
    """Top-left pixel of frame ``n`` (0-based) on a sheet of ``cols`` columns."""
    r, c = divmod(n, cols)
    return PAD + c * (fw + PAD), TITLE + PAD + r * (fh + CAPTION + PAD)


def sheet_size(count: int, cols: int, fw: int = FW, fh: int = FH) -> tuple[int, int]:
    rows = math.ceil(count / cols)
    return cols * fw + (cols + 1) * PAD, TITLE + rows * (fh + CAPTION) + (rows + 1) * PAD


@pytest.mark.parametrize(("count", "columns", "cols"), [
    (5, 1, 1), (5, 2, 2), (5, 3, 3), (5, 5, 5), (5, 12, 5),  # never more columns than frames
    (3, None, 2), (9, None, 3), (10, None, 4),  # by count: 2 up to 4, 3 up to 9, then 4
])
def test_png_sheet_puts_frames_in_columns(tmp_path, count, columns, cols):
    shots = frames(count)
    out = write_storyboard(tmp_path / "board.png", shots, title="Forward pass", columns=columns)
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.size == sheet_size(count, cols)
        sheet = np.asarray(image.convert("RGB"))
    for n, frame in enumerate(shots):
        x, y = origin(n, cols)
        assert np.array_equal(sheet[y : y + FH, x : x + FW], frame.pixels), f"frame {n + 1}"
    assert (sheet[2, 2] == 255).all()  # white paper, whatever the clip's theme


@pytest.mark.parametrize("columns", [1, 2, 4])
def test_svg_sheet_embeds_every_frame_at_its_place(tmp_path, columns):
    shots = frames(5)
    out = write_storyboard(tmp_path / "board.svg", shots, title="Forward <pass> & more",
                           columns=columns)
    text = out.read_text(encoding="utf-8")
    width, height = sheet_size(5, columns)
    assert re.search(rf'<svg [^>]*width="{width}" height="{height}"', text)
    assert "Forward &lt;pass&gt; &amp; more" in text
    images = re.findall(
        r'<image x="(\d+)" y="(\d+)" width="(\d+)" height="(\d+)" '
        r'xlink:href="data:image/png;base64,([A-Za-z0-9+/=]+)"/>',
        text,
    )
    assert len(images) == text.count("<image ") == 5
    for n, (frame, (x, y, w, h, data)) in enumerate(zip(shots, images, strict=True)):
        assert (int(x), int(y)) == origin(n, columns)
        assert (int(w), int(h)) == (FW, FH)
        with Image.open(io.BytesIO(base64.b64decode(data))) as png:
            assert np.array_equal(np.asarray(png.convert("RGB")), frame.pixels)
        assert f">{frame.step}. {frame.caption}</text>" in text


def _pdf_objects(data: bytes) -> list[bytes]:
    return re.findall(rb"\d+ 0 obj\s*(<<.*?>>)\s*(?:stream|endobj)", data, flags=re.S)


def test_pdf_sheet_is_one_page_of_the_sheet_at_150_dpi(tmp_path):
    """One page, sized for 150 dpi, holding the sheet as its one image.

    PIL writes the whole sheet as a single JPEG image, so the frames are found in the
    decoded image (JPEG is lossy: close, not equal). The frames are flat colours, which
    JPEG keeps well (random pixels it does not).
    """
    from convviz.rendering.storyboard import compose_png
    from convviz.rendering.theme import DARK

    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200)]
    shots = [Frame(k + 1, f"z[1,{k + 1}]", np.full((FH, FW, 3), c, dtype=np.uint8))
             for k, c in enumerate(colours)]
    out = write_storyboard(tmp_path / "board.pdf", shots, title="Forward pass", columns=2)
    data = out.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    objects = _pdf_objects(data)
    pages = [o for o in objects if re.search(rb"/Type /Page\b", o)]
    assert len(pages) == 1
    (count,) = re.findall(rb"/Type /Pages.*?/Count (\d+)", data, flags=re.S)
    assert count == b"1"
    width, height = sheet_size(5, 2)
    box = [float(v) for v in re.search(rb"/MediaBox \[ ?([\d. ]+?) ?\]", pages[0])
           .group(1).split()]
    assert box == pytest.approx([0, 0, width * 72 / 150, height * 72 / 150], abs=0.01)
    images = [o for o in objects if b"/Subtype /Image" in o]
    assert len(images) == 1
    assert re.search(rb"/Width (\d+)", images[0]).group(1) == str(width).encode()
    assert re.search(rb"/Height (\d+)", images[0]).group(1) == str(height).encode()
    start = data.index(b"stream", data.index(b"/Subtype /Image")) + len(b"stream")
    start += 2 if data[start : start + 2] == b"\r\n" else 1
    stream = data[start : data.index(b"endstream", start)]
    if b"/FlateDecode" in images[0]:
        raw = np.frombuffer(zlib.decompress(stream), dtype=np.uint8)
        embedded = raw.reshape(height, width, 3).astype(int)
    else:
        assert b"/DCTDecode" in images[0]
        with Image.open(io.BytesIO(stream)) as jpeg:
            embedded = np.asarray(jpeg.convert("RGB"), dtype=int)
    expected = np.asarray(compose_png(shots, "Forward pass", DARK, 2), dtype=int)
    assert embedded.shape == expected.shape
    assert np.abs(embedded - expected).mean() < 12
    for n, colour in enumerate(colours):  # each frame is where the PNG sheet has it
        x, y = origin(n, 2)
        inner = embedded[y + 4 : y + FH - 4, x + 4 : x + FW - 4].reshape(-1, 3)
        assert np.abs(inner - np.array(colour)).max(axis=1).mean() < 10, f"frame {n + 1}"


# ------------------------------------------------------------------ command line
#: 4 steps (3x3 input, 2x2 kernel), frames of 960x540.
SMALL = ["--input", "3x3", "--kernel", "2x2", "--tex", "none"]
BIG_W, BIG_H = 960, 540


def teal_or_blue(patch: np.ndarray, colour: tuple[int, int, int]) -> float:
    return float((np.abs(patch.astype(int) - np.array(colour)).max(axis=2) < 30).mean())


@pytest.mark.slow
def test_cli_default_path_columns_and_dark_article_theme(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["storyboard", "forward", *SMALL, "--columns", "1"])
    assert result.exit_code == 0, result.output
    default = Path("media") / "storyboard_forward_3x3_k2x2.png"
    assert result.stdout.strip() == str(default)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == [
        Path("media"), default
    ]
    with Image.open(default) as image:
        assert image.size == sheet_size(4, 1, BIG_W, BIG_H)  # one frame per row
        sheet = np.asarray(image.convert("RGB"))
    for n in range(4):
        x, y = origin(n, 1, BIG_W, BIG_H)
        frame = sheet[y : y + BIG_H, x : x + BIG_W]
        assert (frame[5, 5] == 0).all()  # the dark theme's black background
        # The article's teal target (at 0.75 over black), and no Okabe-Ito blue.
        assert teal_or_blue(frame, (69, 156, 134)) > 0.002
        assert teal_or_blue(frame, (0, 86, 134)) < 1e-4  # (an antialiased pixel or so)


@pytest.mark.slow
def test_cli_light_colorblind_theme_and_columns(tmp_path):
    from convviz.rendering.theme import theme_for

    out = tmp_path / "board.png"
    result = CliRunner().invoke(
        main, ["storyboard", "forward", *SMALL, "--columns", "3", "--theme", "light",
               "--palette", "colorblind", "-o", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    target = theme_for("light", "colorblind").target
    assert target.fill_color == "#0072B2"
    alpha = target.fill_opacity
    blue = tuple(round(alpha * v + (1 - alpha) * 255) for v in (0x00, 0x72, 0xB2))
    with Image.open(out) as image:
        assert image.size == sheet_size(4, 3, BIG_W, BIG_H)  # 3 + 1 frames: two rows
        sheet = np.asarray(image.convert("RGB"))
    for n in range(4):
        x, y = origin(n, 3, BIG_W, BIG_H)
        frame = sheet[y : y + BIG_H, x : x + BIG_W]
        assert (frame[5, 5] == 255).all()  # white page
        assert teal_or_blue(frame, blue) > 0.002, f"frame {n + 1}: no blue target"
        assert teal_or_blue(frame, (69, 156, 134)) < 1e-4
