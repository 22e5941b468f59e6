"""normlab: the helper package shared by the chapters of *Normalization Layers in Keras*.

Each module owns one concept and says which chapter explains it:
``runtime`` (set-up, versions, seeds, profiles), ``data`` (datasets and pipelines), ``layers``
(batch norm written out), ``models`` (LeNet-5), ``train`` (runs over seeds and their cache),
``stats`` (confidence intervals and the verdicts a page prints), ``timing`` (fair timings),
``plots`` (the book's figure style), ``page`` (glued values and deliberate errors on a page),
``fingerprint`` (what a result depends on: code and data), ``notebooks`` (executing, stamping
and checking the chapters) and ``readers`` (the chapters in plain Markdown for Colab and
JupyterLab).
"""

__version__ = "0.1.0"
