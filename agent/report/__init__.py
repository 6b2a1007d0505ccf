"""Comparisons and reports over stored results: ``edgebench-agent compare`` and ``edgebench-agent report``.

Split by job so each part can be read (and tested) alone:

- :mod:`.sources` selects result documents from the local store and from other hosts' exported JSON;
- :mod:`.metrics` reads the headline numbers of one document, whatever its scenario or runtime;
- :mod:`.compare` matches configurations against a baseline and computes speedups;
- :mod:`.tables` renders rich tables; :mod:`.plots` draws matplotlib figures (lazily imported);
- :mod:`.html` writes the report's index page; :mod:`.build` puts a report folder together.
"""
