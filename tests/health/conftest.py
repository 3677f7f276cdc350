from tests.camsim_fixture import camsim, camsim_clips  # noqa: F401  (fixtures)
