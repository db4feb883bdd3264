"""Progress lines: a bar with rate and ETA on a terminal, one summary line in a log, nothing with quiet."""
import io

from training.progress import Progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_gets_a_bar_with_rate_and_eta():
    stream = Terminal()
    progress = Progress("w jets", 100, "jets", stream=stream)
    progress.update(40)
    progress.update(60)
    progress.close()
    text = stream.getvalue()
    assert "\r" in text and "40/100 jets (40%)" in text and "jets/s" in text and "ETA" in text and "#" in text


def test_a_log_gets_one_summary_line_and_quiet_gets_nothing():
    log = io.StringIO()
    progress = Progress("w jets", 10, "jets", stream=log)
    for _ in range(10):
        progress.update(1)
    progress.update(0)
    assert log.getvalue().count("\n") == 1 and "10/10 jets (100%)" in log.getvalue()
    silent = io.StringIO()
    quiet = Progress("w jets", 10, "jets", stream=silent, quiet=True)
    quiet.update(10)
    quiet.close()
    assert silent.getvalue() == ""


def test_a_resumed_run_counts_its_rate_from_where_it_started():
    progress = Progress("w jets", 100, "jets", done=90, stream=io.StringIO())
    assert progress.done == 90 and progress.rate == 0.0
