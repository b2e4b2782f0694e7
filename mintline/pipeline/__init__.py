"""`mintline run`: the stages chained in one run directory, resumable, with a report."""
