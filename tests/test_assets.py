"""assets.download_verified: the one verified download into the cache (assets and presets)."""

from __future__ import annotations

import pytest

from keras_facehallu.assets import AssetError, download_verified, sha256_of


def test_download_verified_writes_the_target_and_refuses_a_wrong_hash(tmp_path):
    source = tmp_path / "published" / "x.bin"
    source.parent.mkdir()
    source.write_bytes(b"facehallu" * 100)
    digest = sha256_of(source)
    target = tmp_path / "cache" / "sub" / "x.bin"
    assert download_verified(source.as_uri(), target, digest) == target
    assert target.read_bytes() == source.read_bytes()
    other = tmp_path / "cache" / "y.bin"
    with pytest.raises(AssetError, match=f"y.bin \\(downloaded from file:.*x.bin\\) has sha256 "
                                         f"{digest}, expected 0000"):
        download_verified(source.as_uri(), other, "0" * 64)
    assert not other.exists()
