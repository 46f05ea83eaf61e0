"""Packaging glue pyproject.toml cannot express: the top-level catalog/ folder ships as `advisor.catalog_data`."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["advisor", "advisor.*"]), "advisor.catalog_data"],
    package_dir={"advisor.catalog_data": "catalog"},
)
