"""A test-only sixth system ("Example Newsletter"): proof that a system is one folder plus one line
(`TALK_EXTRA_SYSTEMS=talk_assets_tests.example_system.system`)."""
