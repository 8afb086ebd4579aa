from pathlib import Path

import pytest
from manim import Scene, Square, config

from convviz.rendering.layout import Box
from convviz.rendering.output import (
    QUALITIES,
    Chapter,
    RenderError,
    box_to_pixels,
    format_for,
    format_timestamp,
    manim_config,
    render_scene,
    scene_to_pixel,
    webvtt_chapters,
    write_chapters,
)


@pytest.mark.parametrize(("letter", "size"), [
    ("l", (854, 480, 15)), ("m", (1280, 720, 30)), ("h", (1920, 1080, 60)),
    ("k", (3840, 2160, 60)),
])
def test_quality_letters(letter, size):
    q = QUALITIES[letter]
    assert (q.pixel_width, q.pixel_height, q.frame_rate) == size


def test_format_from_suffix_and_mismatch():
    assert format_for(Path("a/b.gif")) == "gif"
    assert format_for(Path("x.PNG")) == "png"
    with pytest.raises(RenderError, match=r"does not end in \.mp4"):
        format_for(Path("x.gif"), "mp4")
    with pytest.raises(RenderError, match="unsupported format"):
        format_for(Path("x.avi"))


def test_config_rejects_unknown_and_owned_keys(tmp_path):
    with pytest.raises(RenderError, match=r"unknown manim config key.*save_last_frame"):
        manim_config(tmp_path, overrides={"save_last_frame": True})
    with pytest.raises(RenderError, match="set by convviz itself: media_dir"):
        manim_config(tmp_path, overrides={"media_dir": "x"})
    with pytest.raises(RenderError, match="unknown quality"):
        manim_config(tmp_path, quality="q")


def test_config_is_complete_and_known(tmp_path):
    settings = manim_config(tmp_path, quality="m", fmt="gif",
                            overrides={"background_color": "#000000"})
    assert set(settings) <= set(config)
    assert settings["disable_caching"] is True
    assert (settings["pixel_width"], settings["frame_rate"]) == (1280, 30)
    assert settings["media_dir"] == str(tmp_path)


def test_scene_to_pixel_corners_and_center():
    kw = {"pixel_width": 1920, "pixel_height": 1080}
    assert scene_to_pixel((0, 0), **kw) == pytest.approx((960, 540))
    assert scene_to_pixel((-64 / 9, 4), **kw) == pytest.approx((0, 0))
    assert scene_to_pixel((64 / 9, -4, 0.0), **kw) == pytest.approx((1920, 1080))
    box = Box(0.0, 0.0, 128 / 9, 8.0)
    assert box_to_pixels(box.corners(), **kw) == pytest.approx((0, 0, 1920, 1080))


def test_timestamps():
    assert format_timestamp(0) == "00:00:00.000"
    assert format_timestamp(3725.0409) == "01:02:05.041"


def test_webvtt_document(tmp_path):
    chapters = [Chapter(0, 1.5, "z[1,1]"), Chapter(1.5, 3, "z[1,2]")]
    text = webvtt_chapters(chapters)
    assert text == (
        "WEBVTT\n\n1\n00:00:00.000 --> 00:00:01.500\nz[1,1]\n\n"
        "2\n00:00:01.500 --> 00:00:03.000\nz[1,2]\n"
    )
    path = tmp_path / "sub" / "chapters.vtt"
    write_chapters(path, chapters)
    assert path.read_text() == text
    assert list(path.parent.iterdir()) == [path]


def test_chapters_validated():
    with pytest.raises(ValueError):
        Chapter(2, 1, "backwards")
    with pytest.raises(ValueError):
        Chapter(0, 1, "a --> b")
    with pytest.raises(ValueError, match="starts before"):
        webvtt_chapters([Chapter(0, 2, "a"), Chapter(1, 3, "b")])


class OneSquare(Scene):
    def construct(self):
        square = Square()
        self.add(square)
        self.play(square.animate.shift([1, 0, 0]), run_time=0.2)


class Broken(Scene):
    def construct(self):
        raise RuntimeError("boom")


class Still(Scene):
    def construct(self):
        self.add(Square())


def test_instances_are_refused(tmp_path):
    with pytest.raises(RenderError, match="not a scene instance"):
        render_scene(OneSquare(), tmp_path / "x.mp4")  # type: ignore[arg-type]


@pytest.mark.slow
def test_render_png_to_exact_path(tmp_path):
    out = tmp_path / "deep" / "frame.png"
    assert render_scene(Still, out) == out
    assert out.read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in out.parent.iterdir()) == ["frame.png"]


@pytest.mark.slow
def test_render_video_metadata(tmp_path):
    av = pytest.importorskip("av")
    out = tmp_path / "clip.mp4"
    render_scene(OneSquare, out, quality="l")
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (854, 480)
        assert stream.average_rate == 15


@pytest.mark.slow
def test_failed_render_leaves_existing_file_alone(tmp_path):
    out = tmp_path / "clip.mp4"
    out.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        render_scene(Broken, out)
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


@pytest.mark.slow
def test_video_without_animation_is_an_error(tmp_path):
    out = tmp_path / "clip.mp4"
    # manim 0.22 itself refuses (RuntimeError); RenderError is the fallback check.
    with pytest.raises(RuntimeError, match=r"no play calls|played no animation"):
        render_scene(Still, out)
    assert not out.exists()


class Moving(Scene):
    def construct(self):
        square = Square()
        self.add(square)
        self.play(square.animate.shift([1.0, 0.5, 0.0]), run_time=0.6)
        self.wait(0.4)
        self.play(square.animate.set_fill("#FFFF00", opacity=0.7), run_time=0.4)


def _decoded(path: Path) -> list:
    av = pytest.importorskip("av")
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.mark.slow
def test_inline_encoding_writes_the_same_video(tmp_path, monkeypatch):
    """Frames encoded in the drawing thread give the file manim's encoder thread gives."""
    import numpy as np
    from manim.scene import scene_file_writer as sfw

    threads_seen: set[str] = set()
    original = sfw.SceneFileWriter._create_segment_encoder

    def spy(self, target):
        encoder = original(self, target)
        write = encoder.write_frame

        def recording(pixels, *, repeat=1):
            import threading

            threads_seen.add(threading.current_thread().name)
            write(pixels, repeat=repeat)

        encoder.write_frame = recording
        return encoder

    monkeypatch.setattr(sfw.SceneFileWriter, "_create_segment_encoder", spy)
    # As batch workers render: one x264 thread (whose output does not depend on timing).
    single = {"video_encoder_options": {"threads": "1"}}
    queued = render_scene(Moving, tmp_path / "queued.mp4", quality="l", overrides=single)
    assert threads_seen and "MainThread" not in threads_seen
    threads_seen.clear()
    inline = render_scene(Moving, tmp_path / "inline.mp4", quality="l", overrides=single,
                          inline_encoding=True)
    assert threads_seen == {"MainThread"}
    a, b = _decoded(queued), _decoded(inline)
    assert len(a) == len(b) == 15 + 6  # 0.6 + 0.4 + 0.4 s at 15 fps
    # The decoded pictures, not the files' bytes: container and encoder metadata may
    # differ between runs (encoder threading, muxer timing) without any frame changing.
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
