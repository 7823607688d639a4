"""`epochwatch top`: a live terminal view of the runs on this host.

model.py folds trace records into one small state per run; tail.py follows a directory
of traces by reading only the bytes appended since the last look; status_source.py asks the
daemon's status socket (and tails the traces it names, where readable); layout.py lays the
runs out as lines for any terminal size; screen.py is the curses loop. Only screen.py
touches the terminal, so everything else is tested with plain values.
"""
