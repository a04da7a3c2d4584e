"""The config file: read with tomllib, one line changed by set_setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from nixld import paths
from nixld.config import Config, ConfigError, auto_accept, load_config, set_setting

pytestmark = pytest.mark.unit


def test_defaults_without_a_file(xdg: Path) -> None:
    assert load_config() == Config(auto_accept=False, rerun=False)
    assert not paths.config_file().exists()


def test_set_setting_keeps_the_rest(xdg: Path) -> None:
    file = paths.config_file()
    file.parent.mkdir(parents=True)
    file.write_text("# mine\nrerun = true\n[extra]\nauto_accept = 1\n")
    assert set_setting("auto_accept", True) is True
    # Added at the top level, before the table (inside it, it would not count).
    assert file.read_text() == ("# mine\nrerun = true\nauto_accept = true\n"
                                "[extra]\nauto_accept = 1\n")
    assert load_config() == Config(auto_accept=True, rerun=True)
    assert set_setting("rerun", False) is True
    assert load_config().rerun is False
    assert set_setting("rerun", False) is False


def test_set_creates_and_toggles(xdg: Path) -> None:
    assert set_setting("auto_accept", True) is True
    assert paths.config_file().read_text() == "auto_accept = true\n"
    assert load_config().auto_accept is True
    assert set_setting("auto_accept", True) is False
    assert set_setting("auto_accept", False) is True
    assert paths.config_file().read_text() == "auto_accept = false\n"


def test_environment_turns_auto_accept_on() -> None:
    assert auto_accept(Config(), {"NIXLD_AUTO_ACCEPT": "1"}) is True
    assert auto_accept(Config(), {"NIXLD_AUTO_ACCEPT": "0"}) is False
    assert auto_accept(Config(auto_accept=True), {}) is True


@pytest.mark.parametrize("text", ["auto_accept = ", "auto_accept = 'yes'\n", "\xff"])
def test_bad_file_is_one_clear_error(xdg: Path, text: str) -> None:
    file = paths.config_file()
    file.parent.mkdir(parents=True)
    file.write_bytes(text.encode("latin-1"))
    with pytest.raises(ConfigError, match="config"):
        load_config()
    before = file.read_bytes()
    with pytest.raises(ConfigError):
        set_setting("rerun", True)
    assert file.read_bytes() == before  # nothing half-written


def test_unknown_setting(xdg: Path) -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        set_setting("colour", True)
