"""config.toml: what `init` writes loads back, and saving keeps what a user added by hand."""

from __future__ import annotations

import pytest

from node.config import NodeConfig, load_config
from node.errors import UserError


def test_save_keeps_hand_added_tables_and_keys(tmp_path):
    cfg = NodeConfig(dir=tmp_path, name='Home "1"', role="consumer", household="home1",
                     grid="g", community="c", admin="ab" * 32)
    cfg.save()
    text = (tmp_path / "config.toml").read_text()
    text = text.replace('token = ""', 'token = ""\nversion = 2\norg = "street"')
    text += ('\n[meter]\nenergy_scale = 1000\n\n[meter.sensor]\naddress = 0x41\n'
             'shunt_ohms = 0.1\n\n[leds]\n"Home 1/grid" = 5\n')
    (tmp_path / "config.toml").write_text(text)

    loaded = load_config(tmp_path)
    loaded.peers.append("http://192.0.2.7:8700")
    loaded.save()  # what `picogrid join` does

    again = load_config(tmp_path)
    assert again.name == 'Home "1"'
    assert again.peers == ["http://192.0.2.7:8700"]
    assert again.extra["meter"] == {"energy_scale": 1000,
                                    "sensor": {"address": 0x41, "shunt_ohms": 0.1}}
    assert again.extra["leds"] == {"Home 1/grid": 5}
    assert again.extra["influx"]["version"] == 2 and again.extra["influx"]["org"] == "street"


@pytest.mark.parametrize("body, message", [
    ("[agent]\nname = 'x'\n", "missing or bad setting"),
    ("not toml at all [", "config.toml"),
])
def test_bad_config_is_a_clear_error(tmp_path, body, message):
    (tmp_path / "config.toml").write_text(body)
    with pytest.raises(UserError, match=message):
        load_config(tmp_path)


def test_missing_config_says_run_init(tmp_path):
    with pytest.raises(UserError, match="picogrid init"):
        load_config(tmp_path)


@pytest.mark.parametrize("value, error", [("grid", None), ("community", None),
                                          ("everything", "node.replicate")])
def test_replicate_is_community_or_grid_and_survives_a_save(tmp_path, value, error):
    cfg = NodeConfig(dir=tmp_path, name="a", role="consumer", household="h", grid="g",
                     community="c", admin="ab" * 32, replicate=value)
    cfg.save()
    if error:
        with pytest.raises(UserError, match=error):
            load_config(tmp_path)
        return
    assert load_config(tmp_path).replicate == value
    assert ("replicate" in (tmp_path / "config.toml").read_text()) is (value == "grid")
