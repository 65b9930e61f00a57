"""Running: one config builder (:mod:`.config`), the runner (:mod:`.runner`), reproduce, resume and
merge (:mod:`.repro`) and ``publish`` (:mod:`.publish`)."""
