"""The content classifier (docs/classifier.md).

Modules:

* ``parsing``    — bounded MIME walk: text, HTML and attachments of a message within a time/byte budget
* ``features``, ``vectorize`` — what the model reads: tokens and year-robust traits, hashed
* ``model``      — the model store (JSON + arrays + checksums, no pickle) and scoring
* ``paths``      — where the shipped default model lives
* ``training``   — training and updating a model
* ``evaluation`` — accuracy figures; ``plot`` — the ROC curve
* ``sources``    — labelled mail from Maildir, mbox, folders of .eml, the corpus archive
* ``filter``     — :class:`ClassifierFilter`: the model's probability as a finding in the chain
* ``commands``   — the ``train`` and ``evaluate`` commands

Submodules are imported on demand: scikit-learn is not loaded by commands that do not need it.
"""
