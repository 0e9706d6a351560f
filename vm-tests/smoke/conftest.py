def pytest_configure(config):
    config.addinivalue_line("markers", "bpf: loads BPF programs into the running kernel (root)")
