from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from convviz.batch import (
    HASH_SUFFIX,
    LectureError,
    load_lecture,
    render_job,
    spec_from_fields,
)
from convviz.cli import main
from convviz.config import ProjectDefaults, SettingError
from convviz.spec import ConvSpec

#: Tiny, fast clips: one step at 480p15.
TINY = '[defaults]\nquality = "l"\nmax_steps = 1\ninput = "4x4"\nkernel = "2x2"\n'


def lecture(folder: Path, body: str, *, defaults: str = TINY, name: str = "lecture.toml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(defaults + "\n" + body, encoding="utf-8")
    return path


def clip(name: str, op: str = "db", **fields: object) -> str:
    lines = ["[[clip]]", f'name = "{name}"', f'op = "{op}"']
    for key, value in fields.items():
        text = f'"{value}"' if isinstance(value, str) else str(value).lower()
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def batch(*args: str | Path):
    return CliRunner().invoke(main, ["batch", *map(str, args)])


def statuses(output: str) -> dict[str, str]:
    """``{output file name: status}`` from the summary table."""
    found = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[3] in ("rendered", "up-to-date", "FAILED", "interrupted"):
            found[f"{parts[0]}.{parts[2]}"] = parts[3]
    return found


# ----------------------------------------------------------------- malformed files
BAD_FILES = [
    ("missing-op", '[[clip]]\nname = "a"\n', 'clip 1 ("a"): op: required'),
    ("unknown-op", clip("a", "backward"), 'clip 1 ("a"): op: must be one of forward, dw, da'),
    ("bad-stride", clip("a") + clip("pooling-intro", stride=0),
     'clip 2 ("pooling-intro"): stride: must be at least 1, got \'0\''),
    ("bad-input", clip("a", input="6y6"), 'clip 1 ("a"): input: expected sizes like NxN'),
    ("kernel-too-big", clip("a", kernel="5x5"),
     'clip 1 ("a"): kernel: kernel height after dilation (5) is larger'),
    ("bad-bias", clip("a", bias="no"), 'clip 1 ("a"): bias: must be true or false'),
    ("bad-filters", clip("a", filters=0), "filters: must be a positive integer, got '0'"),
    ("duplicate", clip("a") + clip("b") + clip("a"), 'clip 3 ("a"): name: same as clip 1'),
    ("missing-name", '[[clip]]\nop = "db"\n', "clip 1: name: required"),
    ("unsafe-name", clip("../x"), 'clip 1 ("../x"): name: must be a file name'),
    ("unknown-key", clip("a", colour="red"), 'clip 1 ("a"): colour: unknown key'),
    ("wrong-type", clip("a", max_steps="1"), 'clip 1 ("a"): max_steps: must be an integer'),
    ("bad-format", '[[clip]]\nname = "a"\nop = "db"\nformats = ["avi"]\n',
     'clip 1 ("a"): formats: each must be one of'),
    ("bad-theme", clip("a", theme="neon"), 'clip 1 ("a"): theme: must be one of dark, light'),
    ("not-toml", "[[clip]\nname = ", "not valid TOML"),
    ("no-clips", "", "clip: no [[clip]] entries"),
    ("clip-not-array", "clip = 3\n", "clip: must be an array of tables"),
    ("unknown-top-level", "title = 'x'\n" + clip("a"), "title: unknown key"),
]


@pytest.mark.parametrize(("body", "expected"), [b[1:] for b in BAD_FILES],
                         ids=[b[0] for b in BAD_FILES])
def test_malformed_lecture_is_one_line_exit_2(tmp_path, body, expected):
    top_level = body and not body.startswith("[")  # keys that must come before [defaults]
    path = lecture(tmp_path, body, defaults="" if top_level else TINY)
    result = batch(path)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"Error: {path}: ")
    assert expected in line


@pytest.mark.parametrize(
    ("defaults", "expected"),
    [
        ('[defaults]\nstride = "x"\n', "[defaults]: stride: expected an integer like 2"),
        ('[defaults]\nquality = "q"\n', "[defaults]: quality: must be one of l, m, h, k"),
        ('[defaults]\nname = "a"\n', "[defaults]: name: unknown key"),
        ('defaults = 3\n', "defaults: must be a table"),
    ],
)
def test_malformed_defaults_table(tmp_path, defaults, expected):
    result = batch(lecture(tmp_path, clip("a"), defaults=defaults))
    assert result.exit_code == 2
    assert expected in result.stderr


def test_error_from_defaults_is_traced_to_them(tmp_path):
    path = lecture(tmp_path, clip("a", input="6x6"), defaults='[defaults]\nkernel = "7x7"\n')
    with pytest.raises(LectureError, match=r'clip 1 \("a"\): kernel \(from \[defaults\]\)'):
        load_lecture(path)


def test_layer_fields_use_the_cli_rules():
    assert spec_from_fields({"input": "3x6x6", "stride": "2x1", "padding": 1, "bias": False}) == \
        ConvSpec(input_size=(6, 6), channels=3, stride=(2, 1), padding=(1, 1), bias=False)
    with pytest.raises(SettingError) as info:
        spec_from_fields({"dilation": 0})
    assert str(info.value) == "dilation: must be at least 1, got '0'"


def test_missing_lecture_file(tmp_path):
    result = batch(tmp_path / "nope.toml")
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert "Invalid value for 'LECTURE'" in line
    assert f"{tmp_path / 'nope.toml'}' does not exist" in line


# ------------------------------------------------------ resolution and options (dry run)
def dry(path: Path, *args: str) -> list[str]:
    result = batch(path, "--dry-run", *args)
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def test_settings_resolve_builtin_project_lecture_clip(tmp_path):
    (tmp_path / "convviz.toml").write_text('quality = "h"\ntheme = "light"\nfps = 10\n')
    path = lecture(tmp_path / "week1", clip("a") + clip("b", quality="m", fps=20),
                   defaults='[defaults]\ntheme = "dark"\nstep_time = 0.5\n')
    jobs = load_lecture(path, ProjectDefaults(quality="h", theme="light", fps=10)).jobs
    assert [(j.quality, j.theme, j.fps, j.step_time) for j in jobs] == [
        ("h", "dark", 10, 0.5),
        ("m", "dark", 20, 0.5),
    ]
    lines = dry(path)
    assert "q=h  theme=dark" in lines[0] and "fps=10" in lines[0]
    assert "q=m  theme=dark" in lines[1] and "fps=20" in lines[1]
    assert lines[0].endswith(str(tmp_path / "week1" / "media" / "a.mp4"))


def test_project_output_dir_and_formats(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.convviz]\nformats = ["mp4", "gif"]\noutput_dir = "videos"\n'
    )
    lines = dry(lecture(tmp_path / "l", clip("a")))
    assert [line.split()[2] for line in lines] == ["mp4", "gif"]
    assert lines[1].endswith(str(tmp_path.resolve() / "videos" / "a.gif"))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-q", "k"], "q=k "),
        (["--quality", "m"], "q=m "),
        (["--theme", "light"], "theme=light "),
        (["--palette", "colorblind"], "palette=colorblind "),
        (["--step-time", "0.25"], "step_time=0.25 "),
        (["--fps", "7"], "fps=7 "),
        (["--max-steps", "3"], "max_steps=3 "),
        (["--format", "gif"], " gif "),
    ],
)
def test_cli_options_override_every_file(tmp_path, args, expected):
    (tmp_path / "convviz.toml").write_text(
        'quality = "h"\ntheme = "dark"\npalette = "article"\nfps = 12\nstep_time = 2\n'
    )
    path = lecture(tmp_path, clip("a", quality="l", fps=30, max_steps=1, formats="webm"))
    (line,) = dry(path, *args)
    assert expected in line


def test_repeated_format_and_output_dir_options(tmp_path):
    path = lecture(tmp_path, clip("a"))
    lines = dry(path, "--format", "gif", "--format", "png", "-o", str(tmp_path / "out"))
    assert [line.split()[-1] for line in lines] == [
        str(tmp_path / "out" / "a.gif"), str(tmp_path / "out" / "a.png")
    ]
    lines = dry(path, "--output-dir", str(tmp_path / "o2"))
    assert lines[0].endswith(str(tmp_path / "o2" / "a.mp4"))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--fps", "0"], "--fps: must be between 1 and 120, got 0"),
        (["--step-time", "100"], "--step-time: must be between 0.2 and 60 seconds"),
        (["--max-steps", "0"], "--max-steps: must be at least 1, got 0"),
        (["--theme", "neon"], "--theme: must be one of dark, light, got 'neon'"),
        (["--palette", "x"], "--palette: must be one of article, colorblind"),
        (["--format", "avi"], "Invalid value for '--format'"),
        (["-q", "z"], "Invalid value for '-q' / '--quality'"),
        (["-j", "0"], "Invalid value for '-j' / '--jobs'"),
        (["--scheduler", "nonsense"], "--scheduler: expected an address like tcp://HOST:PORT"),
        (["--scheduler", "tcp://127.0.0.1:8786", "-j", "2"], "-j: not used with --scheduler"),
        (["--scheduler", "tcp://127.0.0.1:8786", "--scheduler-timeout", "0"],
         "Invalid value for '--scheduler-timeout'"),
        (["--scheduler-timeout", "5"], "--scheduler-timeout: only used with --scheduler"),
    ],
)
def test_bad_options_are_one_line_exit_2(tmp_path, args, expected):
    result = batch(lecture(tmp_path, clip("a")), *args)
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert expected in line


def test_unreachable_scheduler_is_one_line_exit_1(tmp_path):
    pytest.importorskip("distributed")
    path = lecture(tmp_path, clip("a"))
    start = time.monotonic()
    result = batch(path, "--scheduler", "tcp://127.0.0.1:9", "--scheduler-timeout", "1")
    elapsed = time.monotonic() - start
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stderr.splitlines()[-1].startswith(
        "Error: --scheduler: cannot reach tcp://127.0.0.1:9"
    )
    assert elapsed < 8  # gave up after about 1 s, not the default 10 s


def test_hash_decides_up_to_date(tmp_path):
    path = lecture(tmp_path, clip("a"))
    (job,) = load_lecture(path).jobs
    job.output.parent.mkdir(parents=True)
    job.output.write_bytes(b"video")
    assert not job.is_up_to_date()
    job.hash_path.write_text(job.digest() + "\n")
    assert job.is_up_to_date()
    assert "up-to-date" in dry(path)[0]
    assert "to render" in dry(path, "--force")[0]
    assert "to render" in dry(path, "--fps", "5")[0]  # any setting changes the hash
    (other,) = load_lecture(lecture(tmp_path, clip("a", stride=2))).jobs
    assert other.digest() != job.digest()
    job.output.unlink()
    assert not job.is_up_to_date()


def test_up_to_date_run_renders_nothing(tmp_path, monkeypatch):
    path = lecture(tmp_path, clip("a") + clip("b", op="dw"))
    for job in load_lecture(path).jobs:
        job.output.parent.mkdir(parents=True, exist_ok=True)
        job.output.write_bytes(b"video")
        job.hash_path.write_text(job.digest())
    import convviz.batch

    def no_executor(*args, **kwargs):
        raise AssertionError("no worker may start when everything is up to date")

    monkeypatch.setattr(convviz.batch, "process_executor", no_executor)
    result = batch(path)
    assert result.exit_code == 0, result.output
    assert statuses(result.stdout) == {"a.mp4": "up-to-date", "b.mp4": "up-to-date"}
    assert "2 outputs: 0 rendered, 2 up to date, 0 failed" in result.stdout


# ------------------------------------------------------------------ real renders
@pytest.mark.slow
def test_batch_renders_skips_and_rerenders_only_what_changed(tmp_path):
    body = clip("a") + clip("b", op="dw") + clip("c", op="forward", stride=2)
    path = lecture(tmp_path, body)
    result = batch(path, "-j", "2")
    assert result.exit_code == 0, result.output
    assert statuses(result.stdout) == {"a.mp4": "rendered", "b.mp4": "rendered",
                                       "c.mp4": "rendered"}
    progress = result.stderr.splitlines()
    assert len(progress) == 3 and all(re.match(r"\[\d/3\] \w\.mp4: rendered", p)
                                      for p in progress)
    media = tmp_path / "media"
    for name in "abc":
        assert (media / f"{name}.mp4").stat().st_size > 1000
        assert len((media / f"{name}.mp4{HASH_SUFFIX}").read_text().strip()) == 64
    assert not [p for p in media.iterdir() if p.name.startswith(".")]  # no partial files

    again = batch(path, "-j", "2")
    assert again.exit_code == 0
    assert set(statuses(again.stdout).values()) == {"up-to-date"}

    lecture(tmp_path, body.replace("stride = 2", "stride = 1"))
    changed = batch(path, "-j", "1")
    assert changed.exit_code == 0, changed.output
    assert statuses(changed.stdout) == {"a.mp4": "up-to-date", "b.mp4": "up-to-date",
                                        "c.mp4": "rendered"}


@pytest.mark.slow
def test_failing_clip_does_not_stop_the_others(tmp_path):
    path = lecture(tmp_path, clip("good") + clip("bad"))
    (tmp_path / "media" / "bad.mp4").mkdir(parents=True)  # the output path is a directory
    result = batch(path, "-j", "1")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert statuses(result.stdout) == {"good.mp4": "rendered", "bad.mp4": "FAILED"}
    (bad_row,) = [line for line in result.stdout.splitlines() if line.startswith("bad ")]
    assert "directory" in bad_row.lower()
    assert (tmp_path / "media" / "good.mp4").is_file()
    assert not (tmp_path / "media" / f"bad.mp4{HASH_SUFFIX}").exists()
    assert result.stderr.splitlines()[-1] == "Error: 1 of 2 outputs failed (see the table)"


def _dies_on_doomed(payload):
    """A batch worker function whose process dies (as if killed) on the clip "doomed"."""
    if payload["name"] == "doomed":
        os._exit(1)
    return render_job(payload)


@pytest.mark.slow
def test_worker_that_dies_fails_its_clip_and_the_others_finish(tmp_path, monkeypatch):
    import convviz.batch

    # Workers unpickle the function by name, importing this module; the clips cost the
    # same, so one worker renders them in file order and dies on the last.
    monkeypatch.setattr(convviz.batch, "render_job", _dies_on_doomed)
    path = lecture(tmp_path, clip("a") + clip("b", op="dw") + clip("doomed"))
    result = batch(path, "-j", "1")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert statuses(result.stdout) == {"a.mp4": "rendered", "b.mp4": "rendered",
                                       "doomed.mp4": "FAILED"}
    (row,) = [line for line in result.stdout.splitlines() if line.startswith("doomed ")]
    assert row.endswith("the worker process died (out of memory, or killed)")
    media = tmp_path / "media"
    for name in "ab":
        assert (media / f"{name}.mp4").stat().st_size > 1000
        assert (media / f"{name}.mp4{HASH_SUFFIX}").is_file()
    assert not (media / "doomed.mp4").exists()
    assert not (media / f"doomed.mp4{HASH_SUFFIX}").exists()
    assert result.stderr.splitlines()[-1] == "Error: 1 of 3 outputs failed (see the table)"


@pytest.mark.slow
def test_force_renders_up_to_date_clips_again(tmp_path):
    path = lecture(tmp_path, clip("a"))
    first = batch(path, "-j", "1")
    assert first.exit_code == 0, first.output
    video = tmp_path / "media" / "a.mp4"
    stamp = video.with_name(video.name + HASH_SUFFIX)
    for file in (video, stamp):
        os.utime(file, (1_000_000_000, 1_000_000_000))
    assert "up-to-date" in dry(path)[0]  # without --force, nothing would be rendered

    forced = batch(path, "-j", "1", "--force")
    assert forced.exit_code == 0, forced.output
    assert statuses(forced.stdout) == {"a.mp4": "rendered"}
    assert "1 outputs: 1 rendered, 0 up to date, 0 failed" in forced.stdout
    assert video.stat().st_mtime > 1_000_000_000 and video.stat().st_size > 1000
    assert stamp.stat().st_mtime > 1_000_000_000
    (job,) = load_lecture(path).jobs
    assert job.is_up_to_date()


def test_missing_dask_is_one_line_exit_2(tmp_path, monkeypatch):
    """Without ``distributed`` installed, --scheduler names the package to install.

    Exit 2, as for every option the machine cannot honour (``OptionError``), and nothing
    is rendered or written.
    """
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    path = lecture(tmp_path, clip("a"))
    result = batch(path, "--scheduler", "tcp://127.0.0.1:8786")
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [
        "Error: --scheduler: needs Dask's distributed package: pip install 'dask[distributed]'"
    ]
    assert result.stdout == ""
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lecture.toml"]


@pytest.mark.slow
def test_dask_scheduler(tmp_path):
    distributed = pytest.importorskip("distributed")
    path = lecture(tmp_path, clip("a") + clip("b", op="da") + clip("bad"))
    (tmp_path / "media" / "bad.mp4").mkdir(parents=True)  # the output path is a directory
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        scheduler_port=0,
        dashboard_address=None,
    )
    try:
        result = batch(path, "--scheduler", cluster.scheduler_address)
    finally:
        cluster.close()
    # A clip failing on a worker fails alone, reported like a local failure.
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert statuses(result.stdout) == {"a.mp4": "rendered", "b.mp4": "rendered",
                                       "bad.mp4": "FAILED"}
    (bad_row,) = [line for line in result.stdout.splitlines() if line.startswith("bad ")]
    assert "directory" in bad_row.lower()
    assert "lost by the executor" not in bad_row  # the worker's own one-line error
    for name in "ab":
        assert (tmp_path / "media" / f"{name}.mp4").stat().st_size > 1000
        assert (tmp_path / "media" / f"{name}.mp4{HASH_SUFFIX}").is_file()
    assert not (tmp_path / "media" / f"bad.mp4{HASH_SUFFIX}").exists()
    assert result.stderr.splitlines()[-1] == "Error: 1 of 3 outputs failed (see the table)"


class _Done:
    """A finished future: ``result()`` returns ``value`` or raises ``error``."""

    def __init__(self, value=None, error=None):
        import concurrent.futures as cf

        self.future = cf.Future()
        if error is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(value)


class _InterruptingExecutor:
    """Runs nothing: job "a" has rendered, job "b" got Ctrl-C, the others never start."""

    def __init__(self):
        import concurrent.futures as cf

        self.submitted = []
        self.shutdowns = []
        self._cf = cf

    def submit(self, fn, payload):
        self.submitted.append(payload["name"])
        if payload["name"] == "a":
            return _Done({"ok": True, "seconds": 1.5}).future
        if payload["name"] == "b":
            return _Done(error=KeyboardInterrupt()).future
        return self._cf.Future()  # queued: never runs

    def shutdown(self, wait=True, *, cancel_futures=False):
        self.shutdowns.append((wait, cancel_futures))


def test_interrupted_run_reports_what_was_done(tmp_path, monkeypatch):
    import concurrent.futures as cf

    import convviz.batch
    from convviz.batch import BatchInterrupted, run_batch

    path = lecture(tmp_path, clip("a") + clip("b") + clip("c") + clip("d"))
    jobs = load_lecture(path).jobs
    # "d" is up to date already.
    jobs[3].output.parent.mkdir(parents=True)
    jobs[3].output.write_bytes(b"video")
    jobs[3].hash_path.write_text(jobs[3].digest())
    executor = _InterruptingExecutor()
    real = cf.as_completed

    def in_file_order(futures):  # "a" is reported before "b" interrupts
        order = sorted(futures, key=lambda f: futures[f])
        yield from real(order[:1])
        yield from real(order[1:2])
        raise AssertionError("the loop must stop at the interrupt")

    monkeypatch.setattr(convviz.batch.cf, "as_completed", in_file_order)
    seen = []
    with pytest.raises(BatchInterrupted) as info:
        run_batch(jobs, lambda: executor, on_result=seen.append)
    assert isinstance(info.value, KeyboardInterrupt)  # a plain Ctrl-C to anyone else
    assert [(r.job.name, r.status) for r in info.value.results] == [
        ("a", "rendered"), ("b", "interrupted"), ("c", "interrupted"), ("d", "up-to-date")
    ]
    assert info.value.results[0].seconds == 1.5
    assert [r.job.name for r in seen] == ["d", "a"]  # on_result only for what happened
    assert executor.submitted == ["a", "b", "c"]
    assert executor.shutdowns == [(True, True)]  # queued jobs dropped, running ones awaited


def _interrupted_on_stop(payload):
    """A batch worker function that gets Ctrl-C while rendering the clip "stop"."""
    if payload["name"] != "stop":
        return render_job(payload)
    import convviz.rendering.api as api

    real_render = api.render

    def interrupted(*args, **kwargs):
        def on_step(done, total):
            raise KeyboardInterrupt

        return real_render(*args, **{**kwargs, "on_step": on_step})

    api.render = interrupted
    try:
        return render_job(payload)  # KeyboardInterrupt is not a clip failure: it escapes
    finally:
        api.render = real_render


@pytest.mark.slow
def test_ctrl_c_stops_the_batch_and_the_summary_says_what_was_done(tmp_path, monkeypatch):
    """Ctrl-C while a clip renders: no partial file, a summary, "Aborted.", exit 130.

    The interrupt reaches the worker rendering "stop" (as Ctrl-C reaches the whole
    process group) and comes back to the batch through its future. "a" was done before;
    "c" may have been handed to the worker already (then it is finished and reported),
    else it is dropped: either way the table says what is on disk.
    """
    import convviz.batch

    monkeypatch.setattr(convviz.batch, "render_job", _interrupted_on_stop)
    path = lecture(tmp_path, clip("a") + clip("stop") + clip("c"))
    result = batch(path, "-j", "1")
    assert result.exit_code == 130, result.output
    assert result.stderr.splitlines()[-1] == "Aborted."
    assert "Traceback" not in result.output
    found = statuses(result.stdout)
    assert found["a.mp4"] == "rendered" and found["stop.mp4"] == "interrupted"
    assert found["c.mp4"] in ("rendered", "interrupted")
    (summary,) = [line for line in result.stdout.splitlines() if " outputs: " in line]
    rendered = sum(status == "rendered" for status in found.values())
    assert summary.startswith(
        f"3 outputs: {rendered} rendered, 0 up to date, 0 failed, {3 - rendered} interrupted"
    )
    media = tmp_path / "media"
    for name, status in found.items():
        done = status == "rendered"
        assert (media / name).is_file() == done, name
        assert (media / f"{name}{HASH_SUFFIX}").is_file() == done, name
    assert [p.name for p in media.iterdir() if p.name.startswith(".")] == []  # no .part
    (job_a, job_stop, _) = load_lecture(path).jobs
    assert job_a.is_up_to_date() and not job_stop.is_up_to_date()


@pytest.mark.slow
def test_batch_without_tex_typesets_with_typst(tmp_path):
    """No latex/dvisvgm on PATH: the clip renders with Typst and is hashed as such."""
    import json
    import shutil
    import subprocess
    import sys
    from unittest import mock

    import av

    import convviz.batch

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "uname", "env"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{bin_dir}",
           "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    assert shutil.which("latex", path=env["PATH"]) is None
    path = lecture(tmp_path / "lecture", clip("a", op="forward"))
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("convviz")), "batch", str(path), "-j", "1"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert statuses(proc.stdout) == {"a.mp4": "rendered"}
    video = tmp_path / "lecture" / "media" / "a.mp4"
    with av.open(str(video)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames > 10
    (job,) = load_lecture(path).jobs
    stored = (video.parent / f"a.mp4{HASH_SUFFIX}").read_text().strip()
    with mock.patch.object(convviz.batch, "_latex_available", return_value=False):
        assert stored == job.digest()  # hashed as a Typst render
    if convviz.batch._latex_available():  # here, with TeX, the same clip hashes otherwise
        assert stored != job.digest()
    # No LaTeX ran: nothing was compiled into the TeX cache.
    tex = tmp_path / "cache" / "convviz" / "tex"
    assert not tex.exists() or not any(tex.rglob("*.dvi")), json.dumps(
        sorted(str(p) for p in tex.rglob("*"))
    )



def _inline_flag(_: int) -> bool:
    import convviz.batch

    return convviz.batch._INLINE_ENCODING


@pytest.mark.slow
def test_workers_encode_inline_only_when_each_owns_a_core(monkeypatch):
    import convviz.batch

    monkeypatch.setattr(convviz.batch.os, "cpu_count", lambda: 2)
    for jobs, inline in ((1, False), (2, True)):
        with convviz.batch.process_executor(jobs) as pool:
            assert set(pool.map(_inline_flag, range(2 * jobs))) == {inline}


def test_lecture_clips_take_every_layer_type_and_its_keys(tmp_path):
    from convviz.layers.conv_transpose2d import ConvTranspose2d
    from convviz.layers.linear import Linear
    from convviz.layers.pooling import MaxPool2d

    body = (
        clip("pool", "da", type="maxpool2d", stride=1)
        + clip("tconv", "forward-scatter", type="conv-transpose2d", input="3x3", stride=2,
               output_padding=1)
        + clip("dense", "dw", type="dense", input="5", outputs=2, bias=False)
    )
    jobs = {job.name: job for job in load_lecture(lecture(tmp_path, body)).jobs}
    # [defaults] input/kernel apply where the type takes them (pooling), not to dense
    assert jobs["pool"].spec == MaxPool2d(input_size=(4, 4), kernel_size=(2, 2), stride=(1, 1))
    assert jobs["tconv"].spec == ConvTranspose2d(input_size=(3, 3), kernel_size=(2, 2),
                                                 stride=(2, 2), output_padding=(1, 1))
    assert jobs["dense"].spec == Linear(inputs=5, outputs=2, bias=False)
    assert jobs["tconv"].op == "forward-scatter"
    # the type is part of what decides a clip's content
    assert len({job.digest() for job in jobs.values()}) == 3


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"type": "relu", "kernel": "3"}, 'clip 1 ("a"): kernel: not an option of relu'),
        ({"type": "dense", "outputs": 0}, 'clip 1 ("a"): outputs: must be a positive integer'),
        ({"type": "nope"}, 'clip 1 ("a"): type: unknown layer type'),
        ({"type": "maxpool2d", "op": "dw"}, 'clip 1 ("a"): op: must be one of forward, da'),
    ],
)
def test_lecture_layer_errors_name_the_clip_and_the_key(tmp_path, fields, expected):
    op = fields.pop("op", "forward")
    result = batch(lecture(tmp_path, clip("a", op, **fields), defaults='[defaults]\n'))
    assert result.exit_code == 2
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _network_lecture(tmp_path, body):
    import shutil

    shutil.copy(Path(__file__).resolve().parent.parent / "examples" / "tiny_cnn.toml",
                tmp_path / "cnn.toml")
    return lecture(tmp_path, body, defaults='[defaults]\nquality = "l"\n')


def test_lecture_network_clips_are_checked_when_the_lecture_loads(tmp_path):
    path = _network_lecture(
        tmp_path, '[[clip]]\nname = "net"\nnetwork = "cnn.toml"\nseed = 4\ndetail = 1\n'
        'only = "forward"\nlayers = "1-3"\n'
    )
    (job,) = load_lecture(path).jobs
    assert job.op == "network" and job.output.name == "net.mp4"
    assert job.network["detail"] == 1 and job.network["only"] == "forward"
    before = job.digest()
    (tmp_path / "cnn.toml").write_text(
        (tmp_path / "cnn.toml").read_text().replace("filters = 2", "filters = 3")
    )
    (again,) = load_lecture(path).jobs
    assert again.digest() != before  # the network file's contents decide the clip


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('network = "missing.toml"\n', "network: missing.toml: cannot read"),
        ('network = "cnn.toml"\nop = "forward"\n', "op: a network clip plays every layer"),
        ('network = "cnn.toml"\nkernel = "2"\n', "kernel: a network clip takes its layers"),
        ('network = "cnn.toml"\nlayers = "5-9"\n', "layers:"),
        ('network = "cnn.toml"\nonly = "sideways"\n', "only: forward or backward"),
    ],
)
def test_lecture_network_clip_errors_are_one_line(tmp_path, extra, expected):
    result = batch(_network_lecture(tmp_path, f'[[clip]]\nname = "net"\n{extra}'))
    assert result.exit_code == 2, result.output
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_batch_renders_a_network_clip(tmp_path):
    path = _network_lecture(
        tmp_path, '[[clip]]\nname = "net"\nnetwork = "cnn.toml"\nseed = 4\ndetail = 0\n'
        'layers = "5-6"\nonly = "forward"\n'
    )
    result = batch(path, "-j", "1")
    assert result.exit_code == 0, result.output
    video = tmp_path / "media" / "net.mp4"
    assert video.is_file() and (tmp_path / "media" / "net.mp4.convviz-hash").is_file()
    again = batch(path, "-j", "1")
    assert "up to date" in again.output
