"""Build hook beside pyproject.toml (which holds all the metadata): ship ``models/`` — the
shipped classifier model, kept at the repository root as its source of truth — inside the
package as ``milterfilters/models``.

pyproject.toml alone cannot add one package mapped from another folder to the packages
``find`` discovers, hence this file; it says nothing else.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["milterfilters", "milterfilters.*"]), "milterfilters.models"],
    package_dir={"milterfilters.models": "models"},
    package_data={
        "milterfilters": ["py.typed"],
        "milterfilters.models": ["*.json", "*.npz", "SHA256SUMS", "*.md"],
    },
)
