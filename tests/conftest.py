import os
from pathlib import Path

import pytest


@pytest.fixture(scope='session')
def mirror() -> Path | None:
    path = os.environ.get('GRAPHKIT_MIRROR')
    return Path(path) if path else None


@pytest.fixture(scope='session')
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp('graphkit-data')


@pytest.fixture
def require(mirror):
    r"""Skips the test when a raw file is genuinely absent from the mirror;
    the skip message names the file."""
    def check(*relpaths: str) -> Path:
        if mirror is None:
            pytest.skip(f'offline mirror not set ($GRAPHKIT_MIRROR), so '
                        f'{relpaths[0]} is absent')
        for rel in relpaths:
            if not (mirror / rel).exists():
                pytest.skip(f'{rel} is absent from the mirror {mirror}')
        return mirror
    return check
