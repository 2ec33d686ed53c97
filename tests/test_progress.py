"""The progress bar: tqdm's on a terminal, a line every 10 % in logs."""

import io

from tinymtl.train.progress import ProgressBar, RunCounter, phase


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_in_a_log_it_prints_a_line_every_tenth_with_speed_eta_and_status():
    log = io.StringIO()
    bar = ProgressBar(200, "multitask", stream=log)
    for step in range(1, 201):
        bar.update(step, "math: valid acc 0.5")
    bar.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 11 and "\r" not in log.getvalue()  # the first step, then each 10 %
    assert lines[-1].startswith("multitask 200/200 ")
    assert all("step/s" in line and " eta " in line and line.endswith("math: valid acc 0.5")
               for line in lines)


def test_in_a_log_a_slow_count_also_prints_when_it_moves_after_a_minute(monkeypatch):
    """A sweep's 39 arms of half an hour each: a line per finished arm once the last line is
    a minute old, not only every 10 % (4 arms, 2 hours)."""
    from tinymtl.train import progress

    clock = [0.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock[0])
    log = io.StringIO()
    bar = ProgressBar(39, "arms", stream=log, unit="arm")
    bar.update(0, "2 running")                    # the first line
    for arm in (1, 2):
        clock[0] += 1800
        bar.update(arm, "2 running")              # 2.6 %, 5.1 %: no tenth reached
    clock[0] += 30
    bar.update(2, "1 running")                    # the count did not move: no line
    clock[0] += 20
    bar.update(3, "2 running")                    # moved, but 50 s after the last line
    lines = log.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["0/39", "1/39", "2/39"]


def test_on_a_terminal_it_redraws_one_line_with_the_status():
    terminal = Terminal()
    bar = ProgressBar(50, "stage0", stream=terminal)
    for step in range(1, 51):
        bar.update(step, "a: valid acc 0.9")
    bar.close()
    text = terminal.getvalue()
    assert "\r" in text and text.count("\n") <= 1  # redrawn in place, one line at the end
    assert "50/50" in text and "a: valid acc 0.9" in text and "stage0" in text


def test_disabled_it_prints_nothing():
    for stream in (io.StringIO(), Terminal()):
        bar = ProgressBar(10, "x", stream=stream, enabled=False)
        for step in range(1, 11):
            bar.update(step, "s")
        bar.close()
        assert stream.getvalue() == ""


def test_on_a_narrow_terminal_a_long_status_is_cut_never_wrapped():
    terminal = Terminal()
    bar = ProgressBar(50, "stage0", stream=terminal, width=80)
    for step in range(1, 51):
        bar.update(step, "kindergarten: valid acc 0.9123 loss 0.1234 · math: valid acc 0.9912 "
                         "loss 0.0234 · and more words than fit")
    bar.close()
    drawn = [line.rstrip("\n") for line in terminal.getvalue().split("\r") if line.strip()]
    assert drawn and max(len(line) for line in drawn) <= 80


def test_a_multi_run_command_says_which_run_and_how_long_is_left():
    counter, labels = RunCounter(3), []
    for seed in range(3):
        with counter.run(f"seed {seed}"):
            labels.append(ProgressBar(10, "multitask", stream=io.StringIO()).label)
    assert labels[0] == "seed 0 — run 1 of 3 · multitask"
    assert labels[1].startswith("seed 1 — run 2 of 3, ~") and labels[1].endswith(
        " left · multitask")
    assert ProgressBar(10, "multitask", stream=io.StringIO()).label == "multitask"  # after


def test_a_phase_is_a_line_on_a_terminal_and_nothing_in_a_log():
    terminal, log, counter = Terminal(), io.StringIO(), RunCounter(2)
    with counter.run("seed 0"):
        phase("loading the data", stream=terminal)
        phase("loading the data", stream=log)
    assert terminal.getvalue() == "seed 0 — run 1 of 2 · loading the data\n"
    assert log.getvalue() == ""
