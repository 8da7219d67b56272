# The plugin itself is loaded once, through its pytest11 entry point; never list it here.
pytest_plugins = ["pytester"]
