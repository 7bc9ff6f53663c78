"""Progress off a terminal: `prepare` with its output in a log file (Slurm, nohup, `make reproduce > log 2>&1`)
prints plain progress lines with rate and ETA while it runs, not one bar at the end."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import TINY


def test_a_prepare_writing_to_a_log_file_shows_progress_lines_with_eta(reference, tts_cache, tmp_path):
    out, log = tmp_path / "out", tmp_path / "log.txt"
    args = [sys.executable, "-m", "s2ikit", "prepare", "shapes", "--out", str(out), "--cache-dir", str(tts_cache)]
    for section, values in TINY.items():
        for key, value in values.items():
            args += ["--set", f"{section}.{key}={value}"]
    with log.open("w") as file:  # not a terminal: both streams into one file, as `> log 2>&1` does
        result = subprocess.run(args, stdout=file, stderr=subprocess.STDOUT, timeout=300,
                                env={**os.environ, "OMP_NUM_THREADS": "1", "S2IKIT_OFFLINE": "1"})  # fmt: skip
    text = log.read_text()
    assert result.returncode == 0, text[-2000:]
    assert "\x1b[" not in text and not re.search(r"speech\s+━", text)  # no bar, no terminal codes
    progress = [line for line in text.splitlines() if line.startswith("speech: ")]
    figures = r"\d+\.\d\d (samples/s|s/sample) \| ETA \d+:\d\d:\d\d \| elapsed \d+:\d\d:\d\d"
    pattern = r"speech: \d+/16 samples \(\d+%\) \| " + figures
    assert len(progress) >= 5 and all(re.fullmatch(pattern, line) for line in progress), progress
    assert progress[-1].startswith("speech: 16/16 samples (100%)")
    # printed as the work went, before the summary
    assert text.index(progress[0]) < text.index("prepared in")


def test_slow_rates_name_one_of_the_unit():
    from s2ikit.utils.progress import rate_text

    assert rate_text(0.25, "batches") == "4.00 s/batch"  # the voices metric's bar
    assert rate_text(0.5, "steps") == "2.00 s/step"
    assert rate_text(3.0, "samples") == "3.00 samples/s"
