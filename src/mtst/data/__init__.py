"""Data: examples (``examples``), raw file readers (``readers``), example loaders (``loaders``), splits (``splits``)."""
