"""The logic behind the Python assets: plain functions the components call, testable on their own."""
