def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "cluster: starts a real Spark standalone cluster on 127.0.0.1 (slow; select with -m cluster)",
    )
