"""``mtst serve``: an HTTP server (OpenAI- and TEI-shaped routes) with micro-batching, metrics and a web page.

Nothing is imported here, so ``mtst --help`` works without the ``serve`` extra installed.
"""
