"""The content classifier: bounded parsing (:mod:`.parsing`), features (:mod:`.features`,
:mod:`.vectorize`), the model store (:mod:`.model`), training (:mod:`.training`), accuracy
figures (:mod:`.evaluation`), mail sources (:mod:`.sources`) and the ``train``/``evaluate``
commands (:mod:`.commands`).

Submodules are imported on demand: scikit-learn is not loaded by commands that do not need it.
"""
