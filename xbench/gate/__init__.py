"""Gates for CI: the regression check against a baseline (:mod:`.check`), quality contracts
(:mod:`.contract`) and the ``xbench_check`` pytest fixture (:mod:`.pytest_plugin`)."""
