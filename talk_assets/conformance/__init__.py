"""`talk-assets conformance`: a contract suite per system (`base.Suite`, specialised in `suites.py`), run
by `runner.run_conformance` against what the `TALK_<SYSTEM>_*` variables point at."""
