"""Results: the run directory (:mod:`.rundir`), leaderboard numbers (:mod:`.leaderboard`), statistics
(:mod:`.stats`) and explainer agreement (:mod:`.agreement`). Numbers only; :mod:`xbench.report` writes them."""
