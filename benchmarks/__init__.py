"""kerascnn's benchmarks: scripts that measure speed side by side (``python -m benchmarks.run``).

Not part of the installed package and never collected by pytest.
"""
